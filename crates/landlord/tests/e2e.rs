//! End to end against real PostgreSQL, Pebble and pebble-challtestsrv, with real
//! `landlord api`, `worker` and `edge` processes.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use support::{EDGE_PORT_LOCK, Platform, TARGET, unique};

const ISSUE_DEADLINE: Duration = Duration::from_secs(90);

#[sqlx::test(migrations = false)]
async fn rest_to_active_certificate_verifies_against_pebble_root(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[]).await;
    let https_port = p.spawn_edge().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("shop");
    let id = p.add_domain(&key, &host).await;

    // No record yet: pending, with the tenant's problem in plain words.
    let d = p
        .wait_domain(&key, &id, ISSUE_DEADLINE, |d| {
            !d["check"]["checked_at"].is_null()
        })
        .await;
    assert_eq!(d["status"], "pending_dns");
    let problem = d["check"]["problem"].as_str().unwrap();
    assert!(
        problem.contains("has no DNS record yet") && problem.contains(TARGET),
        "{problem}"
    );

    // The tenant creates the CNAME and asks for a check.
    p.point(&host).await;
    p.check_now(&key, &id).await;
    let d = p
        .wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    assert!(d["check"]["problem"].is_null());
    assert!(d["last_error"].is_null());
    let cert = &d["certificate"];
    assert!(
        cert["issuer"].as_str().unwrap().contains("Pebble"),
        "{cert}"
    );
    for field in ["not_before", "not_after", "serial", "renew_at"] {
        assert!(cert[field].is_string(), "{field}: {cert}");
    }
    let events = p.events(&key, &id).await;
    for kind in [
        "created",
        "dns_problem",
        "check_requested",
        "dns_verified",
        "order_placed",
        "challenge_ready",
        "issued",
    ] {
        assert!(
            events.iter().any(|e| e == kind),
            "{kind} missing from {events:?}"
        );
    }

    // The stored chain verifies against this Pebble's root; the stored key is its key.
    let (chain, sealed): (String, Vec<u8>) =
        sqlx::query_as("SELECT chain_pem, key_sealed FROM certificates WHERE hostname = $1")
            .bind(&host)
            .fetch_one(&pool)
            .await
            .unwrap();
    let dir = tempdir(&host);
    let parts: Vec<&str> = chain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .collect();
    assert!(parts.len() >= 2, "leaf and intermediate");
    std::fs::write(dir.join("leaf.pem"), parts[0]).unwrap();
    std::fs::write(dir.join("intermediates.pem"), parts[1..].concat()).unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile", &p.env.pebble_root, "-untrusted"])
        .arg(dir.join("intermediates.pem"))
        .arg(dir.join("leaf.pem"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let master = landlord_store::MasterKey::new(base64_32(support::MASTER_KEY));
    let key_pem = master
        .open(&sealed, &landlord_store::certificate_key_context(&host))
        .unwrap();
    std::fs::write(dir.join("key.pem"), &key_pem).unwrap();
    let cert_pub = openssl(&["x509", "-noout", "-pubkey", "-in"], &dir.join("leaf.pem"));
    let key_pub = openssl(&["pkey", "-pubout", "-in"], &dir.join("key.pem"));
    assert_eq!(
        cert_pub, key_pub,
        "the stored key belongs to the certificate"
    );

    // Plain HTTP on the edge: registered → 308 to HTTPS, unknown → 404.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let edge = format!("http://127.0.0.1:{}/a/b?c=1", p.env.http01_port);
    let res = http
        .get(&edge)
        .header("host", host.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(
        res.headers()["location"],
        format!("https://{host}:{https_port}/a/b?c=1")
    );
    let res = http
        .get(&edge)
        .header("host", "unknown.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // A database dump holds no private key in clear.
    let dump = Command::new("pg_dump").arg(&p.db_url).output().unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains(&host), "the dump is of the right database");
    assert!(
        !dump.contains("PRIVATE KEY"),
        "a PEM private key is stored in clear"
    );
}

#[sqlx::test(migrations = false)]
async fn wrong_dns_is_explained_and_never_ordered_until_fixed(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[]).await;
    p.spawn_edge().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;

    let elsewhere = unique("elsewhere");
    p.dns(
        "/set-cname",
        json!({"host": elsewhere, "target": "acme.herokudns.test"}),
    )
    .await;
    let stray = unique("stray");
    p.dns(
        "/add-a",
        json!({"host": stray, "addresses": ["127.0.0.1", "203.0.113.9"]}),
    )
    .await;
    // A name cannot hold both a CNAME and a CAA record: the policy sits on the parent.
    let caa_parent = unique("caa");
    let caa = format!("www.{caa_parent}");
    let caa_id = p.add_domain(&key, &caa).await;
    p.point(&caa).await;
    p.dns(
        "/add-caa",
        json!({"host": caa_parent, "policies": [{"tag": "issue", "value": "digicert.com"}]}),
    )
    .await;

    let cases = [
        (
            elsewhere.clone(),
            format!("{elsewhere} is a CNAME to acme.herokudns.test, not to "),
        ),
        (
            stray.clone(),
            "The A record 203.0.113.9 is not one of our addresses (127.0.0.1). Remove it."
                .to_owned(),
        ),
        (
            caa.clone(),
            format!("A CAA record on {caa_parent} allows only digicert.com."),
        ),
    ];
    let mut ids = Vec::new();
    p.wake(&caa).await;
    for (host, expected) in &cases {
        let id = if *host == caa {
            caa_id.clone()
        } else {
            p.add_domain(&key, host).await
        };
        let d = p
            .wait_domain(&key, &id, ISSUE_DEADLINE, |d| {
                !d["check"]["problem"].is_null()
            })
            .await;
        assert_eq!(d["status"], "pending_dns");
        let problem = d["check"]["problem"].as_str().unwrap();
        assert!(problem.starts_with(expected.as_str()), "{host}: {problem}");
        ids.push(id);
    }
    for id in &ids {
        let events = p.events(&key, id).await;
        assert!(
            !events.iter().any(|e| e == "order_placed"),
            "no ACME order for a domain not pointed at us: {events:?}"
        );
    }
    let challenges: i64 = sqlx::query_scalar("SELECT count(*) FROM acme_challenges")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(challenges, 0);

    // The tenant fixes the CNAME; the worker's own re-check (no "check now") finds it.
    p.point(&elsewhere).await;
    let d = p
        .wait_domain(&key, &ids[0], ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    assert!(d["check"]["problem"].is_null());
}

#[sqlx::test(migrations = false)]
async fn ca_refusal_is_failed_with_a_clear_error(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    // 127.0.0.2 counts as ours, but no edge listens there: the CA cannot connect.
    let mut p = Platform::start(pool, &[("LANDLORD_EDGE_IPS", "127.0.0.1,127.0.0.2")]).await;
    p.spawn_edge().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("refused");
    p.dns("/add-a", json!({"host": host, "addresses": ["127.0.0.2"]}))
        .await;
    let id = p.add_domain(&key, &host).await;
    // Pointed with an A record: the first certificate waits for the TXT proof.
    p.wait_domain(&key, &id, ISSUE_DEADLINE, |d| {
        d["check"]["problem"]
            .as_str()
            .is_some_and(|s| s.contains("To prove it is yours, add a TXT record"))
    })
    .await;
    p.prove_ownership(&host).await;
    let d = p
        .wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "failed")
        .await;
    let error = d["last_error"].as_str().unwrap();
    assert!(error.contains("could not connect"), "{error}");
    let next = time::OffsetDateTime::parse(
        d["next_attempt_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        next > time::OffsetDateTime::now_utc() + time::Duration::seconds(30),
        "backs off: {next}"
    );
    let events = p.events(&key, &id).await;
    assert_eq!(
        events.iter().filter(|e| *e == "order_placed").count(),
        1,
        "{events:?}"
    );
    assert!(events.iter().any(|e| e == "failed"));
}

#[sqlx::test(migrations = false)]
async fn two_workers_issue_exactly_one_certificate_per_domain(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[]).await;
    p.spawn_edge().await;
    p.spawn("worker", &[("LANDLORD_WORKER_CONCURRENCY", "4")]);
    p.spawn("worker", &[("LANDLORD_WORKER_CONCURRENCY", "4")]);
    let key = p.tenant().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let host = unique(&format!("fleet{i}"));
        ids.push(p.add_pointed_domain(&key, &host).await);
    }
    for id in &ids {
        p.wait_domain(&key, id, ISSUE_DEADLINE, |d| d["status"] == "active")
            .await;
    }
    let certs: i64 = sqlx::query_scalar("SELECT count(*) FROM certificates")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(certs, 20);
    for id in &ids {
        let events = p.events(&key, id).await;
        assert_eq!(
            events.iter().filter(|e| *e == "issued").count(),
            1,
            "{events:?}"
        );
        assert_eq!(
            events.iter().filter(|e| *e == "order_placed").count(),
            1,
            "{events:?}"
        );
    }
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM acme_accounts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        accounts, 1,
        "one ACME account for all tenants, even with two workers"
    );
}

