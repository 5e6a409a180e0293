//! The OpenAPI document describes what the API really answers (regressions found by
//! `scripts/test-schemathesis.sh`).

mod common;

use common::{ADMIN_TOKEN, TestApp, problem, raw_request, spawn_app};
use reqwest::Method;
use serde_json::Value;
use sqlx::PgPool;

async fn document(app: &TestApp) -> Value {
    app.client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.clone(), path.clone(), op));
        }
    }
    out
}

/// Assert `status` is a documented response of `method path`, as problem+json for errors.
fn assert_documented(doc: &Value, method: &str, path: &str, status: u16) {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{} {path} answers {status}, which the document does not list",
        method.to_uppercase()
    );
    if status >= 400 {
        assert!(
            response["content"]["application/problem+json"].is_object(),
            "{} {path} {status} is not documented as application/problem+json",
            method.to_uppercase()
        );
    }
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn operation_ids_are_unique_and_responses_described(pool: PgPool) {
    let app = spawn_app(pool).await;
    let doc = document(&app).await;
    let mut ids = std::collections::HashSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path} has no operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        for (status, response) in op["responses"].as_object().unwrap() {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} {status} has no description (required by OpenAPI)"
            );
        }
    }
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn json_body_rejections_are_documented(pool: PgPool) {
    let app = spawn_app(pool).await;
    let doc = document(&app).await;
    let t = app.tenant("acme").await;
    for (path, auth) in [
        ("/v1/domains", t.key.as_str()),
        ("/v1/tenants", ADMIN_TOKEN),
    ] {
        // no Content-Type at all
        let res = app
            .client
            .post(app.url(path))
            .bearer_auth(auth)
            .send()
            .await
            .unwrap();
        problem(res, 415).await;
        assert_documented(&doc, "post", path, 415);
        // not JSON
        let res = app
            .client
            .post(app.url(path))
            .bearer_auth(auth)
            .header("content-type", "application/json")
            .body("\0")
            .send()
            .await
            .unwrap();
        problem(res, 400).await;
        assert_documented(&doc, "post", path, 400);
        // too large for a JSON body (axum's 2 MiB default)
        let res = app
            .client
            .post(app.url(path))
            .bearer_auth(auth)
            .header("content-type", "application/json")
            .body(vec![b' '; 3 << 20])
            .send()
            .await
            .unwrap();
        problem(res, 413).await;
        assert_documented(&doc, "post", path, 413);
        // JSON of the wrong shape
        let res = app
            .client
            .post(app.url(path))
            .bearer_auth(auth)
            .json(&serde_json::json!([1]))
            .send()
            .await
            .unwrap();
        problem(res, 422).await;
        assert_documented(&doc, "post", path, 422);
    }
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn file_upload_is_documented_as_it_behaves(pool: PgPool) {
    let app = spawn_app(pool).await;
    let doc = document(&app).await;
    let t = app.tenant("acme").await;
    let put = &doc["paths"]["/v1/files/{path}"]["put"];
    // A missing body stores an empty file, so the body is not required.
    assert_ne!(
        put["requestBody"]["required"], true,
        "{}",
        put["requestBody"]
    );
    let res = app
        .as_tenant(&t, Method::PUT, "/v1/files/empty.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    // A path that is not UTF-8 names nothing: 404, like a malformed id.
    let (status, body) = raw_request(&app, &t.key, "PUT", "/v1/files/%FF", "x").await;
    assert_eq!(status, 404, "{body}");
    assert_documented(&doc, "put", "/v1/files/{path}", 404);
    // The path parameter states the rules a pattern can: no control characters, no backslash.
    let param = &put["parameters"][0];
    assert_eq!(param["name"], "path");
    assert!(param["schema"]["pattern"].is_string(), "{param}");
    assert!(
        param["description"]
            .as_str()
            .unwrap()
            .contains("1024 bytes"),
        "{param}"
    );
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn event_stream_events_match_the_documented_event_schema(pool: PgPool) {
    use futures::StreamExt;
    let app = spawn_app(pool).await;
    let doc = document(&app).await;
    let t = app.tenant("acme").await;
    let media =
        &doc["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]["text/event-stream"];
    assert_eq!(
        media["schema"]["$ref"], "#/components/schemas/LiveEvent",
        "{media}"
    );
    let event_schema = &doc["components"]["schemas"]["LiveEvent"];
    let required: Vec<&str> = event_schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, ["event", "data"], "{event_schema}");
    let kinds = doc["components"]["schemas"]["LiveEventKind"]["enum"].clone();
    for kind in ["ready", "domain", "timeline"] {
        assert!(
            kinds.as_array().unwrap().iter().any(|k| k == kind),
            "{kinds}"
        );
    }

    let res = app
        .as_tenant(&t, Method::GET, "/v1/events")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), body.next())
        .await
        .expect("the ready event arrives at once")
        .unwrap()
        .unwrap();
    let text = String::from_utf8(first.to_vec()).unwrap();
    assert!(text.starts_with("event: ready\ndata: {}\n"), "{text:?}");
}
