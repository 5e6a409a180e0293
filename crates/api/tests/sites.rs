//! `/v1/sites`: sites, the domains that serve them, and their deploys.

mod common;

use common::{TestApp, TestTenant, problem, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn create_site(app: &TestApp, t: &TestTenant, name: &str) -> reqwest::Response {
    app.as_tenant(t, Method::POST, "/v1/sites")
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
}

async fn json(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status(), status);
    res.json().await.unwrap()
}

async fn get(app: &TestApp, t: &TestTenant, path: &str) -> reqwest::Response {
    app.as_tenant(t, Method::GET, path).send().await.unwrap()
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn sites_are_created_listed_renamed_and_deleted(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("agency").await;

    // Every account starts with its default site.
    let list = json(get(&app, &t, "/v1/sites").await, 200).await;
    let sites = list["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 1, "{list}");
    assert_eq!(sites[0]["name"], "default");
    assert_eq!(sites[0]["default"], true);
    assert!(sites[0]["live_deployment_id"].is_null());

    let docs = json(create_site(&app, &t, "docs").await, 201).await;
    assert_eq!(docs["name"], "docs");
    assert_eq!(docs["default"], false);
    assert_eq!(docs["domains"], 0);
    let id = docs["id"].as_str().unwrap();

    // Names are unique per account, and shaped for URLs and the CLI.
    let body = problem(create_site(&app, &t, "docs").await, 409).await;
    assert!(body["detail"].as_str().unwrap().contains("docs"), "{body}");
    for bad in ["", "Docs", "-docs", "docs site", "döcs", &"a".repeat(64)] {
        let body = problem(create_site(&app, &t, bad).await, 422).await;
        assert_eq!(
            body["type"], "/problems/invalid-site-name",
            "{bad:?}: {body}"
        );
    }
    // Another account may use the same name.
    let other = app.tenant("other").await;
    assert_eq!(create_site(&app, &other, "docs").await.status(), 201);

    let renamed = app
        .as_tenant(&t, Method::PATCH, &format!("/v1/sites/{id}"))
        .json(&json!({ "name": "handbook" }))
        .send()
        .await
        .unwrap();
    assert_eq!(json(renamed, 200).await["name"], "handbook");
    let got = json(get(&app, &t, &format!("/v1/sites/{id}")).await, 200).await;
    assert_eq!(got["name"], "handbook");
    // Only an object is a patch (serde would take `[null, null]` for two optional fields).
    let res = app
        .as_tenant(&t, Method::PATCH, &format!("/v1/sites/{id}"))
        .json(&json!([null, null]))
        .send()
        .await
        .unwrap();
    problem(res, 422).await;
    assert_eq!(
        json(get(&app, &t, "/v1/sites").await, 200).await["sites"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Another account's site answers like a missing one.
    problem(get(&app, &other, &format!("/v1/sites/{id}")).await, 404).await;
    let res = app
        .as_tenant(&other, Method::DELETE, &format!("/v1/sites/{id}"))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;

    let delete = |id: String| {
        app.as_tenant(&t, Method::DELETE, &format!("/v1/sites/{id}"))
            .send()
    };
    assert_eq!(delete(id.to_owned()).await.unwrap().status(), 204);
    problem(get(&app, &t, &format!("/v1/sites/{id}")).await, 404).await;
    // The default site stays.
    let default = sites[0]["id"].as_str().unwrap().to_owned();
    let body = problem(delete(default).await.unwrap(), 409).await;
    assert_eq!(body["type"], "/problems/default-site");
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_domain_serves_the_site_it_names_and_moves_between_sites(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("agency").await;
    let other = app.tenant("other").await;
    let docs = json(create_site(&app, &t, "docs").await, 201).await;
    let docs_id = docs["id"].as_str().unwrap();
    let foreign = json(create_site(&app, &other, "theirs").await, 201).await;
    let foreign_id = foreign["id"].as_str().unwrap();

    // Without a site_id: the default site.
    let plain = json(app.add_domain(&t, "www.example.com").await, 201).await;
    let sites = json(get(&app, &t, "/v1/sites").await, 200).await;
    let default_id = sites["sites"][0]["id"].as_str().unwrap();
    assert_eq!(plain["site_id"], default_id);

    let add = |body: Value| {
        app.as_tenant(&t, Method::POST, "/v1/domains")
            .json(&body)
            .send()
    };
    let d = json(
        add(json!({"hostname": "docs.example.com", "site_id": docs_id}))
            .await
            .unwrap(),
        201,
    )
    .await;
    assert_eq!(d["site_id"], docs_id);
    // A site of another account is no site of yours.
    let body = problem(
        add(json!({"hostname": "x.example.com", "site_id": foreign_id}))
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_eq!(body["type"], "/problems/invalid-site");

    // A site with domains cannot be deleted.
    let res = app
        .as_tenant(&t, Method::DELETE, &format!("/v1/sites/{docs_id}"))
        .send()
        .await
        .unwrap();
    let body = problem(res, 409).await;
    assert_eq!(body["type"], "/problems/site-in-use");
    let site = json(get(&app, &t, &format!("/v1/sites/{docs_id}")).await, 200).await;
    assert_eq!(site["domains"], 1);

    // PATCH moves it.
    let patch = |id: &str, body: Value| {
        app.as_tenant(&t, Method::PATCH, &format!("/v1/domains/{id}"))
            .json(&body)
            .send()
    };
    let id = d["id"].as_str().unwrap();
    let moved = json(
        patch(id, json!({"site_id": default_id})).await.unwrap(),
        200,
    )
    .await;
    assert_eq!(moved["site_id"], default_id);
    let body = problem(
        patch(id, json!({"site_id": foreign_id})).await.unwrap(),
        422,
    )
    .await;
    assert_eq!(body["type"], "/problems/invalid-site");
    problem(
        patch(id, json!({"hostname": "y.example.com"}))
            .await
            .unwrap(),
        422,
    )
    .await;
    // Another account's domain: 404, whatever the site.
    let res = app
        .as_tenant(&other, Method::PATCH, &format!("/v1/domains/{id}"))
        .json(&json!({"site_id": foreign_id}))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    let res = app
        .as_tenant(&t, Method::DELETE, &format!("/v1/sites/{docs_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn files_are_deploys_of_the_default_site(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("acme").await;
    let put = |path: &str, body: &str| {
        app.as_tenant(&t, Method::PUT, &format!("/v1/files/{path}"))
            .header("content-type", "text/html")
            .body(body.to_owned())
            .send()
    };
    assert_eq!(
        put("index.html", "<h1>v1</h1>").await.unwrap().status(),
        204
    );
    assert_eq!(
        put("about.html", "<h1>about</h1>").await.unwrap().status(),
        204
    );
    let sites = json(get(&app, &t, "/v1/sites").await, 200).await;
    let site = &sites["sites"][0];
    let id = site["id"].as_str().unwrap();
    let deploys = json(
        get(&app, &t, &format!("/v1/sites/{id}/deployments")).await,
        200,
    )
    .await;
    // A change through /v1/files replaces the live deploy: no history of its own.
    let list = deploys["deployments"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{deploys}");
    assert_eq!(list[0]["live"], true);
    assert_eq!(list[0]["file_count"], 2);
    assert_eq!(list[0]["source"], "files");
    assert_eq!(list[0]["id"], site["live_deployment_id"]);

    // Activating it again is harmless; an unknown deploy is 404.
    let activate = |deployment: &str| {
        app.as_tenant(
            &t,
            Method::POST,
            &format!("/v1/sites/{id}/deployments/{deployment}/activate"),
        )
        .send()
    };
    let live = list[0]["id"].as_str().unwrap();
    assert_eq!(json(activate(live).await.unwrap(), 200).await["live"], true);
    problem(
        activate("0190a8c2-7f55-7cc3-9a6e-000000000001")
            .await
            .unwrap(),
        404,
    )
    .await;
    problem(activate("not-a-uuid").await.unwrap(), 404).await;
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn sites_per_account_are_capped(pool: PgPool) {
    let app = spawn_app_with(pool, |c| c.limits.max_sites = 2).await;
    let t = app.tenant("acme").await;
    assert_eq!(create_site(&app, &t, "one").await.status(), 201);
    let body = problem(create_site(&app, &t, "two").await, 403).await;
    assert!(
        body["detail"].as_str().unwrap().contains("2 sites"),
        "{body}"
    );
}
