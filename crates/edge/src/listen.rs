//! Listeners that stay up while some clients misbehave: every public socket of Landlord
//! (the edge's HTTP and HTTPS listeners, and the API's, which the binary serves through
//! [`serve`]) accepts through a [`Gate`] and drives each connection under a watchdog.
//!
//! - **Connection caps**: at most `max_connections` per listener and
//!   `max_connections_per_ip` per client, where a client is an IPv4 address (IPv4-mapped
//!   IPv6 counted as IPv4) or an IPv6 /64. A connection over either cap is closed at once,
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
//! can compute, waking at least once per `tick` while requests are in flight; what it
//! reads (bytes moved, requests open) is kept with relaxed atomics and one uncontended
//! per-connection lock per request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The bounds every listener enforces (settings in the README's configuration table).
#[derive(Debug, Clone)]
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

/// Who a connection counts against: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    V4(u32),
    V6(u64),
}

impl Client {
    pub fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4.into()),
                None => Client::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    MaxConnectionsPerIp,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxConnectionsPerIp => "max_connections_per_ip",
        }
    }
}

/// Counts the open connections of one listener, in all and per client.
pub struct Gate {
    name: &'static str,
    max: usize,
    max_per_client: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_client: HashMap<Client, usize>,
}

impl Gate {
    pub fn new(name: &'static str, limits: &Limits) -> Arc<Gate> {
        Arc::new(Gate {
            name,
            max: limits.max_connections.max(1),
            max_per_client: limits.max_connections_per_ip.max(1),
            open: Mutex::default(),
        })
    }

    /// Admit a connection from `ip`, or say which cap it would exceed.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let client = Client::of(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.max {
            return Err(Refusal::MaxConnections);
        }
        let mine = open.per_client.entry(client).or_insert(0);
        if *mine >= self.max_per_client {
            return Err(Refusal::MaxConnectionsPerIp);
        }
        *mine += 1;
        open.total += 1;
        drop(open);
        metrics::gauge!("landlord_connections_open", "listener" => self.name).increment(1.0);
        Ok(Permit {
            gate: self.clone(),
            client,
        })
    }

    /// Open connections now (for tests).
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

/// One admitted connection; dropping it frees its slot.
pub struct Permit {
    gate: Arc<Gate>,
    client: Client,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(n) = open.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.per_client.remove(&self.client);
            }
        }
        drop(open);
        metrics::gauge!("landlord_connections_open", "listener" => self.gate.name).decrement(1.0);
    }
}

/// A listener behind its gate, with back-off on resource exhaustion.
pub struct Acceptor {
    listener: TcpListener,
    gate: Arc<Gate>,
    backoff: Duration,
    last_logged: Option<Instant>,
    suppressed: u64,
}

const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Acceptor {
    pub fn new(listener: TcpListener, gate: Arc<Gate>) -> Acceptor {
        Acceptor {
            listener,
            gate,
            backoff: BACKOFF_MIN,
            last_logged: None,
            suppressed: 0,
        }
    }

    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// The next admitted connection. Connections over a cap are closed here; accept
    /// errors are counted, and exhausted resources make it wait before trying again.
    /// Cancel-safe.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr, Permit) {
        let name = self.gate.name;
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.backoff = BACKOFF_MIN;
                    match self.gate.admit(peer.ip()) {
                        Ok(permit) => {
                            metrics::counter!("landlord_connections_total", "listener" => name)
                                .increment(1);
                            return (stream, peer, permit);
                        }
                        Err(refusal) => {
                            metrics::counter!("landlord_connections_refused_total",
                                "listener" => name, "reason" => refusal.label())
                            .increment(1);
                            // Closed before reading anything: RST rather than a lingering FIN.
                            let _ = stream.set_zero_linger();
                            drop(stream);
                        }
                    }
                }
                Err(e) if exhausted(&e) => {
                    metrics::counter!("landlord_accept_errors_total",
                        "listener" => name, "error" => "resources")
                    .increment(1);
                    self.log_throttled(&e);
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
                Err(e) => {
                    // Per-connection failures (the peer reset before accept, ...).
                    metrics::counter!("landlord_accept_errors_total",
                        "listener" => name, "error" => "other")
                    .increment(1);
                    tracing::debug!(listener = name, error = %e, "accept failed");
                }
            }
        }
    }

    fn log_throttled(&mut self, e: &io::Error) {
        let now = Instant::now();
        if self.last_logged.is_some_and(|at| now - at < LOG_EVERY) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            listener = self.gate.name,
            error = %e,
            also_since_last_report = self.suppressed,
            "cannot accept connections (out of file descriptors or memory); backing off"
        );
        self.last_logged = Some(now);
        self.suppressed = 0;
    }
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: retrying at once would spin.
fn exhausted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}

