//! Following the change log. NOTIFY says "something changed" at once; the `changes`
//! table says what, in order, and is read by sequence number, so a notification lost
//! while the listener reconnects (or never sent to a read replica) only delays an
//! update by one poll interval.
//!
//! Two subtleties. Sequence numbers are taken when a row is written, not when its
//! transaction commits, so a change can become visible *after* a higher-numbered one the
//! edge has already read: the follower remembers the numbers it skipped over and looks
//! for them again (in the same query) for a minute; in its first minute, before it knows
//! which numbers were skipped, it re-reads the whole last minute of the log. And the log
//! is pruned: an edge whose position fell below the pruned horizon (it was away longer
//! than the retention) reloads everything.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use landlord_store::{CHANGES_CHANNEL, Change, Changed};

use crate::directory::Directory;

/// How often `landlord_edge_cache_bytes` is refreshed.
const GAUGES_EVERY: Duration = Duration::from_secs(5);

/// Follow the change log until `shutdown`. `ready` is told once the first catch-up
/// after the LISTEN connection is up is done: from then on every change reaches this edge
/// within a notification (or at worst one poll).
pub async fn follow(
    dir: Arc<Directory>,
    last: i64,
    ready: tokio::sync::oneshot::Sender<()>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let poll = dir.config.poll_interval;
    let mut listener = None;
    let mut follower = Follower::new(last);
    let mut gauges_at = Instant::now() - GAUGES_EVERY;
    let mut ready = Some(ready);
    loop {
        // After (re)connecting, catch up at once: notifications sent before the LISTEN
        // took effect are lost, and waiting a poll for them would leave this edge behind
        // (e.g. a challenge published while it started).
        // A hot standby relays no notifications: polling alone.
        if listener.is_none() && !dir.config.read_only {
            listener = dir.store.listen(&[CHANGES_CHANNEL]).await.ok();
        }
        match follower.synced(&dir).await {
            Ok(()) => {
                if (listener.is_some() || dir.config.read_only)
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the change log failed; serving from memory")
            }
        }
        metrics::gauge!("landlord_edge_change_position").set(follower.position() as f64);
        // Measuring the caches walks their pending maintenance: not on every poll.
        if gauges_at.elapsed() >= GAUGES_EVERY {
            dir.cache_bytes().await;
            gauges_at = Instant::now();
        }
        let wait = async {
            match listener.as_mut() {
                Some(l) => match tokio::time::timeout(poll, l.recv()).await {
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "change notifications interrupted; polling");
                        true
                    }
                    _ => false,
                },
                None => {
                    tokio::time::sleep(poll).await;
                    false
                }
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            failed = wait => if failed { listener = None; },
        }
    }
}

/// How long a skipped sequence number is looked for (a change whose transaction took
/// its number before a later one's but commits after it).
const LATE_WINDOW: Duration = Duration::from_secs(60);
/// Changes read per query while catching up.
const BATCH: i64 = 1000;
/// Skipped ranges remembered at most (the oldest are forgotten first).
const MAX_GAPS: usize = 1000;

/// An edge's position in the change log.
pub struct Follower {
    last: i64,
    /// Sequence numbers applied recently, with when they were applied, so a change read
    /// twice (a gap re-read, the start-up window) is applied once.
    seen: HashMap<i64, Instant>,
    /// Ranges of sequence numbers skipped over, looked for again until `LATE_WINDOW`
    /// has passed. Rolled-back transactions leave gaps too; those are simply never filled.
    gaps: VecDeque<Gap>,
    /// Until then every poll re-reads the whole recent window: a follower that just
    /// started (or reloaded) cannot know which numbers below its position were skipped.
    whole_window_until: Instant,
}

struct Gap {
    first: i64,
    last: i64,
    noticed: Instant,
}

impl Follower {
    pub fn new(last: i64) -> Self {
        Follower {
            last,
            seen: HashMap::new(),
            gaps: VecDeque::new(),
            whole_window_until: Instant::now() + LATE_WINDOW,
        }
    }

    /// As if the start-up minute had passed: late changes are then found only through
    /// the gaps this follower saw itself (for tests of that path).
    #[doc(hidden)]
    pub fn past_start_up(mut self) -> Self {
        self.whole_window_until = Instant::now();
        self
    }

    /// The highest sequence number applied.
    pub fn position(&self) -> i64 {
        self.last
    }

    /// Catch up, and record how fresh this edge is for its heartbeat: the data source's
    /// clock read *before* the catch-up, so everything committed before it is applied
    /// when this returns. A source whose log is behind this edge's position (a standby
    /// promoted after losing the primary's last changes, or another database) has another
    /// history: everything is reloaded from it.
    pub async fn synced(&mut self, dir: &Directory) -> anyhow::Result<()> {
        let point = dir.store.sync_point().await?;
        if point.latest < self.last {
            tracing::warn!(
                position = self.last,
                latest = point.latest,
                "the change log is behind this edge's position (a failover to a replica that lost changes?); reloading everything"
            );
            dir.reload_all().await?;
            *self = Follower::new(point.latest);
        }
        self.catch_up(dir).await?;
        if let Some(lag) = point.lag_seconds {
            metrics::gauge!("landlord_edge_replay_lag_seconds").set(lag);
        }
        dir.synced(self.last, point);
        Ok(())
    }

    /// Apply every change not applied yet: one query per poll when nothing is pending.
    pub async fn catch_up(&mut self, dir: &Directory) -> anyhow::Result<()> {
        let now = Instant::now();
        self.gaps
            .retain(|g| now.duration_since(g.noticed) < LATE_WINDOW);
        let mut window = (now < self.whole_window_until).then_some(LATE_WINDOW);
        loop {
            let gaps: Vec<(i64, i64)> = self.gaps.iter().map(|g| (g.first, g.last)).collect();
            let poll = dir
                .store
                .poll_changes(self.last, BATCH, &gaps, window.take())
                .await?;
            if poll.pruned_through > self.last {
                // Changes this edge never saw are gone: start over from a full load.
                let latest = dir.store.latest_change().await?;
                tracing::warn!(
                    position = self.last,
                    "the change log was pruned past this edge's position; reloading everything"
                );
                dir.reload_all().await?;
                *self = Follower::new(latest);
                continue;
            }
            for c in &poll.changes {
                if c.seq > self.last + 1 {
                    self.gaps.push_back(Gap {
                        first: self.last + 1,
                        last: c.seq - 1,
                        noticed: now,
                    });
                    if self.gaps.len() > MAX_GAPS {
                        self.gaps.pop_front();
                    }
                }
                self.apply(dir, c).await?;
                self.last = self.last.max(c.seq);
            }
            if !poll.more {
                break;
            }
        }
        let horizon = now - 2 * LATE_WINDOW;
        self.seen.retain(|_, at| *at > horizon);
        Ok(())
    }

    async fn apply(&mut self, dir: &Directory, c: &Change) -> anyhow::Result<()> {
        if self.seen.contains_key(&c.seq) {
            return Ok(());
        }
        match &c.what {
            Changed::Domain(h) => dir.domain_changed(h).await?,
            Changed::Certificate(h) => dir.certificate_changed(h).await,
            Changed::Challenge(h) => dir.challenges_changed(h).await?,
            Changed::Site(site) => dir.site_changed(*site).await?,
            Changed::Blob { sha256, .. } => dir.blob_changed(sha256),
            Changed::Unknown => {}
        }
        self.seen.insert(c.seq, Instant::now());
        Ok(())
    }
}
