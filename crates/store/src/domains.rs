//! Domains: registration, listing, deletion, and the tenant's "check now".

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::limits::{Limit, lock_tenant};
use crate::{DomainId, Hostname, Result, SiteId, Store, StoreError, TenantId, WAKE_CHANNEL};

/// Where a domain is in its life; see the contract's status table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum DomainStatus {
    PendingDns,
    Issuing,
    Active,
    Failed,
    Moved,
}

/// A domain row as the API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Domain {
    pub id: DomainId,
    pub tenant_id: TenantId,
    pub hostname: Hostname,
    pub status: DomainStatus,
    pub checked_at: Option<OffsetDateTime>,
    pub check_found: Option<serde_json::Value>,
    pub check_problem: Option<String>,
    pub last_error: Option<String>,
    pub next_attempt_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub cert_not_before: Option<OffsetDateTime>,
    pub cert_not_after: Option<OffsetDateTime>,
    pub cert_issuer: Option<String>,
    pub cert_serial: Option<String>,
    pub cert_renew_at: Option<OffsetDateTime>,
    pub cert_ari_window_start: Option<OffsetDateTime>,
    pub cert_ari_window_end: Option<OffsetDateTime>,
    pub cert_ari_explanation_url: Option<String>,
    pub cert_ari_checked_at: Option<OffsetDateTime>,
    pub queued_reason: Option<String>,
    pub queued_until: Option<OffsetDateTime>,
    /// This registration's own CNAME target is `<target_label>.<LANDLORD_CNAME_TARGET>`.
    pub target_label: String,
    /// Registered before per-domain targets: the bare shared target verifies it too.
    pub shared_target_ok: bool,
    /// The TXT value that proves control of a name pointed with A/AAAA records.
    pub ownership_token: String,
    pub ownership_verified_at: Option<OffsetDateTime>,
    /// The site it serves.
    pub site_id: SiteId,
    /// Its delegated-DCV label: `_acme-challenge.<name>` may point at
    /// `<dcv_label>.<LANDLORD_ACME_DNS_ZONE>` (see [`dcv_name`]).
    pub dcv_label: Option<String>,
    /// The last check found that CNAME.
    pub dcv_verified_at: Option<OffsetDateTime>,
}

/// The name delegated DCV is about: the hostname without a leading `*.` (a wildcard and its
/// base name share `_acme-challenge.<name>`).
pub fn dcv_name(hostname: &str) -> &str {
    hostname.strip_prefix("*.").unwrap_or(hostname)
}

/// The TXT record name that proves control of `hostname` (exactly that name: a record on
/// a parent does not cover its subdomains).
pub fn ownership_record_name(hostname: &str) -> String {
    format!("_landlord.{hostname}")
}

/// What the API shows of a domain's current certificate.
#[derive(Debug, Clone)]
pub struct CertificateSummary {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub issuer: String,
    pub serial: String,
    pub renew_at: OffsetDateTime,
    /// The CA's suggested renewal window (RFC 9773), when it offers one.
    pub renewal_window: Option<RenewalWindow>,
}

/// What the CA's renewal information said at the last poll.
#[derive(Debug, Clone)]
pub struct RenewalWindow {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub explanation_url: Option<String>,
    pub checked_at: OffsetDateTime,
}

impl Domain {
    /// The certificate being served, if the domain has one.
    pub fn certificate(&self) -> Option<CertificateSummary> {
        Some(CertificateSummary {
            not_before: self.cert_not_before?,
            not_after: self.cert_not_after?,
            issuer: self.cert_issuer.clone()?,
            serial: self.cert_serial.clone()?,
            renew_at: self.cert_renew_at?,
            renewal_window: (|| {
                Some(RenewalWindow {
                    start: self.cert_ari_window_start?,
                    end: self.cert_ari_window_end?,
                    explanation_url: self.cert_ari_explanation_url.clone(),
                    checked_at: self.cert_ari_checked_at?,
                })
            })(),
        })
    }
}

/// One page of a cursor-paginated listing.
#[derive(Debug)]
pub struct Page<T, C = DomainId> {
    pub items: Vec<T>,
    /// Pass back as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<C>,
}

