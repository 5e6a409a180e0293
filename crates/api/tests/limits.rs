//! Greedy tenants: every limit refuses with a problem+json 4xx naming the limit and its
//! value, holds across API processes, and shows on `GET /v1/limits`.

mod common;

use std::time::Duration;

use common::{TestApp, TestTenant, problem, spawn_app, spawn_app_with};
use futures::StreamExt;
use landlord_store::{Budget, FILE_OVERHEAD_BYTES, file_cost};
use reqwest::Method;
use serde_json::Value;
use sqlx::PgPool;

async fn put(app: &TestApp, t: &TestTenant, path: &str, ct: &str, body: &str) -> reqwest::Response {
    app.as_tenant(t, Method::PUT, &format!("/v1/files/{path}"))
        .header("content-type", ct)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn json(app: &TestApp, t: &TestTenant, path: &str) -> Value {
    let res = app.as_tenant(t, Method::GET, path).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap()
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_content_type_over_255_bytes_or_malformed_is_422(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("greedy").await;
    let long = format!("text/{}", "x".repeat(60_000));
    let body = problem(put(&app, &t, "x1.txt", &long, "").await, 422).await;
    assert!(detail(&body).contains("255"), "{body}");
    let just_over = format!("text/{}", "x".repeat(251));
    assert_eq!(just_over.len(), 256);
    problem(put(&app, &t, "x2.txt", &just_over, "").await, 422).await;
    let fits = format!("text/{}", "x".repeat(250));
    assert_eq!(put(&app, &t, "x3.txt", &fits, "").await.status(), 204);
    problem(
        put(&app, &t, "x4.txt", "text/plain; charset", "").await,
        422,
    )
    .await;
    let listed = json(&app, &t, "/v1/files").await;
    assert_eq!(listed["files"].as_array().unwrap().len(), 1, "{listed}");
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn empty_files_are_not_free(pool: PgPool) {
    let quota = 10 * file_cost("e0.txt", "text/plain", 0);
    let app = spawn_app_with(pool, |c| c.limits.quota_bytes = quota).await;
    let t = app.tenant("greedy").await;
    for i in 0..10 {
        let res = put(&app, &t, &format!("e{i}.txt"), "text/plain", "").await;
        assert_eq!(res.status(), 204, "file {i}");
    }
    let body = problem(put(&app, &t, "e10.txt", "text/plain", "").await, 413).await;
    assert!(detail(&body).contains(&quota.to_string()), "{body}");
    let usage = &json(&app, &t, "/v1/files").await["usage"];
    assert_eq!(usage["used_bytes"], quota);
    assert_eq!(usage["file_overhead_bytes"], FILE_OVERHEAD_BYTES);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn files_per_tenant_are_capped_at_max_files(pool: PgPool) {
    let app = spawn_app_with(pool, |c| c.limits.max_files = 3).await;
    let t = app.tenant("greedy").await;
    for i in 0..3 {
        assert_eq!(
            put(&app, &t, &format!("f{i}"), "text/plain", "x")
                .await
                .status(),
            204
        );
    }
    let body = problem(put(&app, &t, "f3", "text/plain", "x").await, 403).await;
    assert_eq!(body["type"], "/problems/limit-reached");
    assert!(detail(&body).contains("3 files"), "{body}");
    // Replacing a file is not a new one; after a delete there is room again.
    assert_eq!(put(&app, &t, "f0", "text/plain", "y").await.status(), 204);
    let res = app
        .as_tenant(&t, Method::DELETE, "/v1/files/f1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(put(&app, &t, "f3", "text/plain", "x").await.status(), 204);
    // Another tenant has its own allowance.
    let other = app.tenant("other").await;
    assert_eq!(
        put(&app, &other, "f0", "text/plain", "x").await.status(),
        204
    );
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn domains_per_tenant_are_capped_at_max_domains(pool: PgPool) {
    let app = spawn_app_with(pool, |c| c.limits.max_domains = 2).await;
    let t = app.tenant("greedy").await;
    for h in ["a.example.com", "b.example.com"] {
        assert_eq!(app.add_domain(&t, h).await.status(), 201);
    }
    let body = problem(app.add_domain(&t, "c.example.com").await, 403).await;
    assert!(detail(&body).contains("2 domains"), "{body}");
    let limits = json(&app, &t, "/v1/limits").await;
    assert_eq!(limits["domains"]["used"], 2);
    assert_eq!(limits["domains"]["limit"], 2);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn files_are_listed_a_page_at_a_time(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("many").await;
    for i in 0..5 {
        assert_eq!(
            put(&app, &t, &format!("p/{i}.txt"), "text/plain", "x")
                .await
                .status(),
            204
        );
    }
    let mut seen = Vec::new();
    let mut path = "/v1/files?limit=2".to_owned();
    loop {
        let page = json(&app, &t, &path).await;
        let files = page["files"].as_array().unwrap();
        assert!(files.len() <= 2);
        seen.extend(files.iter().map(|f| f["path"].as_str().unwrap().to_owned()));
        assert_eq!(page["usage"]["files"], 5, "usage covers every page");
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/files?limit=2&cursor={}", urlencode(c)),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["p/0.txt", "p/1.txt", "p/2.txt", "p/3.txt", "p/4.txt"]
    );
    let body = problem(
        app.as_tenant(&t, Method::GET, "/v1/files?limit=0")
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    assert!(detail(&body).contains("1000"), "{body}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn check_now_is_accepted_once_per_interval_with_retry_after(pool: PgPool) {
    let app = spawn_app_with(pool, |c| c.check_interval = Duration::from_secs(30)).await;
    let t = app.tenant("eager").await;
    let created: Value = app
        .add_domain(&t, "check.example.com")
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let check = || {
        app.as_tenant(&t, Method::POST, &format!("/v1/domains/{id}/check"))
            .send()
    };
    assert_eq!(check().await.unwrap().status(), 202);
    let res = check().await.unwrap();
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    let body = problem(res, 429).await;
    assert_eq!(body["type"], "/problems/check-too-soon");
    assert!(detail(&body).contains("30 seconds"), "{body}");
    // Only the accepted request reached the timeline.
    let events = json(&app, &t, &format!("/v1/domains/{id}/events")).await;
    let requested = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "check_requested")
        .count();
    assert_eq!(requested, 1);
    // Another tenant probing the id still gets 404, not 429.
    let other = app.tenant("other").await;
    let res = app
        .as_tenant(&other, Method::POST, &format!("/v1/domains/{id}/check"))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn the_request_rate_holds_across_api_processes(pool: PgPool) {
    let rate = Budget {
        limit: 5,
        window: Duration::from_secs(60),
    };
    let first = spawn_app_with(pool.clone(), |c| c.api_rate = Some(rate)).await;
    let second = spawn_app_with(pool, |c| c.api_rate = Some(rate)).await;
    let t = first.tenant("chatty").await;
    let quiet = first.tenant("quiet").await;
    for i in 0..5 {
        let app = if i % 2 == 0 { &first } else { &second };
        let res = app
            .as_tenant(&t, Method::GET, "/v1/domains")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "request {i}");
    }
    let res = second
        .as_tenant(&t, Method::GET, "/v1/domains")
        .send()
        .await
        .unwrap();
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=12).contains(&retry),
        "one request's share of a minute: {retry}"
    );
    let body = problem(res, 429).await;
    assert_eq!(body["type"], "/problems/rate-limited");
    assert!(
        detail(&body).contains("5 API requests in 1 minute"),
        "{body}"
    );
    // Another tenant is not held back.
    let res = first
        .as_tenant(&quiet, Method::GET, "/v1/domains")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn event_streams_per_tenant_are_capped(pool: PgPool) {
    let app = spawn_app_with(pool, |c| c.max_event_streams = 2).await;
    let t = app.tenant("watcher").await;
    let open = || app.as_tenant(&t, Method::GET, "/v1/events").send();
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let res = open().await.unwrap();
    assert!(res.headers().contains_key("retry-after"));
    let body = problem(res, 429).await;
    assert!(detail(&body).contains("2 event streams"), "{body}");
    let limits = json(&app, &t, "/v1/limits").await;
    assert_eq!(limits["event_streams"]["used"], 2);
    // Closing a stream frees its place.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let res = open().await.unwrap();
        if res.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed stream still counts"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_stream_is_told_to_resync_when_notifications_reconnect(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let t = app.tenant("watcher").await;
    let res = app
        .as_tenant(&t, Method::GET, "/v1/events")
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("event: ready") {
        seen.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    // Cut the API's LISTEN connection, as a database restart or a network blip would.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        if !killed.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no LISTEN connection found"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wait = tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains("event: resync") {
            seen.push_str(&String::from_utf8_lossy(
                &body.next().await.unwrap().unwrap(),
            ));
        }
    });
    wait.await
        .expect("no resync event after the LISTEN connection was cut");
    assert!(seen.contains("reconnected"), "{seen}");
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_tenant_sees_its_limits_and_usage(pool: PgPool) {
    let app = spawn_app_with(pool, |c| {
        c.limits.max_files = 7;
        c.limits.max_domains = 3;
        c.limits.quota_bytes = 1 << 20;
        c.api_rate = Some(Budget {
            limit: 100,
            window: Duration::from_secs(60),
        });
    })
    .await;
    let t = app.tenant("curious").await;
    assert_eq!(
        put(&app, &t, "index.html", "text/html", "<h1>hi</h1>")
            .await
            .status(),
        204
    );
    assert_eq!(app.add_domain(&t, "www.example.com").await.status(), 201);
    let limits = json(&app, &t, "/v1/limits").await;
    assert_eq!(limits["files"]["used"], 1);
    assert_eq!(limits["files"]["limit"], 7);
    assert_eq!(limits["domains"]["limit"], 3);
    assert_eq!(
        limits["storage_bytes"]["used"],
        file_cost("index.html", "text/html", 11)
    );
    assert_eq!(limits["storage_bytes"]["limit"], 1 << 20);
    assert_eq!(limits["api_requests"]["limit"], 100);
    assert_eq!(limits["api_requests"]["window_seconds"], 60);
    assert_eq!(limits["check_interval_seconds"], 10.0);
    assert_eq!(limits["event_streams"]["limit"], 10);
}
