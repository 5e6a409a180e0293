//! What an edge knows, in memory: every registered hostname (the allowlist, with whether
//! an ACME order is in flight for it), the published HTTP-01 challenges, the
//! certificates of the names it was asked for, and tenant files.
//!
//! A handshake for a cached name touches no database. A name that is not registered
//! is refused from memory, so a flood of random SNI names costs no query; so is a
//! challenge request for a name with no order in flight. A registered name without a
//! certificate is remembered briefly (negative cache). Every cache is bounded by the
//! memory its entries hold, keys and prebuilt headers included, and is invalidated by the
//! change log (see `sync`), never by time, so it keeps serving while PostgreSQL is away.
//!
//! The queries a visitor can cause (certificate, file and challenge misses) share a
//! small concurrency limit (`db_concurrency`), so a flood of misses waits for its turn
//! instead of taking the pool from the change-log follower; a miss that cannot get a
//! turn within `db_wait` is answered as unavailable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use moka::future::Cache;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Semaphore;

use landlord_store::{
    DeploymentId, Hostname, LiveSite, MasterKey, RegisteredName, SiteId, Store, StoredFile,
    TenantId, certificate_key_context, rules::Rules,
};

use crate::encoding::Encoding;
use crate::listen::Limits;

#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub master_key: MasterKey,
    /// Bytes of certificates (chains, keys, TLS configuration) kept in memory at most.
    pub cert_cache_bytes: u64,
    /// Bytes of files (content, paths, headers) kept in memory at most.
    pub file_cache_bytes: u64,
    /// Bytes of remembered misses at most: half for "registered but no certificate yet"
    /// names, half for missing paths.
    pub miss_cache_bytes: u64,
    /// How long "registered but no certificate yet" is remembered.
    pub negative_ttl: Duration,
    /// `Strict-Transport-Security` value; `None` sends none.
    pub hsts: Option<String>,
    /// The HTTPS port redirects point to (omitted from the URL when 443).
    pub https_port: u16,
    /// Database queries that visitors' cache misses may run at once.
    pub db_concurrency: usize,
    /// How long a miss waits for one of those turns before the request gets a 503.
    pub db_wait: Duration,
    /// Caps and timeouts of both listeners.
    pub limits: Limits,
    /// `LANDLORD_PLATFORM_DOMAIN`: `<slug>.<it>` serves the site with that slug under the
    /// certificate of the registration `*.<it>`.
    pub platform_domain: Option<Hostname>,
    /// The database is a hot standby (or `LANDLORD_READ_ONLY`): no LISTEN (a standby
    /// relays no notifications), the change log is polled every `poll_interval`, and the
    /// few writes (heartbeats, first-visitor nudges) go to `primary` or nowhere.
    pub read_only: bool,
    /// How often the change log is read when no notification arrives.
    pub poll_interval: Duration,
    /// `LANDLORD_PRIMARY_DATABASE_URL`'s pool, for those few writes from a read-only edge;
    /// an edge on the primary writes through its own pool.
    pub primary: Option<Store>,
    /// How this edge names itself in its heartbeats (`LANDLORD_EDGE_NAME`, default
    /// `<host>-<pid>`) and its region (`LANDLORD_EDGE_REGION`).
    pub name: String,
    pub region: String,
    /// `LANDLORD_ACCESS_LOG`: which tenant-page requests are logged.
    pub access_log: crate::access::Sampling,
    /// `LANDLORD_METRICS_TENANTS`: tenants with counters of their own (the rest share
    /// `tenant="other"`).
    pub metrics_tenants: usize,
}

impl EdgeConfig {
    pub const DEFAULT_CERT_CACHE_BYTES: u64 = 64 * 1024 * 1024;
    pub const DEFAULT_FILE_CACHE_BYTES: u64 = 64 * 1024 * 1024;
    pub const DEFAULT_MISS_CACHE_BYTES: u64 = 8 * 1024 * 1024;
    pub const DEFAULT_DB_CONCURRENCY: usize = 4;
    pub const DEFAULT_METRICS_TENANTS: usize = 100;
    pub const DEFAULT_HSTS: &str = "max-age=31536000";

