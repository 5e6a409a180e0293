//! `GET /v1/events`: the caller's domain changes as Server-Sent Events.
//!
//! One LISTEN connection per API process (started by the first subscriber) fans
//! notifications out to every open stream; each stream keeps only its tenant's. Events:
//! `domain` `{"id","kind":"changed"|"deleted"}` and `timeline` `{"domain_id"}`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use uuid::Uuid;

use crate::AppState;
use crate::extract::Caller;

pub const DOMAINS_CHANNEL: &str = "landlord_domains";
pub const EVENTS_CHANNEL: &str = "landlord_events";

#[derive(Debug, Clone)]
pub struct Notice {
    tenant: Uuid,
    event: &'static str,
    data: String,
}

pub type Hub = tokio::sync::OnceCell<broadcast::Sender<Notice>>;

pub async fn stream(
    Caller(tenant): Caller,
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let sender = state
        .hub
        .get_or_init(|| async { start(state.store.clone()) })
        .await;
    let updates = BroadcastStream::new(sender.subscribe()).filter_map(move |notice| async move {
        let notice = notice.ok()?;
        (notice.tenant == tenant.0)
            .then(|| Ok(Event::default().event(notice.event).data(notice.data)))
    });
    let hello = futures::stream::once(async { Ok(Event::default().event("ready").data("{}")) });
    Sse::new(hello.chain(updates)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn start(store: landlord_store::Store) -> broadcast::Sender<Notice> {
    let (tx, _) = broadcast::channel(1024);
    let sender = tx.clone();
    tokio::spawn(async move {
        loop {
            let mut listener = match store.listen(&[DOMAINS_CHANNEL, EVENTS_CHANNEL]).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "live updates: cannot listen; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            };
            while let Ok(n) = listener.recv().await {
                if let Some(notice) = parse(n.channel(), n.payload()) {
                    let _ = sender.send(notice);
                }
            }
        }
    });
    tx
}

fn parse(channel: &str, payload: &str) -> Option<Notice> {
    let mut parts = payload.split(' ');
    let tenant = parts.next()?.parse().ok()?;
    let domain: Uuid = parts.next()?.parse().ok()?;
    match channel {
        DOMAINS_CHANNEL => {
            let kind = if parts.next() == Some("deleted") {
                "deleted"
            } else {
                "changed"
            };
            Some(Notice {
                tenant,
                event: "domain",
                data: serde_json::json!({ "id": domain, "kind": kind }).to_string(),
            })
        }
        EVENTS_CHANNEL => Some(Notice {
            tenant,
            event: "timeline",
            data: serde_json::json!({ "domain_id": domain }).to_string(),
        }),
        _ => None,
    }
}
