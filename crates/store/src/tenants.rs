//! Tenants and their API keys.

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Budget, Result, Store};

/// The id of a tenant, obtained only from the database (an authentication, a creation,
/// a row naming its tenant), so a `TenantId` in a handler always means "the caller".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, sqlx::Type)]
#[sqlx(transparent)]
pub struct TenantId(Uuid);

impl TenantId {
    /// Only the store mints ids, from what the database holds or was just given.
    pub(crate) fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// Any id, for unit tests that need one without a database.
    #[cfg(feature = "testing")]
    pub fn for_tests(id: Uuid) -> Self {
        Self(id)
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Who a request's API key belongs to, and whether its tenant's request rate allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authenticated {
    /// Unknown or revoked key.
    Unknown,
    Tenant(TenantId),
    /// Over the request rate: retry after this long.
    Limited(TenantId, std::time::Duration),
    /// The tenant is suspended by the operator.
    Suspended(TenantId),
}

/// A freshly minted API key. The secret exists only in this value: the database keeps
/// its SHA-256.
pub struct ApiKey {
    pub secret: String,
}

/// A CTE (after `k`, the authenticated key) that records the key's use, at most once a
/// minute so busy keys do not write on every request.
macro_rules! touch_key {
    () => {
        "touched AS (UPDATE api_keys SET last_used_at = now() \
         WHERE id = (SELECT id FROM k) \
         AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute'))"
    };
}

/// Keys look like `ll_` + 64 hex characters (256 random bits).
const KEY_PREFIX: &str = "ll_";

impl ApiKey {
    pub(crate) fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            secret: format!("{KEY_PREFIX}{}", hex::encode(bytes)),
        }
    }

    pub(crate) fn hash(secret: &str) -> Vec<u8> {
        Sha256::digest(secret.as_bytes()).to_vec()
    }

    /// First characters, safe to show and log.
    pub fn display_prefix(secret: &str) -> String {
        secret.chars().take(KEY_PREFIX.len() + 8).collect()
    }
}

