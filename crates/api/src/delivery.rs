//! Webhook deliveries, sent by API processes (they render the Domain object exactly as the
//! API shows it): claimed from the outbox with `FOR UPDATE SKIP LOCKED` under a lease, so
//! any number of API processes share the work and a crash only delays a delivery (at least
//! once). Each attempt resolves the endpoint's name again, refuses private and special
//! addresses (unless `LANDLORD_WEBHOOK_ALLOW_PRIVATE`), connects to the address it checked
//! with SNI and `Host` the URL's name, follows no redirect, ignores proxy settings, and
//! bounds the time and the bytes read. Signed as Standard Webhooks: `webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use landlord_store::webhooks::{Due, Outcome, PING_KIND, WEBHOOKS_CHANNEL, webhook_secret_context};
use landlord_store::{MasterKey, Store};
use serde_json::json;

use crate::ApiConfig;
use crate::views::{DomainView, rfc3339};

/// How webhooks are delivered (settings in the README's configuration table).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Let deliveries reach private, loopback and other special addresses, and plain
    /// `http://` URLs (test beds only).
    pub allow_private: bool,
    /// One attempt, from resolving the name to the end of the response.
    pub timeout: Duration,
    /// The waits before each retry; past the last, the delivery fails and its webhook is
    /// disabled. The default spans about a day.
    pub retry_schedule: Vec<Duration>,
    /// Response bytes read at most (the rest is dropped).
    pub max_response_bytes: usize,
    /// Attempts in flight per API process.
    pub concurrency: usize,
    /// Finished deliveries are kept this long for `GET /v1/webhooks/{id}/deliveries`.
    pub retention: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        let m = |minutes: u64| Duration::from_secs(60 * minutes);
        Self {
            allow_private: false,
            timeout: Duration::from_secs(10),
            // Standard Webhooks' reference schedule (Svix): 5 s, 5 min, 30 min, 2 h, 5 h,
            // 10 h, 10 h: the last attempt about 27.6 hours after the first.
            retry_schedule: vec![
                Duration::from_secs(5),
                m(5),
                m(30),
                m(120),
                m(300),
                m(600),
                m(600),
            ],
            max_response_bytes: 64 * 1024,
            concurrency: 16,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// How long a replaced secret keeps signing deliveries beside the new one.
pub const SECRET_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// `whsec_` and 24 random bytes in base64: a new webhook secret.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", B64.encode(bytes))
}

/// `v1,<signature>` of a delivery, as Standard Webhooks defines it.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    use aws_lc_rs::hmac;
    let key = B64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let tag = hmac::sign(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!("v1,{}", B64.encode(tag.as_ref())))
}

