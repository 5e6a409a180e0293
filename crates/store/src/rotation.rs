//! Master key rotation: every sealed value opened under the key that sealed it (the current
//! or the previous master key) and sealed again under the current one, a batch per
//! transaction, so an interrupted run (even `kill -9`) loses nothing and the next run goes
//! on where it stopped.

use crate::{MasterKey, Result, Store};

/// One kind of sealed value: where it lives and the associated data it is bound to.
#[derive(Debug, Clone, Copy)]
pub struct SealedKind {
    /// What it is, for progress output.
    pub name: &'static str,
    count: &'static str,
    batch: &'static str,
    update: &'static str,
}

/// The queries for the sealed column `$col` of `$table`, keyed by `$pk`, whose associated
/// data is the SQL expression `$context` (the same text the writers seal with; see
/// `sealing`). Values still under another key are those whose key id (bytes 2 to 9) is not
/// the current key's.
macro_rules! sealed_kind {
    ($name:literal, $table:literal, $pk:literal, $col:literal, $context:literal) => {
        SealedKind {
            name: $name,
            count: concat!(
                "SELECT count(*), count(*) FILTER (WHERE substring(",
                $col,
                " FROM 2 FOR 8) <> $1) \
                 FROM ",
                $table,
                " WHERE ",
                $col,
                " IS NOT NULL"
            ),
            batch: concat!(
                "SELECT ",
                $pk,
                "::text, ",
                $context,
                ", ",
                $col,
                " FROM ",
                $table,
                " WHERE ",
                $col,
                " IS NOT NULL AND substring(",
                $col,
                " FROM 2 FOR 8) <> $1 \
                 AND NOT (",
                $pk,
                "::text = ANY($2)) \
                 ORDER BY ",
                $pk,
                " LIMIT $3 FOR UPDATE SKIP LOCKED"
            ),
            update: concat!(
                "UPDATE ",
                $table,
                " SET ",
                $col,
                " = $3 WHERE ",
                $pk,
                "::text = $1 AND ",
                $col,
                " = $2"
            ),
        }
    };
}

/// Every sealed value the database holds.
pub const SEALED_KINDS: &[SealedKind] = &[
    sealed_kind!(
        "certificate keys",
        "certificates",
        "domain_id",
        "key_sealed",
        "'cert-key:' || hostname"
    ),
    sealed_kind!(
        "keys of orders in flight",
        "domains",
        "id",
        "order_key_sealed",
        "'order-key:' || hostname"
    ),
    sealed_kind!(
        "ACME account credentials",
        "acme_accounts",
        "directory_url",
        "credentials_sealed",
        "'acme-account:' || directory_url"
    ),
    sealed_kind!(
        "webhook secrets",
        "webhooks",
        "id",
        "secret_sealed",
        "'webhook-secret:' || id"
    ),
    sealed_kind!(
        "replaced webhook secrets",
        "webhooks",
        "id",
        "previous_secret_sealed",
        "'webhook-secret:' || id"
    ),
    sealed_kind!(
        "the local CA's key",
        "local_ca",
        "id",
        "key_sealed",
        "'local-ca'"
    ),
];

/// What one batch did.
#[derive(Debug, Default)]
pub struct Resealed {
    /// Values now sealed under the current key.
    pub resealed: u64,
    /// Values neither key opens (`(row, why)`): left as they are, and not offered again
    /// to this run.
    pub unreadable: Vec<(String, String)>,
}

impl Store {
    /// `(all, still under another key)` values of `kind`.
    pub async fn sealed_count(&self, kind: &SealedKind, key: &MasterKey) -> Result<(i64, i64)> {
        Ok(sqlx::query_as(kind.count)
            .bind(key.id_bytes().as_slice())
            .fetch_one(&self.pool)
            .await?)
    }

    /// Seal up to `limit` values of `kind` again under the current key, in one transaction
    /// (rows other processes are writing are skipped, and taken by a later batch). `skip`:
    /// rows found unreadable before.
    pub async fn reseal_batch(
        &self,
        kind: &SealedKind,
        key: &MasterKey,
        skip: &[String],
        limit: i64,
    ) -> Result<Resealed> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(kind.batch)
            .bind(key.id_bytes().as_slice())
            .bind(skip)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let mut out = Resealed::default();
        for (row, context, sealed) in rows {
            match key.open(&sealed, &context) {
                Ok(plain) => {
                    sqlx::query(kind.update)
                        .bind(&row)
                        .bind(&sealed)
                        .bind(key.seal(&plain, &context))
                        .execute(&mut *tx)
                        .await?;
                    out.resealed += 1;
                }
                Err(e) => out.unreadable.push((row, e.to_string())),
            }
        }
        tx.commit().await?;
        Ok(out)
    }
}
