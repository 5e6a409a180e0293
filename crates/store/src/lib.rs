//! `landlord-store`: the one place with SQL.
//!
//! Every other crate reaches PostgreSQL through [`Store`]. Queries are plain SQL next to
//! the function that needs them; every query on tenant data takes the [`TenantId`] of the
//! caller, so isolation is a property of the function signatures, not of handler code.

mod admin;
pub mod budget;
mod claims;
#[macro_use]
mod domains;
mod edge;
mod events;
pub mod file_path;
mod files;
pub mod fleet;
pub mod hostname;
mod ids;
mod keys;
mod limits;
pub mod live;
pub mod rotation;
pub mod rules;
pub mod sealing;
mod sites;
mod tenants;
pub mod webhooks;
mod work;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use admin::{AuditEntry, Because, BlockedHostname, TenantEvent, TenantSummary};
pub use budget::{Budget, BudgetKind, Budgets, OrderRequest, Reservation};
pub use claims::Claim;
pub use domains::{
    CertificateSummary, Domain, DomainStatus, Page, RenewalWindow, dcv_name, ownership_record_name,
};
pub use edge::{
    Change, ChangePoll, Changed, FleetSnapshot, LiveSite, RegisteredName, ServingCertificate,
};
pub use events::{Event, EventKind, NewEvent};
pub use file_path::{FilePath, FilePathError, choose_content_type};
pub use files::{
    COMPRESS_CHANNEL, DEFAULT_KEPT_DEPLOYMENTS, FileMeta, MIN_COMPRESS_BYTES, StoredFile,
    Uncompressed, Variants, compressible,
};
pub use hostname::{Hostname, HostnameError, HostnamePolicy, normalise_suffix};
pub use ids::{DeploymentId, DomainId, SiteId};
pub use keys::{KeyName, KeyRecord, Revocation};
pub use limits::{FILE_OVERHEAD_BYTES, Limit, TenantLimits, Usage, file_cost};
pub use live::LiveNotice;
pub use sealing::{
    LOCAL_CA_CONTEXT, MasterKey, SealError, acme_account_context, certificate_key_context,
    order_key_context,
};
pub use sites::{Activation, Deployment, NewFile, Site, SiteDeletion, SiteName, SiteSlug};
pub use tenants::{ApiKey, Authenticated, Tenant, TenantId, TenantName};
pub use work::{
    AdvisoryLock, CheckRecord, Claimed, DnsChallengeRecord, IssuedBy, NewCertificate, Queued,
    RenewalInfoRecord, Transition,
};

mod migrations {
    /// The migrations in `migrations/`, embedded at build time.
    pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
}
/// The newest migration this binary knows (and applies with `landlord migrate`).
pub fn latest_migration() -> i64 {
    migrations::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// For `#[sqlx::test(migrator = "landlord_store::MIGRATOR")]`.
#[cfg(feature = "testing")]
pub use migrations::MIGRATOR;

/// NOTIFY channel carrying the new `changes.seq` after every domain or file change.
pub const CHANGES_CHANNEL: &str = "landlord_changes";
/// NOTIFY channel that wakes workers when a domain became due now ("check now", new domain).
pub const WAKE_CHANNEL: &str = "landlord_wake";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the hostname {0} is already registered")]
    HostnameTaken(String),
    #[error("the hostname {0} is already one of your domains")]
    HostnameAlreadyYours(String, DomainId),
    #[error("file quota exceeded: {used} bytes used of {quota}, this upload needs {needed}")]
    QuotaExceeded { used: i64, quota: i64, needed: i64 },
    #[error("the tenant holds the most {limit:?} allowed ({max})")]
    LimitReached { limit: Limit, max: i64 },
    #[error("asked again too soon (once per {interval:?}); retry in {retry_after:?}")]
    TooSoon {
        interval: std::time::Duration,
        retry_after: std::time::Duration,
    },
    #[error("the hostname {0} is blocked on this platform")]
    HostnameBlocked(String),
    /// A deploy's `_redirects` or `_headers` is malformed (the line is named).
    #[error("{0}")]
    InvalidRules(String),
    /// A canonical hostname must be one of the site's domains.
    #[error("{0} is not one of this site's domains")]
    CanonicalNotOnSite(String),
    #[error("you already have a site named {0}")]
    SiteNameTaken(String),
    /// Slugs are one namespace across tenants.
    #[error("the slug {0} is taken")]
    SlugTaken(String),
    /// The site named for a domain is not one of the caller's.
    #[error("no such site")]
    NoSuchSite,
    /// The database cannot be reached (connection refused or lost, pool exhausted or
    /// closed): worth a 503 and a retry.
    #[error("the database is unavailable: {0}")]
    Unavailable(DatabaseError),
    /// Any other database failure: our bug or the database's, never the caller's.
    #[error("database error: {0}")]
    Database(DatabaseError),
}