/// Deliver until `shutdown` resolves.
pub async fn run(store: Store, config: Arc<ApiConfig>, shutdown: impl Future<Output = ()>) {
    let Some(key) = config.master_key.clone() else {
        tracing::warn!("no master key: webhooks are not delivered by this process");
        return;
    };
    let settings = &config.webhooks;
    // Longer than any attempt (each is cut at the timeout): a live process never loses its
    // claim to another; a dead one's is taken over soon after.
    let lease = settings.timeout * 2 + Duration::from_secs(1);
    let mut listener = store.listen(&[WEBHOOKS_CHANNEL]).await.ok();
    let mut pruned = Instant::now();
    tokio::pin!(shutdown);
    loop {
        loop {
            let due = match store
                .claim_deliveries(lease, settings.concurrency as i64)
                .await
            {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim webhook deliveries");
                    break;
                }
            };
            if due.is_empty() {
                break;
            }
            let attempts = due.into_iter().map(|d| attempt(&store, &config, &key, d));
            futures::future::join_all(attempts).await;
        }
        if pruned.elapsed() > Duration::from_secs(600) {
            pruned = Instant::now();
            if let Err(e) = store.prune_deliveries(settings.retention).await {
                tracing::warn!(error = %e, "cannot prune webhook deliveries");
            }
        }
        // A notification wakes us at once; a due retry within a second at most.
        let wake = async {
            match listener.as_mut() {
                Some(l) => {
                    if let Ok(Err(_)) = tokio::time::timeout(Duration::from_secs(1), l.recv()).await
                    {
                        // The LISTEN connection failed (it reconnects on the next call):
                        // poll meanwhile rather than spin.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                None => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            () = wake => {}
        }
    }
}

async fn attempt(store: &Store, config: &ApiConfig, key: &MasterKey, due: Due) {
    let started = Instant::now();
    let result = send(store, config, key, &due).await;
    let schedule = &config.webhooks.retry_schedule;
    let retry_after = match due.kind.as_str() {
        PING_KIND => None,
        _ => schedule.get(due.attempts.max(1) as usize - 1).copied(),
    };
    let outcome = match result {
        Ok(status) => Outcome {
            status: Some(status),
            error: None,
            duration: started.elapsed(),
            retry: None,
        },
        Err((status, error)) => Outcome {
            status,
            error: Some(error),
            duration: started.elapsed(),
            retry: Some(retry_after),
        },
    };
    match &outcome.error {
        None => {
            tracing::info!(delivery = %due.id, kind = %due.kind, attempt = due.attempts, "webhook delivered")
        }
        Some(e) => {
            tracing::info!(delivery = %due.id, kind = %due.kind, attempt = due.attempts, error = %e, "webhook attempt failed")
        }
    }
    if let Err(e) = store.finish_attempt(&due, &outcome).await {
        // The lease runs out and another attempt is made: at least once.
        tracing::warn!(delivery = %due.id, error = %e, "cannot record a webhook attempt");
    }
}

/// One attempt: the status of a 2xx answer, or what went wrong (with the status, if any).
async fn send(
    store: &Store,
    config: &ApiConfig,
    key: &MasterKey,
    due: &Due,
) -> Result<u16, (Option<u16>, String)> {
    let fail = |e: String| (None, e);
    let body = match &due.body {
        Some(body) => body.clone(),
        None => {
            let body = render(store, config, due).await.map_err(fail)?;
            store
                .set_delivery_body(due.id, &body)
                .await
                .map_err(|e| fail(format!("cannot store the body: {e}")))?;
            body
        }
    };
    let context = webhook_secret_context(due.webhook_id);
    let open = |sealed: &[u8]| {
        key.open(sealed, &context)
            .ok()
            .and_then(|s| String::from_utf8(s).ok())
            .ok_or_else(|| {
                fail("the webhook's secret cannot be opened with this process's master key".into())
            })
    };
    let mut secrets = vec![open(&due.secret_sealed)?];
    if let Some(previous) = &due.previous_secret_sealed {
        secrets.push(open(previous)?);
    }
    let settings = &config.webhooks;
    let id = due.id.to_string();
    tokio::time::timeout(
        settings.timeout,
        post(settings, &due.url, &id, &secrets, &body),
    )
    .await
    .unwrap_or_else(|_| {
        Err((
            None,
            format!("no complete answer within {:?}", settings.timeout),
        ))
    })
}

async fn post(
    settings: &crate::delivery::WebhookSettings,
    url: &str,
    id: &str,
    secrets: &[String],
    body: &str,
) -> Result<u16, (Option<u16>, String)> {
    let fail = |e: String| (None, e);
    let parsed = reqwest::Url::parse(url).map_err(|e| fail(format!("invalid URL: {e}")))?;
    // Checked at registration too; settings may have changed since.
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && settings.allow_private) {
        return Err(fail(format!(
            "refused: {}:// URLs are not delivered to (https:// only)",
            parsed.scheme()
        )));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| fail("the URL has no host".into()))?
        .to_owned();
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| fail("the URL has no port".into()))?;
    let address = resolve(&host, port, settings.allow_private)
        .await
        .map_err(fail)?;
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    // One signature per secret, space-separated (the new secret's first).
    let signature = secrets
        .iter()
        .map(|s| signature(s, id, timestamp, body))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| fail("the webhook's secret is malformed".into()))?
        .join(" ");
    let mut client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.timeout)
        .user_agent(concat!("Landlord-Webhooks/", env!("CARGO_PKG_VERSION")));
    // Connect to the address checked above, whatever the name resolves to by then (SNI and
    // Host stay the URL's name). An IP literal needs no such pin.
    if host.parse::<IpAddr>().is_err() && !host.starts_with('[') {
        client = client.resolve(&host, address);
    }
    let client = client
        .build()
        .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
    let response = client
        .post(parsed)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| fail(format!("no answer from {address}: {}", error_chain(&e))))?;
    let status = response.status();
    // Read a bounded amount (the answer is not used; reading lets the connection end cleanly).
    let mut response = response;
    let mut read = 0usize;
    while read < settings.max_response_bytes {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
    let code = status.as_u16();
    if status.is_success() {
        Ok(code)
    } else if status.is_redirection() {
        Err((
            Some(code),
            format!("answered {status}: redirects are not followed; give the final URL"),
        ))
    } else {
        Err((Some(code), format!("answered {status}")))
    }
}

