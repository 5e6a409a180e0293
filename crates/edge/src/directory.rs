//! What an edge knows, in memory: every registered hostname (the allowlist), the
//! certificates of the names it was asked for, and tenant files.
//!
//! A handshake for a cached name touches no database. A name that is not registered
//! is refused from memory, so a flood of random SNI names costs no query. A registered
//! name without a certificate is remembered briefly (negative cache). The certificate
//! cache is bounded by entries and the file cache by bytes; both are invalidated by the
//! change log (see `sync`), never by time, so they keep serving while PostgreSQL is away.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use moka::future::Cache;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use uuid::Uuid;

use landlord_store::{FilePath, MasterKey, Store, TenantId, certificate_key_context};

#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub master_key: MasterKey,
    /// Certificates kept in memory at most.
    pub cert_cache_entries: u64,
    /// Bytes of file content kept in memory at most.
    pub file_cache_bytes: u64,
    /// How long "registered but no certificate yet" is remembered.
    pub negative_ttl: Duration,
    /// `Strict-Transport-Security` value; `None` sends none.
    pub hsts: Option<String>,
    /// The HTTPS port redirects point to (omitted from the URL when 443).
    pub https_port: u16,
}

impl EdgeConfig {
    pub fn new(master_key: MasterKey) -> Self {
        Self {
            master_key,
            cert_cache_entries: 10_000,
            file_cache_bytes: 64 * 1024 * 1024,
            negative_ttl: Duration::from_secs(5),
            hsts: Some("max-age=31536000".into()),
            https_port: 443,
        }
    }
}

/// A certificate ready for handshakes.
pub struct CertEntry {
    pub tenant: Uuid,
    pub config: Arc<ServerConfig>,
    /// Past this moment the certificate is never presented again (a handshake with an
    /// expired certificate helps nobody; an unrecognized_name alert is honest).
    pub not_after: std::time::SystemTime,
}

/// A file ready to serve.
pub struct FileEntry {
    /// The strong ETag, quoted (compared with `If-None-Match`).
    pub etag: String,
    pub body: axum::body::Bytes,
    /// The headers, built once when the file is loaded rather than per request.
    pub etag_header: axum::http::HeaderValue,
    pub content_type_header: Option<axum::http::HeaderValue>,
}

/// Counters read by tests, benchmarks and (later) `/metrics`.
#[derive(Default, Debug)]
pub struct Counters {
    pub cert_hits: AtomicU64,
    pub cert_misses: AtomicU64,
    pub negative_hits: AtomicU64,
    pub unknown_names: AtomicU64,
    pub db_lookups: AtomicU64,
}

pub struct Directory {
    pub(crate) store: Store,
    pub(crate) config: EdgeConfig,
    names: RwLock<HashMap<String, Uuid>>,
    certs: Cache<String, Arc<CertEntry>>,
    misses: Cache<String, ()>,
    files: Cache<(Uuid, String), Option<Arc<FileEntry>>>,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    pub counters: Counters,
}

impl Directory {
    /// Load the allowlist; certificates and files are loaded on demand.
    pub async fn load(store: Store, config: EdgeConfig) -> anyhow::Result<Arc<Self>> {
        let names = store.all_hostnames().await?.into_iter().collect();
        let files = Cache::builder()
            .max_capacity(config.file_cache_bytes)
            .weigher(|_, v: &Option<Arc<FileEntry>>| {
                v.as_ref().map_or(64, |f| {
                    u32::try_from(f.body.len() + 256).unwrap_or(u32::MAX)
                })
            })
            .build();
        Ok(Arc::new(Self {
            certs: Cache::new(config.cert_cache_entries),
            misses: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(config.negative_ttl)
                .build(),
            files,
            names: RwLock::new(names),
            ticketer: rustls::crypto::aws_lc_rs::Ticketer::new()?,
            store,
            config,
            counters: Counters::default(),
        }))
    }

    /// Sizes of the in-memory structures: (registered names, cached certificates,
    /// remembered misses). For tests and metrics.
    pub async fn sizes(&self) -> (usize, u64, u64) {
        self.certs.run_pending_tasks().await;
        self.misses.run_pending_tasks().await;
        let names = self.names.read().expect("names lock").len();
        (names, self.certs.entry_count(), self.misses.entry_count())
    }

    /// The tenant owning a registered hostname.
    pub fn tenant_of(&self, hostname: &str) -> Option<Uuid> {
        self.names
            .read()
            .expect("names lock")
            .get(hostname)
            .copied()
    }

    /// The certificate for an SNI name: memory first; one (shared) database lookup for
    /// a registered name not in memory; `None` for anything else.
    pub async fn certificate(&self, hostname: &str) -> Option<Arc<CertEntry>> {
        let started = std::time::Instant::now();
        let (result, entry) = self.lookup(hostname).await;
        metrics::counter!("landlord_edge_sni_lookups_total", "result" => result).increment(1);
        metrics::histogram!("landlord_edge_sni_lookup_seconds", "result" => result)
            .record(started.elapsed().as_secs_f64());
        entry
    }

