//! Webhooks end to end: real API, worker and PostgreSQL, and receivers on 127.0.0.1 that
//! verify Standard Webhooks signatures. Retries with backoff until the receiver answers,
//! the same body and id on every attempt, each attempt listed; persistent failure disables
//! the webhook (and says so in the tenant's log); redirects are not followed; deliveries
//! queued while no API process runs are sent by the next one; private addresses are never
//! reached unless the operator allows them.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request a receiver got: its headers (lower-case names) and body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// A receiver on 127.0.0.1: answers the n-th request (from 0) with `answer(n)` (a status
/// line and extra headers), recording every request.
fn receiver(
    answer: impl Fn(usize) -> &'static str + Send + Sync + 'static,
) -> (u16, Arc<Mutex<Vec<Received>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std.set_nonblocking(true).unwrap();
    let port = std.local_addr().unwrap().port();
    let listener = tokio::net::TcpListener::from_std(std).unwrap();
    let (seen, answer) = (got.clone(), Arc::new(answer));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (seen, answer) = (seen.clone(), answer.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let headers: Vec<(String, String)> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(Received { headers, body });
                    seen.len() - 1
                };
                let reply = format!(
                    "HTTP/1.1 {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    answer(n)
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    (port, got)
}

async fn api(
    p: &Platform,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = p
        .client
        .request(method, format!("{}{path}", p.api))
        .bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `GET /v1/webhooks/{id}` as the tenant `key`.
async fn webhook(p: &Platform, key: &str, id: &str) -> Value {
    api(
        p,
        key,
        reqwest::Method::GET,
        &format!("/v1/webhooks/{id}"),
        None,
    )
    .await
    .1
}

/// `GET /v1/webhooks/{id}/deliveries` as the tenant `key`.
async fn deliveries(p: &Platform, key: &str, id: &str) -> Value {
    let path = format!("/v1/webhooks/{id}/deliveries");
    api(p, key, reqwest::Method::GET, &path, None).await.1
}

/// Whether `r` carries a valid signature under `secret`.
fn signed(r: &Received, secret: &str) -> bool {
    let timestamp: i64 = r.header("webhook-timestamp").parse().unwrap_or(0);
    let expected =
        landlord_api::delivery::signature(secret, r.header("webhook-id"), timestamp, &r.body)
            .unwrap();
    r.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

const FAST_RETRIES: (&str, &str) = ("LANDLORD_WEBHOOK_RETRY_SCHEDULE", "300ms,300ms,300ms");

#[sqlx::test(migrations = false)]
async fn deliveries_are_signed_retried_listed_and_a_dead_endpoint_is_disabled(pool: PgPool) {
    let mut p = Platform::start(
        pool,
        &[
            ("LANDLORD_ISSUER", "local"),
            ("LANDLORD_WEBHOOK_ALLOW_PRIVATE", "true"),
            FAST_RETRIES,
        ],
    )
    .await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    // Fails the first two attempts, then takes them.
    let (good, got) = receiver(|n| {
        if n < 2 {
            "500 Internal Server Error"
        } else {
            "204 No Content"
        }
    });
    let (status, hook) = api(
        &p,
        &key,
        reqwest::Method::POST,
        "/v1/webhooks",
        Some(json!({"url": format!("http://127.0.0.1:{good}/hook"), "events": ["domain.issued"]})),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    // Nobody listens there: every attempt fails.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_, dead_hook) = api(
        &p,
        &key,
        reqwest::Method::POST,
        "/v1/webhooks",
        Some(json!({"url": format!("http://127.0.0.1:{dead}/gone")})),
    )
    .await;
    // Answers with a redirect to a third receiver, which must never be reached.
    let (target, reached) = receiver(|_| "200 OK");
    let redirect: &'static str = Box::leak(
        format!("302 Found\r\nLocation: http://127.0.0.1:{target}/private").into_boxed_str(),
    );
    let (redirecting, _) = receiver(move |_| redirect);
    let (_, redirect_hook) = api(&p, &key, reqwest::Method::POST, "/v1/webhooks",
        Some(json!({"url": format!("http://127.0.0.1:{redirecting}/r"), "events": ["domain.issued"]}))).await;

    p.put_file(&key, "index.html", "text/html", "hooked").await;
    let host = unique("hook");
    let id = p.add_pointed_domain(&key, &host).await;
    p.wait_domain(&key, &id, Duration::from_secs(60), |d| {
        d["status"] == "active"
    })
    .await;

    p.wait_for(
        "three attempts at the good endpoint",
        Duration::from_secs(30),
        |_| {
            let got = got.clone();
            async move { got.lock().unwrap().len() >= 3 }
        },
    )
    .await;
    let attempts = got.lock().unwrap().clone();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    for a in &attempts {
        assert!(signed(a, &secret), "bad signature: {a:?}");
        assert_eq!(a.header("webhook-id"), attempts[0].header("webhook-id"));
        assert_eq!(a.body, attempts[0].body, "the same body on every attempt");
        assert_eq!(a.header("content-type"), "application/json");
    }
    let event: Value = serde_json::from_str(&attempts[0].body).unwrap();
    assert_eq!(event["type"], "domain.issued");
    assert_eq!(event["data"]["hostname"], host.as_str());
    assert_eq!(event["data"]["domain"]["id"], id.as_str());
    assert_eq!(event["data"]["domain"]["status"], "active");
    assert!(event["timestamp"].is_string());
    // Listed with every attempt.
    let listed = deliveries(&p, &key, &hook_id).await;
    let delivery = &listed["deliveries"][0];
    assert_eq!(delivery["status"], "delivered", "{listed}");
    assert_eq!(delivery["id"], attempts[0].header("webhook-id"));
    let statuses: Vec<Value> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!(500), json!(500), json!(204)]);

    // The dead endpoint: 1 + 3 attempts, then the delivery fails and the webhook is
    // disabled, which the tenant's log says.
    let dead_id = dead_hook["id"].as_str().unwrap().to_owned();
    p.wait_for(
        "the dead webhook to be disabled",
        Duration::from_secs(30),
        |p| {
            let (key, dead_id) = (key.clone(), dead_id.clone());
            async move { webhook(p, &key, &dead_id).await["enabled"] == false }
        },
    )
    .await;
    let dead_now = webhook(&p, &key, &dead_id).await;
    assert!(
        dead_now["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("failed attempts"),
        "{dead_now}"
    );
    let (_, log) = api(&p, &key, reqwest::Method::GET, "/v1/tenant/events", None).await;
    assert!(log.to_string().contains("webhook_disabled"), "{log}");
    let dead_deliveries = deliveries(&p, &key, &dead_id).await;
    let failed = dead_deliveries["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["status"] == "failed")
        .expect("a failed delivery");
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 4, "{failed}");
    assert!(failed["attempts"][0]["status"].is_null());

    // The redirect was not followed.
    let redirect_id = redirect_hook["id"].as_str().unwrap().to_owned();
    p.wait_for(
        "an attempt at the redirecting endpoint",
        Duration::from_secs(30),
        |p| {
            let (key, redirect_id) = (key.clone(), redirect_id.clone());
            async move {
                let l = deliveries(p, &key, &redirect_id).await;
                l["deliveries"][0]["attempts"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            }
        },
    )
    .await;
    let l = deliveries(&p, &key, &redirect_id).await;
    let first = &l["deliveries"][0]["attempts"][0];
    assert_eq!(first["status"], 302);
    assert!(
        first["error"].as_str().unwrap().contains("not followed"),
        "{first}"
    );
    assert!(
        reached.lock().unwrap().is_empty(),
        "the redirect target was reached"
    );

    // A new secret: for a day, deliveries carry a signature with each (the new one first).
    let (status, rotated) = api(
        &p,
        &key,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{hook_id}/secret"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    // Ping, and re-enable.
    let (status, _) = api(
        &p,
        &key,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{hook_id}/ping"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    p.wait_for("the ping", Duration::from_secs(20), |_| {
        let got = got.clone();
        async move {
            got.lock()
                .unwrap()
                .iter()
                .any(|r| r.body.contains("\"webhook.ping\""))
        }
    })
    .await;
    let ping = got
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.body.contains("\"webhook.ping\""))
        .cloned()
        .unwrap();
    assert!(
        signed(&ping, &new_secret) && signed(&ping, &secret),
        "{ping:?}"
    );
    assert_eq!(ping.header("webhook-signature").split(' ').count(), 2);
    let (status, again) = api(
        &p,
        &key,
        reqwest::Method::PATCH,
        &format!("/v1/webhooks/{dead_id}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(again["enabled"], true);
}

#[sqlx::test(migrations = false)]
async fn deliveries_queued_while_no_api_runs_are_sent_by_the_next(pool: PgPool) {
    let mut p = Platform::start(
        pool,
        &[
            ("LANDLORD_ISSUER", "local"),
            ("LANDLORD_WEBHOOK_ALLOW_PRIVATE", "true"),
            FAST_RETRIES,
        ],
    )
    .await;
    let key = p.tenant().await;
    let (port, got) = receiver(|_| "200 OK");
    let (_, hook) = api(
        &p,
        &key,
        reqwest::Method::POST,
        "/v1/webhooks",
        Some(json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["domain.issued"]})),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let host = unique("queued");
    let id = p.add_pointed_domain(&key, &host).await;
    // The only API process dies (SIGKILL); the worker issues meanwhile.
    p.procs[0].kill9();
    p.spawn("worker", &[]);
    p.wait_for("the delivery to be queued", Duration::from_secs(60), |p| {
        let pool = p.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM webhook_deliveries WHERE kind = 'domain.issued'",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
                == 1
        }
    })
    .await;
    assert!(got.lock().unwrap().is_empty());
    // A new API process sends it.
    let api_proc = p.spawn("api", &[("LANDLORD_API_ADDR", "127.0.0.1:0")]);
    p.api = format!(
        "http://127.0.0.1:{}",
        p.bound(api_proc, "LANDLORD_API_ADDR").await
    );
    p.wait_for("the delivery", Duration::from_secs(30), |_| {
        let got = got.clone();
        async move { !got.lock().unwrap().is_empty() }
    })
    .await;
    let r = got.lock().unwrap()[0].clone();
    assert!(signed(&r, &secret));
    let event: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(event["data"]["domain_id"], id.as_str());
}

#[sqlx::test(migrations = false)]
async fn a_name_that_resolves_to_a_private_address_is_never_reached(pool: PgPool) {
    // Without LANDLORD_WEBHOOK_ALLOW_PRIVATE. This machine's own name resolves to a
    // loopback address on most systems (/etc/hosts): registration cannot tell, delivery does.
    let name = std::process::Command::new("hostname").output().unwrap();
    let name = String::from_utf8_lossy(&name.stdout).trim().to_owned();
    let resolved: Vec<std::net::IpAddr> = tokio::net::lookup_host((name.as_str(), 443))
        .await
        .map(|a| a.map(|a| a.ip()).collect())
        .unwrap_or_default();
    if !resolved.iter().any(|ip| ip.is_loopback()) {
        println!("skipped: {name} does not resolve to a loopback address here ({resolved:?})");
        return;
    }
    let p = Platform::start(pool, &[FAST_RETRIES]).await;
    let key = p.tenant().await;
    let (port, got) = receiver(|_| "200 OK");
    let (status, hook) = api(
        &p,
        &key,
        reqwest::Method::POST,
        "/v1/webhooks",
        Some(json!({"url": format!("https://{name}:{port}/hook")})),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let (status, _) = api(
        &p,
        &key,
        reqwest::Method::POST,
        &format!("/v1/webhooks/{hook_id}/ping"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    p.wait_for("the refused attempt", Duration::from_secs(20), |p| {
        let (key, hook_id) = (key.clone(), hook_id.clone());
        async move {
            let l = deliveries(p, &key, &hook_id).await;
            l["deliveries"][0]["status"] == "failed"
        }
    })
    .await;
    let l = deliveries(&p, &key, &hook_id).await;
    let error = l["deliveries"][0]["attempts"][0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("refused") && error.contains("loopback"),
        "{error}"
    );
    assert!(
        got.lock().unwrap().is_empty(),
        "the private address was reached"
    );
}