/// The address to connect to: every address the name has is checked (so a name cannot mix
/// a public address with a private one), the first is used.
async fn resolve(host: &str, port: u16, allow_private: bool) -> Result<SocketAddr, String> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
    };
    let first = *addresses
        .first()
        .ok_or_else(|| format!("{host} has no address"))?;
    if !allow_private {
        for a in &addresses {
            if let Some(why) = crate::ssrf::forbidden(a.ip()) {
                // The address stays in our log: tenants must not learn internal names'
                // addresses through delivery errors.
                tracing::info!(%host, address = %a.ip(), why, "webhook delivery refused");
                return Err(format!(
                    "refused: {host} resolves to a non-public address (loopback, private, link-local or otherwise reserved); webhooks only reach public addresses"
                ));
            }
        }
    }
    Ok(first)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The JSON body of a delivery: its kind, the event's time, and the Domain object as the
/// API shows it now (`null` when the domain is gone, as after `domain.reclaimed`).
async fn render(store: &Store, config: &ApiConfig, due: &Due) -> Result<String, String> {
    let domain = match due.domain_id {
        Some(id) => store
            .get_domain(due.tenant_id, id)
            .await
            .map_err(|e| format!("cannot read the domain: {e}"))?
            .map(|d| DomainView::new(&d, config)),
        None => None,
    };
    let data = match due.kind.as_str() {
        PING_KIND => json!({ "webhook_id": due.webhook_id, "message": due.message }),
        _ => json!({
            "domain": domain,
            "domain_id": due.domain_id,
            "hostname": due.hostname,
            "message": due.message,
        }),
    };
    let body = json!({
        "type": due.kind,
        "timestamp": rfc3339(due.event_at),
        "data": data,
    });
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        // From the Standard Webhooks specification's reference libraries.
        let sig = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn secrets_are_whsec_and_24_random_bytes() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        let raw = B64.decode(a.strip_prefix("whsec_").unwrap()).unwrap();
        assert_eq!(raw.len(), 24);
    }

    #[tokio::test]
    async fn private_names_and_literals_are_refused_unless_allowed() {
        for host in [
            "127.0.0.1",
            "[::1]",
            "localhost",
            "10.0.0.1",
            "[::ffff:169.254.169.254]",
        ] {
            let e = resolve(host, 443, false).await.unwrap_err();
            assert!(e.starts_with("refused"), "{host}: {e}");
        }
        assert!(resolve("127.0.0.1", 443, true).await.is_ok());
        assert!(resolve("8.8.8.8", 443, false).await.is_ok());
    }
}