/// What the watchdog knows about one connection.
pub struct Activity {
    http2: AtomicBool,
    /// Successful reads and writes with at least one byte.
    io: AtomicU64,
    reads: AtomicU64,
    requests: Mutex<Requests>,
}

struct Requests {
    /// Start (or last request's end) of the current idle period.
    idle_since: Instant,
    /// `reads` when that idle period began: more means a request head is arriving.
    reads_at_idle: u64,
    started: u64,
    open: Vec<OpenRequest>,
}

struct OpenRequest {
    id: u64,
    since: Instant,
    /// A stream (Server-Sent Events): no lifetime bound, only the stall rule.
    streaming: bool,
}

impl Activity {
    /// `http2`: whether the connection speaks HTTP/2 (its control frames then do not
    /// count as a request head arriving).
    pub fn new(http2: bool) -> Arc<Activity> {
        Arc::new(Activity {
            http2: AtomicBool::new(http2),
            io: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            requests: Mutex::new(Requests {
                idle_since: Instant::now(),
                reads_at_idle: 0,
                started: 0,
                open: Vec::new(),
            }),
        })
    }

    /// Known after the TLS handshake (ALPN).
    pub fn set_http2(&self, http2: bool) {
        self.http2.store(http2, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Requests> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin(self: &Arc<Self>) -> RequestGuard {
        let mut r = self.lock();
        r.started += 1;
        let id = r.started;
        r.open.push(OpenRequest {
            id,
            since: Instant::now(),
            streaming: false,
        });
        RequestGuard {
            activity: self.clone(),
            id,
        }
    }
}

/// A request in flight; dropped when its response body is done (or abandoned).
pub struct RequestGuard {
    activity: Arc<Activity>,
    id: u64,
}

impl RequestGuard {
    fn streaming(&self) {
        let mut r = self.activity.lock();
        if let Some(open) = r.open.iter_mut().find(|o| o.id == self.id) {
            open.streaming = true;
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let reads = self.activity.reads.load(Ordering::Relaxed);
        let mut r = self.activity.lock();
        if let Some(i) = r.open.iter().position(|o| o.id == self.id) {
            r.open.swap_remove(i);
        }
        if r.open.is_empty() {
            r.idle_since = Instant::now();
            r.reads_at_idle = reads;
        }
    }
}

/// Which timeout closed a connection (the `timeout` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    Header,
    Idle,
    Request,
    Stall,
}

impl Timeout {
    pub fn label(self) -> &'static str {
        match self {
            Timeout::Header => "header",
            Timeout::Idle => "idle",
            Timeout::Request => "request",
            Timeout::Stall => "stall",
        }
    }
}

/// Drive `connection` until it ends, or until a timeout closes it (by dropping it,
/// which closes the socket). Returns the timeout, if one fired.
pub async fn drive<C: Future>(
    connection: C,
    activity: &Activity,
    limits: &Limits,
    listener: &'static str,
) -> Option<Timeout> {
    tokio::select! {
        _ = connection => None,
        timeout = watchdog(activity, limits) => {
            metrics::counter!("landlord_connection_timeouts_total",
                "listener" => listener, "timeout" => timeout.label())
            .increment(1);
            Some(timeout)
        }
    }
}

async fn watchdog(a: &Activity, limits: &Limits) -> Timeout {
    let tick = limits.tick();
    let mut last_io = a.io.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    // When bytes of a new request head were first seen in the current idle period.
    let mut head_since: Option<(Instant, Instant)> = None;
    loop {
        let now = Instant::now();
        let io = a.io.load(Ordering::Relaxed);
        if io != last_io {
            last_io = io;
            last_progress = now;
        }
        let reads = a.reads.load(Ordering::Relaxed);
        let (fired, next) = {
            let r = a.lock();
            if r.open.is_empty() {
                if r.started == 0 {
                    deadline(
                        now,
                        r.idle_since + limits.header_read_timeout,
                        Timeout::Header,
                    )
                } else {
                    let idle = deadline(now, r.idle_since + limits.idle_timeout, Timeout::Idle);
                    if !a.http2.load(Ordering::Relaxed) && reads > r.reads_at_idle {
                        let first = match head_since {
                            Some((period, first)) if period == r.idle_since => first,
                            _ => {
                                head_since = Some((r.idle_since, now));
                                now
                            }
                        };
                        let head =
                            deadline(now, first + limits.header_read_timeout, Timeout::Header);
                        earliest(idle, head)
                    } else {
                        idle
                    }
                }
            } else {
                let oldest = r
                    .open
                    .iter()
                    .filter(|o| !o.streaming)
                    .map(|o| o.since)
                    .min();
                let stall = deadline(now, last_progress + limits.idle_timeout, Timeout::Stall);
                match oldest {
                    Some(since) => earliest(
                        stall,
                        deadline(now, since + limits.request_timeout, Timeout::Request),
                    ),
                    None => stall,
                }
            }
        };
        if let Some(timeout) = fired {
            return timeout;
        }
        // Deadlines that depend on progress are re-read at least every tick.
        tokio::time::sleep_until(next.min(now + tick)).await;
    }
}

/// `(Some(timeout), _)` when `at` has passed, else `(None, at)`.
fn deadline(now: Instant, at: Instant, timeout: Timeout) -> (Option<Timeout>, Instant) {
    if now >= at {
        (Some(timeout), at)
    } else {
        (None, at)
    }
}

fn earliest(
    a: (Option<Timeout>, Instant),
    b: (Option<Timeout>, Instant),
) -> (Option<Timeout>, Instant) {
    match (a.0, b.0) {
        (Some(_), _) => a,
        (_, Some(_)) => b,
        _ => (None, a.1.min(b.1)),
    }
}

/// A socket that counts the reads and writes that moved bytes (for the watchdog).
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    fn moved(&self) {
        self.activity.io.fetch_add(1, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.reads.fetch_add(1, Ordering::Relaxed);
            self.moved();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A hyper service whose requests the watchdog sees: each is open from the call until
/// its response body has been sent or dropped.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Watched<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<WatchedBody<B>>;
    type Error = S::Error;
    type Future = WatchedFuture<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let guard = self.activity.begin();
        WatchedFuture {
            inner: self.inner.call(request),
            guard: Some(guard),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct WatchedFuture<F> {
        #[pin]
        inner: F,
        guard: Option<RequestGuard>,
    }
}

impl<F, B, E> Future for WatchedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<WatchedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let guard = this.guard.take();
        if let Some(g) = &guard
            && response
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
        {
            g.streaming();
        }
        Poll::Ready(Ok(response.map(|body| WatchedBody {
            inner: body,
            _guard: guard,
        })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request open until it is done or dropped.
    pub struct WatchedBody<B> {
        #[pin]
        inner: B,
        _guard: Option<RequestGuard>,
    }
}

impl<B: Body> Body for WatchedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
/// `connection` in a task of its own for each admitted connection (holding its slot
/// until it returns); then close the listening socket (new connections are refused rather
/// than left in the backlog) and let the connections watched by `graceful` finish, for
/// at most 10 s.
pub async fn run<F, Fut>(
    listener: TcpListener,
    name: &'static str,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
    connection: F,
) -> io::Result<()>
where
    F: Fn(TcpStream, &hyper_util::server::graceful::GracefulShutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut acceptor = Acceptor::new(listener, Gate::new(name, limits));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            (stream, _, permit) = acceptor.accept() => {
                let _ = stream.set_nodelay(true);
                let task = connection(stream, &graceful);
                tokio::spawn(async move {
                    task.await;
                    drop(permit);
                });
            }
        }
    }
    drop(acceptor);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
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
        |stream, graceful| {
            let activity = Activity::new(false);
            let io = TokioIo::new(Tracked::new(stream, activity.clone()));
            let service = Watched::new(
                hyper_util::service::TowerToHyperService::new(service.clone()),
                activity.clone(),
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, service);
            let connection = graceful.watch(connection);
            let limits = limits.clone();
            async move {
                drive(connection, &activity, &limits, name).await;
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_ipv4_addresses_or_ipv6_64s() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            Client::of(ip("192.0.2.7")),
            Client::of(ip("::ffff:192.0.2.7"))
        );
        assert_ne!(Client::of(ip("192.0.2.7")), Client::of(ip("192.0.2.8")));
        assert_eq!(
            Client::of(ip("2001:db8:1:2::1")),
            Client::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Client::of(ip("2001:db8:1:2::1")),
            Client::of(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn the_gate_caps_each_client_and_the_listener() {
        let limits = Limits {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..Limits::default()
        };
        let gate = Gate::new("test", &limits);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let c: IpAddr = "10.0.0.3".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refusal::MaxConnectionsPerIp));
        let _b1 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(c).err(), Some(Refusal::MaxConnections));
        drop(a1);
        assert_eq!(gate.open(), 2);
        let _c1 = gate.admit(c).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refusal::MaxConnections));
    }

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(400),
            request_timeout: Duration::from_millis(600),
            ..Limits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_request_within_the_header_timeout_closes() {
        let a = Activity::new(false);
        let started = Instant::now();
        assert_eq!(watchdog(&a, &limits()).await, Timeout::Header);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_closes_after_the_idle_timeout() {
        let a = Activity::new(false);
        drop(a.begin());
        let started = Instant::now();
        assert_eq!(watchdog(&a, &limits()).await, Timeout::Idle);
        assert!(started.elapsed() >= Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_second_head_closes_after_the_header_timeout() {
        let a = Activity::new(false);
        drop(a.begin());
        a.reads.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        assert_eq!(watchdog(&a, &limits()).await, Timeout::Header);
        assert!(started.elapsed() < Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_never_finishes_is_bounded() {
        let a = Activity::new(false);
        let _open = a.begin();
        let keep_moving = async {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                a.io.fetch_add(1, Ordering::Relaxed);
            }
        };
        let started = Instant::now();
        let limits = limits();
        let fired = tokio::select! {
            t = watchdog(&a, &limits) => t,
            () = keep_moving => unreachable!(),
        };
        assert_eq!(fired, Timeout::Request);
        assert!(started.elapsed() >= Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_is_exempt_from_the_lifetime_but_not_from_stalling() {
        let a = Activity::new(false);
        let open = a.begin();
        open.streaming();
        let started = Instant::now();
        assert_eq!(watchdog(&a, &limits()).await, Timeout::Stall);
        assert!(started.elapsed() >= Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_control_frames_are_not_a_request_head() {
        let a = Activity::new(true);
        drop(a.begin());
        a.reads.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        assert_eq!(watchdog(&a, &limits()).await, Timeout::Idle);
        assert!(started.elapsed() >= Duration::from_millis(400));
    }
}