impl Store {
    /// A page of the tenant's rows: `sql` takes the tenant (`$1`), the cursor (`$2`, NULL
    /// for the first page) and how many rows to fetch (`$3`), in cursor order; one row
    /// more than `limit` is fetched to learn whether there is a next page.
    pub(crate) async fn page<T, C>(
        &self,
        sql: &'static str,
        tenant: TenantId,
        cursor: Option<C>,
        limit: u32,
        cursor_of: fn(&T) -> C,
    ) -> Result<Page<T, C>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
        C: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
    {
        let mut items = sqlx::query_as::<_, T>(sql)
            .bind(tenant)
            .bind(cursor)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let next_cursor = match items.len() > limit as usize {
            true => {
                items.truncate(limit as usize);
                items.last().map(cursor_of)
            }
            false => None,
        };
        Ok(Page { items, next_cursor })
    }
}

/// The columns of [`Domain`], as a macro so queries stay `&'static str` (sqlx audits
/// dynamic SQL strings).
/// Every query reads `domains d` (or a CTE `d`) joined as [`domain_joins`] says.
/// What [`domain_columns`] reads besides `d`: its certificate, and its delegated-DCV label
/// (by [`dcv_name`], in SQL).
macro_rules! domain_joins {
    () => {
        " LEFT JOIN certificates c ON c.domain_id = d.id \
         LEFT JOIN dcv_labels l ON l.tenant_id = d.tenant_id \
             AND l.name = regexp_replace(d.hostname, '^\\*\\.', '') "
    };
}

macro_rules! domain_columns {
    () => {
        "d.id, d.tenant_id, d.hostname, d.status, d.checked_at, d.check_found, \
         d.check_problem, d.last_error, d.next_attempt_at, d.created_at, d.updated_at, \
         c.not_before AS cert_not_before, c.not_after AS cert_not_after, \
         c.issuer AS cert_issuer, c.serial AS cert_serial, c.renew_at AS cert_renew_at, \
         c.ari_window_start AS cert_ari_window_start, c.ari_window_end AS cert_ari_window_end, \
         c.ari_explanation_url AS cert_ari_explanation_url, \
         c.ari_checked_at AS cert_ari_checked_at, d.queued_reason, d.queued_until, \
         d.target_label, d.shared_target_ok, d.ownership_token, d.ownership_verified_at, \
         d.site_id, l.label AS dcv_label, l.verified_at AS dcv_verified_at"
    };
}