    pub fn new(master_key: MasterKey) -> Self {
        Self {
            master_key,
            cert_cache_bytes: Self::DEFAULT_CERT_CACHE_BYTES,
            file_cache_bytes: Self::DEFAULT_FILE_CACHE_BYTES,
            miss_cache_bytes: Self::DEFAULT_MISS_CACHE_BYTES,
            negative_ttl: Duration::from_secs(5),
            hsts: Some(Self::DEFAULT_HSTS.into()),
            https_port: 443,
            db_concurrency: Self::DEFAULT_DB_CONCURRENCY,
            db_wait: Duration::from_secs(2),
            limits: Limits::default(),
            platform_domain: None,
            read_only: false,
            poll_interval: Duration::from_secs(1),
            primary: None,
            name: format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "edge".into()),
                std::process::id()
            ),
            region: String::new(),
            access_log: crate::access::Sampling::OFF,
            metrics_tenants: Self::DEFAULT_METRICS_TENANTS,
        }
    }
}

/// A certificate ready for handshakes.
pub struct CertEntry {
    pub tenant: TenantId,
    pub config: Arc<ServerConfig>,
    /// Past this moment the certificate is never presented again (a handshake with an
    /// expired certificate helps nobody; an unrecognized_name alert is honest).
    pub not_after: std::time::SystemTime,
    /// What the entry holds in memory, roughly (for the cache's bound).
    weight: u32,
}

/// A file ready to serve.
pub struct FileEntry {
    /// The identity body.
    pub identity: Representation,
    /// Its precompressed bodies, smallest first (see `encoding::choose`).
    pub variants: Vec<Representation>,
    pub content_type_header: Option<axum::http::HeaderValue>,
    /// Its bodies may differ by `Accept-Encoding` (a compressible type, whether or not
    /// its variants are computed yet): caches must know.
    pub vary: bool,
}

/// One stored body of a file, with its own strong ETag.
pub struct Representation {
    pub encoding: Encoding,
    /// Quoted; compared with `If-None-Match`.
    pub etag: String,
    pub body: axum::body::Bytes,
    /// Built once when the file is loaded rather than per request.
    pub etag_header: axum::http::HeaderValue,
}

impl Representation {
    /// The identity body's etag is the stored one; a variant's adds its coding
    /// (`"<sha-256>-br"`), so every representation has its own.
    fn new(encoding: Encoding, etag: &str, body: Vec<u8>) -> Self {
        let etag = match encoding {
            Encoding::Identity => etag.to_owned(),
            e => format!("{}-{}\"", etag.trim_end_matches('"'), e.token()),
        };
        Self {
            etag_header: axum::http::HeaderValue::from_str(&etag)
                .unwrap_or(axum::http::HeaderValue::from_static("\"\"")),
            etag,
            encoding,
            body: body.into(),
        }
    }
}

impl FileEntry {
    fn new(file: StoredFile) -> Self {
        let StoredFile {
            content_type,
            etag,
            body,
            variants,
        } = file;
        let mut compressed: Vec<Representation> = [
            (Encoding::Br, variants.br),
            (Encoding::Zstd, variants.zstd),
            (Encoding::Gzip, variants.gzip),
        ]
        .into_iter()
        .filter_map(|(e, body)| Some(Representation::new(e, &etag, body?)))
        .collect();
        compressed.sort_by_key(|r| r.body.len());
        Self {
            vary: !compressed.is_empty() || landlord_store::compressible(&content_type),
            identity: Representation::new(Encoding::Identity, &etag, body),
            variants: compressed,
            content_type_header: axum::http::HeaderValue::from_str(&content_type).ok(),
        }
    }

