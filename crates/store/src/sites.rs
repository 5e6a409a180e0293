//! Sites and their deploys.
//!
//! A deploy is an immutable set of files (path → content-addressed blob); a site serves
//! its live deploy, one column, so switching deploys is one update that every edge applies
//! in one step. Every write here runs under the tenant's row lock, checks the limits after
//! the write (the quota counts what is stored once the write and the pruning are done) and
//! rolls back when one is exceeded.

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::domains::owned_site;
use crate::files::COMPRESS_CHANNEL;
use crate::limits::{Limit, TenantLimits, lock_tenant};
use crate::rules::{HEADERS_FILE, REDIRECTS_FILE, Rules};
use crate::{
    DeploymentId, FilePath, Hostname, Result, SiteId, Store, StoreError, TenantId, compressible,
};

/// A site's name: 1 to 63 characters, lower-case letters, digits and `-`, starting with a
/// letter or digit (it names the site in URLs, the CLI and, later, platform subdomains).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SiteName(String);

impl SiteName {
    pub const MAX_CHARS: usize = 63;
    /// The site every tenant has, holding what `/v1/files` writes.
    pub const DEFAULT: &str = "default";

    pub fn parse(raw: &str) -> std::result::Result<Self, String> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-');
        match ok {
            true => Ok(Self(raw.to_owned())),
            false => Err(format!(
                "a site name is 1 to {} characters: lower-case letters, digits and '-', not starting with '-'",
                Self::MAX_CHARS
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A site's platform subdomain label: `<slug>.<LANDLORD_PLATFORM_DOMAIN>`. One DNS label
/// (lower-case letters, digits, inner `-`), unique across tenants, never a reserved word
/// or a punycode-like `ab--` label (look-alike names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SiteSlug(String);

impl SiteSlug {
    pub const MAX_CHARS: usize = 63;
    /// Names an operator or a visitor would take for the platform's own.
    pub const RESERVED: &[&str] = &[
        "acme",
        "admin",
        "api",
        "app",
        "assets",
        "auth",
        "autoconfig",
        "autodiscover",
        "billing",
        "cdn",
        "console",
        "dashboard",
        "default",
        "dns",
        "edge",
        "ftp",
        "help",
        "imap",
        "isatap",
        "landlord",
        "localhost",
        "login",
        "mail",
        "mta-sts",
        "ns",
        "ns1",
        "ns2",
        "ns3",
        "ns4",
        "platform",
        "pop",
        "root",
        "smtp",
        "sso",
        "static",
        "status",
        "support",
        "wpad",
        "www",
    ];

    pub fn parse(raw: &str) -> std::result::Result<Self, String> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-')
            && !raw.ends_with('-');
        if !ok {
            return Err(format!(
                "a slug is one DNS label: 1 to {} lower-case letters, digits and '-', not starting or ending with '-'",
                Self::MAX_CHARS
            ));
        }
        if raw.get(2..4) == Some("--") {
            return Err(format!(
                "\"{raw}\" has '--' in third and fourth place, which is kept for internationalised (punycode) names"
            ));
        }
        if Self::RESERVED.contains(&raw) {
            return Err(format!("\"{raw}\" is reserved on this platform"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A site as its tenant sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Site {
    pub id: SiteId,
    pub name: String,
    /// Its platform subdomain label (see [`SiteSlug`]).
    pub slug: String,
    /// The site `/v1/files` writes to (every tenant has one; it cannot be deleted).
    pub is_default: bool,
    pub live_deployment_id: Option<DeploymentId>,
    /// Its other hostnames answer 308 to this one (once it has a certificate).
    pub canonical_hostname: Option<Hostname>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Domains serving it.
    pub domains: i64,
}

/// A deploy as its tenant sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Deployment {
    pub id: DeploymentId,
    pub site_id: SiteId,
    pub created_at: OffsetDateTime,
    /// What made it: `files` (a change through `/v1/files`), `upload`, `migration`.
    pub source: String,
    /// The display prefix of the API key that uploaded it.
    pub created_by: Option<String>,
    pub file_count: i32,
    pub bytes: i64,
    pub live: bool,
    /// Asked to go live, waiting for its compressed variants.
    pub activating: bool,
    /// Its bodies whose compressed variants are still being computed.
    pub compressing: i64,
}

/// When a deploy's site switches to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Kept, not live (`?activate=false`).
    Stage,
    /// Live once its compressible bodies have their variants (at once when they have),
    /// or when the worker's wait for them runs out.
    WhenCompressed,
    /// Live now (a `/v1/files` change).
    Now,
}

/// One file of a new deploy.
pub struct NewFile {
    pub path: FilePath,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Why a site was not deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteDeletion {
    Deleted,
    NotFound,
    /// Domains still serve it: move or delete them first.
    HasDomains(i64),
    /// The default site holds what `/v1/files` writes.
    Default,
}

/// The columns of [`Site`] from `sites s`, as a macro so queries stay `&'static str`.
macro_rules! site_columns {
    () => {
        "SELECT s.id, s.name, s.slug, s.is_default, s.live_deployment_id, s.canonical_hostname, \
         s.created_at, s.updated_at, \
         (SELECT count(*) FROM domains d WHERE d.site_id = s.id) AS domains FROM sites s "
    };
}

impl Store {
    /// A new site, empty (no deploy yet), at most `max_sites` per tenant.
    pub async fn create_site(
        &self,
        tenant: TenantId,
        name: &SiteName,
        slug: Option<&SiteSlug>,
        max_sites: i64,
    ) -> Result<Site> {
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        let held: i64 = sqlx::query_scalar("SELECT count(*) FROM sites WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
        if held >= max_sites {
            return Err(StoreError::LimitReached {
                limit: Limit::Sites,
                max: max_sites,
            });
        }
        let id = insert_site(&mut tx, tenant, name, false, slug).await?;
        tx.commit().await?;
        Ok(self
            .get_site(tenant, id)
            .await?
            .expect("the site just created"))
    }

    /// The caller's sites, oldest first (a tenant holds at most `max_sites`).
    pub async fn list_sites(&self, tenant: TenantId) -> Result<Vec<Site>> {
        Ok(sqlx::query_as::<_, Site>(concat!(
            site_columns!(),
            "WHERE s.tenant_id = $1 ORDER BY s.created_at, s.id"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// One of the caller's sites; `None` for unknown and foreign ids alike.
    pub async fn get_site(&self, tenant: TenantId, id: SiteId) -> Result<Option<Site>> {
        Ok(sqlx::query_as::<_, Site>(concat!(
            site_columns!(),
            "WHERE s.tenant_id = $1 AND s.id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Rename one of the caller's sites, change its slug and/or set its canonical hostname
    /// (`Some(None)` clears it). The canonical hostname must be one of the site's domains.
    pub async fn update_site(
        &self,
        tenant: TenantId,
        id: SiteId,
        name: Option<&SiteName>,
        slug: Option<&SiteSlug>,
        canonical: Option<Option<&Hostname>>,
    ) -> Result<Option<Site>> {
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        if let Some(Some(hostname)) = canonical {
            let on_site: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM domains \
                 WHERE hostname = $1 AND site_id = $2 AND tenant_id = $3)",
            )
            .bind(hostname)
            .bind(id)
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
            if !on_site {
                return Err(StoreError::CanonicalNotOnSite(hostname.to_string()));
            }
        }
        let done = sqlx::query(
            "UPDATE sites SET name = COALESCE($3, name), \
                 canonical_hostname = CASE WHEN $4 THEN $5 ELSE canonical_hostname END, \
                 slug = COALESCE($6, slug), updated_at = now() \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(name.map(SiteName::as_str))
        .bind(canonical.is_some())
        .bind(canonical.flatten())
        .bind(slug.map(SiteSlug::as_str))
        .execute(&mut *tx)
        .await
        .map_err(|e| match (name, slug) {
            (_, Some(slug)) if crate::is_unique_violation(&e, "sites_slug_unique") => {
                StoreError::SlugTaken(slug.as_str().to_owned())
            }
            (Some(name), _) => name_taken(e, name),
            _ => e.into(),
        })?;
        tx.commit().await?;
        match done.rows_affected() {
            0 => Ok(None),
            _ => self.get_site(tenant, id).await,
        }
    }

    /// Delete one of the caller's sites with its deploys, unless domains still serve it
    /// or it is the default site.
    pub async fn delete_site(&self, tenant: TenantId, id: SiteId) -> Result<SiteDeletion> {
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        let Some(site) = sqlx::query_as::<_, Site>(concat!(
            site_columns!(),
            "WHERE s.tenant_id = $1 AND s.id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(SiteDeletion::NotFound);
        };
        if site.is_default {
            return Ok(SiteDeletion::Default);
        }
        if site.domains > 0 {
            return Ok(SiteDeletion::HasDomains(site.domains));
        }
        sqlx::query("UPDATE sites SET live_deployment_id = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sites WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        collect_blobs(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(SiteDeletion::Deleted)
    }

    /// The deploys of one of the caller's sites, newest first; `None` when the site is
    /// not theirs.
    pub async fn list_deployments(
        &self,
        tenant: TenantId,
        site: SiteId,
    ) -> Result<Option<Vec<Deployment>>> {
        if self.get_site(tenant, site).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(
            sqlx::query_as::<_, Deployment>(
                "SELECT d.id, d.site_id, d.created_at, d.source, d.created_by, d.file_count, d.bytes, \
                     s.live_deployment_id IS NOT DISTINCT FROM d.id AS live, \
                     s.activating_deployment_id IS NOT DISTINCT FROM d.id AS activating, \
                     (SELECT count(*) FROM deployment_files f JOIN blobs b \
                          ON b.tenant_id = f.tenant_id AND b.sha256 = f.sha256 \
                      WHERE f.deployment_id = d.id AND NOT b.variants_done) AS compressing \
                 FROM deployments d JOIN sites s ON s.id = d.site_id \
                 WHERE d.site_id = $1 AND d.tenant_id = $2 ORDER BY d.created_at DESC, d.id DESC",
            )
            .bind(site)
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?,
        ))
    }

    /// Make one of the site's deploys live (a rollback is this with an earlier one), once
    /// its compressed variants exist; `None` when the site or the deploy is not the caller's.
    pub async fn activate_deployment(
        &self,
        tenant: TenantId,
        site: SiteId,
        deployment: DeploymentId,
    ) -> Result<Option<Deployment>> {
        let mut tx = self.pool.begin().await?;
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM deployments d JOIN sites s ON s.id = d.site_id \
                 WHERE s.id = $1 AND s.tenant_id = $2 AND d.id = $3 FOR UPDATE OF s)",
        )
        .bind(site)
        .bind(tenant)
        .bind(deployment)
        .fetch_one(&mut *tx)
        .await?;
        if !found {
            return Ok(None);
        }
        switch_to(&mut tx, site, deployment, Activation::WhenCompressed).await?;
        tx.commit().await?;
        self.deployment(tenant, site, deployment).await
    }

    /// Make live the sites' activating deploys whose variants all exist, and, with
    /// `waited`, those that have waited that long; the sites switched.
    pub async fn activate_ready(&self, waited: Option<std::time::Duration>) -> Result<Vec<SiteId>> {
        activate_ready(&mut *self.pool.acquire().await?, waited).await
    }

    async fn deployment(
        &self,
        tenant: TenantId,
        site: SiteId,
        id: DeploymentId,
    ) -> Result<Option<Deployment>> {
        Ok(self
            .list_deployments(tenant, site)
            .await?
            .and_then(|all| all.into_iter().find(|d| d.id == id)))
    }

    /// A new deploy of one of the caller's sites holding exactly `files`, made by the API
    /// key shown as `created_by`, switched to as `activation` says; the site's deploys
    /// beyond the newest `limits.kept_deployments` (never the live or the activating one)
    /// are dropped. `None` when the site is not theirs.
    pub async fn create_deployment(
        &self,
        tenant: TenantId,
        site: SiteId,
        files: &[NewFile],
        created_by: Option<&str>,
        activation: Activation,
        limits: TenantLimits,
    ) -> Result<Option<Deployment>> {
        if files.len() as i64 > limits.max_files {
            return Err(StoreError::LimitReached {
                limit: Limit::Files,
                max: limits.max_files,
            });
        }
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        match owned_site(&mut tx, tenant, site).await {
            Err(StoreError::NoSuchSite) => return Ok(None),
            owned => owned?,
        };
        let before = stored_bytes(&mut tx, tenant).await?;
        let id = DeploymentId::new();
        insert_deployment(&mut tx, tenant, site, id, "upload", created_by).await?;
        for file in files {
            put_row(&mut tx, tenant, id, file).await?;
        }
        finish_deployment(
            &mut tx,
            tenant,
            site,
            id,
            activation,
            limits.kept_deployments,
        )
        .await?;
        check_quota(&mut tx, tenant, before, limits).await?;
        tx.commit().await?;
        self.deployment(tenant, site, id).await
    }
}

/// Insert a site (the caller holds the tenant's lock).
/// A new site row. Without a chosen `slug` it gets its name when that is a free slug,
/// else the name with a random suffix.
pub(crate) async fn insert_site(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    name: &SiteName,
    is_default: bool,
    slug: Option<&SiteSlug>,
) -> Result<SiteId> {
    use sqlx::Connection as _;
    let chosen = slug.is_some();
    let candidates = slug
        .cloned()
        .or_else(|| SiteSlug::parse(name.as_str()).ok())
        .into_iter()
        .map(|s| s.0)
        .chain((0..3).map(|_| {
            let random = uuid::Uuid::new_v4().simple().to_string();
            let stem = name.as_str()[..name.as_str().len().min(54)].trim_end_matches('-');
            format!("{stem}-{}", &random[..8])
        }));
    for candidate in candidates {
        let id = SiteId::new();
        // A savepoint: a taken slug tries the next candidate in the same transaction.
        let mut attempt = tx.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO sites (id, tenant_id, name, is_default, slug) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(tenant)
        .bind(name.as_str())
        .bind(is_default)
        .bind(&candidate)
        .execute(&mut *attempt)
        .await;
        match inserted {
            Ok(_) => {
                attempt.commit().await?;
                return Ok(id);
            }
            Err(e) if crate::is_unique_violation(&e, "sites_slug_unique") => {
                attempt.rollback().await?;
                if chosen {
                    return Err(StoreError::SlugTaken(candidate));
                }
            }
            Err(e) => return Err(name_taken(e, name)),
        }
    }
    Err(StoreError::SlugTaken(name.as_str().to_owned()))
}

fn name_taken(e: sqlx::Error, name: &SiteName) -> StoreError {
    match crate::is_unique_violation(&e, "sites_name_unique") {
        true => StoreError::SiteNameTaken(name.as_str().to_owned()),
        false => e.into(),
    }
}

pub(crate) async fn insert_deployment(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    site: SiteId,
    id: DeploymentId,
    source: &str,
    created_by: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO deployments (id, site_id, tenant_id, source, created_by) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(site)
    .bind(tenant)
    .bind(source)
    .bind(created_by)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Store `file`'s body as a blob (once per tenant and content) and add it to deploy `id`.
pub(crate) async fn put_row(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    id: DeploymentId,
    file: &NewFile,
) -> Result<()> {
    let sha = Sha256::digest(&file.body).to_vec();
    let compress = compressible(&file.content_type) && file.body.len() >= crate::MIN_COMPRESS_BYTES;
    let new_blob = sqlx::query(
        "INSERT INTO blobs (tenant_id, sha256, size, body, compressible, variants_done) \
         VALUES ($1, $2, $3, $4, $5, NOT $5) ON CONFLICT (tenant_id, sha256) DO NOTHING",
    )
    .bind(tenant)
    .bind(&sha)
    .bind(file.body.len() as i64)
    .bind(&file.body)
    .bind(compress)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    // A body stored before for an incompressible type is tried now.
    let queued = compress
        && (new_blob
            || sqlx::query(
                "UPDATE blobs SET compressible = true, variants_done = false \
                 WHERE tenant_id = $1 AND sha256 = $2 AND NOT compressible",
            )
            .bind(tenant)
            .bind(&sha)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1);
    if queued {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(COMPRESS_CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO deployment_files (deployment_id, path, tenant_id, sha256, content_type, size) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(file.path.as_str())
    .bind(tenant)
    .bind(&sha)
    .bind(&file.content_type)
    .bind(file.body.len() as i64)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Count deploy `id`'s files, switch the site to it as `activation` says, drop the site's
/// deploys beyond the newest `keep` (never the live or the activating one), and the blobs
/// no deploy uses any more.
pub(crate) async fn finish_deployment(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    site: SiteId,
    id: DeploymentId,
    activation: Activation,
    keep: i64,
) -> Result<()> {
    let rules = read_rules(tx, id).await?;
    sqlx::query(
        "UPDATE deployments SET (file_count, bytes) = \
             (SELECT count(*), COALESCE(sum(size), 0) FROM deployment_files WHERE deployment_id = $1), \
             rules = $2 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(sqlx::types::Json(rules))
    .execute(&mut *tx)
    .await?;
    switch_to(tx, site, id, activation).await?;
    sqlx::query(
        "DELETE FROM deployments WHERE site_id = $1 AND id IN ( \
             SELECT d.id FROM deployments d JOIN sites s ON s.id = d.site_id \
             WHERE d.site_id = $1 AND d.id IS DISTINCT FROM s.live_deployment_id \
               AND d.id IS DISTINCT FROM s.activating_deployment_id \
             ORDER BY d.created_at DESC, d.id DESC OFFSET $2)",
    )
    .bind(site)
    .bind(keep.max(1) - 1)
    .execute(&mut *tx)
    .await?;
    collect_blobs(tx, tenant).await
}

/// Switch `site` to deploy `id` as `activation` says: live now, or its activating deploy
/// while a body of it waits for variants (the newest request wins). The blob row found
/// waiting is share-locked, so a worker storing its variants meanwhile either commits
/// first (and the deploy is found ready) or sees this site activating when it is done.
pub(crate) async fn switch_to(
    tx: &mut sqlx::PgConnection,
    site: SiteId,
    id: DeploymentId,
    activation: Activation,
) -> Result<()> {
    let waits = match activation {
        Activation::Stage => return Ok(()),
        Activation::Now => false,
        Activation::WhenCompressed => sqlx::query_scalar::<_, i32>(
            "SELECT 1 FROM deployment_files f JOIN blobs b \
                 ON b.tenant_id = f.tenant_id AND b.sha256 = f.sha256 \
             WHERE f.deployment_id = $1 AND NOT b.variants_done LIMIT 1 FOR SHARE OF b",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .is_some(),
    };
    let sql = match waits {
        true => {
            "UPDATE sites SET activating_deployment_id = $2, activating_since = now() WHERE id = $1"
        }
        false => {
            "UPDATE sites SET live_deployment_id = $2, activating_deployment_id = NULL, \
                 activating_since = NULL, updated_at = now() WHERE id = $1"
        }
    };
    sqlx::query(sql)
        .bind(site)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// See [`Store::activate_ready`].
pub(crate) async fn activate_ready(
    conn: &mut sqlx::PgConnection,
    waited: Option<std::time::Duration>,
) -> Result<Vec<SiteId>> {
    Ok(sqlx::query_scalar(
        "UPDATE sites s SET live_deployment_id = s.activating_deployment_id, \
             activating_deployment_id = NULL, activating_since = NULL, updated_at = now() \
         WHERE s.activating_deployment_id IS NOT NULL \
           AND (s.activating_since <= now() - make_interval(secs => $1) \
                OR NOT EXISTS (SELECT 1 FROM deployment_files f JOIN blobs b \
                                   ON b.tenant_id = f.tenant_id AND b.sha256 = f.sha256 \
                               WHERE f.deployment_id = s.activating_deployment_id \
                                 AND NOT b.variants_done)) \
         RETURNING s.id",
    )
    .bind(waited.map(|w| w.as_secs_f64()))
    .fetch_all(conn)
    .await?)
}

/// The rules of deploy `id`, from its `_redirects` and `_headers`.
async fn read_rules(tx: &mut sqlx::PgConnection, id: DeploymentId) -> Result<Rules> {
    let files: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT f.path, b.body FROM deployment_files f \
         JOIN blobs b ON b.tenant_id = f.tenant_id AND b.sha256 = f.sha256 \
         WHERE f.deployment_id = $1 AND f.path IN ($2, $3)",
    )
    .bind(id)
    .bind(REDIRECTS_FILE)
    .bind(HEADERS_FILE)
    .fetch_all(&mut *tx)
    .await?;
    let text = |name: &str| -> Result<Option<String>> {
        files
            .iter()
            .find(|(path, _)| path == name)
            .map(|(_, body)| {
                String::from_utf8(body.clone())
                    .map_err(|_| StoreError::InvalidRules(format!("{name} is not UTF-8 text")))
            })
            .transpose()
    };
    Rules::parse(
        text(REDIRECTS_FILE)?.as_deref(),
        text(HEADERS_FILE)?.as_deref(),
    )
    .map_err(StoreError::InvalidRules)
}

/// Drop the tenant's blobs that no deploy refers to.
async fn collect_blobs(tx: &mut sqlx::PgConnection, tenant: TenantId) -> Result<()> {
    sqlx::query(
        "DELETE FROM blobs b WHERE b.tenant_id = $1 AND NOT EXISTS \
             (SELECT 1 FROM deployment_files f WHERE f.tenant_id = b.tenant_id AND f.sha256 = b.sha256)",
    )
    .bind(tenant)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What the tenant's quota counts: every stored body once, plus each file of every kept
/// deploy's path, Content-Type and [`crate::FILE_OVERHEAD_BYTES`].
pub(crate) async fn stored_bytes(tx: &mut sqlx::PgConnection, tenant: TenantId) -> Result<i64> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT (SELECT COALESCE(sum(size), 0) FROM blobs WHERE tenant_id = $1)::bigint + \
             (SELECT ",
        crate::limits::row_cost_sum!(),
        " FROM deployment_files WHERE tenant_id = $1)::bigint"
    ))
    .bind(tenant)
    .fetch_one(&mut *tx)
    .await?)
}

/// Refuse (the caller rolls back) when what is stored now exceeds the quota.
pub(crate) async fn check_quota(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    before: i64,
    limits: TenantLimits,
) -> Result<()> {
    let after = stored_bytes(tx, tenant).await?;
    if after > limits.quota_bytes && after > before {
        return Err(StoreError::QuotaExceeded {
            used: before,
            quota: limits.quota_bytes,
            needed: after - before,
        });
    }
    Ok(())
}
