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
    p.point(&host).await;
    let id = p.add_domain(&key, &host).await;
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