    /// What it holds in memory, roughly (for the cache's bound).
    fn weight(&self) -> usize {
        std::iter::once(&self.identity)
            .chain(&self.variants)
            .map(|r| r.body.len() + 2 * r.etag.len())
            .sum::<usize>()
            + self.content_type_header.as_ref().map_or(0, |h| h.len())
    }
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

/// A registered hostname: its tenant, and whether the CA may come for a challenge.
#[derive(Debug, Clone, Copy)]
struct Name {
    tenant: TenantId,
    site: SiteId,
    validating: bool,
    pending: bool,
    issuing: bool,
    active: bool,
}

/// A pending hostname's visitors ask the workers for a check at most this often (per
/// edge).
pub const NUDGE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// Hostnames remembered as nudged at most (older entries are dropped first).
const MAX_NUDGED: usize = 10_000;

/// HTTP-01 challenges published for one hostname: (token, key authorization).
type Challenges = Vec<(String, String)>;

/// Bytes of bookkeeping per cache entry besides key and value (moka's entry, the Arc,
/// the String headers): an estimate on the safe side.
const ENTRY_OVERHEAD: usize = 160;

pub struct Directory {
    pub(crate) store: Store,
    pub(crate) config: EdgeConfig,
    names: RwLock<HashMap<Hostname, Name>>,
    challenges: RwLock<HashMap<Hostname, Challenges>>,
    /// Every site's live deploy and slug: switching one is one write here, so a request
    /// after it never sees a file of the deploy before.
    sites: RwLock<Sites>,
    /// `*.<platform domain>`, whose certificate every `<slug>.<platform domain>` uses.
    platform_wildcard: Option<Hostname>,
    certs: Cache<Hostname, Arc<CertEntry>>,
    misses: Cache<Hostname, ()>,
    files: Cache<(DeploymentId, String), Arc<FileEntry>>,
    /// Paths known to be missing, apart from `files`: a flood of random paths can fill
    /// this, never push real files out.
    missing_files: Cache<(DeploymentId, String), ()>,
    /// Turns for the queries visitors cause (see the module doc).
    db: Semaphore,
    /// When each pending hostname last asked the workers for a check.
    nudged: std::sync::Mutex<HashMap<Hostname, std::time::Instant>>,
    /// Nudges in flight at most (beyond, a nudge is skipped: another visitor retries it).
    nudges: Arc<Semaphore>,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    pub counters: Counters,
    /// Access logs and per-tenant counters.
    pub(crate) access: crate::access::Access,
    /// The change-log position and data-source freshness of the last catch-up, for the
    /// heartbeat.
    sync: std::sync::Mutex<Option<(i64, landlord_store::fleet::SyncPoint)>>,
}

/// Why a lookup gave no answer it could stand by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// No database turn within `db_wait`, or the query failed.
    Busy,
}

fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
}

impl Directory {
    /// Load the allowlist and the published challenges; certificates and files are
    /// loaded on demand.
    pub async fn load(store: Store, config: EdgeConfig) -> anyhow::Result<Arc<Self>> {
        let (names, challenges) = load_names(&store).await?;
        let files = Cache::builder()
            .max_capacity(config.file_cache_bytes)
            .weigher(|key: &(DeploymentId, String), f: &Arc<FileEntry>| {
                weight(16 + key.1.len() + f.weight())
            })
            // A body's variants arriving replaces the entries holding it (`blob_changed`).
            .support_invalidation_closures()
            .build();
        let missing_files = Cache::builder()
            .max_capacity(config.miss_cache_bytes / 2)
            .weigher(|key: &(DeploymentId, String), _: &()| weight(16 + key.1.len()))
            .build();
        let certs = Cache::builder()
            .max_capacity(config.cert_cache_bytes)
            .weigher(|key: &Hostname, v: &Arc<CertEntry>| {
                v.weight.saturating_add(weight(key.as_str().len()))
            })
            .build();
        let misses = Cache::builder()
            .max_capacity(config.miss_cache_bytes / 2)
            .weigher(|key: &Hostname, _: &()| weight(key.as_str().len()))
            .time_to_live(config.negative_ttl)
            .build();
        Ok(Arc::new(Self {
            certs,
            misses,
            files,
            missing_files,
            names: RwLock::new(names),
            challenges: RwLock::new(challenges),
            sites: RwLock::new(live_sites(&store).await?),
            platform_wildcard: config
                .platform_domain
                .as_ref()
                .and_then(|p| Hostname::parse(&format!("*.{p}")).ok()),
            db: Semaphore::new(config.db_concurrency.max(1)),
            nudged: std::sync::Mutex::default(),
            nudges: Arc::new(Semaphore::new(2)),
            ticketer: rustls::crypto::aws_lc_rs::Ticketer::new()?,
            access: crate::access::Access::new(config.access_log, config.metrics_tenants),
            store,
            config,
            counters: Counters::default(),
            sync: std::sync::Mutex::default(),
        }))
    }

    /// Where this edge's few writes go: the primary's pool, or its own when it reads the
    /// primary; `None` on a read-only edge without `LANDLORD_PRIMARY_DATABASE_URL`.
    pub(crate) fn writer(&self) -> Option<&Store> {
        match self.config.read_only {
            true => self.config.primary.as_ref(),
            false => Some(&self.store),
        }
    }