/// A tenant's display name: 1 to 200 characters without control characters, not only
/// whitespace; surrounding whitespace is trimmed. The one rule for the CLI and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    /// The longest name, in characters (counted as sent, before trimming).
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> std::result::Result<Self, String> {
        let name = raw.trim();
        if name.is_empty()
            || raw.chars().count() > Self::MAX_CHARS
            || raw.chars().any(char::is_control)
        {
            return Err(format!(
                "the tenant name must be 1 to {} characters without control characters",
                Self::MAX_CHARS
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Store {
    /// Create a tenant with one API key; returns the key's secret, which is never
    /// retrievable again.
    pub async fn create_tenant(&self, name: &TenantName) -> Result<(Tenant, ApiKey)> {
        let key = ApiKey::generate();
        let mut tx = self.pool.begin().await?;
        let tenant: Tenant = sqlx::query_as(
            "INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING id, name, created_at",
        )
        .bind(Uuid::now_v7())
        .bind(name.as_str())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, prefix, key_hash) VALUES ($1, $2, $3, $4)",
        )
        .bind(Uuid::now_v7())
        .bind(tenant.id)
        .bind(ApiKey::display_prefix(&key.secret))
        .bind(ApiKey::hash(&key.secret))
        .execute(&mut *tx)
        .await?;
        let name = crate::SiteName::parse(crate::SiteName::DEFAULT).expect("a valid name");
        crate::sites::insert_site(&mut tx, tenant.id, &name, true, None).await?;
        tx.commit().await?;
        Ok((tenant, key))
    }

    /// With `LANDLORD_PLATFORM_DOMAIN`: make sure the platform's own tenant holds the
    /// registration `*.<platform domain>` (certified and renewed by the workers like any
    /// other, through DNS-01 in the platform's zone), and nothing else (a platform domain
    /// changed since is dropped). The tenant has no API key. Safe to run from every worker
    /// at once.
    pub async fn ensure_platform_wildcard(&self, wildcard: &crate::Hostname) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('landlord_platform_tenant'))")
            .execute(&mut *tx)
            .await?;
        let existing: Option<crate::TenantId> =
            sqlx::query_scalar("SELECT id FROM tenants WHERE platform")
                .fetch_optional(&mut *tx)
                .await?;
        let tenant = match existing {
            Some(id) => id,
            None => {
                let id: crate::TenantId = sqlx::query_scalar(
                    "INSERT INTO tenants (id, name, platform) VALUES ($1, 'Platform subdomains', true) RETURNING id",
                )
                .bind(Uuid::now_v7())
                .fetch_one(&mut *tx)
                .await?;
                let name = crate::SiteName::parse(crate::SiteName::DEFAULT).expect("a valid name");
                crate::sites::insert_site(&mut tx, id, &name, true, None).await?;
                id
            }
        };
        sqlx::query("DELETE FROM domains WHERE tenant_id = $1 AND hostname <> $2")
            .bind(tenant)
            .bind(wildcard)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        match self.create_domain(tenant, wildcard, None, i64::MAX).await {
            Ok(_) => Ok(()),
            Err(crate::StoreError::HostnameTaken(_)) => {
                let holder: Option<crate::TenantId> =
                    sqlx::query_scalar("SELECT tenant_id FROM domains WHERE hostname = $1")
                        .bind(wildcard)
                        .fetch_optional(&self.pool)
                        .await?;
                match holder {
                    Some(t) if t != tenant => Err(crate::StoreError::HostnameTaken(format!(
                        "{wildcard} is registered by tenant {t}, so platform subdomains cannot be certified: delete that registration"
                    ))),
                    _ => Ok(()),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The tenant an API key belongs to, if the key is known and not revoked.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<TenantId>> {
        Ok(match self.authenticate_metered(secret, None).await? {
            Authenticated::Unknown => None,
            Authenticated::Tenant(t)
            | Authenticated::Limited(t, _)
            | Authenticated::Suspended(t) => Some(t),
        })
    }

    /// Authenticate an API key and charge one request to its tenant's `rate` (`None`:
    /// unmetered), in one statement. The rate is a GCRA (the generic cell rate algorithm
    /// of ATM networks, as in Redis-Cell or Stripe's limiter): `limit` requests per
    /// `window` on average, and never more than `limit` in any `window`. A refused
    /// request is not charged.
    pub async fn authenticate_metered(
        &self,
        secret: &str,
        rate: Option<Budget>,
    ) -> Result<Authenticated> {
        if !secret.starts_with(KEY_PREFIX) || secret.len() > 200 {
            return Ok(Authenticated::Unknown);
        }
        let hash = ApiKey::hash(secret);
        let Some(rate) = rate else {
            let row: Option<(TenantId, bool)> = sqlx::query_as(concat!(
                "WITH k AS (SELECT k.id, k.tenant_id, t.suspended_at IS NOT NULL AS suspended \
                     FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
                     WHERE k.key_hash = $1 AND k.revoked_at IS NULL), ",
                touch_key!(),
                " SELECT tenant_id, suspended FROM k"
            ))
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
            return Ok(match row {
                None => Authenticated::Unknown,
                Some((t, true)) => Authenticated::Suspended(t),
                Some((t, false)) => Authenticated::Tenant(t),
            });
        };
        // Emission interval T = window / limit; tolerance tau = window - T. A request at
        // `now` fits when max(tat, now) - now <= tau, and moves tat on by T.
        let interval = rate.window.as_secs_f64() / f64::from(rate.limit.max(1));
        let tolerance = rate.window.as_secs_f64() - interval;
        let row: Option<(TenantId, bool, bool, f64)> = sqlx::query_as(concat!(
            "WITH k AS (SELECT k.id, k.tenant_id, t.suspended_at IS NOT NULL AS suspended \
                 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
                 WHERE k.key_hash = $1 AND k.revoked_at IS NULL), ",
            touch_key!(),
            ", charged AS ( \
                 INSERT INTO api_rate AS r (tenant_id, tat) \
                 SELECT tenant_id, now() + make_interval(secs => $2) FROM k WHERE NOT suspended \
                 ON CONFLICT (tenant_id) DO UPDATE \
                     SET tat = GREATEST(r.tat, now()) + make_interval(secs => $2) \
                     WHERE GREATEST(r.tat, now()) - now() <= make_interval(secs => $3) \
                 RETURNING tenant_id) \
             SELECT k.tenant_id, k.suspended, EXISTS (SELECT 1 FROM charged), \
                 COALESCE((SELECT EXTRACT(EPOCH FROM r.tat - now())::float8 - $3 \
                     FROM api_rate r WHERE r.tenant_id = k.tenant_id), 0) \
             FROM k"
        ))
        .bind(hash)
        .bind(interval)
        .bind(tolerance)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            None => Authenticated::Unknown,
            Some((tenant, true, _, _)) => Authenticated::Suspended(tenant),
            Some((tenant, false, true, _)) => Authenticated::Tenant(tenant),
            Some((tenant, false, false, wait)) => {
                Authenticated::Limited(tenant, std::time::Duration::from_secs_f64(wait.max(0.0)))
            }
        })
    }

    /// The first tenant with this name, for `landlord dev`'s demo tenant.
    pub async fn tenant_by_name(&self, name: &str) -> Result<Option<Tenant>> {
        Ok(sqlx::query_as(
            "SELECT id, name, created_at FROM tenants WHERE name = $1 ORDER BY id LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Issue an additional key for an existing tenant (used by `landlord dev` to print a
    /// usable key on every start without storing one in clear).
    pub async fn issue_api_key(&self, tenant: TenantId) -> Result<ApiKey> {
        let key = ApiKey::generate();
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, prefix, key_hash) VALUES ($1, $2, $3, $4)",
        )
        .bind(Uuid::now_v7())
        .bind(tenant)
        .bind(ApiKey::display_prefix(&key.secret))
        .bind(ApiKey::hash(&key.secret))
        .execute(&self.pool)
        .await?;
        Ok(key)
    }
}
