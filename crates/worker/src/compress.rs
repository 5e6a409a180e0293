//! Pages compressed once: when a file is stored, a worker computes its Brotli, gzip and
//! zstd bodies at a high level (paid once, not per request) and stores them beside it;
//! edges pick one by `Accept-Encoding` and never compress on the request path.
//!
//! Jobs are the stored bodies (blobs) of compressible files whose variants are not
//! computed yet; each is claimed (a stale claim of a crashed worker is taken over) and
//! computed on the blocking pool. At most `concurrency` bodies are compressed at once per
//! worker, so the CPU spent is bounded.
//!
//! A deploy asked to go live waits for its variants: storing the last one makes it live
//! (in the same transaction), and one that has waited `compress_wait` goes live with what
//! exists, so a stuck or absent compressor delays a deploy, never loses it.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use landlord_store::{COMPRESS_CHANNEL, MIN_COMPRESS_BYTES, Store, Uncompressed, Variants};

/// Up to this size the best levels are used; above it, faster ones (Brotli 11 runs at
/// about 1 MB/s).
pub const BEST_LEVELS_UP_TO: usize = 1 << 20;
/// A claim older than this is taken over.
const STALE_CLAIM: Duration = Duration::from_secs(120);
/// Poll for jobs this often when no notification arrives.
const POLL: Duration = Duration::from_secs(30);
/// Look for deploys that waited long enough this often.
const OVERDUE_TICK: Duration = Duration::from_secs(1);

/// The variants worth keeping for `body` (stored with a compressible type: see
/// [`landlord_store::compressible`]): each encoding only when it is smaller than the
/// identity body. Nothing for small bodies.
pub fn variants(body: &[u8]) -> Variants {
    if body.len() < MIN_COMPRESS_BYTES {
        return Variants::default();
    }
    let best = body.len() <= BEST_LEVELS_UP_TO;
    let smaller = |v: Vec<u8>| (v.len() < body.len()).then_some(v);
    Variants {
        br: brotli(body, if best { 11 } else { 7 }).and_then(smaller),
        gzip: gzip(body, if best { 9 } else { 6 }).and_then(smaller),
        zstd: zstd::bulk::compress(body, if best { 19 } else { 9 })
            .ok()
            .and_then(smaller),
    }
}

fn brotli(body: &[u8], quality: u32) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() / 3);
    let params = brotli::enc::BrotliEncoderParams {
        quality: quality as i32,
        lgwin: 22,
        size_hint: body.len(),
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &body[..], &mut out, &params).ok()?;
    Some(out)
}

fn gzip(body: &[u8], level: u32) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 3),
        flate2::Compression::new(level),
    );
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

/// Compress stored files until the process stops: `concurrency` at a time.
pub async fn run(store: Store, concurrency: usize, compress_wait: Duration) {
    let wake = Arc::new(tokio::sync::Notify::new());
    let listen = tokio::spawn(listen(store.clone(), wake.clone()));
    let overdue = tokio::spawn(activate_overdue(store.clone(), compress_wait));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        tasks.spawn(compress_jobs(store.clone(), wake.clone()));
    }
    while tasks.join_next().await.is_some() {}
    listen.abort();
    overdue.abort();
}

/// Make live the deploys that waited `compress_wait` for their variants.
async fn activate_overdue(store: Store, compress_wait: Duration) {
    let mut tick = tokio::time::interval(OVERDUE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.activate_ready(Some(compress_wait)).await {
            Ok(sites) if !sites.is_empty() => {
                tracing::info!(
                    ?sites,
                    "deploys went live before all their variants were computed"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "compression: activating waiting deploys failed"),
        }
    }
}

/// Wake every compressing task when a file is stored.
async fn listen(store: Store, wake: Arc<tokio::sync::Notify>) {
    loop {
        match store.listen(&[COMPRESS_CHANNEL]).await {
            Ok(mut listener) => {
                while listener.recv().await.is_ok() {
                    wake.notify_waiters();
                }
            }
            Err(e) => tracing::warn!(error = %e, "compression: cannot listen; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn compress_jobs(store: Store, wake: Arc<tokio::sync::Notify>) {
    loop {
        // Registered before the claim, so a file stored meanwhile is not missed.
        let woken = wake.notified();
        match store.claim_uncompressed(STALE_CLAIM).await {
            Ok(Some(file)) => {
                compress_one(&store, file).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "compression: claiming a file failed"),
        }
        let _ = tokio::time::timeout(POLL, woken).await;
    }
}

async fn compress_one(store: &Store, file: Uncompressed) {
    let started = std::time::Instant::now();
    let body = file.body.clone();
    let computed = tokio::task::spawn_blocking(move || variants(&body)).await;
    let sha256 = hex::encode(&file.sha256);
    // A body the compressors choke on is served as it is, not retried forever.
    let computed = computed.unwrap_or_else(|_| {
        tracing::error!(%sha256, "compression panicked; the body keeps no variants");
        Variants::default()
    });
    metrics::histogram!("landlord_compression_seconds").record(started.elapsed().as_secs_f64());
    match store.store_variants(&file, &computed).await {
        Ok(true) => tracing::debug!(
            %sha256,
            bytes = file.body.len(),
            br = computed.br.as_ref().map(Vec::len),
            seconds = started.elapsed().as_secs_f64(),
            "variants stored"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, %sha256, "storing variants failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn page() -> Vec<u8> {
        let mut html = String::from("<!doctype html><title>Status</title><ul>");
        for i in 0..400 {
            html.push_str(&format!("<li class=\"ok\">Service {i}: operational</li>\n"));
        }
        html.into_bytes()
    }

    #[test]
    fn every_variant_decodes_to_the_identity_body() {
        let body = page();
        let v = variants(&body);
        let (br, gz, zs) = (v.br.unwrap(), v.gzip.unwrap(), v.zstd.unwrap());
        assert!(br.len() < body.len() / 4 && gz.len() < body.len() / 4);
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut out).unwrap();
        assert_eq!(out, body);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
        assert_eq!(zstd::decode_all(&zs[..]).unwrap(), body);
    }

    #[test]
    fn small_and_random_bodies_get_none() {
        assert_eq!(variants(b"<p>hi</p>"), Variants::default());
        let noise: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
        // Random bytes do not shrink: no variant is kept larger than the body.
        assert_eq!(variants(&noise), Variants::default());
    }
}
