//! The per-connection watchdog: what it watches (bytes moved, requests open) and the
//! rules that close a connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::Limits;

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
