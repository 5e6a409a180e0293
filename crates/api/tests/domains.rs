//! `/v1/domains` over HTTP against real PostgreSQL.

mod common;

use common::{CNAME_TARGET, problem, spawn_app};
use reqwest::Method;
use serde_json::Value;
use sqlx::PgPool;

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn created_domain_is_normalised_and_pending_dns(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("acme").await;
    let res = app.add_domain(&t, "  Bücher.Example.COM. ").await;
    assert_eq!(res.status(), 201);
    let d: Value = res.json().await.unwrap();
    assert_eq!(d["hostname"], "xn--bcher-kva.example.com");
    assert_eq!(d["hostname_unicode"], "bücher.example.com");
    assert_eq!(d["status"], "pending_dns");
    assert_eq!(d["dns"]["type"], "CNAME");
    assert_eq!(d["dns"]["name"], "xn--bcher-kva.example.com");
    // Every registration has a DNS target of its own under the platform's.
    let value = d["dns"]["value"].as_str().unwrap();
    let label = value.strip_suffix(&format!(".{CNAME_TARGET}")).unwrap();
    assert!(
        label.len() == 20 && label.bytes().all(|b| b.is_ascii_hexdigit()),
        "{value}"
    );
    let alternatives = d["dns"]["alternatives"].as_array().unwrap();
    assert_eq!(alternatives[0]["type"], "A");
    assert_eq!(alternatives[0]["value"], "192.0.2.10");
    assert_eq!(alternatives[1]["type"], "AAAA");
    assert!(d["check"]["problem"].is_null());
    assert!(d["certificate"].is_null());
    for field in ["id", "created_at", "updated_at", "next_attempt_at"] {
        assert!(d[field].is_string(), "{field}");
    }
    let fetched: Value = app
        .as_tenant(
            &t,
            Method::GET,
            &format!("/v1/domains/{}", d["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, d);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn invalid_hostnames_are_422_with_a_useful_detail(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("acme").await;
    for (hostname, fragment) in [
        ("", "empty"),
        ("localhost", "single label"),
        ("com", "single label"),
        ("co.uk", "public suffix"),
        ("192.0.2.1", "IP address"),
        ("*.example.com", "only be obtained through DNS-01"),
        ("a.*.example.com", "leading label"),
        ("a_b.example.com", "underscore"),
        ("https://example.com/", "URL"),
        ("example.com:8443", "port"),
        ("-bad.example.com", "hyphen"),
        ("edge.platform.test", "belongs to this platform"),
        ("customer.platform.test", "belongs to this platform"),
    ] {
        let body = problem(app.add_domain(&t, hostname).await, 422).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(fragment), "{hostname:?}: {detail}");
    }
    let long = format!("{}.example.com", "a".repeat(64));
    let body = problem(app.add_domain(&t, &long).await, 422).await;
    assert!(body["detail"].as_str().unwrap().contains("at most 63"));
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn duplicate_hostname_across_tenants_is_409(pool: PgPool) {
    let app = spawn_app(pool).await;
    let a = app.tenant("a").await;
    let b = app.tenant("b").await;
    assert_eq!(app.add_domain(&a, "shop.example.com").await.status(), 201);
    let body = problem(app.add_domain(&b, "SHOP.example.com.").await, 409).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("shop.example.com")
    );
    let own = problem(app.add_domain(&a, "shop.example.com").await, 409).await;
    assert!(
        own["detail"]
            .as_str()
            .unwrap()
            .contains("already one of your domains"),
        "{own}"
    );
    assert!(
        !body["detail"].as_str().unwrap().contains("your domains"),
        "{body}"
    );
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn concurrent_registrations_of_one_hostname_have_one_winner(pool: PgPool) {
    let app = std::sync::Arc::new(spawn_app(pool).await);
    let mut tenants = Vec::new();
    for i in 0..20 {
        tenants.push(app.tenant(&format!("t{i}")).await);
    }
    let attempts = tenants.into_iter().map(|t| {
        let app = app.clone();
        tokio::spawn(async move {
            app.add_domain(&t, "race.example.com")
                .await
                .status()
                .as_u16()
        })
    });
    let mut statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn list_is_paginated_with_a_cursor(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("acme").await;
    let other = app.tenant("other").await;
    app.add_domain(&other, "theirs.example.org").await;
    let mut created = Vec::new();
    for i in 0..5 {
        let d: Value = app
            .add_domain(&t, &format!("s{i}.example.com"))
            .await
            .json()
            .await
            .unwrap();
        created.push(d["hostname"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/v1/domains?limit=2".to_owned();
    loop {
        let page: Value = app
            .as_tenant(&t, Method::GET, &path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let domains = page["domains"].as_array().unwrap();
        assert!(domains.len() <= 2);
        seen.extend(
            domains
                .iter()
                .map(|d| d["hostname"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/domains?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, created);

    let all: Value = app
        .as_tenant(&t, Method::GET, "/v1/domains")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["domains"].as_array().unwrap().len(), 5);

    problem(
        app.as_tenant(&t, Method::GET, "/v1/domains?limit=0")
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    problem(
        app.as_tenant(&t, Method::GET, "/v1/domains?limit=100000")
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    problem(
        app.as_tenant(&t, Method::GET, "/v1/domains?limit=abc")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    problem(
        app.as_tenant(&t, Method::GET, "/v1/domains?cursor=nope")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn check_now_makes_the_domain_due_and_is_on_the_timeline(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let t = app.tenant("acme").await;
    let d: Value = app
        .add_domain(&t, "status.example.com")
        .await
        .json()
        .await
        .unwrap();
    let id = d["id"].as_str().unwrap();
    sqlx::query("UPDATE domains SET next_attempt_at = now() + interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();

    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener.listen(landlord_store::WAKE_CHANNEL).await.unwrap();
    let res = app
        .as_tenant(&t, Method::POST, &format!("/v1/domains/{id}/check"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let woke = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv()).await;
    assert_eq!(woke.unwrap().unwrap().payload(), id);
    let due: bool = sqlx::query_scalar("SELECT next_attempt_at <= now() FROM domains")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(due);

    let events: Value = app
        .as_tenant(&t, Method::GET, &format!("/v1/domains/{id}/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["check_requested", "created"], "newest first");
    assert!(events["events"][0]["at"].is_string());
    assert!(events["events"][0]["message"].is_string());
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn delete_removes_the_domain(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("acme").await;
    let d: Value = app
        .add_domain(&t, "gone.example.com")
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/v1/domains/{}", d["id"].as_str().unwrap());
    assert_eq!(
        app.as_tenant(&t, Method::DELETE, &path)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    problem(
        app.as_tenant(&t, Method::GET, &path).send().await.unwrap(),
        404,
    )
    .await;
    problem(
        app.as_tenant(&t, Method::DELETE, &path)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    // the hostname is free again
    assert_eq!(app.add_domain(&t, "gone.example.com").await.status(), 201);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn domain_changes_are_in_the_change_log(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let t = app.tenant("acme").await;
    // (Creating the tenant logged its default site.)
    let before: i64 = sqlx::query_scalar("SELECT COALESCE(max(seq), 0) FROM changes")
        .fetch_one(&pool)
        .await
        .unwrap();
    let d: Value = app
        .add_domain(&t, "log.example.com")
        .await
        .json()
        .await
        .unwrap();
    app.as_tenant(
        &t,
        Method::DELETE,
        &format!("/v1/domains/{}", d["id"].as_str().unwrap()),
    )
    .send()
    .await
    .unwrap();
    let rows: Vec<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT seq, entity, hostname FROM changes WHERE seq > $1 ORDER BY seq")
            .bind(before)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|(_, e, h)| e == "domain" && h.as_deref() == Some("log.example.com"))
    );
    assert!(rows[0].0 < rows[1].0);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn live_events_stream_only_the_callers_changes(pool: PgPool) {
    use futures::StreamExt;
    let app = spawn_app(pool).await;
    let a = app.tenant("a").await;
    let b = app.tenant("b").await;
    let res = app
        .as_tenant(&a, Method::GET, "/v1/events")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = res.bytes_stream();
    let mut seen = String::new();
    // wait for the stream to be live before changing anything
    while !seen.contains("event: ready") {
        seen.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    app.add_domain(&b, "theirs.example.org").await;
    let d: Value = app
        .add_domain(&a, "mine.example.org")
        .await
        .json()
        .await
        .unwrap();
    let id = d["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(seen.contains("event: domain")
        && seen.contains("event: timeline")
        && seen.contains(&id))
    {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("events arrive");
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
    assert!(
        seen.contains(&format!(r#"{{"id":"{id}","kind":"changed"}}"#)),
        "{seen}"
    );
    let theirs = app.store.pool().clone();
    let other: String =
        sqlx::query_scalar("SELECT id::text FROM domains WHERE hostname = 'theirs.example.org'")
            .fetch_one(&theirs)
            .await
            .unwrap();
    assert!(
        !seen.contains(&other),
        "another tenant's domain leaked into the stream"
    );
}