impl Store {
    /// Register `hostname` for `tenant`. Uniqueness across all tenants is enforced by the
    /// database, so two concurrent registrations cannot both succeed.
    /// At most `max_domains` per tenant, counted under the tenant's row lock.
    pub async fn create_domain(
        &self,
        tenant: TenantId,
        hostname: &Hostname,
        site: Option<SiteId>,
        max_domains: i64,
    ) -> Result<Domain> {
        let mut tx = self.pool.begin().await?;
        let message = format!("{hostname} was added. Waiting for its DNS to point at us.");
        let new = NewDomain {
            tenant,
            hostname,
            site,
            verified: false,
        };
        match insert_domain(&mut tx, new, max_domains, &message).await {
            Ok(domain) => {
                tx.commit().await?;
                Ok(domain)
            }
            Err(StoreError::HostnameTaken(_)) => {
                drop(tx);
                let holder: Option<(DomainId, TenantId)> =
                    sqlx::query_as("SELECT id, tenant_id FROM domains WHERE hostname = $1")
                        .bind(hostname.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                Err(match holder {
                    Some((id, owner)) if owner == tenant => {
                        StoreError::HostnameAlreadyYours(hostname.to_string(), id)
                    }
                    _ => StoreError::HostnameTaken(hostname.to_string()),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The caller's domains in creation order, `limit` at a time after `cursor`.
    pub async fn list_domains(
        &self,
        tenant: TenantId,
        limit: u32,
        cursor: Option<DomainId>,
    ) -> Result<Page<Domain>> {
        const SQL: &str = concat!(
            "SELECT ",
            domain_columns!(),
            " FROM domains d ",
            domain_joins!(),
            " WHERE d.tenant_id = $1 AND ($2::uuid IS NULL OR d.id > $2) \
             ORDER BY d.id LIMIT $3"
        );
        self.page(SQL, tenant, cursor, limit, |d: &Domain| d.id)
            .await
    }

    /// One of the caller's domains; `None` for unknown ids and other tenants' ids alike.
    pub async fn get_domain(&self, tenant: TenantId, id: DomainId) -> Result<Option<Domain>> {
        Ok(sqlx::query_as::<_, Domain>(concat!(
            "SELECT ",
            domain_columns!(),
            " FROM domains d ",
            domain_joins!(),
            " WHERE d.id = $1 AND d.tenant_id = $2"
        ))
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Delete one of the caller's domains; false when it is not theirs (or not there).
    /// Events go with it (ON DELETE CASCADE); the change trigger tells every edge.
    pub async fn delete_domain(&self, tenant: TenantId, id: DomainId) -> Result<bool> {
        // A site naming it canonical does not any more.
        let deleted: i64 = sqlx::query_scalar(
            "WITH d AS (DELETE FROM domains WHERE id = $1 AND tenant_id = $2 \
                        RETURNING site_id, hostname), \
                  c AS (UPDATE sites s SET canonical_hostname = NULL FROM d \
                        WHERE s.id = d.site_id AND s.canonical_hostname = d.hostname RETURNING 1) \
             SELECT count(*) FROM d",
        )
        .bind(id)
        .bind(tenant)
        .fetch_one(&self.pool)
        .await?;
        Ok(deleted == 1)
    }

    /// "Check now": make the domain due immediately and wake the workers, at most once
    /// per `interval` per domain (counted in PostgreSQL, so across every API process).
    /// `None` when the domain is not the caller's.
    pub async fn request_check(
        &self,
        tenant: TenantId,
        id: DomainId,
        interval: Duration,
    ) -> Result<Option<Domain>> {
        let mut tx = self.pool.begin().await?;
        let domain = sqlx::query_as::<_, Domain>(concat!(
            "WITH d AS (UPDATE domains SET next_attempt_at = now(), check_requested_at = now(), \
                 updated_at = now() \
             WHERE id = $1 AND tenant_id = $2 AND (check_requested_at IS NULL \
                 OR check_requested_at <= now() - make_interval(secs => $3)) RETURNING *) SELECT ",
            domain_columns!(),
            " FROM d ",
            domain_joins!()
        ))
        .bind(id)
        .bind(tenant)
        .bind(interval.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(d) = domain else {
            // Not the caller's, or asked too recently: which?
            let wait: Option<f64> = sqlx::query_scalar(
                "SELECT GREATEST(0, EXTRACT(EPOCH FROM check_requested_at \
                     + make_interval(secs => $3) - now()))::float8 \
                 FROM domains WHERE id = $1 AND tenant_id = $2",
            )
            .bind(id)
            .bind(tenant)
            .bind(interval.as_secs_f64())
            .fetch_optional(&mut *tx)
            .await?;
            return match wait {
                None => Ok(None),
                Some(secs) => Err(StoreError::TooSoon {
                    interval,
                    retry_after: Duration::from_secs_f64(secs),
                }),
            };
        };
        crate::events::record(
            &mut tx,
            d.id,
            tenant,
            crate::EventKind::CheckRequested,
            "A DNS check was requested.",
        )
        .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(WAKE_CHANNEL)
            .bind(d.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(d))
    }
}

/// A registration about to be inserted.
pub(crate) struct NewDomain<'a> {
    pub tenant: TenantId,
    pub hostname: &'a Hostname,
    /// One of the tenant's sites; `None`: its default site.
    pub site: Option<SiteId>,
    /// Its ownership is already proved (a claim won through DNS).
    pub verified: bool,
}

/// Insert a domain inside the caller's transaction: the per-tenant count, the site and
/// the blocks are checked under the tenant's row lock. Wakes the workers on commit.
pub(crate) async fn insert_domain(
    tx: &mut sqlx::PgConnection,
    new: NewDomain<'_>,
    max_domains: i64,
    message: &str,
) -> Result<Domain> {
    let NewDomain {
        tenant,
        hostname,
        site,
        verified,
    } = new;
    lock_tenant(tx, tenant).await?;
    let site = match site {
        Some(site) => owned_site(tx, tenant, site).await?,
        None => crate::files::default_site(tx, tenant).await?.0,
    };
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM domains WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&mut *tx)
        .await?;
    if held >= max_domains {
        return Err(StoreError::LimitReached {
            limit: Limit::Domains,
            max: max_domains,
        });
    }
    let blocked: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM blocked_hostnames WHERE hostname = $1 \
             OR (subdomains AND right($1, length(hostname) + 1) = '.' || hostname))",
    )
    .bind(hostname.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if blocked {
        return Err(StoreError::HostnameBlocked(hostname.to_string()));
    }
    // The name's delegated-DCV label, kept when the name is deleted and registered again.
    sqlx::query("INSERT INTO dcv_labels (tenant_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(tenant)
        .bind(dcv_name(hostname.as_str()))
        .execute(&mut *tx)
        .await?;
    // DO NOTHING rather than an error: a lost race for the name leaves the transaction usable.
    let inserted = sqlx::query_as::<_, Domain>(concat!(
        "WITH d AS (INSERT INTO domains (id, tenant_id, hostname, ownership_verified_at, site_id) \
         VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END, $5) \
         ON CONFLICT ON CONSTRAINT domains_hostname_unique DO NOTHING RETURNING *) SELECT ",
        domain_columns!(),
        " FROM d ",
        domain_joins!()
    ))
    .bind(DomainId::new())
    .bind(tenant)
    .bind(hostname.as_str())
    .bind(verified)
    .bind(site)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(domain) = inserted else {
        return Err(StoreError::HostnameTaken(hostname.to_string()));
    };
    crate::events::record(tx, domain.id, tenant, crate::EventKind::Created, message).await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(WAKE_CHANNEL)
        .bind(domain.id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(domain)
}

/// `site` when it is one of `tenant`'s, else [`StoreError::NoSuchSite`].
pub(crate) async fn owned_site(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    site: SiteId,
) -> Result<SiteId> {
    sqlx::query_scalar("SELECT id FROM sites WHERE id = $1 AND tenant_id = $2")
        .bind(site)
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NoSuchSite)
}

impl Store {
    /// Serve one of the caller's sites on one of its domains (edges switch within a poll);
    /// `None` for a domain that is not theirs.
    pub async fn move_domain(
        &self,
        tenant: TenantId,
        id: DomainId,
        site: SiteId,
    ) -> Result<Option<Domain>> {
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        let mine: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM domains WHERE id = $1 AND tenant_id = $2)",
        )
        .bind(id)
        .bind(tenant)
        .fetch_one(&mut *tx)
        .await?;
        if !mine {
            return Ok(None);
        }
        let site = owned_site(&mut tx, tenant, site).await?;
        // The site it leaves may name it canonical: not any more.
        sqlx::query(
            "UPDATE sites s SET canonical_hostname = NULL FROM domains d \
             WHERE d.id = $1 AND s.id = d.site_id AND s.canonical_hostname = d.hostname \
               AND d.site_id <> $2",
        )
        .bind(id)
        .bind(site)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE domains SET site_id = $3, updated_at = now() \
             WHERE id = $1 AND tenant_id = $2 AND site_id <> $3",
        )
        .bind(id)
        .bind(tenant)
        .bind(site)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.get_domain(tenant, id).await
    }
}

impl Store {
    /// Record whether `_acme-challenge.<name>` was found delegated to the tenant's label
    /// (kept from the first check that found it while it stays); true when that changed.
    pub async fn set_dcv_verified(
        &self,
        tenant: TenantId,
        hostname: &Hostname,
        verified: bool,
    ) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE dcv_labels SET verified_at = CASE WHEN $3 THEN COALESCE(verified_at, now()) END \
             WHERE tenant_id = $1 AND name = $2 AND (verified_at IS NULL) = $3",
        )
        .bind(tenant)
        .bind(dcv_name(hostname.as_str()))
        .bind(verified)
        .execute(&self.pool)
        .await?;
        Ok(changed.rows_affected() > 0)
    }
}
