//! Operator abuse controls over real HTTP: suspend and unsuspend a tenant, block a
//! hostname, and the audit log.

mod common;

use common::{ADMIN_TOKEN, problem, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

fn admin(app: &common::TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .bearer_auth(ADMIN_TOKEN)
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_suspended_tenant_is_refused_until_unsuspended(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("abuser").await;
    let other = app.tenant("honest").await;
    assert_eq!(app.add_domain(&t, "shop.example.com").await.status(), 201);

    let listed: Value = admin(&app, Method::GET, "/v1/admin/tenants")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = listed["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == t.id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["domains"], 1);
    assert_eq!(row["suspended"], false);

    let res = admin(
        &app,
        Method::POST,
        &format!("/v1/admin/tenants/{}/suspend", t.id),
    )
    .json(&json!({"reason": "phishing report #1", "operator": "alice"}))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["suspended"], true);

    let res = app
        .as_tenant(&t, Method::GET, "/v1/domains")
        .send()
        .await
        .unwrap();
    let body = problem(res, 403).await;
    assert_eq!(body["type"], "/problems/tenant-suspended");
    assert!(body["detail"].as_str().unwrap().contains("suspended"));
    // Others are untouched.
    let res = app
        .as_tenant(&other, Method::GET, "/v1/domains")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let res = admin(
        &app,
        Method::POST,
        &format!("/v1/admin/tenants/{}/unsuspend", t.id),
    )
    .json(&json!({"reason": "resolved"}))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .as_tenant(&t, Method::GET, "/v1/domains")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The tenant's own log says what happened.
    let log: Value = app
        .as_tenant(&t, Method::GET, "/v1/tenant/events")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["unsuspended", "suspended"]);

    let audit: Value = admin(&app, Method::GET, "/v1/admin/audit")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events[1]["action"], "tenant_suspended");
    assert_eq!(events[1]["reason"], "phishing report #1");
    assert_eq!(events[1]["operator"], "alice");
    assert_eq!(events[0]["action"], "tenant_unsuspended");
    assert!(events[0]["at"].is_string());

    // Unknown tenant, missing reason, no admin token.
    let res = admin(
        &app,
        Method::POST,
        &format!("/v1/admin/tenants/{}/suspend", uuid::Uuid::nil()),
    )
    .json(&json!({"reason": "x"}))
    .send()
    .await
    .unwrap();
    problem(res, 404).await;
    let res = admin(
        &app,
        Method::POST,
        &format!("/v1/admin/tenants/{}/suspend", t.id),
    )
    .json(&json!({"reason": "  "}))
    .send()
    .await
    .unwrap();
    problem(res, 422).await;
    let res = app
        .as_tenant(&t, Method::GET, "/v1/admin/tenants")
        .send()
        .await
        .unwrap();
    problem(res, 401).await;
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_blocked_hostname_cannot_be_registered_below_it_either(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("t").await;
    assert_eq!(
        app.add_domain(&t, "login.bank.example.com").await.status(),
        201
    );
    let res = admin(&app, Method::POST, "/v1/admin/blocked-hostnames")
        .json(
            &json!({"hostname": "bank.example.com", "subdomains": true, "reason": "impersonation"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for name in ["bank.example.com", "www.bank.example.com"] {
        let body = problem(app.add_domain(&t, name).await, 422).await;
        assert!(
            body["detail"].as_str().unwrap().contains("blocked"),
            "{body}"
        );
    }
    assert_eq!(
        app.add_domain(&t, "notbank.example.com").await.status(),
        201
    );
    let held: Option<String> =
        sqlx::query_scalar("SELECT held FROM domains WHERE hostname = 'login.bank.example.com'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(
        held.as_deref(),
        Some("blocked"),
        "the existing registration is held"
    );
    let listed: Value = admin(&app, Method::GET, "/v1/admin/blocked-hostnames")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["blocked"][0]["hostname"], "bank.example.com");

    let res = admin(
        &app,
        Method::POST,
        "/v1/admin/blocked-hostnames/bank.example.com/unblock",
    )
    .json(&json!({"reason": "cleared"}))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.add_domain(&t, "www.bank.example.com").await.status(),
        201
    );
    let held: Option<String> =
        sqlx::query_scalar("SELECT held FROM domains WHERE hostname = 'login.bank.example.com'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(held, None);
}