    /// The follower applied everything up to `position` as of `point`.
    pub(crate) fn synced(&self, position: i64, point: landlord_store::fleet::SyncPoint) {
        *self.sync.lock().expect("sync lock") = Some((position, point));
    }

    /// What the last catch-up reached (for the heartbeat).
    pub(crate) fn sync_state(&self) -> Option<(i64, landlord_store::fleet::SyncPoint)> {
        *self.sync.lock().expect("sync lock")
    }

    /// Wait for a database turn (bounded by `db_wait`).
    async fn db_turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Unavailable> {
        match tokio::time::timeout(self.config.db_wait, self.db.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                metrics::counter!("landlord_edge_db_busy_total").increment(1);
                Err(Unavailable::Busy)
            }
        }
    }

    /// Memory held by the caches now, in bytes (certificates, files, misses), also
    /// published as `landlord_edge_cache_bytes`.
    pub async fn cache_bytes(&self) -> (u64, u64, u64) {
        self.certs.run_pending_tasks().await;
        self.files.run_pending_tasks().await;
        self.misses.run_pending_tasks().await;
        self.missing_files.run_pending_tasks().await;
        let sizes = (
            self.certs.weighted_size(),
            self.files.weighted_size(),
            self.misses.weighted_size() + self.missing_files.weighted_size(),
        );
        for (cache, bytes) in [
            ("certificates", sizes.0),
            ("files", sizes.1),
            ("misses", sizes.2),
        ] {
            metrics::gauge!("landlord_edge_cache_bytes", "cache" => cache).set(bytes as f64);
        }
        sizes
    }

    /// Sizes of the in-memory structures: (registered names, cached certificates,
    /// remembered misses). For tests and metrics.
    pub async fn sizes(&self) -> (usize, u64, u64) {
        self.certs.run_pending_tasks().await;
        self.misses.run_pending_tasks().await;
        let names = self.names.read().expect("names lock").len();
        (names, self.certs.entry_count(), self.misses.entry_count())
    }

    /// The registration serving a name, from memory: its own; else, for
    /// `<slug>.<platform domain>`, the platform's wildcard with the slug's site; else a
    /// wildcard registration one label up (exact beats wildcard). A name none of these
    /// cover costs a hash lookup or two, never a query.
    fn route(&self, hostname: &Hostname) -> Option<Route> {
        if let Some(name) = self.names.read().expect("names lock").get(hostname) {
            return Some(Route {
                name: *name,
                via: None,
            });
        }
        let wildcard = hostname.covering_wildcard()?;
        let mut name = *self.names.read().expect("names lock").get(&wildcard)?;
        if self.platform_wildcard.as_ref() == Some(&wildcard) {
            let (slug, _) = hostname.as_str().split_once('.')?;
            name.site = *self.sites.read().expect("sites lock").by_slug.get(slug)?;
        }
        Some(Route {
            name,
            via: Some(wildcard),
        })
    }

    /// The tenant owning the registration that serves a hostname (the certificate's
    /// owner: for platform subdomains, the platform).
    pub fn tenant_of(&self, hostname: &Hostname) -> Option<TenantId> {
        self.route(hostname).map(|r| r.name.tenant)
    }

    /// A visitor asked for `hostname` (a plain HTTP request or a TLS ClientHello). When
    /// it is registered and still waiting for its DNS, the visitor's DNS evidently reaches
    /// an edge: ask the workers to check it now, at most once per [`NUDGE_EVERY`] per
    /// hostname, decided from memory, never waited for, at most two at a time. An edge
    /// that cannot write (a read-only replica) simply does not nudge.
    pub fn visited(&self, hostname: &Hostname) {
        let Some(route) = self.route(hostname).filter(|r| r.name.pending) else {
            return;
        };
        let hostname = route.via.as_ref().unwrap_or(hostname);
        {
            let mut nudged = self.nudged.lock().expect("nudged lock");
            let now = std::time::Instant::now();
            if nudged
                .get(hostname)
                .is_some_and(|at| now.duration_since(*at) < NUDGE_EVERY)
            {
                return;
            }
            if nudged.len() >= MAX_NUDGED {
                nudged.retain(|_, at| now.duration_since(*at) < NUDGE_EVERY);
            }
            if nudged.len() >= MAX_NUDGED {
                return;
            }
            nudged.insert(hostname.clone(), now);
        }
        let Ok(turn) = self.nudges.clone().try_acquire_owned() else {
            return;
        };
        let Some(store) = self.writer().cloned() else {
            return;
        };
        let hostname = hostname.clone();
        tokio::spawn(async move {
            let _turn = turn;
            metrics::counter!("landlord_edge_db_queries_total", "kind" => "nudge").increment(1);
            match store.nudge_check(&hostname).await {
                Ok(true) => {
                    tracing::info!(%hostname, "a visitor arrived for a pending hostname; asked for a DNS check")
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(%hostname, error = %e, "could not ask for a DNS check"),
            }
        });
    }

    /// The key authorization for an HTTP-01 challenge. From memory for a hostname with an
    /// order in flight; when the token is not in memory yet (the CA may fetch before this
    /// edge has applied the change that published it, e.g. while it works through a burst
    /// of changes) one lookup, through a database turn, for a hostname that has an order in
    /// flight or is waiting for its first certificate (`pending_dns`, `issuing`: this edge
    /// may not have heard of its order yet). Any other hostname costs nothing: strangers
    /// cannot make this edge query for names they did not register.
    pub async fn challenge(
        &self,
        hostname: &Hostname,
        token: &str,
    ) -> Result<Option<String>, Unavailable> {
        let expected = {
            let challenges = self.challenges.read().expect("challenges lock");
            if let Some(list) = challenges.get(hostname) {
                if let Some((_, answer)) = list.iter().find(|(t, _)| t == token) {
                    return Ok(Some(answer.clone()));
                }
                true
            } else {
                false
            }
        };
        let validating = self
            .names
            .read()
            .expect("names lock")
            .get(hostname)
            .is_some_and(|n| n.validating || n.pending || n.issuing);
        if !(expected || validating) {
            return Ok(None);
        }
        let _turn = self.db_turn().await?;
        metrics::counter!("landlord_edge_db_queries_total", "kind" => "challenge").increment(1);
        match self.store.challenge_response(token, hostname).await {
            Ok(found) => Ok(found),
            Err(e) => {
                tracing::warn!(%hostname, error = %e, "challenge lookup failed");
                Err(Unavailable::Busy)
            }
        }
    }

    /// The certificate for an SNI name: memory first; one (shared) database lookup for
    /// a registered name not in memory; `None` for anything else.
    pub async fn certificate(&self, hostname: &Hostname) -> Option<Arc<CertEntry>> {
        let started = std::time::Instant::now();
        let (result, entry) = self.lookup(hostname).await;
        metrics::counter!("landlord_edge_sni_lookups_total", "result" => result).increment(1);
        metrics::histogram!("landlord_edge_sni_lookup_seconds", "result" => result)
            .record(started.elapsed().as_secs_f64());
        entry
    }

    async fn lookup(&self, hostname: &Hostname) -> (&'static str, Option<Arc<CertEntry>>) {
        let Some(route) = self.route(hostname) else {
            self.counters.unknown_names.fetch_add(1, Ordering::Relaxed);
            return ("unknown", None);
        };
        // A wildcard's subdomains share its one cache entry (and its one miss).
        let hostname = route.via.as_ref().unwrap_or(hostname);
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
            .optionally_get_with(hostname.clone(), self.load_certificate(hostname))
            .await;
        if entry.is_none() {
            self.misses.insert(hostname.clone(), ()).await;
        }
        ("miss", entry)
    }

    async fn load_certificate(&self, hostname: &Hostname) -> Option<Arc<CertEntry>> {
        let _turn = self.db_turn().await.ok()?;
        self.counters.db_lookups.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("landlord_edge_db_queries_total", "kind" => "certificate").increment(1);
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
                // The chain (DER is smaller than its PEM), the key, and rustls's
                // configuration around them.
                weight: weight(row.chain_pem.len() + row.key_sealed.len() + 2048),
            })),
            Err(e) => {
                tracing::error!(%hostname, error = %e, "stored certificate is unusable");
                None
            }
        }
    }

    fn server_config(
        &self,
        hostname: &Hostname,
        chain_pem: &str,
        sealed: &[u8],
    ) -> anyhow::Result<Arc<ServerConfig>> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes()).collect::<Result<_, _>>()?;
        let key_pem = self
            .config
            .master_key
            .open(sealed, &certificate_key_context(hostname.as_str()))?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)?;
        let mut config = ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // TLS 1.2: our cipher suite order (AEAD, forward-secret first), not the client's.
        config.ignore_client_order = true;
        config.ticketer = self.ticketer.clone();
        Ok(Arc::new(config))
    }

    /// Where `hostname` should send visitors instead: its site's canonical hostname, when
    /// that is another name registered on the same site and served with a certificate
    /// (until then every hostname serves the site itself).
    pub fn canonical_for<'a>(&self, hostname: &Hostname, live: &'a Live) -> Option<&'a Hostname> {
        let canonical = live.canonical.as_ref().filter(|c| *c != hostname)?;
        let names = self.names.read().expect("names lock");
        names
            .get(canonical)
            .is_some_and(|n| n.site == live.site && n.active)
            .then_some(canonical)
    }

    /// Who serves a hostname now (the tenant owning its registration, as
    /// [`Directory::tenant_of`] says) and what: its site's live deploy and rules, if it has
    /// one. One lookup of the registration for both, per request.
    pub fn served(&self, hostname: &Hostname) -> Option<(TenantId, Option<Arc<Live>>)> {
        let name = self.route(hostname)?.name;
        let live = self
            .sites
            .read()
            .expect("sites lock")
            .by_id
            .get(&name.site)
            .and_then(|s| s.live.clone());
        Some((name.tenant, live))
    }

    /// The first of `candidates` (stored paths, see `FilePath::check`) that a deploy has,
    /// through the bounded cache, in one query at most: the answer is remembered under
    /// the first candidate (the request's own path), and deploys never change, so entries
    /// are only evicted.
    pub async fn file(
        &self,
        deployment: DeploymentId,
        candidates: &[String],
    ) -> Result<Option<Arc<FileEntry>>, Unavailable> {
        let Some(first) = candidates.first() else {
            return Ok(None);
        };
        let key = FileKey(deployment, first);
        if let Some(hit) = self.files.get(&key).await {
            return Ok(Some(hit));
        }
        if self.missing_files.contains_key(&key) {
            return Ok(None);
        }
        let _turn = self.db_turn().await?;
        metrics::counter!("landlord_edge_db_queries_total", "kind" => "file").increment(1);
        match self.store.first_file(deployment, candidates).await {
            Ok(found) => {
                let entry = found.map(|f| Arc::new(FileEntry::new(f)));
                let key = (deployment, first.clone());
                match &entry {
                    Some(file) => self.files.insert(key, file.clone()).await,
                    None => self.missing_files.insert(key, ()).await,
                }
                Ok(entry)
            }
            Err(e) => {
                tracing::warn!(error = %e, "file lookup failed");
                Err(Unavailable::Busy)
            }
        }
    }

    /// A domain changed: refresh its allowlist entry and forget its certificate.
    pub(crate) async fn domain_changed(&self, hostname: &Hostname) -> anyhow::Result<()> {
        let entry = self.store.registered_name(hostname).await?;
        {
            let mut names = self.names.write().expect("names lock");
            match entry.map(name_entry) {
                Some((hostname, name)) => names.insert(hostname, name),
                None => names.remove(hostname),
            };
        }
        self.certificate_changed(hostname).await;
        Ok(())
    }

    /// The challenges published for a hostname changed: load them again.
    pub(crate) async fn challenges_changed(&self, hostname: &Hostname) -> anyhow::Result<()> {
        let rows = self.store.published_challenges(Some(hostname)).await?;
        let mut challenges = self.challenges.write().expect("challenges lock");
        match by_hostname(rows).remove(hostname) {
            Some(list) => challenges.insert(hostname.clone(), list),
            None => challenges.remove(hostname),
        };
        Ok(())
    }

    /// Start over: reload the allowlist and the challenges, and forget every cached
    /// certificate, miss and file (after the change log was pruned past this edge's
    /// position).
    pub async fn reload_all(&self) -> anyhow::Result<()> {
        let (names, challenges) = load_names(&self.store).await?;
        let sites = live_sites(&self.store).await?;
        *self.names.write().expect("names lock") = names;
        *self.challenges.write().expect("challenges lock") = challenges;
        *self.sites.write().expect("sites lock") = sites;
        self.certs.invalidate_all();
        self.misses.invalidate_all();
        self.files.invalidate_all();
        self.missing_files.invalidate_all();
        Ok(())
    }

    pub(crate) async fn certificate_changed(&self, hostname: &Hostname) {
        self.certs.invalidate(hostname).await;
        self.misses.invalidate(hostname).await;
    }

    /// A site was created, deleted, switched to another deploy or given another slug.
    pub(crate) async fn site_changed(&self, site: SiteId) -> anyhow::Result<()> {
        let live = self.store.live_site(site).await?;
        self.sites.write().expect("sites lock").put(site, live);
        Ok(())
    }

    /// A body's compressed variants were stored: the files holding it are loaded again
    /// (with them) on their next request.
    pub(crate) fn blob_changed(&self, sha256_hex: &str) {
        let etag = format!("\"{sha256_hex}\"");
        let _ = self
            .files
            .invalidate_entries_if(move |_, f| f.identity.etag == etag);
    }
}

