//! Listeners that stay up while some clients misbehave: every public socket of Landlord
//! (the edge's HTTP and HTTPS listeners, and the API's, which the binary serves through
//! [`serve`]) accepts through a [`Gate`] and drives each connection under a watchdog.
//!
//! - **Connection caps**: at most `max_connections` per listener and
//!   `max_connections_per_ip` per client, where a client is an IPv4 address (IPv4-mapped
//!   IPv6 counted as IPv4) or an IPv6 /64. A connection over either cap is reset at once,
//!   before any byte is read; other clients are still accepted.
//! - **Timeouts** (see [`Limits`]): the TLS handshake; the first request head, from
//!   accept (after the handshake for TLS); a later request head on a keep-alive HTTP/1
//!   connection, from its first byte; an idle keep-alive connection; a request in flight
//!   (its whole lifetime, so a slow reader cannot hold a response forever; streams such as
//!   Server-Sent Events are exempt and bounded by the stall rule instead); a request whose
//!   connection makes no progress at all (a reader that stopped reading). HTTP/2
//!   connections are pinged and closed when the peer stops answering.
//! - **Accept errors**: out of file descriptors (or kernel memory), the listener backs off
//!   (10 ms doubling to 1 s) instead of spinning, logs once per interval and counts it.
//!
//! Everything is counted in `/metrics` by listener: `landlord_connections_total`,
//! `landlord_connections_open`, `landlord_connections_refused_total{reason}`,
//! `landlord_connection_timeouts_total{timeout}`, `landlord_accept_errors_total{error}`.
//!
//! The watchdog runs in the connection's own task and sleeps until the next deadline it
//! can compute or one tick (a quarter of the shorter timeout, 50 ms to 1 s), whichever
//! comes first; what it reads (bytes moved, requests open) is kept with relaxed atomics
//! and one uncontended per-connection lock per request.

mod gate;
mod proxy;
mod watch;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

pub use gate::{Acceptor, Client, Gate, Permit, Refusal};
pub use proxy::{ProxyError, ProxyPolicy, read_header};
pub use watch::{
    Activity, RequestGuard, Timeout, Tracked, Watched, WatchedBody, WatchedFuture, drive,
};

/// The client of a request's connection (the peer, or behind a balancer the one its PROXY
/// header names), in the request's extensions on listeners served by [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The bounds every listener enforces (settings in the README's configuration table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A request head must arrive within this: from accept (after the TLS handshake) for
    /// the first request, from its first byte for a later one.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// A request (head to last byte of the response) may take this long at most.
    pub request_timeout: Duration,
    /// The TLS handshake, from accept.
    pub handshake_timeout: Duration,
    /// HTTP/2: ping the peer this often while the connection is open...
    pub h2_keepalive_interval: Duration,
    /// ...and close it when a ping is not answered within this.
    pub h2_keepalive_timeout: Duration,
    /// Open connections per listener.
    pub max_connections: usize,
    /// Open connections per client (IPv4 address or IPv6 /64) per listener.
    pub max_connections_per_ip: usize,
    /// PROXY protocol v2 required from these senders (the edge listeners behind a TCP load
    /// balancer); `None`: clients connect directly.
    pub proxy: Option<ProxyPolicy>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            h2_keepalive_interval: Duration::from_secs(30),
            h2_keepalive_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 256,
            proxy: None,
        }
    }
}

impl Limits {
    /// How often the watchdog looks at a busy connection.
    fn tick(&self) -> Duration {
        (self.header_read_timeout.min(self.idle_timeout) / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}
/// hyper's HTTP/2 settings for these limits (the HTTP/1 timeouts are the watchdog's).
pub fn http2_settings<E>(
    builder: &mut hyper_util::server::conn::auto::Builder<E>,
    limits: &Limits,
) {
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.h2_keepalive_interval)
        .keep_alive_timeout(limits.h2_keepalive_timeout)
        .max_concurrent_streams(128);
}

/// Accept on `listener` through its gate until `shutdown` resolves, running
/// `connection` in a task of its own for each admitted connection, with the client's
/// address (the peer's, or behind a balancer the one its PROXY header carries) and holding
/// its slot until it returns; then close the listening socket (new connections are refused
/// rather than left in the backlog) and let the connections watched by the watchers it was
/// given finish, for at most 10 s.
pub async fn run<F, Fut>(
    listener: TcpListener,
    name: &'static str,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
    connection: F,
) -> io::Result<()>
where
    F: Fn(TcpStream, SocketAddr, hyper_util::server::graceful::Watcher) -> Fut
        + Clone
        + Send
        + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut acceptor = Acceptor::new(listener, Gate::new(name, limits));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let header_timeout = limits.header_read_timeout;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            (mut stream, peer, mut permit) = acceptor.accept() => {
                let _ = stream.set_nodelay(true);
                let proxied = acceptor.gate().proxy().is_some();
                let (connection, watcher) = (connection.clone(), graceful.watcher());
                tokio::spawn(async move {
                    // IPv4 clients of a dual-stack socket as IPv4 (not ::ffff:a.b.c.d).
                    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                    let client = match proxied {
                        false => peer,
                        true => match proxied_client(&mut stream, peer, &mut permit, header_timeout).await {
                            Ok(client) => client,
                            Err(refusal) => {
                                refusal.count(name);
                                let _ = stream.set_zero_linger();
                                return;
                            }
                        },
                    };
                    connection(stream, client, watcher).await;
                    drop(permit);
                });
            }
        }
    }
    drop(acceptor);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}

/// The client behind a PROXY header (the peer itself for the balancer's own connections),
/// counted against its cap.
async fn proxied_client(
    stream: &mut TcpStream,
    peer: SocketAddr,
    permit: &mut Permit,
    within: Duration,
) -> Result<SocketAddr, Refusal> {
    let client = match tokio::time::timeout(within, read_header(stream)).await {
        Ok(Ok(client)) => client
            .map(|c| SocketAddr::new(c.ip().to_canonical(), c.port()))
            .unwrap_or(peer),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection refused: no valid PROXY header");
            return Err(Refusal::ProxyHeader);
        }
        Err(_) => return Err(Refusal::ProxyHeader),
    };
    permit.claim(client.ip())?;
    Ok(client)
}

/// Serve a plain-HTTP (HTTP/1.1) listener with these limits until `shutdown` resolves
/// (see [`run`]). For the API, the edge's plain-HTTP listener and `/metrics`.
pub async fn serve<S, B>(
    listener: TcpListener,
    name: &'static str,
    limits: Arc<Limits>,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    run(
        listener,
        name,
        &limits.clone(),
        shutdown,
        move |stream, client, watcher| {
            let activity = Activity::new(false);
            let io = TokioIo::new(Tracked::new(stream, activity.clone()));
            let inner = service.clone();
            let with_client = tower::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ClientAddr(client));
                tower::ServiceExt::oneshot(inner.clone(), request)
            });
            let service = Watched::new(
                hyper_util::service::TowerToHyperService::new(with_client),
                activity.clone(),
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, service);
            let connection = watcher.watch(connection);
            let limits = limits.clone();
            async move {
                drive(connection, &activity, &limits, name).await;
            }
        },
    )
    .await
}
