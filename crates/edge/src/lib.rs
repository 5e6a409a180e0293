//! `landlord-edge`: what tenants' visitors and the CA reach.
//!
//! - `http`: plain HTTP: the ACME HTTP-01 responder (answers come from PostgreSQL, so
//!   any edge answers for a challenge any worker published), `308` to HTTPS for
//!   registered hostnames, `404` otherwise.
//! - `tls` + `pages`: HTTPS with the certificate chosen by SNI, tenant files.
//! - `streams`: a connection's HTTP/2 streams run in the connection's own task.
//! - `listen`: connection caps, timeouts and accept back-off for every listener (the
//!   binary serves the API through it too).
//! - `directory`: the in-memory state both read; `sync` keeps it current from the
//!   change log.

pub mod access;
mod directory;
pub mod encoding;
mod http;
pub mod listen;
mod pages;
mod streams;
mod sync;
mod tls;

use std::future::Future;
use std::sync::Arc;

pub use directory::{Counters, Directory, EdgeConfig};
pub use http::http_router;

use landlord_store::Store;

/// Serve both listeners until the futures `shutdown()` makes resolve.
pub async fn run<F>(
    store: Store,
    config: EdgeConfig,
    http: tokio::net::TcpListener,
    https: tokio::net::TcpListener,
    shutdown: impl Fn() -> F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let dir = start(store, config, shutdown()).await?;
    let limits = std::sync::Arc::new(dir.config.limits.clone());
    let plain = listen::serve(http, "http", limits, http_router(dir.clone()), shutdown());
    let (a, b) = tokio::join!(plain, tls::serve_https(https, dir, shutdown()));
    a?;
    b?;
    Ok(())
}

/// Load the allowlist and start following the change log; returns once the follower
/// is live (or after [`READY_WAIT`] if the database keeps it from connecting: the edge
/// then serves from what it loaded and catches up when it can).
pub async fn start(
    store: Store,
    config: EdgeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Arc<Directory>> {
    let last = store.latest_change().await?;
    let dir = Directory::load(store, config).await?;
    let (ready, live) = tokio::sync::oneshot::channel();
    tokio::spawn(sync::follow(dir.clone(), last, ready, shutdown));
    if tokio::time::timeout(READY_WAIT, live).await.is_err() {
        tracing::warn!("the change-log follower is not live yet; serving from what was loaded");
    }
    // Known to the workers before it answers anyone: a CA fetch must not reach an edge the
    // workers did not wait for.
    let id = uuid::Uuid::new_v4();
    let _ = tokio::time::timeout(HEARTBEAT_EVERY * 2, beat(&dir, id)).await;
    tokio::spawn(heartbeats(dir.clone(), id));
    Ok(dir)
}

/// How often an edge reports itself.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Report this edge's position and freshness every [`HEARTBEAT_EVERY`] through the primary
/// (its own pool when it reads the primary), for as long as the directory lives. A failed
/// write is retried at the next beat: a region cut off from the primary keeps serving.
async fn heartbeats(dir: Arc<Directory>, id: uuid::Uuid) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        if Arc::strong_count(&dir) == 1 {
            return;
        }
        let written = tokio::time::timeout(HEARTBEAT_EVERY * 2, beat(&dir, id)).await;
        match (written, failing) {
            (Ok(Some(Ok(()))) | Ok(None), true) => {
                tracing::info!("heartbeats reach the primary again");
                failing = false;
            }
            (Ok(Some(Ok(()))) | Ok(None), false) => {}
            (_, false) => {
                tracing::warn!(
                    "cannot write this edge's heartbeat to the primary; serving on, retrying every second"
                );
                failing = true;
            }
            (_, true) => {}
        }
    }
}

/// Write one heartbeat (`None`: nothing to write through, or no catch-up yet). Before
/// the first catch-up it registers the edge as not synced at all.
async fn beat(dir: &Directory, id: uuid::Uuid) -> Option<landlord_store::Result<()>> {
    let writer = dir.writer()?;
    let (position, at, lag) = match dir.sync_state() {
        Some((position, point)) => (position, point.at, point.lag_seconds),
        None => (0, None, None),
    };
    let beat = landlord_store::fleet::Heartbeat {
        id,
        name: dir.config.name.clone(),
        region: dir.config.region.clone(),
        read_only: dir.config.read_only,
        position,
        synced_at: at,
        replay_lag_seconds: lag,
    };
    Some(writer.edge_heartbeat(&beat).await)
}

/// How long [`start`] waits for the change-log follower.
pub const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub use sync::Follower;
pub use tls::serve_https;