    async fn lookup(&self, hostname: &str) -> (&'static str, Option<Arc<CertEntry>>) {
        if self.tenant_of(hostname).is_none() {
            self.counters.unknown_names.fetch_add(1, Ordering::Relaxed);
            return ("unknown", None);
        }
        if let Some(entry) = self.certs.get(hostname).await {
            if entry.not_after > std::time::SystemTime::now() {
                self.counters.cert_hits.fetch_add(1, Ordering::Relaxed);
                return ("hit", Some(entry));
            }
            // Expired in memory: the renewal may have been missed (e.g. the database
            // was away); look again, and refuse if PostgreSQL has nothing newer.
            self.certs.invalidate(hostname).await;
        }
        if self.misses.contains_key(hostname) {
            self.counters.negative_hits.fetch_add(1, Ordering::Relaxed);
            return ("negative_hit", None);
        }
        self.counters.cert_misses.fetch_add(1, Ordering::Relaxed);
        let entry = self
            .certs
            .optionally_get_with(hostname.to_owned(), self.load_certificate(hostname))
            .await;
        if entry.is_none() {
            self.misses.insert(hostname.to_owned(), ()).await;
        }
        ("miss", entry)
    }

    async fn load_certificate(&self, hostname: &str) -> Option<Arc<CertEntry>> {
        self.counters.db_lookups.fetch_add(1, Ordering::Relaxed);
        let row = match self.store.serving_certificate(hostname).await {
            Ok(Some(row)) if row.not_after <= time::OffsetDateTime::now_utc() => {
                tracing::warn!(%hostname, not_after = %row.not_after, "the stored certificate has expired; refusing handshakes until it is renewed");
                return None;
            }
            Ok(row) => row?,
            Err(e) => {
                tracing::warn!(%hostname, error = %e, "certificate lookup failed");
                return None;
            }
        };
        match self.server_config(hostname, &row.chain_pem, &row.key_sealed) {
            Ok(config) => Some(Arc::new(CertEntry {
                tenant: row.tenant_id,
                config,
                not_after: row.not_after.into(),
            })),
            Err(e) => {
                tracing::error!(%hostname, error = %e, "stored certificate is unusable");
                None
            }
        }
    }

    fn server_config(
        &self,
        hostname: &str,
        chain_pem: &str,
        sealed: &[u8],
    ) -> anyhow::Result<Arc<ServerConfig>> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes()).collect::<Result<_, _>>()?;
        let key_pem = self
            .config
            .master_key
            .open(sealed, &certificate_key_context(hostname))?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)?;
        let mut config = ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.ticketer = self.ticketer.clone();
        Ok(Arc::new(config))
    }

    /// A tenant's file, through the bounded cache. `path` as stored (see
    /// `FilePath::check`); anything else is simply not found.
    pub async fn file(&self, tenant: Uuid, path: &str) -> Option<Arc<FileEntry>> {
        if let Some(hit) = self.files.get(&FileKey(tenant, path)).await {
            return hit;
        }
        let path = FilePath::parse(path).ok()?;
        match self.store.get_file(TenantId(tenant), &path).await {
            Ok(found) => {
                let entry = found.map(|f| {
                    Arc::new(FileEntry {
                        etag_header: axum::http::HeaderValue::from_str(&f.etag)
                            .unwrap_or(axum::http::HeaderValue::from_static("\"\"")),
                        content_type_header: axum::http::HeaderValue::from_str(&f.content_type)
                            .ok(),
                        etag: f.etag,
                        body: f.body.into(),
                    })
                });
                self.files
                    .insert((tenant, path.as_str().to_owned()), entry.clone())
                    .await;
                entry
            }
            Err(e) => {
                tracing::warn!(error = %e, "file lookup failed");
                None
            }
        }
    }

    /// A domain changed: refresh its allowlist entry and forget its certificate.
    pub(crate) async fn domain_changed(&self, hostname: &str) -> anyhow::Result<()> {
        let tenant = self.store.hostname_tenant(hostname).await?;
        {
            let mut names = self.names.write().expect("names lock");
            match tenant {
                Some(t) => names.insert(hostname.to_owned(), t),
                None => names.remove(hostname),
            };
        }
        self.certificate_changed(hostname).await;
        Ok(())
    }

    /// Start over: reload the allowlist and forget every cached certificate, miss and
    /// file (after the change log was pruned past this edge's position).
    pub async fn reload_all(&self) -> anyhow::Result<()> {
        let names: HashMap<String, Uuid> = self.store.all_hostnames().await?.into_iter().collect();
        *self.names.write().expect("names lock") = names;
        self.certs.invalidate_all();
        self.misses.invalidate_all();
        self.files.invalidate_all();
        Ok(())
    }

    pub(crate) async fn certificate_changed(&self, hostname: &str) {
        self.certs.invalidate(hostname).await;
        self.misses.invalidate(hostname).await;
    }

    pub(crate) async fn file_changed(&self, tenant: Uuid, path: &str) {
        self.files.invalidate(&FileKey(tenant, path)).await;
    }
}

/// A borrowed key of the file cache: looks up `(tenant, path)` without allocating the
/// `String` for every request. It hashes exactly as the owned `(Uuid, String)` does.
#[derive(Hash)]
struct FileKey<'a>(Uuid, &'a str);

impl moka::Equivalent<(Uuid, String)> for FileKey<'_> {
    fn equivalent(&self, key: &(Uuid, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn a_borrowed_file_key_finds_the_owned_one() {
        let tenant = Uuid::from_u128(7);
        let owned = (tenant, "docs/index.html".to_owned());
        let hasher = std::collections::hash_map::RandomState::new();
        let borrowed = FileKey(tenant, "docs/index.html");
        assert_eq!(hasher.hash_one(&borrowed), hasher.hash_one(&owned));
        assert!(moka::Equivalent::equivalent(&borrowed, &owned));
        assert!(!moka::Equivalent::equivalent(
            &FileKey(tenant, "docs/index.htm"),
            &owned
        ));
    }
}
