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
    Ok(dir)
}

/// How long [`start`] waits for the change-log follower.
pub const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub use sync::Follower;
pub use tls::serve_https;