/// What the database driver said, kept for the log; the driver's types stay inside
/// this crate.
#[derive(Debug)]
pub struct DatabaseError(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DatabaseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let unavailable = matches!(
            e,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
        );
        let e = DatabaseError(Box::new(e));
        match unavailable {
            true => StoreError::Unavailable(e),
            false => StoreError::Database(e),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Database(DatabaseError(Box::new(e)))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// Behind a transaction-mode pooler (PgBouncer): a direct connection to the server
    /// for what needs a session of its own (LISTEN, session-level advisory locks,
    /// migrations).
    direct: Option<PgPool>,
}

impl Store {
    /// Connect to `url`, failing within `timeout` instead of hanging when the server is
    /// unreachable.
    pub async fn connect(url: &str, max_connections: u32, timeout: Duration) -> Result<Self> {
        let options: PgConnectOptions = url.parse().map_err(StoreError::from)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(timeout)
            .connect_with(options.application_name("landlord"))
            .await?;
        Ok(Self { pool, direct: None })
    }

    /// Connect through a pooler at `pooled` (PgBouncer), with `direct`, the server itself,
    /// for LISTEN, session-level locks and migrations (a few connections, opened when first
    /// needed), which a transaction-mode pooler cannot carry. sqlx names its prepared
    /// statements: transaction mode needs a pooler that tracks them (PgBouncer 1.21+ with
    /// `max_prepared_statements`).
    pub async fn connect_pooled(
        pooled: &str,
        direct: &str,
        max_connections: u32,
        timeout: Duration,
    ) -> Result<Self> {
        let options: PgConnectOptions = pooled.parse().map_err(StoreError::from)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(timeout)
            .connect_with(options.application_name("landlord"))
            .await?;
        let direct_options: PgConnectOptions = direct.parse().map_err(StoreError::from)?;
        let direct = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(timeout)
            .connect_lazy_with(direct_options.application_name("landlord"));
        Ok(Self {
            pool,
            direct: Some(direct),
        })
    }

    /// The pool for what needs a session of its own.
    pub(crate) fn session(&self) -> &PgPool {
        self.direct.as_ref().unwrap_or(&self.pool)
    }

    /// A pool that connects on first use (an edge's primary may be out of reach at start:
    /// the edge serves on, and its few writes are retried).
    pub fn connect_lazy(url: &str, max_connections: u32, timeout: Duration) -> Result<Self> {
        let options: PgConnectOptions = url.parse().map_err(StoreError::from)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(timeout)
            .connect_lazy_with(options.application_name("landlord"));
        Ok(Self { pool, direct: None })
    }

    /// Whether `url` is a PostgreSQL connection string, without connecting: settings are
    /// checked before anything connects.
    pub fn check_url(url: &str) -> std::result::Result<(), String> {
        let scheme = url.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("postgres" | "postgresql")) {
            return Err("must be a postgres:// or postgresql:// URL".into());
        }
        url.parse::<PgConnectOptions>()
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// A store on a test's own pool (`#[sqlx::test]`).
    #[cfg(feature = "testing")]
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool, direct: None }
    }

    /// The pool, for tests that arrange rows no API writes.
    #[cfg(feature = "testing")]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Apply pending migrations. Safe to run from several processes at once (sqlx takes
    /// an advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        Ok(migrations::MIGRATOR.run(self.session()).await?)
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// True when the error is a violation of the named unique constraint.
fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.constraint() == Some(constraint))
}

impl Store {
    /// A LISTEN connection on `channels`. It reconnects by itself after a failure
    /// (notifications sent meanwhile are lost; callers re-read state after an error).
    pub async fn listen(&self, channels: &[&str]) -> Result<Listener> {
        let mut listener = sqlx::postgres::PgListener::connect_with(self.session()).await?;
        listener.listen_all(channels.iter().copied()).await?;
        Ok(Listener(listener))
    }
}

/// A LISTEN connection (see [`Store::listen`]).
pub struct Listener(sqlx::postgres::PgListener);

/// One notification: its channel and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub channel: String,
    pub payload: String,
}

impl Listener {
    /// The next notification; an error when the connection failed (the next call
    /// reconnects).
    pub async fn recv(&mut self) -> Result<Notification> {
        let n = self.0.recv().await?;
        Ok(Notification {
            channel: n.channel().to_owned(),
            payload: n.payload().to_owned(),
        })
    }

    /// As [`Listener::recv`], but `None` when the connection was lost and re-established
    /// (notifications may have been missed meanwhile).
    pub async fn try_recv(&mut self) -> Result<Option<Notification>> {
        Ok(self.0.try_recv().await?.map(|n| Notification {
            channel: n.channel().to_owned(),
            payload: n.payload().to_owned(),
        }))
    }
}
