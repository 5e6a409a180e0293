//! Tenants and their API keys.

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, Store};

/// The id of a tenant, obtained only from a successful authentication or creation, so a
/// `TenantId` in a handler always means "the caller".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[sqlx(transparent)]
pub struct TenantId(pub Uuid);

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A freshly minted API key. The secret exists only in this value: the database keeps
/// its SHA-256.
pub struct ApiKey {
    pub secret: String,
}

/// Keys look like `ll_` + 64 hex characters (256 random bits).
const KEY_PREFIX: &str = "ll_";

impl ApiKey {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            secret: format!("{KEY_PREFIX}{}", hex::encode(bytes)),
        }
    }

    fn hash(secret: &str) -> Vec<u8> {
        Sha256::digest(secret.as_bytes()).to_vec()
    }

    /// First characters, safe to show and log.
    fn display_prefix(secret: &str) -> String {
        secret.chars().take(KEY_PREFIX.len() + 8).collect()
    }
}

impl Store {
    /// Create a tenant with one API key; returns the key's secret, which is never
    /// retrievable again.
    pub async fn create_tenant(&self, name: &str) -> Result<(Tenant, ApiKey)> {
        let key = ApiKey::generate();
        let mut tx = self.pool.begin().await?;
        let tenant: Tenant = sqlx::query_as(
            "INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING id, name, created_at",
        )
        .bind(Uuid::now_v7())
        .bind(name)
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
        tx.commit().await?;
        Ok((tenant, key))
    }

    /// The tenant an API key belongs to, if the key is known and not revoked.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<TenantId>> {
        if !secret.starts_with(KEY_PREFIX) || secret.len() > 200 {
            return Ok(None);
        }
        let id: Option<Uuid> = sqlx::query_scalar(
            "SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(ApiKey::hash(secret))
        .fetch_optional(&self.pool)
        .await?;
        Ok(id.map(TenantId))
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
        .bind(tenant.0)
        .bind(ApiKey::display_prefix(&key.secret))
        .bind(ApiKey::hash(&key.secret))
        .execute(&self.pool)
        .await?;
        Ok(key)
    }
}
