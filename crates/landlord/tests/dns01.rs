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
    p.delete_domain(&key, &id).await;
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
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "issued"
                && e["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("Certificate ready before DNS switch")),
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

/// `dns01_env` with the platform domain Knot serves (`sites.platform.test`).
fn platform_env() -> Vec<(&'static str, String)> {
    let mut env = dns01_env();
    env.push(("LANDLORD_PLATFORM_DOMAIN", "sites.platform.test".to_owned()));
    env
}

/// The status of a registration, read from the database (the platform's own is no
/// tenant's to ask the API about).
async fn status_of(pool: &PgPool, hostname: &str) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM domains WHERE hostname = $1")
        .bind(hostname)
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn serial_of(pool: &PgPool, hostname: &str) -> String {
    sqlx::query_scalar("SELECT serial FROM certificates WHERE hostname = $1")
        .bind(hostname)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// With `LANDLORD_PLATFORM_DOMAIN`, the worker registers `*.sites.platform.test` for the
/// platform and certifies it through DNS-01 in that zone (on Knot); from then on a new
/// site is served at `<slug>.sites.platform.test` as soon as it has a deploy, under that
/// one certificate. Slugs are validated, unique across tenants, and changing one moves
/// the site.
#[sqlx::test(migrations = false)]
async fn a_new_site_is_served_at_its_platform_subdomain_under_the_wildcard(pool: PgPool) {
    let env = platform_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut p = Platform::start(pool.clone(), &env).await;
    p.env.pebble_root = var("LANDLORD_TEST_DNS01_PEBBLE_ROOT");
    let (_, https) = p.spawn_edge_anywhere().await;
    p.spawn("worker", &[]);
    let wildcard = "*.sites.platform.test";
    p.wait_for(
        "the platform's wildcard certificate",
        Duration::from_secs(90),
        |p| async move { status_of(&p.pool, wildcard).await.as_deref() == Some("active") },
    )
    .await;
    let wildcard_serial = serial_of(&pool, wildcard).await;

    let (a, b) = (p.tenant().await, p.tenant().await);
    let slug = format!("docs{}", &unique("x")[2..12]);
    let create = |key: &str, body: serde_json::Value| {
        p.client
            .post(format!("{}/v1/sites", p.api))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let started = std::time::Instant::now();
    let res = create(&a, json!({"name": "docs", "slug": slug}))
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let site: serde_json::Value = res.json().await.unwrap();
    let host = format!("{slug}.sites.platform.test");
    assert_eq!(site["platform_hostname"], host.as_str());
    let res = p
        .client
        .post(format!(
            "{}/v1/sites/{}/deployments",
            p.api,
            site["id"].as_str().unwrap()
        ))
        .bearer_auth(&a)
        .header("content-type", "application/x-tar")
        .body(tar_of(&[("index.html", "docs on the platform")]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let h = host.clone();
    p.wait_for("the site at its slug", Duration::from_secs(30), |p| {
        let h = h.clone();
        async move { p.fetch(&h, https, "/").await == Some((200, "docs on the platform".into())) }
    })
    .await;
    println!(
        "{host} served over HTTPS {:?} after the site was created",
        started.elapsed()
    );
    assert_eq!(p.presented_serial(&host, https).await, wildcard_serial);

    // Another tenant cannot take the slug, and reserved or malformed slugs are refused.
    let res = create(&b, json!({"name": "docs", "slug": slug}))
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    for bad in ["www", "api", "-x", "x-", "xn--abc", "a.b", "UPPER"] {
        let res = create(&b, json!({"name": "other", "slug": bad}))
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{bad}");
    }
    // Without a slug, a site gets its name when free, else the name and a suffix.
    let res = create(&b, json!({"name": "docs"})).await.unwrap();
    let other: serde_json::Value = res.json().await.unwrap();
    let other_slug = other["slug"].as_str().unwrap();
    assert!(other_slug.starts_with("docs"), "{other}");
    assert_ne!(other_slug, "docs".to_owned() + &slug);
    // Nobody's slug: refused in the handshake, from memory.
    assert!(
        p.fetch("nobody-here.sites.platform.test", https, "/")
            .await
            .is_none()
    );
    // Tenants cannot register names under the platform domain themselves.
    let res = p
        .client
        .post(format!("{}/v1/domains", p.api))
        .bearer_auth(&b)
        .json(&json!({"hostname": format!("x{slug}.sites.platform.test")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);

    // A new slug moves the site; the old name is nobody's.
    let moved = format!("moved-{slug}");
    let res = p
        .client
        .patch(format!(
            "{}/v1/sites/{}",
            p.api,
            site["id"].as_str().unwrap()
        ))
        .bearer_auth(&a)
        .json(&json!({"slug": moved}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let new_host = format!("{moved}.sites.platform.test");
    p.wait_for("the site at its new slug", Duration::from_secs(10), |p| {
        let (new_host, old) = (new_host.clone(), host.clone());
        async move {
            p.fetch(&new_host, https, "/").await == Some((200, "docs on the platform".into()))
                && p.fetch(&old, https, "/").await.is_none()
        }
    })
    .await;
}

/// `*.<name>` waits for its delegation (a wildcard is certified through DNS-01 only),
/// then serves any one-label subdomain under one certificate that the edge loads once:
/// new subdomains cost no database query. An exact registration under it has its own.
#[sqlx::test(migrations = false)]
async fn a_wildcard_hostname_is_certified_through_its_delegation_and_serves_any_subdomain(
    pool: PgPool,
) {
    let env = dns01_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut p = Platform::start(pool.clone(), &env).await;
    p.env.pebble_root = var("LANDLORD_TEST_DNS01_PEBBLE_ROOT");
    let (_, https) = p
        .start_edge("127.0.0.1:0", &[("LANDLORD_METRICS_ADDR", "127.0.0.1:0")])
        .await;
    let metrics = format!(
        "127.0.0.1:{}",
        p.bound(p.procs.len() - 1, "LANDLORD_METRICS_ADDR").await
    );
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let base = unique("wild");
    let wildcard = format!("*.{base}");
    let id = p.add_domain(&key, &wildcard).await;
    let d = p
        .wait_domain(&key, &id, CHECK_DEADLINE, |d| {
            d["check"]["problem"]
                .as_str()
                .is_some_and(|s| s.contains("is a wildcard"))
        })
        .await;
    assert_eq!(d["status"], "pending_dns");
    assert_eq!(
        d["dcv_delegation"]["name"],
        format!("_acme-challenge.{base}")
    );
    let problem = d["check"]["problem"].as_str().unwrap();
    assert!(
        problem.contains(&format!("_acme-challenge.{base}")),
        "{problem}"
    );
    let value = d["dcv_delegation"]["value"].as_str().unwrap().to_owned();
    p.dns(
        "/set-cname",
        json!({"host": format!("_acme-challenge.{base}"), "target": value}),
    )
    .await;
    p.wake(&wildcard).await;
    let d = p
        .wait_domain(&key, &id, Duration::from_secs(90), |d| {
            d["status"] == "active"
        })
        .await;
    let serial = d["certificate"]["serial"].as_str().unwrap().to_owned();
    p.put_file(&key, "index.html", "text/html", "any subdomain")
        .await;

    let first = format!("first.{base}");
    let f = first.clone();
    p.wait_for("the first subdomain", Duration::from_secs(10), |p| {
        let f = f.clone();
        async move { p.fetch(&f, https, "/").await == Some((200, "any subdomain".into())) }
    })
    .await;
    let queries = |m: String| async move {
        metric(
            &m,
            "landlord_edge_db_queries_total",
            &[("kind", "certificate")],
        )
        .await
    };
    let after_first = queries(metrics.clone()).await;
    for sub in ["second", "third", "fourth"] {
        let host = format!("{sub}.{base}");
        assert_eq!(
            p.fetch(&host, https, "/").await,
            Some((200, "any subdomain".into())),
            "{host}"
        );
        assert_eq!(p.presented_serial(&host, https).await, serial);
    }
    assert_eq!(
        queries(metrics.clone()).await,
        after_first,
        "new subdomains of a cached wildcard cost no database query"
    );
    // One label only: a name two labels down is nobody's.
    assert!(p.fetch(&format!("a.b.{base}"), https, "/").await.is_none());

    // An exact registration beats the wildcard: its own delegation, its own certificate.
    let exact = format!("www.{base}");
    let exact_id = p.add_domain(&key, &exact).await;
    let value = p.domain(&key, &exact_id).await["dcv_delegation"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    p.dns(
        "/set-cname",
        json!({"host": format!("_acme-challenge.{exact}"), "target": value}),
    )
    .await;
    p.wake(&exact).await;
    let e = p
        .wait_domain(&key, &exact_id, Duration::from_secs(90), |d| {
            d["status"] == "active"
        })
        .await;
    let exact_serial = e["certificate"]["serial"].as_str().unwrap().to_owned();
    assert_ne!(exact_serial, serial);
    let x = exact.clone();
    p.wait_for(
        "the exact name's own certificate",
        Duration::from_secs(10),
        |p| {
            let (x, want) = (x.clone(), exact_serial.clone());
            async move { p.presented_serial(&x, https).await == want }
        },
    )
    .await;
}

/// A DNS server that cannot be updated (a wrong TSIG secret, nobody listening, a zone that
/// refuses the key), or a record that does not show on the servers checked, is named in plain words in the domain's `last_error`, the attempt is
/// retried, and nothing is left stuck: once the settings are right, the same domain is
/// certified and the records noted on the way are gone.
#[sqlx::test(migrations = false)]
async fn dns_update_failures_are_explained_and_nothing_stays_stuck(pool: PgPool) {
    let env = dns01_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut p = Platform::start(pool.clone(), &env).await;
    let key = p.tenant().await;
    let host = unique("failing");
    let id = p.add_domain(&key, &host).await;
    let value = p.domain(&key, &id).await["dcv_delegation"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let label = value.strip_suffix(".acme-dns.test").unwrap().to_owned();
    let delegate = async |p: &Platform, target: String| {
        p.dns(
            "/set-cname",
            json!({"host": format!("_acme-challenge.{host}"), "target": target}),
        )
        .await;
    };

    let tsig = var("LANDLORD_TEST_DNS_UPDATE_TSIG");
    let (key_name, _) = tsig.split_once(':').unwrap();
    let wrong_secret = format!("{key_name}:hmac-sha256:d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let never_shows = var("LANDLORD_TEST_DNS_SERVER");
    // The worker's settings, the words expected in `last_error`, the delegation's zone.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 4] = [
        (
            &[("LANDLORD_DNS_UPDATE_TSIG", wrong_secret.as_str())],
            "refused our TSIG signature",
            "acme-dns.test",
        ),
        (
            &[("LANDLORD_DNS_UPDATE_SERVER", closed.as_str())],
            "did not answer",
            "acme-dns.test",
        ),
        (
            &[("LANDLORD_ACME_DNS_ZONE", "cust-dns.test")],
            "refused to update zone cust-dns.test",
            "cust-dns.test",
        ),
        // Written, but the servers checked never show it (challtestsrv has no such zone).
        (
            &[
                ("LANDLORD_DNS_UPDATE_CHECK_SERVERS", never_shows.as_str()),
                ("LANDLORD_DNS_PROPAGATION_TIMEOUT", "1s"),
            ],
            "was written but its zone's servers did not show it within 1 second",
            "acme-dns.test",
        ),
    ];
    for (worker_env, expected, zone) in cases {
        delegate(&p, format!("{label}.{zone}")).await;
        let worker = p.spawn("worker", worker_env);
        p.wake(&host).await;
        let d = p
            .wait_domain(&key, &id, Duration::from_secs(30), |d| {
                d["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains(expected))
            })
            .await;
        let error = d["last_error"].as_str().unwrap();
        assert!(error.starts_with("The DNS-01 record"), "{error}");
        assert_ne!(d["status"], "active");
        p.procs[worker].kill9();
    }

    // Right settings: the same domain goes on and is certified; nothing noted is left.
    delegate(&p, value).await;
    p.spawn("worker", &[]);
    p.wake(&host).await;
    let d = p
        .wait_domain(&key, &id, Duration::from_secs(90), |d| {
            d["status"] == "active"
        })
        .await;
    assert!(d["last_error"].is_null(), "{d}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM dns_challenge_records")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
