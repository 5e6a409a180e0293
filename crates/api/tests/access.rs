//! Authentication, tenant isolation and the problem+json shape of every failure.

mod common;

use common::{ADMIN_TOKEN, problem, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn tenant_creation_needs_the_admin_token(pool: PgPool) {
    let app = spawn_app(pool).await;
    let url = app.url("/v1/tenants");
    let res = app
        .client
        .post(&url)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    let res_header = res.headers().get("www-authenticate").cloned();
    problem(res, 401).await;
    assert_eq!(res_header.unwrap(), "Bearer");
    let res = app
        .client
        .post(&url)
        .bearer_auth("wrong")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    problem(res, 401).await;
    let res = app
        .client
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": " "}))
        .send()
        .await
        .unwrap();
    problem(res, 422).await;

    let res = app
        .client
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], "Acme");
    let key = body["api_key"].as_str().unwrap();
    assert!(key.starts_with("ll_") && key.len() > 40);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn tenant_names_follow_the_documented_rules(pool: PgPool) {
    // Regression: the name was checked after trimming, so a name with a tab or newline at
    // its ends, or over 200 characters counting surrounding spaces, was accepted although
    // the document (maxLength 200, no control characters) says it is invalid.
    let app = spawn_app(pool).await;
    let create = |name: String| {
        app.client
            .post(app.url("/v1/tenants"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "name": name }))
            .send()
    };
    for bad in [
        String::new(),
        " ".into(),
        "\u{3000}\u{a0}".into(),
        "\tAcme".into(),
        "Acme\n".into(),
        "Ac\u{0}me".into(),
        "Ac\u{85}me".into(),
        format!(" {} ", "a".repeat(199)),
        "a".repeat(201),
    ] {
        let body = problem(create(bad.clone()).await.unwrap(), 422).await;
        assert_eq!(body["type"], "/problems/invalid-name", "{bad:?}: {body}");
    }
    for (good, stored) in [
        (" Acme ".to_owned(), "Acme".to_owned()),
        ("a".repeat(200), "a".repeat(200)),
        ("\u{a0}Ünïcødé 名前".to_owned(), "Ünïcødé 名前".to_owned()),
    ] {
        let res = create(good.clone()).await.unwrap();
        assert_eq!(res.status(), 201, "{good:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["name"], stored.as_str());
    }
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn api_keys_are_stored_hashed(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let t = app.tenant("acme").await;
    let dump: Vec<String> = sqlx::query_scalar("SELECT row_to_json(k)::text FROM api_keys k")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(dump.len(), 1);
    assert!(
        !dump[0].contains(&t.key[3..]),
        "the key must not be stored in clear"
    );
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn tenant_endpoints_need_a_valid_key(pool: PgPool) {
    let app = spawn_app(pool).await;
    for (method, path) in [
        (Method::GET, "/v1/domains"),
        (Method::POST, "/v1/domains"),
        (Method::GET, "/v1/files"),
        (Method::PUT, "/v1/files/index.html"),
    ] {
        let res = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        problem(res, 401).await;
        let res = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth("ll_nope")
            .send()
            .await
            .unwrap();
        problem(res, 401).await;
        let res = app
            .client
            .request(method, app.url(path))
            .header("authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .unwrap();
        problem(res, 401).await;
    }
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn tenants_never_see_or_touch_each_others_data(pool: PgPool) {
    let app = spawn_app(pool).await;
    let a = app.tenant("a").await;
    let b = app.tenant("b").await;
    let d: Value = app
        .add_domain(&a, "private.example.com")
        .await
        .json()
        .await
        .unwrap();
    let id = d["id"].as_str().unwrap();
    let res = app
        .as_tenant(&a, Method::PUT, "/v1/files/secret.txt")
        .body("a's")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    for (method, path) in [
        (Method::GET, format!("/v1/domains/{id}")),
        (Method::DELETE, format!("/v1/domains/{id}")),
        (Method::POST, format!("/v1/domains/{id}/check")),
        (Method::GET, format!("/v1/domains/{id}/events")),
        (Method::DELETE, "/v1/files/secret.txt".to_owned()),
    ] {
        let body = problem(app.as_tenant(&b, method, &path).send().await.unwrap(), 404).await;
        assert!(!body.to_string().contains("private.example.com"));
    }
    let list: Value = app
        .as_tenant(&b, Method::GET, "/v1/domains")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["domains"], json!([]));
    let files: Value = app
        .as_tenant(&b, Method::GET, "/v1/files")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(files["files"], json!([]));
    // B writing the same path creates B's own file and leaves A's alone
    let res = app
        .as_tenant(&b, Method::PUT, "/v1/files/secret.txt")
        .body("b's")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let files: Value = app
        .as_tenant(&a, Method::GET, "/v1/files")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(files["files"][0]["size"], 3);
    assert_eq!(
        files["files"][0]["etag"],
        format!("\"{}\"", sha256_hex(b"a's"))
    );

    // A still has everything
    let res = app
        .as_tenant(&a, Method::GET, &format!("/v1/domains/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn malformed_requests_are_4xx_problems(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("acme").await;
    let post = || app.as_tenant(&t, Method::POST, "/v1/domains");
    problem(
        post()
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    problem(
        post()
            .body(r#"{"hostname":"a.example.com"}"#)
            .send()
            .await
            .unwrap(),
        415,
    )
    .await;
    problem(
        post()
            .json(&json!({"host": "a.example.com"}))
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    problem(
        post().json(&json!({"hostname": 42})).send().await.unwrap(),
        422,
    )
    .await;
    problem(post().json(&json!([1, 2])).send().await.unwrap(), 422).await;
    // Every body is a JSON object: serde alone reads a struct from an array too.
    let sites = || app.as_tenant(&t, Method::POST, "/v1/sites");
    let body = problem(sites().json(&json!(["docs"])).send().await.unwrap(), 422).await;
    assert!(body["detail"].as_str().unwrap().contains("map"), "{body}");
    let res = sites().json(&json!({"name": "docs"})).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let body = problem(
        app.as_tenant(&t, Method::GET, "/v1/domains/not-a-uuid")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("uuid"),
        "{body}"
    );
    problem(
        app.as_tenant(
            &t,
            Method::GET,
            "/v1/domains/00000000-0000-0000-0000-000000000000",
        )
        .send()
        .await
        .unwrap(),
        404,
    )
    .await;
    problem(
        app.as_tenant(&t, Method::GET, "/v1/nothing-here")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    problem(
        app.as_tenant(&t, Method::PATCH, "/v1/domains")
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn healthz_and_dashboard_answer(pool: PgPool) {
    let app = spawn_app(pool).await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

/// With the database away, `/healthz` says so (503 problem+json) instead of 200 or 500.
#[tokio::test]
async fn healthz_is_503_when_the_database_is_away() {
    let unreachable = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_secs(1))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let app = spawn_app(unreachable).await;
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], 503);
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex_encode(&sha2::Sha256::digest(data))
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn metrics_parse_as_prometheus_text(pool: PgPool) {
    use metrics_exporter_prometheus::PrometheusBuilder;
    // The API renders the process's recorder and the fleet's gauges; what the edge counts
    // is checked against a real edge (`crates/landlord/tests/hostile.rs`).
    let handle = PrometheusBuilder::new().build_recorder().handle();
    let store = landlord_store::Store::from_pool(pool);
    let mut config = landlord_api::ApiConfig::new(
        landlord_store::Hostname::parse(common::CNAME_TARGET).unwrap(),
        vec![],
        None,
    );
    config.metrics = Some(handle);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(landlord_api::serve(
        listener,
        landlord_api::router(store.clone(), config),
        std::future::pending(),
    ));
    let (tenant, _) = store
        .create_tenant(&landlord_store::TenantName::parse("t").unwrap())
        .await
        .unwrap();
    let h = landlord_store::Hostname::parse("m.example.com").unwrap();
    store.create_domain(tenant.id, &h, None, 100).await.unwrap();

    let res = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        value("landlord_domains", Some(("status", "pending_dns"))),
        Some(1.0)
    );
    assert_eq!(
        value("landlord_domains", Some(("status", "active"))),
        Some(0.0)
    );
    assert_eq!(
        value("landlord_certificates_renewal_overdue", None),
        Some(0.0)
    );
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn openapi_document_covers_every_endpoint(pool: PgPool) {
    let app = spawn_app(pool).await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/v1/tenants", &["post"][..]),
        ("/v1/domains", &["get", "post"]),
        ("/v1/domains/{id}", &["get", "delete"]),
        ("/v1/domains/{id}/check", &["post"]),
        ("/v1/domains/{id}/events", &["get"]),
        ("/v1/events", &["get"]),
        ("/v1/files", &["get"]),
        ("/v1/limits", &["get"]),
        ("/v1/files/{path}", &["put", "delete"]),
        ("/healthz", &["get"]),
        ("/metrics", &["get"]),
    ] {
        for m in methods {
            assert!(paths[path][m].is_object(), "{m} {path} missing");
        }
    }
    for schema in [
        "Problem",
        "DomainView",
        "CheckView",
        "CertificateView",
        "FileList",
        "LimitsView",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn dashboard_assets_are_served(pool: PgPool) {
    let app = spawn_app(pool).await;
    for (path, ct) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/js/state.js", "text/javascript"),
        ("/js/api.js", "text/javascript"),
        ("/style.css", "text/css"),
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(ct),
            "{path}"
        );
        assert!(res.headers().contains_key("content-security-policy"));
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(res.headers()["cache-control"], "no-cache", "{path}");
    }
    // Every module the entry imports, directly or not, is served (specifiers are relative:
    // './js/x.js' from /app.js, './x.js' from /js/*).
    let mut pending = vec!["/app.js".to_owned()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = pending.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let dir = &path[..=path.rfind('/').unwrap()];
        for import in res.text().await.unwrap().split(" from './").skip(1) {
            let name = &import[..import.find('\'').unwrap()];
            pending.push(format!("{dir}{name}"));
        }
    }
    assert!(seen.len() > 10 && seen.contains("/js/state.js"), "{seen:?}");
    for path in ["/js/nope.js", "/js/", "/js/state.js/x"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
    }
}
