//! Spawns the real API on a random port against a fresh per-test database.
#![allow(dead_code)]

use landlord_api::ApiConfig;
use landlord_store::{Hostname, Store};
use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;
use sqlx::PgPool;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const CNAME_TARGET: &str = "edge.platform.test";

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub store: Store,
}

pub struct TestTenant {
    pub id: String,
    pub key: String,
}

pub async fn spawn_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, |_| {}).await
}

/// The API with `configure` applied to its configuration (limits, rates).
pub async fn spawn_app_with(pool: PgPool, configure: impl FnOnce(&mut ApiConfig)) -> TestApp {
    let store = Store::from_pool(pool);
    let mut config = ApiConfig::new(
        Hostname::parse(CNAME_TARGET).unwrap(),
        vec![
            "192.0.2.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ],
        Some(ADMIN_TOKEN),
    );
    config.master_key = Some(landlord_store::MasterKey::new([7; 32]));
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = landlord_api::router(store.clone(), config);
    tokio::spawn(landlord_api::serve(
        listener,
        router,
        std::future::pending(),
    ));
    TestApp {
        base,
        client: Client::new(),
        store,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn tenant(&self, name: &str) -> TestTenant {
        let res = self
            .client
            .post(self.url("/v1/tenants"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        TestTenant {
            id: body["id"].as_str().unwrap().to_owned(),
            key: body["api_key"].as_str().unwrap().to_owned(),
        }
    }

    pub fn as_tenant(&self, t: &TestTenant, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&t.key)
    }

    pub async fn add_domain(&self, t: &TestTenant, hostname: &str) -> Response {
        self.as_tenant(t, reqwest::Method::POST, "/v1/domains")
            .json(&serde_json::json!({ "hostname": hostname }))
            .send()
            .await
            .unwrap()
    }
}

/// Assert the response is a problem document with this status; return it.
pub async fn problem(res: Response, status: u16) -> Value {
    assert_eq!(
        res.status().as_u16(),
        status,
        "unexpected status for {}",
        res.url()
    );
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(ct.as_deref(), Some("application/problem+json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    for field in ["type", "title", "detail"] {
        assert!(
            body[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} missing: {body}"
        );
    }
    body
}

/// Send a request byte for byte (reqwest would normalise `..` and `%2e%2e` away);
/// returns the status and the body.
pub async fn raw_request(
    app: &TestApp,
    key: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text[9..12].parse().unwrap();
    let json = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}
