//! The HTTPS listener: accept → read the ClientHello → pick the certificate by SNI →
//! handshake → serve HTTP/1.1 or HTTP/2.
//!
//! The certificate is chosen before the handshake continues (`LazyConfigAcceptor`), so
//! a cache miss awaits PostgreSQL without blocking a runtime thread, and an unknown or
//! missing name is answered with the `unrecognized_name` alert (RFC 6066) instead of
//! any default certificate.

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;

use landlord_store::Hostname;

use crate::directory::Directory;
use crate::listen::{self, Activity, Limits, Tracked, Watched};
use crate::pages;
use crate::streams::{Driven, StreamExecutor};

/// TLS alert record: handshake failure of kind unrecognized_name (112), fatal (2).
const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 112];

type Socket = Tracked<TcpStream>;

/// Serve HTTPS until `shutdown` resolves, then let in-flight requests finish (at most
/// 10 s). Connections are admitted and watched as `listen` describes, with the limits
/// in the directory's configuration.
pub async fn serve_https(
    listener: tokio::net::TcpListener,
    dir: Arc<Directory>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = Arc::new(dir.config.limits.clone());
    listen::run(
        listener,
        "https",
        &limits.clone(),
        shutdown,
        move |stream, client, watcher| {
            let (dir, limits) = (dir.clone(), limits.clone());
            async move {
                let Some((tls, host, tenant, activity)) = handshake(stream, &dir, &limits).await
                else {
                    return;
                };
                let peer = crate::access::Peer {
                    client,
                    tls: match tls.get_ref().1.protocol_version() {
                        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                        _ => "TLS",
                    },
                    counters: dir.access.counters(tenant),
                };
                let service =
                    Watched::new(pages::service(dir, host, tenant, peer), activity.clone());
                // HTTP/2 streams run in this connection's task (see `streams`).
                let executor = StreamExecutor::default();
                let mut builder = auto::Builder::new(executor.clone());
                listen::http2_settings(&mut builder, &limits);
                let conn = builder
                    .serve_connection(TokioIo::new(tls), service)
                    .into_owned();
                let conn = Driven::new(watcher.watch(conn), executor);
                listen::drive(conn, &activity, &limits, "https").await;
            }
        },
    )
    .await
}

async fn handshake(
    stream: TcpStream,
    dir: &Directory,
    limits: &Limits,
) -> Option<(
    tokio_rustls::server::TlsStream<Socket>,
    Hostname,
    landlord_store::TenantId,
    Arc<Activity>,
)> {
    // The handshake's bound covers the ClientHello, the certificate lookup and the rest
    // of the handshake together.
    let deadline = tokio::time::Instant::now() + limits.handshake_timeout;
    let activity = Activity::new(false);
    let acceptor = LazyConfigAcceptor::new(
        rustls::server::Acceptor::default(),
        Tracked::new(stream, activity.clone()),
    );
    let Ok(start) = tokio::time::timeout_at(deadline, acceptor).await else {
        handshake_outcome("timeout");
        return None;
    };
    let mut start = start.ok()?;
    let sni = start
        .client_hello()
        .server_name()
        .and_then(|n| Hostname::parse(n).ok());
    let entry = match &sni {
        Some(host) => {
            dir.visited(host);
            dir.certificate(host).await
        }
        None => None,
    };
    let (Some(host), Some(entry)) = (sni, entry) else {
        handshake_outcome("unrecognized_name");
        let _ = start.io.write_all(&UNRECOGNIZED_NAME_ALERT).await;
        let _ = start.io.shutdown().await;
        return None;
    };
    let tls = tokio::time::timeout_at(deadline, start.into_stream(entry.config.clone())).await;
    let outcome = match &tls {
        Ok(Ok(_)) => "ok",
        Ok(Err(_)) => "failed",
        Err(_) => "timeout",
    };
    handshake_outcome(outcome);
    let tls = tls.ok()?.ok()?;
    // HTTP/2 or not is known now (ALPN).
    activity.set_http2(tls.get_ref().1.alpn_protocol() == Some(b"h2"));
    Some((tls, host, entry.tenant, activity))
}

fn handshake_outcome(outcome: &'static str) {
    metrics::counter!("landlord_edge_handshakes_total", "outcome" => outcome).increment(1);
    if outcome == "timeout" {
        metrics::counter!("landlord_connection_timeouts_total",
            "listener" => "https", "timeout" => "handshake")
        .increment(1);
    }
}
