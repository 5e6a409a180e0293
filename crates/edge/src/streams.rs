//! HTTP/2 streams run inside their connection's task.
//!
//! hyper hands every HTTP/2 stream to an executor; with `TokioExecutor` that is one
//! spawned task per request, and each finished stream wakes the connection task, which
//! the scheduler then runs next to write that one response. `StreamExecutor` instead
//! queues the stream, and `Driven` polls the connection and its streams in one task:
//! the streams that became ready together answer together, and the connection writes
//! their frames in one pass. A connection's requests thus stay on one core, as with
//! nginx's worker model; different connections still spread over the runtime.
//!
//! Streams are polled with the connection's waker, so whatever a stream waits for (a
//! file looked up in PostgreSQL, send window from the peer) wakes the connection, which
//! polls its pending streams again. hyper bounds the streams per connection
//! (`max_concurrent_streams`), and so the work per wake-up.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

type Stream = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The executor hyper spawns one connection's HTTP/2 streams on.
#[derive(Clone, Default)]
pub(crate) struct StreamExecutor {
    queue: Arc<Mutex<Vec<Stream>>>,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Box::pin(stream));
    }
}

/// Rounds of connection → streams → connection in one poll before yielding to the
/// other tasks on this thread (a busy connection must not starve the rest).
const ROUNDS_PER_POLL: usize = 16;

/// A connection future together with the streams it started on `executor`.
pub(crate) struct Driven<C> {
    connection: Pin<Box<C>>,
    executor: StreamExecutor,
    streams: Vec<Stream>,
}

impl<C: Future> Driven<C> {
    pub(crate) fn new(connection: C, executor: StreamExecutor) -> Self {
        Self {
            connection: Box::pin(connection),
            executor,
            streams: Vec::new(),
        }
    }
}

impl<C: Future> Future for Driven<C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = &mut *self;
        for _ in 0..ROUNDS_PER_POLL {
            // The connection reads requests (queueing their streams) and writes what the
            // streams answered. It ends only after its streams have (hyper's streams hold
            // references that keep an HTTP/2 connection open), so none is cut short here.
            if let Poll::Ready(out) = this.connection.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            let started = {
                let mut queue = this
                    .executor
                    .queue
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let started = queue.len();
                this.streams.append(&mut queue);
                started
            };
            let pending = this.streams.len();
            this.streams
                .retain_mut(|stream| stream.as_mut().poll(cx).is_pending());
            // Nothing new and nothing finished: every stream and the connection wait on
            // a waker of this task.
            if started == 0 && this.streams.len() == pending {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;

    /// A connection that starts five streams (the i-th is ready after i polls) and ends
    /// when all of them have: `Driven` runs them all and ends with the connection.
    #[tokio::test]
    async fn streams_run_with_their_connection_and_it_ends_after_them() {
        let executor = StreamExecutor::default();
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (spawner, counter) = (executor.clone(), done.clone());
        let mut started = false;
        let connection = std::future::poll_fn(move |cx| {
            if !started {
                started = true;
                for polls in 0..5 {
                    let counter = counter.clone();
                    spawner.execute(async move {
                        for _ in 0..polls {
                            tokio::task::yield_now().await;
                        }
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    });
                }
            }
            if counter.load(std::sync::atomic::Ordering::SeqCst) == 5 {
                Poll::Ready("closed")
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        });
        let out = Driven::new(connection, executor).await;
        assert_eq!(out, "closed");
        assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 5);
    }
}