/// Every site's live deploy and slug (at start, and to start over).
async fn live_sites(store: &Store) -> anyhow::Result<Sites> {
    let mut sites = Sites::default();
    for site in store.live_sites().await? {
        sites.put(site.id, Some(site));
    }
    Ok(sites)
}

/// Which registration serves a name (see [`Directory::route`]).
struct Route {
    name: Name,
    /// The wildcard registration serving it, when that is not the name's own.
    via: Option<Hostname>,
}

/// The sites, by id and by slug (platform subdomains).
#[derive(Default)]
struct Sites {
    by_id: HashMap<SiteId, SiteEntry>,
    by_slug: HashMap<String, SiteId>,
}

struct SiteEntry {
    live: Option<Arc<Live>>,
    /// `None` while its tenant is suspended.
    slug: Option<String>,
}

impl Sites {
    /// Apply what the store says of one site now (`None`: it is gone).
    fn put(&mut self, id: SiteId, site: Option<LiveSite>) {
        if let Some(old) = self.by_id.remove(&id).and_then(|e| e.slug)
            && self.by_slug.get(&old) == Some(&id)
        {
            self.by_slug.remove(&old);
        }
        let Some(mut site) = site else {
            return;
        };
        let slug = site.slug.take();
        if let Some(slug) = &slug {
            self.by_slug.insert(slug.clone(), id);
        }
        self.by_id.insert(
            id,
            SiteEntry {
                live: Live::of(site),
                slug,
            },
        );
    }
}

