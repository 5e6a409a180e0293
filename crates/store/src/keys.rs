//! A tenant's API keys: several per tenant, named, listed and revoked.
//!
//! Only SHA-256 of a key is stored ([`ApiKey`]); revoking sets `revoked_at`, and
//! authentication reads the row on every request, so a revocation holds at once on every
//! API process.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::limits::lock_tenant;
use crate::tenants::ApiKey;
use crate::{Limit, Result, Store, StoreError, TenantId};

/// A key as its owner may see it: never the secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct KeyRecord {
    pub id: Uuid,
    pub name: Option<String>,
    /// `ll_` and the first 8 hex characters: enough to tell keys apart, useless to sign in.
    pub prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Refreshed at most once a minute.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

/// A key's optional name: at most 100 characters without control characters; surrounding
/// whitespace is trimmed, and an empty name is no name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(Option<String>);

impl KeyName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: Option<&str>) -> std::result::Result<Self, String> {
        let Some(raw) = raw else {
            return Ok(Self(None));
        };
        if raw.chars().count() > Self::MAX_CHARS || raw.chars().any(char::is_control) {
            return Err(format!(
                "a key name is at most {} characters without control characters",
                Self::MAX_CHARS
            ));
        }
        let name = raw.trim();
        Ok(Self((!name.is_empty()).then(|| name.to_owned())))
    }

    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// What revoking a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    /// No such live key of the caller's.
    NotFound,
    /// It is the tenant's last live key: revoking it would lock the account out.
    LastKey,
}

/// The columns of a [`KeyRecord`].
macro_rules! key_columns {
    () => {
        "id, name, prefix, created_at, last_used_at"
    };
}

impl Store {
    /// A new key for `tenant`, refused past `max_keys` live keys; the secret is in the
    /// returned [`ApiKey`] only.
    pub async fn create_api_key(
        &self,
        tenant: TenantId,
        name: &KeyName,
        max_keys: i64,
    ) -> Result<(KeyRecord, ApiKey)> {
        let key = ApiKey::generate();
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL",
        )
        .bind(tenant)
        .fetch_one(&mut *tx)
        .await?;
        if live >= max_keys {
            return Err(StoreError::LimitReached {
                limit: Limit::ApiKeys,
                max: max_keys,
            });
        }
        let record: KeyRecord = sqlx::query_as(concat!(
            "INSERT INTO api_keys (id, tenant_id, prefix, key_hash, name) \
             VALUES ($1, $2, $3, $4, $5) RETURNING ",
            key_columns!()
        ))
        .bind(Uuid::now_v7())
        .bind(tenant)
        .bind(ApiKey::display_prefix(&key.secret))
        .bind(ApiKey::hash(&key.secret))
        .bind(name.as_deref())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((record, key))
    }

    /// The tenant's live keys, oldest first.
    pub async fn api_keys(&self, tenant: TenantId) -> Result<Vec<KeyRecord>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL ORDER BY id"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revoke one of the tenant's keys (never its last).
    pub async fn revoke_api_key(&self, tenant: TenantId, id: Uuid) -> Result<Revocation> {
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, tenant).await?;
        let live: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL",
        )
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?;
        if !live.contains(&id) {
            return Ok(Revocation::NotFound);
        }
        if live.len() == 1 {
            return Ok(Revocation::LastKey);
        }
        sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Revocation::Revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_trimmed() {
        assert_eq!(KeyName::parse(None).unwrap().as_deref(), None);
        assert_eq!(KeyName::parse(Some("  ")).unwrap().as_deref(), None);
        assert_eq!(KeyName::parse(Some(" ci ")).unwrap().as_deref(), Some("ci"));
        assert!(KeyName::parse(Some("a\nb")).is_err());
        assert!(KeyName::parse(Some(&"x".repeat(101))).is_err());
        assert!(KeyName::parse(Some(&"é".repeat(100))).is_ok());
    }
}
