//! DNS-01 against real `landlord` processes, with the DNS-01 settings pointing at the real
//! authoritative server `scripts/test-dns.sh` starts (Knot, RFC 2136, TSIG): the delegated
//! `_acme-challenge` CNAME a domain shows, and its check.

mod support;

use std::time::Duration;

use landlord_worker::dns::update::{DnsUpdater, Name};
use serde_json::json;
use sqlx::PgPool;
use support::*;

const CHECK_DEADLINE: Duration = Duration::from_secs(30);

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run through `just test` (scripts/test-dns.sh)")
    })
}

/// DNS-01 on Knot, and the Pebble that validates through Unbound.
fn dns01_env() -> Vec<(&'static str, String)> {
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
        (
            "LANDLORD_ACME_DIRECTORY",
            var("LANDLORD_TEST_DNS01_ACME_DIRECTORY"),
        ),
        (
            "LANDLORD_ACME_CA_ROOTS",
            var("LANDLORD_TEST_DNS01_ACME_CA_ROOTS"),
        ),
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
    assert_ne!(d["status"], "moved");
    // Issuance through it starts now (see the next test); let it finish first.
    p.wait_domain(&key, &id, Duration::from_secs(90), |d| {
        d["status"] == "active"
    })
    .await;

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

/// A domain whose `_acme-challenge` is delegated gets its certificate through DNS-01 while
/// its own name still points nowhere near us (written on Knot, seen through Unbound by a
/// Pebble that resolves there); the record is removed after validation, and so is one a
/// killed worker left; once the name is pointed at us, the first HTTPS request is served
/// with that certificate.
#[sqlx::test(migrations = false)]
async fn a_delegated_domain_is_certified_before_its_traffic_moves(pool: PgPool) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run through `just test`"))
    };
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut env = dns01_env();
    env.push((
        "LANDLORD_ACME_DIRECTORY",
        var("LANDLORD_TEST_DNS01_ACME_DIRECTORY"),
    ));
    env.push((
        "LANDLORD_ACME_CA_ROOTS",
        var("LANDLORD_TEST_DNS01_ACME_CA_ROOTS"),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut p = Platform::start(pool.clone(), &env).await;
    p.env.pebble_root = var("LANDLORD_TEST_DNS01_PEBBLE_ROOT");
    let port = p.spawn_edge().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("early");
    let id = p.add_domain(&key, &host).await;
    let value = p.domain(&key, &id).await["dcv_delegation"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    // What a worker killed mid-validation leaves: a noted record, written on the zone.
    let updater = DnsUpdater::new(
        var("LANDLORD_TEST_DNS_UPDATE_SERVER").parse().unwrap(),
        &var("LANDLORD_TEST_DNS_UPDATE_TSIG").parse().unwrap(),
        vec![],
        Duration::from_secs(2),
    )
    .unwrap();
    let (zone, record) = (
        Name::from_ascii("acme-dns.test.").unwrap(),
        Name::from_ascii(format!("{value}.")).unwrap(),
    );
    updater
        .add_txt(&zone, &record, "left-by-a-crash")
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO dns_challenge_records (domain_id, zone, name, value) \
         VALUES ($1::uuid, 'acme-dns.test.', $2, 'left-by-a-crash')",
    )
    .bind(&id)
    .bind(format!("{value}."))
    .execute(&pool)
    .await
    .unwrap();
    p.dns(
        "/set-cname",
        json!({"host": format!("_acme-challenge.{host}"), "target": value}),
    )
    .await;
    p.wake(&host).await;

    let d = p
        .wait_domain(&key, &id, Duration::from_secs(90), |d| {
            d["status"] == "active"
        })
        .await;
    assert!(
        d["certificate"]["issuer"]
            .as_str()
            .unwrap()
            .contains("Pebble"),
        "{d}"
    );
    let d = p
        .wait_domain(&key, &id, CHECK_DEADLINE, |d| {
            d["check"]["problem"]
                .as_str()
                .is_some_and(|s| s.starts_with("Certificate ready before DNS switch"))
        })
        .await;
    assert_eq!(d["status"], "active", "not `moved`: its traffic never came");
    let events = p
        .client
        .get(format!("{}/v1/domains/{id}/events", p.api))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("DNS-01 record written")),
        "{events}"
    );
    // Every written record, the crashed round's too, was removed and forgotten.
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM dns_challenge_records")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert!(
        !updater
            .txt_visible(&record, "left-by-a-crash")
            .await
            .unwrap()
    );

    // Traffic moves: the very first HTTPS request gets the certificate issued before.
    p.point(&host).await;
    let serial = d["certificate"]["serial"].as_str().unwrap().to_owned();
    assert_eq!(p.presented_serial(&host, port).await, serial);
}
