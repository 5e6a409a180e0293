//! `GET /v1/events`: the caller's domain changes as Server-Sent Events.
//!
//! One LISTEN connection per API process (started by the first subscriber) fans
//! notifications out to every open stream; each stream keeps only its tenant's. Events:
//! `domain` `{"id","kind":"changed"|"deleted"}`, `timeline` `{"domain_id"}`, `account`
//! `{"id"}` (a new entry of the tenant's own log, e.g. a hostname claimed away), and
//! `resync` `{"reason"}` when changes may have been missed: the stream fell behind the
//! fan-out buffer, or the LISTEN connection was lost and reconnected (PostgreSQL does not
//! replay notifications). A client re-reads its state on `resync`, as on `ready`.
//!
//! Open streams per tenant are capped per process (`max_event_streams`): with N API
//! processes a tenant may hold up to N times the cap.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::AppState;
use crate::extract::Caller;
use crate::problem::Problem;
use landlord_store::live::LIVE_CHANNELS;
use landlord_store::{LiveNotice, TenantId};

/// Notices buffered per stream before it counts as lagging.
const FAN_OUT_BUFFER: usize = 1024;

#[derive(Debug, Clone)]
pub struct Notice {
    /// `None`: for every tenant (a `resync`).
    tenant: Option<TenantId>,
    event: &'static str,
    data: String,
}

/// The fan-out and the open-stream counts.
#[derive(Default)]
pub struct Hub {
    sender: tokio::sync::OnceCell<broadcast::Sender<Notice>>,
    open: Arc<Mutex<HashMap<TenantId, usize>>>,
}

impl Hub {
    /// Open streams of `tenant` on this process.
    pub fn open_streams(&self, tenant: TenantId) -> usize {
        lock(&self.open).get(&tenant).copied().unwrap_or(0)
    }

    /// Count one more stream for `tenant`, unless it holds `max` already.
    fn admit(&self, tenant: TenantId, max: usize) -> Option<StreamSlot> {
        let mut open = lock(&self.open);
        let n = open.entry(tenant).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(StreamSlot {
            open: self.open.clone(),
            tenant,
        })
    }
}

fn lock(
    m: &Mutex<HashMap<TenantId, usize>>,
) -> std::sync::MutexGuard<'_, HashMap<TenantId, usize>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One counted stream; dropped with the stream (the client went away).
struct StreamSlot {
    open: Arc<Mutex<HashMap<TenantId, usize>>>,
    tenant: TenantId,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        if let Some(n) = open.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.tenant);
            }
        }
    }
}

pub async fn stream(
    Caller(tenant): Caller,
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let max = state.config.max_event_streams;
    let slot = state.hub.admit(tenant, max).ok_or_else(|| {
        Problem::too_many(
            "too-many-streams",
            format!(
                "You already have {max} event streams open, the limit per account ({max}). Close one (e.g. another dashboard tab) and retry."
            ),
            Duration::from_secs(5),
        )
    })?;
    let sender = state
        .hub
        .sender
        .get_or_init(|| async { start(state.store.clone()) })
        .await;
    let updates = BroadcastStream::new(sender.subscribe()).filter_map(move |notice| {
        // The slot lives as long as the stream.
        let _slot = &slot;
        let event = match notice {
            Ok(n) if n.tenant.is_none_or(|t| t == tenant) => {
                Some(Event::default().event(n.event).data(n.data))
            }
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(missed)) => Some(resync(&format!(
                "this stream fell {missed} notifications behind"
            ))),
        };
        futures::future::ready(event.map(Ok))
    });
    let hello = futures::stream::once(async { Ok(Event::default().event("ready").data("{}")) });
    Ok(Sse::new(hello.chain(updates))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn resync(reason: &str) -> Event {
    Event::default()
        .event("resync")
        .data(serde_json::json!({ "reason": reason }).to_string())
}

fn start(store: landlord_store::Store) -> broadcast::Sender<Notice> {
    let (tx, _) = broadcast::channel(FAN_OUT_BUFFER);
    let sender = tx.clone();
    tokio::spawn(async move {
        let mut connected_before = false;
        loop {
            let mut listener = match store.listen(&LIVE_CHANNELS).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "live updates: cannot listen; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            };
            if connected_before {
                let _ = sender.send(reconnected());
            }
            connected_before = true;
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        if let Some(n) = LiveNotice::parse(&n) {
                            let _ = sender.send(notice(n));
                        }
                    }
                    // The connection was lost; `try_recv` reconnects on its next call.
                    Ok(None) => {
                        tracing::warn!("live updates: LISTEN connection lost; reconnected");
                        let _ = sender.send(reconnected());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live updates: LISTEN failed; reconnecting");
                        break;
                    }
                }
            }
        }
    });
    tx
}

fn reconnected() -> Notice {
    Notice {
        tenant: None,
        event: "resync",
        data: serde_json::json!({ "reason": "the server's database notifications reconnected" })
            .to_string(),
    }
}

/// What a stream shows of a notice.
fn notice(n: LiveNotice) -> Notice {
    let (event, data) = match n {
        LiveNotice::Account { id, .. } => ("account", serde_json::json!({ "id": id })),
        LiveNotice::Domain {
            domain, deleted, ..
        } => (
            "domain",
            serde_json::json!({ "id": domain, "kind": if deleted { "deleted" } else { "changed" } }),
        ),
        LiveNotice::Timeline { domain, .. } => {
            ("timeline", serde_json::json!({ "domain_id": domain }))
        }
    };
    Notice {
        tenant: Some(n.tenant()),
        event,
        data: data.to_string(),
    }
}
