//! Following the change log. NOTIFY says "something changed" at once; the `changes`
//! table says what, in order, and is read by sequence number, so a notification lost
//! while the listener reconnects (or never sent to a read replica) only delays an
//! update by one poll interval.
//!
//! Two subtleties. Sequence numbers are taken when a row is written, not when its
//! transaction commits, so a change can become visible *after* a higher-numbered one the
//! edge has already read: every poll also re-reads the last minute of the log and
//! applies what it has not seen. And the log is pruned: an edge whose position fell
//! below the pruned horizon (it was away longer than the retention) reloads everything.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use landlord_store::{CHANGES_CHANNEL, Change};

use crate::directory::Directory;

/// Poll interval when no notification arrives (changes take effect within this).
const POLL: Duration = Duration::from_secs(1);

pub async fn follow(
    dir: Arc<Directory>,
    last: i64,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut listener = None;
    let mut follower = Follower::new(last);
    loop {
        if listener.is_none() {
            listener = dir.store.listen(&[CHANGES_CHANNEL]).await.ok();
        }
        let wait = async {
            match listener.as_mut() {
                Some(l) => match tokio::time::timeout(POLL, l.recv()).await {
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "change notifications interrupted; polling");
                        true
                    }
                    _ => false,
                },
                None => {
                    tokio::time::sleep(POLL).await;
                    false
                }
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            failed = wait => if failed { listener = None; },
        }
        if let Err(e) = follower.catch_up(&dir).await {
            tracing::warn!(error = %e, "reading the change log failed; serving from memory");
        }
    }
}

/// How far back a late-committing change is looked for.
const LATE_WINDOW: Duration = Duration::from_secs(60);

/// An edge's position in the change log.
pub struct Follower {
    last: i64,
    /// Sequence numbers applied recently, with when they were applied, so the re-read of
    /// the last minute applies each change once.
    seen: HashMap<i64, Instant>,
}

impl Follower {
    pub fn new(last: i64) -> Self {
        Follower {
            last,
            seen: HashMap::new(),
        }
    }

    /// The highest sequence number applied.
    pub fn position(&self) -> i64 {
        self.last
    }

    /// Apply every change not applied yet.
    pub async fn catch_up(&mut self, dir: &Directory) -> anyhow::Result<()> {
        if dir.store.changes_pruned_through().await? > self.last {
            // Changes this edge never saw are gone: start over from a full load.
            let latest = dir.store.latest_change().await?;
            tracing::warn!(
                position = self.last,
                "the change log was pruned past this edge's position; reloading everything"
            );
            dir.reload_all().await?;
            self.last = latest;
            self.seen.clear();
        }
        loop {
            let changes = dir.store.changes_since(self.last, 1000).await?;
            for c in &changes {
                self.apply(dir, c).await?;
                self.last = self.last.max(c.seq);
            }
            if changes.len() < 1000 {
                break;
            }
        }
        for c in dir
            .store
            .recent_changes_up_to(self.last, LATE_WINDOW)
            .await?
        {
            self.apply(dir, &c).await?;
        }
        let horizon = Instant::now() - 2 * LATE_WINDOW;
        self.seen.retain(|_, at| *at > horizon);
        Ok(())
    }

    async fn apply(&mut self, dir: &Directory, c: &Change) -> anyhow::Result<()> {
        if self.seen.contains_key(&c.seq) {
            return Ok(());
        }
        match (c.entity.as_str(), &c.hostname, &c.path) {
            ("domain", Some(h), _) => dir.domain_changed(h).await?,
            ("certificate", Some(h), _) => dir.certificate_changed(h).await,
            ("file", _, Some(p)) => dir.file_changed(c.tenant_id, p).await,
            _ => {}
        }
        self.seen.insert(c.seq, Instant::now());
        Ok(())
    }
}