/// A site's live deploy and its rules (`_redirects`, `_headers`), swapped as one.
pub struct Live {
    pub site: SiteId,
    pub deployment: DeploymentId,
    pub rules: Rules,
    /// The site's other hostnames redirect here (once it is active on the same site).
    pub canonical: Option<Hostname>,
}

impl Live {
    fn of(site: LiveSite) -> Option<Arc<Self>> {
        Some(Arc::new(Self {
            site: site.id,
            deployment: site.live_deployment_id?,
            rules: site.rules.map(|r| r.0).unwrap_or_default(),
            canonical: site.canonical_hostname,
        }))
    }
}

/// Every registered name and every published challenge (at start, and to start over).
async fn load_names(
    store: &Store,
) -> anyhow::Result<(HashMap<Hostname, Name>, HashMap<Hostname, Challenges>)> {
    let names = store
        .all_hostnames()
        .await?
        .into_iter()
        .map(name_entry)
        .collect();
    let challenges = by_hostname(store.published_challenges(None).await?);
    Ok((names, challenges))
}

fn name_entry(r: RegisteredName) -> (Hostname, Name) {
    (
        r.hostname,
        Name {
            tenant: r.tenant_id,
            site: r.site_id,
            validating: r.validating,
            pending: r.pending,
            issuing: r.issuing,
            active: r.active,
        },
    )
}

fn by_hostname(rows: Vec<(Hostname, String, String)>) -> HashMap<Hostname, Challenges> {
    let mut challenges: HashMap<Hostname, Challenges> = HashMap::new();
    for (hostname, token, answer) in rows {
        challenges
            .entry(hostname)
            .or_default()
            .push((token, answer));
    }
    challenges
}

/// A borrowed key of the file cache: looks up `(tenant, path)` without allocating the
/// `String` for every request. It hashes exactly as the owned `(TenantId, String)` does.
#[derive(Hash)]
struct FileKey<'a>(DeploymentId, &'a str);

impl moka::Equivalent<(DeploymentId, String)> for FileKey<'_> {
    fn equivalent(&self, key: &(DeploymentId, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn a_borrowed_file_key_finds_the_owned_one() {
        let tenant = DeploymentId::for_tests(uuid::Uuid::from_u128(7));
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
