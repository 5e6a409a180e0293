//! Following the change log. NOTIFY says "something changed" at once; the `changes`
//! table says what, in order, and is read by sequence number, so a notification lost
//! while the listener reconnects (or never sent to a read replica) only delays an
//! update by one poll interval.

use std::sync::Arc;
use std::time::Duration;

use landlord_store::CHANGES_CHANNEL;

use crate::directory::Directory;

/// Poll interval when no notification arrives (changes take effect within this).
const POLL: Duration = Duration::from_secs(1);

pub async fn follow(
    dir: Arc<Directory>,
    mut last: i64,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut listener = None;
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
        match apply(&dir, last).await {
            Ok(seq) => last = seq,
            Err(e) => {
                tracing::warn!(error = %e, "reading the change log failed; serving from memory")
            }
        }
    }
}

/// Apply every change after `last`; returns the new high-water mark.
async fn apply(dir: &Directory, mut last: i64) -> anyhow::Result<i64> {
    loop {
        let changes = dir.store.changes_since(last, 1000).await?;
        if changes.is_empty() {
            return Ok(last);
        }
        for c in &changes {
            match (c.entity.as_str(), &c.hostname, &c.path) {
                ("domain", Some(h), _) => dir.domain_changed(h).await?,
                ("certificate", Some(h), _) => dir.certificate_changed(h).await,
                ("file", _, Some(p)) => dir.file_changed(c.tenant_id, p).await,
                _ => {}
            }
            last = c.seq;
        }
    }
}
