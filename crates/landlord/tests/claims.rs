//! Hostname claims against real `landlord` processes, Pebble and challtestsrv: what a
//! visitor, an operator and the suffix rules do to a registration.

mod support;

use std::time::{Duration, Instant};

use sqlx::PgPool;
use support::*;

const ISSUE_DEADLINE: Duration = Duration::from_secs(90);

#[sqlx::test(migrations = false)]
async fn the_first_visitor_after_dns_is_fixed_triggers_the_check(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[]).await;
    p.spawn_edge().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("visited");
    let id = p.add_domain(&key, &host).await;
    p.wait_domain(&key, &id, ISSUE_DEADLINE, |d| {
        d["check"]["problem"]
            .as_str()
            .is_some_and(|s| s.contains("no DNS record"))
    })
    .await;
    // As for a domain a day old: the next scheduled check is half an hour away.
    sqlx::query("UPDATE domains SET next_attempt_at = now() + interval '30 minutes'")
        .execute(&pool)
        .await
        .unwrap();
    p.point(&host).await;
    // The DNS change reaches a visitor, whose first request reaches the edge.
    let visited = Instant::now();
    let answer = http_get(p.env.http01_port, &host).await;
    assert!(
        answer.starts_with("HTTP/1.1 308"),
        "a registered name is sent to HTTPS: {answer}"
    );
    p.wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    let delay = visited.elapsed();
    println!("first visitor to active: {delay:?}");
    let events = p.events(&key, &id).await;
    assert!(
        !events.iter().any(|e| e == "check_requested"),
        "no tenant action: {events:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn internal_and_unknown_suffix_names_are_refused_but_test_beds_pass(pool: PgPool) {
    let p = Platform::start(pool.clone(), &[]).await;
    let key = p.tenant().await;
    for name in [
        "metadata.google.internal",
        "db.svc.cluster.local",
        "router.lan",
    ] {
        let res = p
            .client
            .post(format!("{}/v1/domains", p.api))
            .bearer_auth(&key)
            .json(&serde_json::json!({ "hostname": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{name}");
    }
    // LANDLORD_EXTRA_SUFFIXES=test (the harness's) admits the test bed's names.
    p.add_domain(&key, &unique("allowed")).await;
}

/// A plain `GET /` to the edge's HTTP port with `Host: host`; the start of the answer.
async fn http_get(port: u16, host: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[sqlx::test(migrations = false)]
async fn a_suspended_tenant_is_not_served_until_unsuspended(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[]).await;
    let https = p.spawn_edge().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("suspended");
    let id = p.add_pointed_domain(&key, &host).await;
    p.put_file(&key, "index.html", "text/html", "<h1>tenant page</h1>")
        .await;
    p.wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    let client = p.https_client(&host, https);
    let page = |client: reqwest::Client, host: String| async move {
        match client.get(format!("https://{host}:{https}/")).send().await {
            Ok(r) if r.status() == 200 => r.text().await.ok(),
            _ => None,
        }
    };
    assert!(
        page(client.clone(), host.clone())
            .await
            .unwrap()
            .contains("tenant page")
    );
    let tenant: String = sqlx::query_scalar("SELECT tenant_id::text FROM domains")
        .fetch_one(&pool)
        .await
        .unwrap();

    let admin = |action: &'static str| {
        p.client
            .post(format!("{}/v1/admin/tenants/{tenant}/{action}", p.api))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"reason": "test", "operator": "e2e"}))
            .send()
    };
    assert_eq!(admin("suspend").await.unwrap().status(), 200);
    let suspended = Instant::now();
    while page(client.clone(), host.clone()).await.is_some() {
        assert!(
            suspended.elapsed() < Duration::from_secs(10),
            "still served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("suspension to no content: {:?}", suspended.elapsed());
    // Its API key is refused meanwhile.
    let res = p
        .client
        .get(format!("{}/v1/domains", p.api))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    assert_eq!(admin("unsuspend").await.unwrap().status(), 200);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(body) = page(p.https_client(&host, https), host.clone()).await {
            assert!(body.contains("tenant page"));
            break;
        }
        assert!(Instant::now() < end, "not served again after unsuspend");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post_domain(p: &Platform, key: &str, host: &str) -> (u16, serde_json::Value) {
    let res = p
        .client
        .post(format!("{}/v1/domains", p.api))
        .bearer_auth(key)
        .json(&serde_json::json!({ "hostname": host }))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn orders_for(pool: &PgPool, host: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM ca_ledger WHERE kind = 'order' AND hostname = $1")
        .bind(host)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_dangling_cname_of_a_deleted_registration_verifies_nobody_else(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[]).await;
    p.spawn_edge().await;
    p.spawn("worker", &[]);
    let owner = p.tenant().await;
    let host = unique("dangling");
    let first = p.add_pointed_domain(&owner, &host).await;
    p.wait_domain(&owner, &first, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    let old_target = p.target_of(&host).await;
    // The owner deletes the domain and forgets the CNAME.
    p.delete_domain(&owner, &first).await;

    let attacker = p.tenant().await;
    let id = p.add_domain(&attacker, &host).await;
    assert_ne!(
        p.target_of(&host).await,
        old_target,
        "labels are never reused"
    );
    let d = p
        .wait_domain(&attacker, &id, ISSUE_DEADLINE, |d| {
            !d["check"]["problem"].is_null()
        })
        .await;
    assert_eq!(d["status"], "pending_dns");
    let problem = d["check"]["problem"].as_str().unwrap();
    assert!(
        problem.contains(&old_target) && problem.contains("not this domain's target"),
        "{problem}"
    );
    assert_eq!(
        orders_for(&pool, &host).await,
        1,
        "no order for the new claimant"
    );
}

#[sqlx::test(migrations = false)]
async fn a_name_pointed_with_a_records_needs_the_txt_proof_then_is_issued(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[]).await;
    p.spawn_edge().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("apex");
    p.dns(
        "/add-a",
        serde_json::json!({"host": host, "addresses": ["127.0.0.1"]}),
    )
    .await;
    let id = p.add_domain(&key, &host).await;
    let d = p
        .wait_domain(&key, &id, ISSUE_DEADLINE, |d| {
            !d["check"]["problem"].is_null()
        })
        .await;
    let ownership = &d["ownership"];
    assert_eq!(ownership["type"], "TXT");
    assert_eq!(ownership["name"], format!("_landlord.{host}"));
    assert_eq!(ownership["verified"], false);
    let problem = d["check"]["problem"].as_str().unwrap();
    assert!(
        problem.contains(ownership["value"].as_str().unwrap()),
        "{problem}"
    );
    assert_eq!(
        orders_for(&pool, &host).await,
        0,
        "no order before the proof"
    );

    p.prove_ownership(&host).await;
    let d = p
        .wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    assert_eq!(d["ownership"]["verified"], true);
}

#[sqlx::test(migrations = false)]
async fn a_hostname_is_reclaimed_by_whoever_controls_its_dns(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[("LANDLORD_CHECK_NOW_INTERVAL", "2s")]).await;
    let https = p.spawn_edge().await;
    p.spawn("worker", &[]);
    let squatter = p.tenant().await;
    let host = unique("reclaimed");
    let first = p.add_pointed_domain(&squatter, &host).await;
    p.put_file(&squatter, "index.html", "text/html", "squatter's page")
        .await;
    p.wait_domain(&squatter, &first, ISSUE_DEADLINE, |d| {
        d["status"] == "active"
    })
    .await;
    let page = |host: String| {
        let client = p.https_client(&host, https);
        async move {
            match client.get(format!("https://{host}:{https}/")).send().await {
                Ok(r) if r.status() == 200 => r.text().await.ok(),
                _ => None,
            }
        }
    };
    assert_eq!(page(host.clone()).await.as_deref(), Some("squatter's page"));

    let owner = p.tenant().await;
    let (status, problem) = post_domain(&p, &owner, &host).await;
    assert_eq!(status, 409, "{problem}");
    let ownership = problem["ownership"].clone();
    assert_eq!(ownership["name"], format!("_landlord.{host}"));
    let value = ownership["value"].as_str().unwrap().to_owned();
    assert!(!problem["detail"].as_str().unwrap().contains("squatter"));

    // Before the value is published: looked up, not there; asked again at once: 429.
    let (status, problem) = post_domain(&p, &owner, &host).await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("does not hold your value yet")
    );
    let (status, problem) = post_domain(&p, &owner, &host).await;
    assert_eq!(status, 429, "claim lookups are rate-limited: {problem}");

    // The real owner publishes its value; the next attempt moves the hostname.
    p.dns(
        "/set-txt",
        serde_json::json!({"host": format!("_landlord.{host}."), "value": value}),
    )
    .await;
    let end = Instant::now() + Duration::from_secs(30);
    let domain = loop {
        let (status, body) = post_domain(&p, &owner, &host).await;
        match status {
            201 => break body,
            429 => {}
            _ => panic!("claim refused: {status} {body}"),
        }
        assert!(Instant::now() < end, "the claim never went through");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let moved = Instant::now();
    while page(host.clone()).await.is_some() {
        assert!(
            moved.elapsed() < Duration::from_secs(10),
            "the old page is still served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("claim to old page gone: {:?}", moved.elapsed());
    // The squatter is told, without learning who.
    let log: serde_json::Value = p
        .client
        .get(format!("{}/v1/tenant/events", p.api))
        .bearer_auth(&squatter)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["events"][0]["kind"], "hostname_claimed", "{log}");
    // A second attempt by the owner is now a plain same-tenant 409.
    let (status, again) = post_domain(&p, &owner, &host).await;
    assert_eq!(status, 409);
    assert!(again.get("ownership").is_none(), "{again}");

    // The owner points the name at its own target and gets its certificate.
    let id = domain["id"].as_str().unwrap().to_owned();
    p.put_file(&owner, "index.html", "text/html", "owner's page")
        .await;
    p.point(&host).await;
    p.wake(&host).await;
    p.wait_domain(&owner, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    let end = Instant::now() + Duration::from_secs(10);
    while page(host.clone()).await.as_deref() != Some("owner's page") {
        assert!(Instant::now() < end, "the owner's page is not served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn domains_from_before_per_domain_targets_keep_verifying(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    // A database as the previous release left it: migrations up to 0006, one domain
    // whose CNAME points at the bare shared target.
    let dir = std::env::temp_dir().join(format!("landlord-migrations-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0007" {
            std::fs::copy(&path, dir.join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(dir.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let host = unique("legacy");
    let tenant = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, 'legacy')")
        .bind(tenant)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO domains (id, tenant_id, hostname) VALUES ($1, $2, $3)")
        .bind(uuid::Uuid::now_v7())
        .bind(tenant)
        .bind(&host)
        .execute(&pool)
        .await
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    // This release migrates it (Platform::start runs `landlord migrate`).
    let mut p = Platform::start(pool.clone(), &[]).await;
    p.spawn_edge().await;
    p.spawn("worker", &[]);
    p.dns("/clear-aaaa", serde_json::json!({"host": host}))
        .await;
    p.dns(
        "/set-cname",
        serde_json::json!({"host": host, "target": TARGET}),
    )
    .await;
    p.wake(&host).await;
    let end = Instant::now() + ISSUE_DEADLINE;
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM domains WHERE hostname = $1")
            .bind(&host)
            .fetch_one(&pool)
            .await
            .unwrap();
        if status == "active" {
            break;
        }
        assert!(
            Instant::now() < end,
            "the legacy domain did not verify: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (label, shared): (String, bool) =
        sqlx::query_as("SELECT target_label, shared_target_ok FROM domains WHERE hostname = $1")
            .bind(&host)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        shared && label.len() == 20,
        "it got a target of its own too"
    );
}
