//! The HTTPS listener: accept → read the ClientHello → pick the certificate by SNI →
//! handshake → serve HTTP/1.1 or HTTP/2.
//!
//! The certificate is chosen before the handshake continues (`LazyConfigAcceptor`), so
//! a cache miss awaits PostgreSQL without blocking a runtime thread, and an unknown or
//! missing name is answered with the `unrecognized_name` alert (RFC 6066) instead of
//! any default certificate.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;

use landlord_store::Hostname;

use crate::directory::Directory;
use crate::pages;
use crate::streams::{Driven, StreamExecutor};

/// TLS alert record: handshake failure of kind unrecognized_name (112), fatal (2).
const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 112];
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve_https(
    listener: tokio::net::TcpListener,
    dir: Arc<Directory>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let dir = dir.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Some((tls, host, tenant)) = handshake(stream, &dir).await else { return };
                    let service = pages::service(dir, host, tenant);
                    // HTTP/2 streams run in this connection's task (see `streams`).
                    let executor = StreamExecutor::default();
                    let conn = auto::Builder::new(executor.clone())
                        .serve_connection(TokioIo::new(tls), service)
                        .into_owned();
                    let _ = Driven::new(watcher.watch(conn), executor).await;
                });
            }
        }
    }
    // Stop accepting (close the listening socket, so new connections are refused rather
    // than left in the backlog), then let in-flight requests finish (bounded).
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}

async fn handshake(
    stream: TcpStream,
    dir: &Directory,
) -> Option<(
    tokio_rustls::server::TlsStream<TcpStream>,
    Hostname,
    uuid::Uuid,
)> {
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let mut start = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor)
        .await
        .ok()?
        .ok()?;
    let sni = start
        .client_hello()
        .server_name()
        .and_then(|n| Hostname::parse(n).ok());
    let entry = match &sni {
        Some(host) => dir.certificate(host.as_str()).await,
        None => None,
    };
    let (Some(host), Some(entry)) = (sni, entry) else {
        metrics::counter!("landlord_edge_handshakes_total", "outcome" => "unrecognized_name")
            .increment(1);
        let _ = start.io.write_all(&UNRECOGNIZED_NAME_ALERT).await;
        let _ = start.io.shutdown().await;
        return None;
    };
    let tls =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, start.into_stream(entry.config.clone())).await;
    let outcome = match &tls {
        Ok(Ok(_)) => "ok",
        Ok(Err(_)) => "failed",
        Err(_) => "timeout",
    };
    metrics::counter!("landlord_edge_handshakes_total", "outcome" => outcome).increment(1);
    Some((tls.ok()?.ok()?, host, entry.tenant))
}
