//! `/v1/keys`: several keys per tenant, listed without secrets, revoked at once; bounded.

mod common;

use common::{TestApp, TestTenant, problem, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn create(app: &TestApp, t: &TestTenant, body: Value) -> reqwest::Response {
    app.as_tenant(t, Method::POST, "/v1/keys")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn keys(app: &TestApp, t: &TestTenant) -> Vec<Value> {
    let res = app
        .as_tenant(t, Method::GET, "/v1/keys")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["keys"].as_array().unwrap().clone()
}

fn with_key(t: &TestTenant, key: &str) -> TestTenant {
    TestTenant {
        id: t.id.clone(),
        key: key.to_owned(),
    }
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn keys_are_created_listed_and_revoked(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("keys").await;
    let first = keys(&app, &t).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["current"], true);
    assert!(t.key.starts_with(first[0]["prefix"].as_str().unwrap()));

    let res = create(&app, &t, json!({"name": " CI "})).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["name"], "CI");
    assert_eq!(created["current"], false);
    assert!(created["last_used_at"].is_null());
    let ci = with_key(&t, created["api_key"].as_str().unwrap());
    assert!(ci.key.starts_with(created["prefix"].as_str().unwrap()));

    // The new key works, is marked current when used, and its use is recorded; no listing
    // ever carries a secret.
    let listed = keys(&app, &ci).await;
    assert_eq!(listed.len(), 2);
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains(&ci.key) && !text.contains(&t.key), "{text}");
    let mine = listed.iter().find(|k| k["id"] == created["id"]).unwrap();
    assert_eq!(mine["current"], true);
    assert!(mine["last_used_at"].is_string(), "{mine}");

    // The first key revoked with the second: it authenticates nothing from then on.
    let first_id = first[0]["id"].as_str().unwrap();
    let res = app
        .as_tenant(&ci, Method::DELETE, &format!("/v1/keys/{first_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    problem(
        app.as_tenant(&t, Method::GET, "/v1/keys")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert_eq!(keys(&app, &ci).await.len(), 1);

    // The last key cannot be revoked: the account would be locked out.
    let ci_id = created["id"].as_str().unwrap();
    let body = problem(
        app.as_tenant(&ci, Method::DELETE, &format!("/v1/keys/{ci_id}"))
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("only live API key"),
        "{body}"
    );
    // Revoking it again, or a key already revoked: 404.
    problem(
        app.as_tenant(&ci, Method::DELETE, &format!("/v1/keys/{first_id}"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn tenants_never_see_or_revoke_each_others_keys(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (a, b) = (app.tenant("a").await, app.tenant("b").await);
    let res = create(&app, &b, json!({})).await;
    assert_eq!(res.status(), 201);
    let b_keys = keys(&app, &b).await;
    assert_eq!(keys(&app, &a).await.len(), 1);
    for k in &b_keys {
        let id = k["id"].as_str().unwrap();
        problem(
            app.as_tenant(&a, Method::DELETE, &format!("/v1/keys/{id}"))
                .send()
                .await
                .unwrap(),
            404,
        )
        .await;
    }
    assert_eq!(keys(&app, &b).await.len(), 2);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn live_keys_are_bounded_and_names_checked(pool: PgPool) {
    let app = spawn_app_with(pool, |c| c.limits.max_api_keys = 3).await;
    let t = app.tenant("greedy").await;
    for _ in 0..2 {
        assert_eq!(create(&app, &t, json!({})).await.status(), 201);
    }
    let body = problem(create(&app, &t, json!({})).await, 403).await;
    assert_eq!(body["type"], "/problems/limit-reached");
    assert!(
        body["detail"].as_str().unwrap().contains("3 API keys"),
        "{body}"
    );
    // Revoking one makes room.
    let id = keys(&app, &t).await[1]["id"].as_str().unwrap().to_owned();
    let res = app
        .as_tenant(&t, Method::DELETE, &format!("/v1/keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(create(&app, &t, json!({})).await.status(), 201);

    let body = problem(
        create(&app, &t, json!({"name": "x".repeat(101)})).await,
        422,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("100 characters"),
        "{body}"
    );
    problem(create(&app, &t, json!({"name": "a\u{7}b"})).await, 422).await;
    problem(create(&app, &t, json!({"label": "x"})).await, 422).await;
}
