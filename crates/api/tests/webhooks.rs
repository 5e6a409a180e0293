//! `/v1/webhooks`: registration rules (public https URLs only by default, known kinds,
//! bounded), secrets shown once, tenants apart. Deliveries are tested end to end in
//! crates/landlord/tests/webhooks.rs.

mod common;

use common::{TestApp, TestTenant, problem, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn create(app: &TestApp, t: &TestTenant, body: Value) -> reqwest::Response {
    app.as_tenant(t, Method::POST, "/v1/webhooks")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn webhooks_are_registered_listed_changed_and_deleted(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("hooks").await;
    let res = create(
        &app,
        &t,
        json!({"url": "https://hooks.example.com/landlord", "events": ["domain.issued", "domain.reclaimed", "domain.issued"]}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{created}");
    assert_eq!(
        created["events"],
        json!(["domain.issued", "domain.reclaimed"])
    );
    assert_eq!(created["enabled"], true);
    let id = created["id"].as_str().unwrap();

    let listed: Value = app
        .as_tenant(&t, Method::GET, "/v1/webhooks")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(secret),
        "the secret is shown once"
    );

    // Rotation: a new secret, shown once.
    let rotated: Value = app
        .as_tenant(&t, Method::POST, &format!("/v1/webhooks/{id}/secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(rotated["secret"], created["secret"]);

    let res = app
        .as_tenant(&t, Method::PATCH, &format!("/v1/webhooks/{id}"))
        .json(&json!({"events": [], "enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let paused: Value = res.json().await.unwrap();
    assert_eq!(paused["enabled"], false);
    assert_eq!(paused["disabled_reason"], "disabled over the API");
    assert_eq!(paused["events"], json!([]));
    let res = app
        .as_tenant(&t, Method::PATCH, &format!("/v1/webhooks/{id}"))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    let resumed: Value = res.json().await.unwrap();
    assert_eq!(resumed["enabled"], true);
    assert!(resumed["disabled_reason"].is_null());

    // A ping is queued and listed.
    let res = app
        .as_tenant(&t, Method::POST, &format!("/v1/webhooks/{id}/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let deliveries: Value = app
        .as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}/deliveries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deliveries["deliveries"][0]["kind"], "webhook.ping");
    assert_eq!(deliveries["deliveries"][0]["status"], "pending");

    // Another tenant sees none of it.
    let other = app.tenant("other").await;
    for (method, path) in [
        (Method::GET, format!("/v1/webhooks/{id}")),
        (Method::DELETE, format!("/v1/webhooks/{id}")),
        (Method::POST, format!("/v1/webhooks/{id}/ping")),
        (Method::POST, format!("/v1/webhooks/{id}/secret")),
        (Method::GET, format!("/v1/webhooks/{id}/deliveries")),
    ] {
        problem(
            app.as_tenant(&other, method, &path).send().await.unwrap(),
            404,
        )
        .await;
    }
    let res = app
        .as_tenant(&t, Method::DELETE, &format!("/v1/webhooks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    problem(
        app.as_tenant(&t, Method::GET, &format!("/v1/webhooks/{id}"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn private_special_and_malformed_urls_are_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("ssrf").await;
    for url in [
        "http://hooks.example.com/",
        "https://127.0.0.1/",
        "https://10.0.0.8/",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/",
        "https://198.18.0.1/",
        "https://224.0.0.1/",
        "https://[::1]/",
        "https://[fe80::1]/",
        "https://[fd00::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[2002:7f00:1::1]/",
        "https://localhost:8443/",
        "https://user:pass@hooks.example.com/",
        "ftp://hooks.example.com/",
        "not a url",
    ] {
        let body = problem(create(&app, &t, json!({ "url": url })).await, 422).await;
        assert_eq!(body["type"], "/problems/invalid-url", "{url}: {body}");
    }
    let long = format!("https://hooks.example.com/{}", "a".repeat(2048));
    problem(create(&app, &t, json!({ "url": long })).await, 422).await;
    let body = problem(
        create(
            &app,
            &t,
            json!({"url": "https://hooks.example.com/", "events": ["domain.everything"]}),
        )
        .await,
        422,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("domain.issued"),
        "{body}"
    );
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn webhooks_per_tenant_are_bounded_and_test_beds_may_allow_private(pool: PgPool) {
    let app = spawn_app_with(pool, |c| {
        c.limits.max_webhooks = 2;
        c.webhooks.allow_private = true;
    })
    .await;
    let t = app.tenant("greedy").await;
    for url in ["http://127.0.0.1:9/a", "https://[::1]:9/b"] {
        assert_eq!(
            create(&app, &t, json!({ "url": url })).await.status(),
            201,
            "{url}"
        );
    }
    let body = problem(
        create(&app, &t, json!({"url": "https://hooks.example.com/"})).await,
        403,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("2 webhooks"),
        "{body}"
    );
}