#[sqlx::test(migrations = false)]
async fn a_worker_killed_mid_order_is_taken_over(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[]).await;
    p.spawn_edge().await;
    let first = p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("takeover");
    let id = p.add_pointed_domain(&key, &host).await;

    // Kill the worker the moment its order is placed.
    let end = Instant::now() + ISSUE_DEADLINE;
    loop {
        let placed: bool = sqlx::query_scalar("SELECT order_url IS NOT NULL FROM domains")
            .fetch_one(&pool)
            .await
            .unwrap();
        if placed {
            break;
        }
        assert!(Instant::now() < end, "the order was never placed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.procs[first].kill9();
    let status: String = sqlx::query_scalar("SELECT status FROM domains")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "issuing", "killed mid-issuance");

    p.spawn("worker", &[]);
    let d = p
        .wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    assert!(d["certificate"]["serial"].is_string());
    let certs: i64 = sqlx::query_scalar("SELECT count(*) FROM certificates")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(certs, 1);
    let events = p.events(&key, &id).await;
    assert_eq!(
        events.iter().filter(|e| *e == "order_placed").count(),
        1,
        "the order in flight was resumed: {events:?}"
    );
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn openssl(args: &[&str], file: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn base64_32(s: &str) -> [u8; 32] {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap()
        .try_into()
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn two_edges_serve_pages_by_sni_and_follow_changes(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool, &[]).await;
    let edges = [p.spawn_edge().await, p.spawn_extra_edge().await];
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("pages");
    let id = p.add_pointed_domain(&key, &host).await;
    p.put_file(
        &key,
        "index.html",
        "text/html; charset=utf-8",
        "<h1>v1</h1>",
    )
    .await;
    p.wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;

    let mut etag = String::new();
    for port in edges {
        let client = p.https_client(&host, port);
        let res = client
            .get(format!("https://{host}:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert!(res.headers().contains_key("strict-transport-security"));
        etag = res.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(res.text().await.unwrap(), "<h1>v1</h1>");
        let res = client
            .get(format!("https://{host}:{port}/"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 304);
        let res = client
            .get(format!("https://{host}:{port}/missing.html"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        let res = client
            .get(format!("https://{host}:{port}/"))
            .header("host", "someone-else.example.org")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 421);

        // Unknown SNI and no SNI: the handshake fails with unrecognized_name.
        let unknown = unique("unknown");
        let err = p
            .https_client(&unknown, port)
            .get(format!("https://{unknown}:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("UnrecognisedName"), "{err:?}");
        let err = p
            .https_client(&host, port)
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("UnrecognisedName"), "{err:?}");
    }

    // A new version of the file is served by both edges within 2 s.
    p.put_file(
        &key,
        "index.html",
        "text/html; charset=utf-8",
        "<h1>v2</h1>",
    )
    .await;
    for port in edges {
        let client = p.https_client(&host, port);
        let end = Instant::now() + Duration::from_secs(2);
        loop {
            let res = client
                .get(format!("https://{host}:{port}/"))
                .send()
                .await
                .unwrap();
            let new_etag = res.headers()["etag"].to_str().unwrap().to_owned();
            if new_etag != etag {
                assert_eq!(res.text().await.unwrap(), "<h1>v2</h1>");
                break;
            }
            assert!(
                Instant::now() < end,
                "edge {port} still serves the old file"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Deleting the domain stops the handshake on both edges within 2 s.
    p.delete_domain(&key, &id).await;
    for port in edges {
        let end = Instant::now() + Duration::from_secs(2);
        loop {
            let client = p.https_client(&host, port);
            match client.get(format!("https://{host}:{port}/")).send().await {
                Err(e) if format!("{e:?}").contains("UnrecognisedName") => break,
                other => {
                    assert!(
                        Instant::now() < end,
                        "edge {port} still serves {host}: {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

#[sqlx::test(migrations = false)]
async fn renewal_replaces_the_certificate_without_interrupting_service(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    // Renew ten years before expiry: Pebble's 5-year certificates are due at once.
    let mut p = Platform::start(pool, &[("LANDLORD_RENEW_BEFORE_SECONDS", "315360000")]).await;
    let https = p.spawn_edge().await;
    let key = p.tenant().await;
    let host = unique("renew");
    let id = p.add_pointed_domain(&key, &host).await;
    p.put_file(&key, "index.html", "text/html", "up").await;
    p.spawn("worker", &[]);
    let first = p
        .wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    let first_serial = first["certificate"]["serial"].as_str().unwrap().to_owned();

    // Visitors keep being served while the worker renews: requests run throughout.
    let client = p.https_client(&host, https);
    let url = format!("https://{host}:{https}/");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let visitor = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut served = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let res = client
                    .get(&url)
                    .send()
                    .await
                    .expect("served during renewal");
                assert_eq!(res.status(), 200);
                served += 1;
            }
            served
        }
    });
    let renewed = p
        .wait_domain(&key, &id, ISSUE_DEADLINE, |d| {
            d["certificate"]["serial"]
                .as_str()
                .is_some_and(|s| s != first_serial)
        })
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let served = visitor.await.expect("no request failed during renewal");
    assert!(served > 0, "requests ran while renewing");
    // New handshakes present the renewed certificate within seconds (Pebble's ten-year
    // rule renews again and again here, so compare with the serial the API shows now).
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let presented = p.presented_serial(&host, https).await;
        let current = p.domain(&key, &id).await["certificate"]["serial"].clone();
        if presented != first_serial && current == presented.as_str() {
            break;
        }
        assert!(
            Instant::now() < end,
            "the edge still presents {presented}, the API shows {current}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(renewed["status"], "active", "renewal happens inside active");
    let events = p.events(&key, &id).await;
    assert!(events.iter().any(|e| e == "renewed"), "{events:?}");
}

#[sqlx::test(migrations = false)]
async fn a_domain_whose_dns_moves_away_becomes_moved_and_comes_back(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(
        pool,
        &[
            ("LANDLORD_RECHECK_ACTIVE_SECONDS", "1"),
            ("LANDLORD_MOVED_AFTER", "2"),
        ],
    )
    .await;
    p.spawn_edge().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("mover");
    let id = p.add_pointed_domain(&key, &host).await;
    let active = p
        .wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    let serial = active["certificate"]["serial"].clone();

    p.dns(
        "/set-cname",
        json!({"host": host, "target": "other-platform.example.net"}),
    )
    .await;
    let moved = p
        .wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "moved")
        .await;
    assert!(
        moved["check"]["problem"]
            .as_str()
            .unwrap()
            .contains("other-platform.example.net")
    );
    assert_eq!(moved["certificate"]["serial"], serial, "kept, not renewed");

    p.point(&host).await;
    let back = p
        .wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    assert_eq!(
        back["certificate"]["serial"], serial,
        "still valid: no new order"
    );
    let events = p.events(&key, &id).await;
    assert!(
        events.iter().any(|e| e == "moved") && events.iter().any(|e| e == "back_active"),
        "{events:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn a_spent_ca_budget_queues_domains_until_the_window_passes(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    // Two new orders per 10 seconds: five domains need three windows.
    // One tenant: its share of the budget is the whole budget here.
    let mut p = Platform::start(
        pool.clone(),
        &[
            ("LANDLORD_CA_BUDGET_ORDERS", "2/10s"),
            ("LANDLORD_CA_BUDGET_TENANT_SHARE", "100"),
        ],
    )
    .await;
    p.spawn_edge().await;
    p.spawn("worker", &[("LANDLORD_WORKER_CONCURRENCY", "8")]);
    let key = p.tenant().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let host = unique(&format!("budget{i}"));
        ids.push(p.add_pointed_domain(&key, &host).await);
    }
    // Some domain says, while it waits, that it is queued and why.
    let mut seen_queued = None;
    let end = Instant::now() + ISSUE_DEADLINE;
    while seen_queued.is_none() {
        assert!(Instant::now() < end, "no domain was ever queued");
        for id in &ids {
            let d = p.domain(&key, id).await;
            if !d["queued"].is_null() {
                seen_queued = Some(d);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let queued = seen_queued.unwrap();
    assert_eq!(queued["status"], "issuing", "{queued}");
    let reason = queued["queued"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("2 new certificate orders were placed in the last 10 seconds")
            && reason.contains("ordered automatically"),
        "{reason}"
    );
    assert!(queued["queued"]["until"].is_string());

    for id in &ids {
        let d = p
            .wait_domain(&key, id, ISSUE_DEADLINE, |d| d["status"] == "active")
            .await;
        assert!(d["queued"].is_null(), "queued cleared once ordered: {d}");
    }
    let queued_id = queued["id"].as_str().unwrap();
    let events = p.events(&key, queued_id).await;
    assert!(events.iter().any(|e| e == "queued"), "{events:?}");

    // The budget held: no three orders within one 10-second window.
    let times: Vec<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM at)::float8 FROM ca_ledger WHERE kind = 'order' ORDER BY at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(times.len(), 5, "{times:?}");
    for w in times.windows(3) {
        assert!(w[2] - w[0] >= 10.0, "three orders within 10 s: {times:?}");
    }
}
