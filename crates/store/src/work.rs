//! The worker's queries: claiming due domains under a lease, recording what a check or
//! an issuance attempt found, and installing certificates.
//!
//! Claims use `FOR UPDATE SKIP LOCKED` plus a lease (`lease_owner`, `lease_expires_at`):
//! the row lock makes concurrent claims disjoint, the lease keeps a domain reserved while
//! the worker talks to DNS and the CA without holding a transaction open, and its expiry
//! lets another worker take over after a `kill -9`. Every claim gets a lease name of its
//! own (`{worker}/{random}`), and every write made on behalf of a claim is fenced with
//! `lease_owner = $lease`: a claim whose lease expired and was taken over, even by the
//! same worker, can no longer change the domain, so no domain is issued for twice.

use std::time::Duration;

use time::OffsetDateTime;

use crate::events::{EventKind, NewEvent};
use crate::{DomainId, DomainStatus, Hostname, Result, Store, TenantId};

/// Which kind of issuer a certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum IssuedBy {
    /// An ACME CA (only these have renewal information, RFC 9773).
    Acme,
    /// `landlord dev`'s local CA.
    Local,
}

/// A domain reserved for one worker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    /// This claim's lease: the fencing token every write on its behalf carries.
    pub lease: String,
    pub id: DomainId,
    pub tenant_id: TenantId,
    pub hostname: Hostname,
    pub status: DomainStatus,
    pub attempts: i32,
    pub ca_failures: i32,
    pub dns_misses: i32,
    pub order_url: Option<String>,
    pub order_key_sealed: Option<Vec<u8>>,
    pub check_problem: Option<String>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub cert_not_before: Option<OffsetDateTime>,
    pub cert_not_after: Option<OffsetDateTime>,
    pub cert_renew_at: Option<OffsetDateTime>,
    pub cert_serial: Option<String>,
    pub cert_issued_by: Option<IssuedBy>,
    /// The RFC 9773 identifier of the served certificate (ACME only).
    pub cert_ari_id: Option<String>,
    pub cert_ari_next_check_at: Option<OffsetDateTime>,
    pub queued_reason: Option<String>,
    pub target_label: String,
    pub shared_target_ok: bool,
    pub ownership_token: String,
    pub ownership_verified_at: Option<OffsetDateTime>,
    /// Its delegated-DCV label (see [`crate::Domain::dcv_label`]).
    pub dcv_label: Option<String>,
}

/// What DNS showed, as the tenant sees it in `check`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord {
    /// `None` keeps what the last conclusive check found.
    pub found: Option<serde_json::Value>,
    pub problem: Option<String>,
    /// The check found the TXT ownership proof (kept: it need not stay published).
    pub ownership_proved: bool,
}

/// The new state of a claimed domain after one round of work, as the worker's state
/// machine decided it. Applied in one statement, together with its events, and releases
/// the lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub status: DomainStatus,
    /// `None` leaves the last check result as it was (e.g. after a DNS timeout).
    pub check: Option<CheckRecord>,
    pub last_error: Option<String>,
    pub next_attempt_at: OffsetDateTime,
    pub attempts: i32,
    pub ca_failures: i32,
    pub dns_misses: i32,
    /// Forget the order in flight (it completed, failed, or DNS changed).
    pub clear_order: bool,
    /// Timeline entries, oldest first.
    pub events: Vec<NewEvent>,
    /// Waiting for CA budget.
    pub queued: Option<Queued>,
}

/// Why a domain waits for CA budget, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub reason: String,
    pub until: OffsetDateTime,
}

/// A certificate ready to be served.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub chain_pem: String,
    pub key_sealed: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub serial: String,
    pub issuer: String,
    pub renew_at: OffsetDateTime,
    pub issued_by: IssuedBy,
    /// RFC 9773 identifier, when the CA is an ACME CA.
    pub ari_cert_id: Option<String>,
    /// For the ledger: the CA (directory URL or `local`), the registered domain, and the
    /// serial of the certificate this one replaces (a renewal).
    pub ca: String,
    pub registered_domain: String,
    pub replaces: Option<String>,
}

