//! DNS-01 against real `landlord` processes, with the DNS-01 settings pointing at the real
//! authoritative server `scripts/test-dns.sh` starts (Knot, RFC 2136, TSIG): the delegated
//! `_acme-challenge` CNAME a domain shows, and its check.

mod support;

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use support::*;

const CHECK_DEADLINE: Duration = Duration::from_secs(30);

fn dns01_env() -> Vec<(&'static str, String)> {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run through `just test` (scripts/test-dns.sh)")
        })
    };
    vec![
        (
            "LANDLORD_DNS_UPDATE_SERVER",
            var("LANDLORD_TEST_DNS_UPDATE_SERVER"),
        ),
        (
            "LANDLORD_DNS_UPDATE_TSIG",
            var("LANDLORD_TEST_DNS_UPDATE_TSIG"),
        ),
        ("LANDLORD_ACME_DNS_ZONE", "acme-dns.test".to_owned()),
    ]
}

#[sqlx::test(migrations = false)]
async fn a_delegated_acme_challenge_cname_is_shown_checked_and_kept(pool: PgPool) {
    let env = dns01_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut p = Platform::start(pool, &env).await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("migrating");
    let id = p.add_domain(&key, &host).await;

    let d = p.domain(&key, &id).await;
    let delegation = &d["dcv_delegation"];
    assert_eq!(delegation["type"], "CNAME");
    assert_eq!(delegation["name"], format!("_acme-challenge.{host}"));
    let value = delegation["value"].as_str().unwrap().to_owned();
    let label = value
        .strip_suffix(".acme-dns.test")
        .expect("in the challenge zone");
    assert!(
        label.len() == 32 && label.bytes().all(|b| b.is_ascii_hexdigit()),
        "an unguessable label: {value}"
    );
    assert_eq!(delegation["verified"], false);

    // The tenant delegates; its traffic still goes elsewhere (no CNAME to us yet).
    let challenge = format!("_acme-challenge.{host}");
    p.dns("/set-cname", json!({"host": challenge, "target": value}))
        .await;
    p.wake(&host).await;
    let d = p
        .wait_domain(&key, &id, CHECK_DEADLINE, |d| {
            d["dcv_delegation"]["verified"] == true
        })
        .await;
    assert_eq!(d["status"], "pending_dns");

    // Gone again: no longer verified at the next check.
    p.dns("/clear-cname", json!({"host": challenge})).await;
    p.wake(&host).await;
    p.wait_domain(&key, &id, CHECK_DEADLINE, |d| {
        d["dcv_delegation"]["verified"] == false
    })
    .await;

    // Deleted and registered again: the same delegation, so the tenant's record stays right.
    let res = p
        .client
        .delete(format!("{}/v1/domains/{id}", p.api))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let again = p.add_domain(&key, &host).await;
    assert_eq!(
        p.domain(&key, &again).await["dcv_delegation"]["value"],
        value
    );
}
