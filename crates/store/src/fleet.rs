//! The edge fleet: heartbeats written through the primary, the freshness of an edge's data
//! source (a hot standby replays behind the primary), and the schema range an edge binary
//! can read (rolling upgrades).

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Result, Store};

/// The oldest schema (migration version) this binary's edge can read: it selects
/// `sites.slug` and `sites.held` (migration 13).
pub const EDGE_MIN_SCHEMA: i64 = 13;

/// What an edge's database says about its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaState {
    /// The newest migration applied.
    pub applied: i64,
    /// The oldest migration an edge binary must know to read it.
    pub edge_compatible_from: i64,
}

impl SchemaState {
    /// Why an edge knowing migrations up to `known` cannot serve from this schema.
    pub fn edge_refusal(&self, known: i64) -> Option<String> {
        if self.applied < EDGE_MIN_SCHEMA {
            return Some(format!(
                "the database schema is at migration {}, older than this edge reads (migration {EDGE_MIN_SCHEMA} at least): run `landlord migrate` against the primary first",
                self.applied
            ));
        }
        if self.edge_compatible_from > known {
            return Some(format!(
                "the database was migrated to {}, which edges that do not know migration {} cannot read; this edge knows migrations up to {known}: upgrade it",
                self.applied, self.edge_compatible_from
            ));
        }
        None
    }
}

/// How fresh a connection's data is (see [`Store::sync_point`]).
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct SyncPoint {
    /// `None` on a standby that has replayed nothing yet.
    pub at: Option<OffsetDateTime>,
    pub lag_seconds: Option<f64>,
    pub latest: i64,
}

/// An edge's report of itself.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub id: Uuid,
    pub name: String,
    pub region: String,
    pub read_only: bool,
    pub position: i64,
    pub synced_at: Option<OffsetDateTime>,
    pub replay_lag_seconds: Option<f64>,
}

/// An edge as operators and the worker see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EdgeStatus {
    pub id: Uuid,
    pub name: String,
    pub region: String,
    pub read_only: bool,
    pub started_at: OffsetDateTime,
    pub seen_at: OffsetDateTime,
    pub position: i64,
    pub synced_at: Option<OffsetDateTime>,
    pub replay_lag_seconds: Option<f64>,
    /// Changes in the log past its position.
    pub behind: i64,
    /// It reported within the live window.
    pub live: bool,
}

/// An edge that has not reported for this long is not waited for (gone, or cut off from
/// the primary).
pub const EDGE_LIVE_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

impl Store {
    /// Whether this connection's server is a hot standby (read-only, replaying).
    pub async fn in_recovery(&self) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The schema's migration state (`None`: not migrated at all).
    pub async fn schema_state(&self) -> Result<Option<SchemaState>> {
        let (migrations, compat): (bool, bool) = sqlx::query_as(
            "SELECT to_regclass('_sqlx_migrations') IS NOT NULL, to_regclass('schema_compat') IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        if !migrations {
            return Ok(None);
        }
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        let Some(applied) = applied else {
            return Ok(None);
        };
        let edge_compatible_from = match compat {
            true => sqlx::query_scalar("SELECT edge_compatible_from FROM schema_compat")
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
            false => 0,
        };
        Ok(Some(SchemaState {
            applied,
            edge_compatible_from,
        }))
    }

    /// This connection's data as of when: on a standby the commit time of the last
    /// transaction replayed (and how far that is behind now), on the primary now(); and
    /// the newest change in its log.
    pub async fn sync_point(&self) -> Result<SyncPoint> {
        Ok(sqlx::query_as(
            "SELECT CASE WHEN pg_is_in_recovery() \
                 THEN pg_last_xact_replay_timestamp() ELSE now() END AS at, \
             CASE WHEN pg_is_in_recovery() \
                 THEN GREATEST(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, 0) END AS lag_seconds, \
             (SELECT GREATEST(COALESCE(max(seq), 0), (SELECT pruned_through FROM change_log_horizon)) \
                 FROM changes) AS latest",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Record an edge's heartbeat (on the primary).
    pub async fn edge_heartbeat(&self, beat: &Heartbeat) -> Result<()> {
        sqlx::query(
            "INSERT INTO edges (id, name, region, read_only, position, synced_at, replay_lag_seconds) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET seen_at = now(), position = $5, synced_at = $6, \
                 replay_lag_seconds = $7, read_only = $4",
        )
        .bind(beat.id)
        .bind(&beat.name)
        .bind(&beat.region)
        .bind(beat.read_only)
        .bind(beat.position)
        .bind(beat.synced_at)
        .bind(beat.replay_lag_seconds)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every edge that reported in the last day, live ones first.
    pub async fn edges(&self) -> Result<Vec<EdgeStatus>> {
        Ok(sqlx::query_as(
            "SELECT e.id, e.name, e.region, e.read_only, e.started_at, e.seen_at, e.position, \
                 e.synced_at, e.replay_lag_seconds, \
                 GREATEST((SELECT COALESCE(max(seq), 0) FROM changes) - e.position, 0) AS behind, \
                 e.seen_at > now() - make_interval(secs => $1) AS live \
             FROM edges e WHERE e.seen_at > now() - interval '1 day' \
             ORDER BY live DESC, e.region, e.name",
        )
        .bind(EDGE_LIVE_WINDOW.as_secs_f64())
        .fetch_all(&self.pool)
        .await?)
    }

    /// The database's clock (statement start): after a commit, every live edge whose
    /// `synced_at` reaches it has that commit in memory.
    pub async fn db_now(&self) -> Result<OffsetDateTime> {
        Ok(sqlx::query_scalar("SELECT now()")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Live read-only edges that have not synced up to `at` yet. An edge on the primary
    /// is never behind a commit: a challenge it has not loaded yet is looked up there.
    pub async fn edges_behind(&self, at: OffsetDateTime) -> Result<Vec<EdgeStatus>> {
        Ok(self
            .edges()
            .await?
            .into_iter()
            .filter(|e| e.live && e.read_only && e.synced_at.is_none_or(|s| s < at))
            .collect())
    }

    /// Forget edges silent for a week.
    pub async fn prune_edges(&self) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM edges WHERE seen_at < now() - interval '7 days'")
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