/// What a CA said about when to renew one certificate (RFC 9773).
#[derive(Debug, Clone)]
pub struct RenewalInfoRecord {
    pub window_start: OffsetDateTime,
    pub window_end: OffsetDateTime,
    pub explanation_url: Option<String>,
    /// The moment chosen inside the window.
    pub renew_at: OffsetDateTime,
    pub next_check_at: OffsetDateTime,
}

/// A session-level advisory lock on its own connection. Dropping it closes the
/// connection, which releases the lock even if the holder panics.
pub struct AdvisoryLock {
    _conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
}

impl Store {
    /// Reserve up to `limit` due domains for `owner` for `lease`.
    pub async fn claim_due_domains(
        &self,
        owner: &str,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<Claimed>> {
        Ok(sqlx::query_as::<_, Claimed>(concat!(
            "WITH due AS ( \
                 SELECT id FROM domains \
                 WHERE next_attempt_at <= now() AND held IS NULL \
                   AND (lease_expires_at IS NULL OR lease_expires_at < now()) \
                 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED), \
             d AS ( \
                 UPDATE domains SET lease_owner = $1 || '/' || gen_random_uuid()::text, \
                     lease_expires_at = now() + make_interval(secs => $2), claimed_at = now() \
                 FROM due WHERE domains.id = due.id RETURNING domains.*) \
             SELECT d.lease_owner AS lease, d.id, d.tenant_id, d.hostname, d.status, d.attempts, d.ca_failures, \
                 d.dns_misses, d.order_url, d.order_key_sealed, d.check_problem, d.last_error, d.created_at, \
                 d.queued_reason, d.target_label, d.shared_target_ok, d.ownership_token, \
                 d.ownership_verified_at, c.not_before AS cert_not_before, \
                 c.not_after AS cert_not_after, c.renew_at AS cert_renew_at, \
                 c.serial AS cert_serial, c.issued_by AS cert_issued_by, \
                 c.ari_cert_id AS cert_ari_id, c.ari_next_check_at AS cert_ari_next_check_at, \
                 l.label AS dcv_label \
             FROM d",
            domain_joins!()
        ))
        .bind(owner)
        .bind(lease.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// How long until the next domain becomes due (zero if one is due now); `None` when
    /// there are no domains at all.
    pub async fn next_due_in(&self) -> Result<Option<Duration>> {
        let secs: Option<f64> = sqlx::query_scalar(
            "SELECT GREATEST(0, EXTRACT(EPOCH FROM (MIN(GREATEST(next_attempt_at, \
                 COALESCE(lease_expires_at, next_attempt_at))) - now())))::float8 FROM domains \
             WHERE held IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(secs.map(Duration::from_secs_f64))
    }

    /// Extend a claim's lease by `lease` from now; false when it was lost.
    pub async fn renew_lease(&self, id: DomainId, lease: &str, duration: Duration) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE domains SET lease_expires_at = now() + make_interval(secs => $3) \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(lease)
        .bind(duration.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forget the order in flight (e.g. finalized with a key that is lost), with an event
    /// saying so; false when the lease was lost.
    pub async fn forget_order(&self, id: DomainId, lease: &str, message: &str) -> Result<bool> {
        self.replace_order(id, lease, None, EventKind::OrderDropped, message)
            .await
    }

    /// Mark the domain `issuing` (with its event) while keeping the lease.
    pub async fn start_issuing(
        &self,
        id: DomainId,
        lease: &str,
        check: &CheckRecord,
        message: &str,
    ) -> Result<bool> {
        let update = sqlx::query_scalar(
            "UPDATE domains SET status = 'issuing', checked_at = now(), \
                 check_found = COALESCE($3, check_found), \
                 ownership_verified_at = COALESCE(ownership_verified_at, \
                     CASE WHEN $5 THEN now() END), \
                 check_problem = $4, dns_misses = 0, updated_at = now() \
             WHERE id = $1 AND lease_owner = $2 RETURNING tenant_id",
        )
        .bind(id)
        .bind(lease)
        .bind(&check.found)
        .bind(&check.problem)
        .bind(check.ownership_proved);
        self.fenced_with_event(update, id, EventKind::DnsVerified, message)
            .await
    }

    /// Remember the order in flight (and the key its CSR used) so a worker taking over
    /// after a crash can resume it instead of placing a new one.
    pub async fn save_order(
        &self,
        id: DomainId,
        owner: &str,
        url: &str,
        key_sealed: Option<&[u8]>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE domains SET order_url = $3, order_key_sealed = COALESCE($4, order_key_sealed) \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(url)
        .bind(key_sealed)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Record a newly placed order and its event together, so a takeover after a crash
    /// sees either both or neither.
    pub async fn record_order_placed(
        &self,
        id: DomainId,
        owner: &str,
        url: &str,
        message: &str,
    ) -> Result<bool> {
        self.replace_order(id, owner, Some(url), EventKind::OrderPlaced, message)
            .await
    }

    /// Set (or clear) the order in flight, forgetting its key, with an event; false when
    /// the lease was lost.
    async fn replace_order(
        &self,
        id: DomainId,
        lease: &str,
        url: Option<&str>,
        kind: EventKind,
        message: &str,
    ) -> Result<bool> {
        let update = sqlx::query_scalar(
            "UPDATE domains SET order_url = $3, order_key_sealed = NULL \
             WHERE id = $1 AND lease_owner = $2 RETURNING tenant_id",
        )
        .bind(id)
        .bind(lease)
        .bind(url);
        self.fenced_with_event(update, id, kind, message).await
    }

    /// Append an event to a claimed domain's timeline; false when the lease was lost.
    pub async fn record_event(
        &self,
        id: DomainId,
        lease: &str,
        kind: EventKind,
        message: &str,
    ) -> Result<bool> {
        let fence =
            sqlx::query_scalar("SELECT tenant_id FROM domains WHERE id = $1 AND lease_owner = $2")
                .bind(id)
                .bind(lease);
        self.fenced_with_event(fence, id, kind, message).await
    }

    /// The one shape of every fenced write with an event: `fence` (a statement on the
    /// domain `WHERE … lease_owner = <lease> RETURNING tenant_id`) and the event commit
    /// together, or nothing is written when the lease was lost (false).
    async fn fenced_with_event(
        &self,
        fence: sqlx::query::QueryScalar<'_, sqlx::Postgres, TenantId, sqlx::postgres::PgArguments>,
        id: DomainId,
        kind: EventKind,
        message: &str,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let Some(tenant) = fence.fetch_optional(&mut *tx).await? else {
            return Ok(false);
        };
        crate::events::record(&mut tx, id, tenant, kind, message).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Apply `transition` and release the lease. False when the lease was lost (another
    /// worker owns the domain now, or it was deleted): nothing is written then.
    pub async fn record_transition(
        &self,
        id: DomainId,
        owner: &str,
        transition: &Transition,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let applied = apply_transition(&mut tx, id, owner, transition).await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Store the certificate, forget the challenges and the order, apply `transition`; all
    /// or nothing, and only while `owner` still holds the lease.
    pub async fn install_certificate(
        &self,
        id: DomainId,
        owner: &str,
        cert: &NewCertificate,
        transition: &Transition,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(TenantId, Hostname)> = sqlx::query_as(
            "SELECT tenant_id, hostname FROM domains WHERE id = $1 AND lease_owner = $2 FOR UPDATE",
        )
        .bind(id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((tenant, hostname)) = row else {
            return Ok(false);
        };
        // The ledger first: its unique index refuses a second renewal of one
        // certificate, whatever happened to the leases.
        let ledger = sqlx::query(
            "INSERT INTO ca_ledger (ca, kind, hostname, registered_domain, domain_id, renewal, \
                 serial, replaces, tenant_id) VALUES ($1, 'certificate', $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&cert.ca)
        .bind(&hostname)
        .bind(&cert.registered_domain)
        .bind(id)
        .bind(cert.replaces.is_some())
        .bind(&cert.serial)
        .bind(&cert.replaces)
        .bind(tenant)
        .execute(&mut *tx)
        .await;
        match ledger {
            Err(e) if crate::is_unique_violation(&e, "ca_ledger_one_renewal") => {
                tracing::error!(%hostname, replaces = ?cert.replaces, "refusing a second renewal of one certificate");
                return Ok(false);
            }
            other => {
                other?;
            }
        }
        sqlx::query(
            "INSERT INTO certificates (domain_id, tenant_id, hostname, chain_pem, key_sealed, \
                 not_before, not_after, serial, issuer, renew_at, issued_by, ari_cert_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (domain_id) DO UPDATE SET chain_pem = excluded.chain_pem, \
                 key_sealed = excluded.key_sealed, not_before = excluded.not_before, \
                 not_after = excluded.not_after, serial = excluded.serial, \
                 issuer = excluded.issuer, renew_at = excluded.renew_at, \
                 issued_by = excluded.issued_by, ari_cert_id = excluded.ari_cert_id, \
                 ari_window_start = NULL, ari_window_end = NULL, ari_explanation_url = NULL, \
                 ari_checked_at = NULL, ari_next_check_at = NULL, created_at = now()",
        )
        .bind(id)
        .bind(tenant)
        .bind(&hostname)
        .bind(&cert.chain_pem)
        .bind(&cert.key_sealed)
        .bind(cert.not_before)
        .bind(cert.not_after)
        .bind(&cert.serial)
        .bind(&cert.issuer)
        .bind(cert.renew_at)
        .bind(cert.issued_by)
        .bind(&cert.ari_cert_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM acme_challenges WHERE domain_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let applied = apply_transition(&mut tx, id, owner, transition).await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Store what the CA's renewal information said about the certificate `serial` of a
    /// claimed domain, and the renewal time chosen from it.
    pub async fn record_renewal_info(
        &self,
        id: DomainId,
        owner: &str,
        serial: &str,
        info: &RenewalInfoRecord,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE certificates c SET ari_window_start = $4, ari_window_end = $5, \
                 ari_explanation_url = $6, renew_at = $7, ari_checked_at = now(), \
                 ari_next_check_at = $8 \
             FROM domains d WHERE c.domain_id = $1 AND d.id = $1 AND d.lease_owner = $2 \
                 AND c.serial = $3",
        )
        .bind(id)
        .bind(owner)
        .bind(serial)
        .bind(info.window_start)
        .bind(info.window_end)
        .bind(&info.explanation_url)
        .bind(info.renew_at)
        .bind(info.next_check_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The CA offers no renewal information (now): look again at `next_check_at`.
    pub async fn postpone_renewal_info(
        &self,
        id: DomainId,
        serial: &str,
        next_check_at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE certificates SET ari_next_check_at = $3 WHERE domain_id = $1 AND serial = $2",
        )
        .bind(id)
        .bind(serial)
        .bind(next_check_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Publish an HTTP-01 challenge response for every edge, while `lease` holds the
    /// domain; false when the lease was lost.
    pub async fn save_challenge(
        &self,
        token: &str,
        domain: DomainId,
        lease: &str,
        hostname: &Hostname,
        key_authorization: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO acme_challenges (token, domain_id, hostname, key_authorization) \
             SELECT $1, $2, $3, $4 WHERE EXISTS \
                 (SELECT 1 FROM domains WHERE id = $2 AND lease_owner = $5) \
             ON CONFLICT (token) DO UPDATE SET key_authorization = excluded.key_authorization",
        )
        .bind(token)
        .bind(domain)
        .bind(hostname)
        .bind(key_authorization)
        .bind(lease)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The key authorization for `token` when it was issued for `hostname`.
    pub async fn challenge_response(
        &self,
        token: &str,
        hostname: &Hostname,
    ) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT key_authorization FROM acme_challenges WHERE token = $1 AND hostname = $2",
        )
        .bind(token)
        .bind(hostname)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The sealed ACME account credentials for a directory, if an account exists.
    pub async fn acme_account(&self, directory_url: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(
            "SELECT credentials_sealed FROM acme_accounts WHERE directory_url = $1",
        )
        .bind(directory_url)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn save_acme_account(&self, directory_url: &str, sealed: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO acme_accounts (directory_url, credentials_sealed) VALUES ($1, $2)",
        )
        .bind(directory_url)
        .bind(sealed)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The local CA's certificate PEM and sealed key, if it was created.
    pub async fn local_ca(&self) -> Result<Option<(String, Vec<u8>)>> {
        Ok(
            sqlx::query_as("SELECT cert_pem, key_sealed FROM local_ca WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn save_local_ca(&self, cert_pem: &str, key_sealed: &[u8]) -> Result<()> {
        sqlx::query("INSERT INTO local_ca (id, cert_pem, key_sealed) VALUES (1, $1, $2)")
            .bind(cert_pem)
            .bind(key_sealed)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Wait for the cluster-wide lock `name` (used around one-time creations such as the
    /// ACME account, so two workers starting together create one).
    pub async fn lock(&self, name: &str) -> Result<AdvisoryLock> {
        let mut conn = self.session().acquire().await?;
        sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
            .bind(name)
            .execute(&mut *conn)
            .await?;
        conn.close_on_drop();
        Ok(AdvisoryLock { _conn: conn })
    }
}

async fn apply_transition(
    tx: &mut sqlx::PgConnection,
    id: DomainId,
    owner: &str,
    o: &Transition,
) -> Result<bool> {
    let tenant: Option<TenantId> = sqlx::query_scalar(
        "UPDATE domains SET status = $3, \
             checked_at = CASE WHEN $4 THEN now() ELSE checked_at END, \
             check_found = CASE WHEN $4 THEN COALESCE($5, check_found) ELSE check_found END, \
             check_problem = CASE WHEN $4 THEN $6 ELSE check_problem END, \
             ownership_verified_at = COALESCE(ownership_verified_at, CASE WHEN $15 THEN now() END), \
             last_error = $7, attempts = $9, ca_failures = $10, \
             next_attempt_at = CASE WHEN check_requested_at >= claimed_at THEN LEAST($8, now()) \
                 ELSE $8 END, \
             dns_misses = $11, \
             order_url = CASE WHEN $12 THEN NULL ELSE order_url END, \
             order_key_sealed = CASE WHEN $12 THEN NULL ELSE order_key_sealed END, \
             queued_reason = $13, queued_until = $14, \
             lease_owner = NULL, lease_expires_at = NULL, updated_at = now() \
         WHERE id = $1 AND lease_owner = $2 RETURNING tenant_id",
    )
    .bind(id)
    .bind(owner)
    .bind(o.status)
    .bind(o.check.is_some())
    .bind(o.check.as_ref().and_then(|c| c.found.as_ref()))
    .bind(o.check.as_ref().and_then(|c| c.problem.as_deref()))
    .bind(o.last_error.as_deref())
    .bind(o.next_attempt_at)
    .bind(o.attempts)
    .bind(o.ca_failures)
    .bind(o.dns_misses)
    .bind(o.clear_order)
    .bind(o.queued.as_ref().map(|q| q.reason.as_str()))
    .bind(o.queued.as_ref().map(|q| q.until))
    .bind(o.check.as_ref().is_some_and(|c| c.ownership_proved))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(tenant) = tenant else {
        return Ok(false);
    };
    if o.clear_order {
        sqlx::query("DELETE FROM acme_challenges WHERE domain_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    for event in &o.events {
        crate::events::record(tx, id, tenant, event.kind, &event.message).await?;
    }
    Ok(true)
}

/// A DNS-01 TXT record a worker wrote (see [`Store::save_dns_record`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DnsChallengeRecord {
    pub id: i64,
    pub zone: String,
    pub name: String,
    pub value: String,
}

impl Store {
    /// Note a DNS-01 TXT record about to be written for `domain`, while `lease` holds it;
    /// false when the lease was lost (then nothing may be written).
    pub async fn save_dns_record(
        &self,
        domain: DomainId,
        lease: &str,
        zone: &str,
        name: &str,
        value: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO dns_challenge_records (domain_id, zone, name, value) \
             SELECT $1, $2, $3, $4 WHERE EXISTS \
                 (SELECT 1 FROM domains WHERE id = $1 AND lease_owner = $5)",
        )
        .bind(domain)
        .bind(zone)
        .bind(name)
        .bind(value)
        .bind(lease)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The DNS-01 records written for `domain`, or (with `None`) every one older than
    /// `older_than`: what is left to remove.
    pub async fn dns_records(
        &self,
        domain: Option<DomainId>,
        older_than: std::time::Duration,
    ) -> Result<Vec<DnsChallengeRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, zone, name, value FROM dns_challenge_records \
             WHERE ($1::uuid IS NULL AND created_at < now() - make_interval(secs => $2)) \
                OR domain_id = $1 ORDER BY id",
        )
        .bind(domain)
        .bind(older_than.as_secs_f64())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Forget a DNS-01 record once it is removed from its zone.
    pub async fn forget_dns_record(&self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM dns_challenge_records WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
