//! Holding a claim's lease through a long exchange with the CA.
//!
//! A claim's lease lasts `lease` from the claim. An ACME order may take longer (the CA
//! validates, then signs), so while one runs the lease is renewed every third of the
//! lease, but only while the CA keeps answering: a CA that stops answering for half a
//! lease ends the round (transient; the domain is retried), so no domain holds a
//! worker slot forever. A renewal that finds the lease gone (taken over after this
//! worker stalled) ends the round at once: the new holder owns the domain now.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use landlord_store::{DomainId, Store};

use crate::IssueError;

/// When the CA last answered.
#[derive(Debug)]
pub struct Progress(Mutex<Instant>);

impl Progress {
    pub fn new() -> Self {
        Self(Mutex::new(Instant::now()))
    }

    /// The CA answered: the exchange is alive.
    pub fn mark(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
    }

    fn since(&self) -> Duration {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .elapsed()
    }
}

/// How long an exchange may wait between two requests to the CA under `lease` without
/// looking stalled: a third of the stall threshold, at most 5 s.
pub fn max_poll_interval(lease: Duration) -> Duration {
    (lease / 6).min(Duration::from_secs(5))
}

/// Run `work` while renewing the claim's lease as long as `progress` shows the CA
/// answering; see the module documentation.
pub async fn hold<T>(
    store: &Store,
    domain: DomainId,
    lease: &str,
    duration: Duration,
    progress: &Progress,
    work: impl Future<Output = Result<T, IssueError>>,
) -> Result<T, IssueError> {
    let every = duration / 3;
    let stalled_after = duration / 2;
    tokio::pin!(work);
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = tick.tick() => {
                match store.renew_lease(domain, lease, duration).await {
                    Ok(true) => {}
                    Ok(false) => return Err(IssueError::LeaseLost),
                    // The next fenced write decides; the lease may still be ours.
                    Err(e) => tracing::warn!(error = %e, "renewing the lease failed"),
                }
                if progress.since() > stalled_after {
                    tracing::warn!(silent = ?progress.since(), "the CA stopped answering; ending this round");
                    return Err(IssueError::Transient(
                        "The certificate authority stopped answering; Landlord retries automatically.".into(),
                    ));
                }
            }
        }
    }
}
