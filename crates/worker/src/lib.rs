//! `landlord-worker`: DNS verification, issuance and renewal.
//!
//! The loop claims due domains (leases, `SKIP LOCKED`), and for each: checks DNS,
//! moves it through the contract's statuses, and when it points at us obtains a
//! certificate from the configured issuer. It wakes on `NOTIFY landlord_wake` (new
//! domain, "check now") and otherwise sleeps until the next domain is due.

mod acme;
pub mod ari;
mod certificate;
pub mod compress;
pub mod dns;
mod lease;
mod local;
mod process;
pub mod schedule;
pub mod transition;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use landlord_store::{Budgets, Hostname, MasterKey, Store, WAKE_CHANNEL};

pub use acme::AcmeConfig;

/// The local CA's certificate (PEM), creating the CA if this database has none: what a
/// developer adds to a trust store (`landlord ca export`).
pub async fn local_ca_pem(store: &Store, key: &MasterKey) -> anyhow::Result<String> {
    Ok(
        local::LocalCa::load_or_create(store, key, Duration::from_secs(86_400))
            .await?
            .cert_pem,
    )
}
pub use dns::{DnsChecker, DnsConfig, Verdict};

#[derive(Debug, Clone)]
pub enum IssuerConfig {
    Acme(AcmeConfig),
    /// The local CA, with the validity of the leaf certificates it signs.
    Local {
        validity: Duration,
    },
}

/// DNS-01 through RFC 2136: the updater, and the zone delegated challenge records go in
/// (`LANDLORD_ACME_DNS_ZONE`).
#[derive(Debug, Clone)]
pub struct Dns01 {
    pub updater: dns::update::DnsUpdater,
    pub zone: Hostname,
    /// Platform subdomains, certified by one wildcard through DNS-01.
    pub platform: Option<PlatformDomain>,
    /// The longest a written record may take to show on the check servers
    /// (`LANDLORD_DNS_PROPAGATION_TIMEOUT`).
    pub propagation_timeout: std::time::Duration,
}

/// `LANDLORD_PLATFORM_DOMAIN`: every site at `<slug>.<domain>`, under the certificate of
/// `*.<domain>`, whose `_acme-challenge` TXT record is written in `zone`.
#[derive(Debug, Clone)]
pub struct PlatformDomain {
    pub domain: Hostname,
    pub zone: Hostname,
}

impl Dns01 {
    /// Where `_acme-challenge.<name>` must point for a registration with `label`.
    pub fn delegation_target(&self, label: &str) -> String {
        format!("{label}.{}", self.zone)
    }
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub dns: DnsConfig,
    pub issuer: IssuerConfig,
    pub master_key: MasterKey,
    /// Domains processed at once by this worker (each may hold one order in flight).
    pub concurrency: usize,
    /// HTTP-01: the longest wait for every live edge to load a published challenge
    /// (`LANDLORD_EDGE_SYNC_TIMEOUT`).
    pub edge_sync_timeout: std::time::Duration,
    /// Files compressed at once by this worker (see [`compress`]).
    pub compression_concurrency: usize,
    /// The longest a deploy asked to go live waits for its variants (see [`compress`]).
    pub compress_wait: Duration,
    /// DNS-01 through RFC 2136, when configured.
    pub dns01: Option<Dns01>,
    /// How long a claim stays reserved without progress (a `kill -9`ed worker's domains
    /// are taken over after this).
    pub lease: Duration,
    /// How often an active domain's DNS is re-checked.
    pub recheck_active: Duration,
    /// Consecutive failed checks before an active domain becomes `moved`.
    pub moved_after: i32,
    /// Renew this long before expiry instead of at two thirds of the lifetime (for
    /// operators with special needs, and tests forcing a renewal).
    pub renew_before: Option<Duration>,
    /// Landlord's mirror of the CA's rate limits (ACME only).
    pub budgets: Budgets,
    /// How long the edges' change log is kept (pruned hourly by every worker).
    pub change_retention: Duration,
    /// The longest the DNS part of a round (tenant-controlled nameservers) may take;
    /// well inside `lease`.
    pub dns_deadline: Duration,
    /// Timeline events older than this are pruned (hourly).
    pub event_retention: Duration,
    /// Timeline events kept per domain (the newest; pruned hourly).
    pub events_per_domain: u32,
}

/// Why an issuance attempt did not produce a certificate.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The CA refused (validation failed, CAA, malformed…): counts as a failure.
    #[error("{0}")]
    Refused(String),
    /// The CA's rate limit: wait at least this long.
    #[error("{0}")]
    RateLimited(String, Duration),
    /// Network trouble, timeouts: retry soon. Written for the tenant.
    #[error("{0}")]
    Transient(String),
    /// Our own trouble (database, sealing): retry soon. The cause is for the operator's
    /// log only; the tenant reads [`IssueError::INTERNAL_MESSAGE`].
    #[error("internal error: {0}")]
    Internal(String),
    /// The claim's lease was taken over: stop without writing anything more.
    #[error("the lease on this domain was lost")]
    LeaseLost,
    /// No order placed: a CA budget is spent until `until`.
    #[error("{reason}")]
    Queued {
        reason: String,
        until: time::OffsetDateTime,
    },
}

impl IssueError {
    /// What a tenant reads when our own trouble interrupted issuance.
    pub const INTERNAL_MESSAGE: &'static str = "Issuance was interrupted by a problem on our side; it has been logged and Landlord retries automatically.";

    fn internal(e: impl std::fmt::Display) -> Self {
        IssueError::Internal(e.to_string())
    }

    /// The sentence a tenant may read about this error.
    pub fn for_tenant(&self) -> String {
        match self {
            IssueError::Internal(_) | IssueError::LeaseLost => Self::INTERNAL_MESSAGE.to_owned(),
            other => other.to_string(),
        }
    }

    fn from_acme(e: instant_acme::Error) -> Self {
        match e {
            instant_acme::Error::Api(problem) => Self::from_problem(&problem),
            instant_acme::Error::Timeout(_) => {
                IssueError::Transient("The CA did not finish in time; retrying.".into())
            }
            other => {
                tracing::info!(error = %other, "the CA could not be reached");
                IssueError::Transient(
                    "Could not reach the certificate authority; Landlord retries automatically."
                        .into(),
                )
            }
        }
    }

    /// A failed DNS-01 challenge: the CA looked for the TXT record, not for an HTTP answer.
    fn from_dns01_problem(p: &instant_acme::Problem) -> Self {
        let unauthorized = p
            .r#type
            .as_deref()
            .is_some_and(|t| t.ends_with(":unauthorized"));
        if !unauthorized {
            return Self::from_problem(p);
        }
        let detail = p.subproblems.first().and_then(|s| s.detail.as_deref());
        let detail = detail.or(p.detail.as_deref()).unwrap_or("no detail given");
        IssueError::Refused(format!(
            "The CA could not verify the hostname through DNS-01: it looked up the _acme-challenge TXT record and did not find our value ({detail}). Make sure _acme-challenge.<name> is only the CNAME shown in dcv_delegation (no TXT record of its own beside it)."
        ))
    }

    /// Plain words for the ACME problem types a tenant can act on.
    fn from_problem(p: &instant_acme::Problem) -> Self {
        let kind = p
            .r#type
            .as_deref()
            .unwrap_or("")
            .rsplit(':')
            .next()
            .unwrap_or("");
        let detail = p.detail.as_deref().unwrap_or("no detail given");
        let sub = p.subproblems.first().and_then(|s| s.detail.as_deref());
        let detail = sub.unwrap_or(detail);
        match kind {
            "unauthorized" => IssueError::Refused(format!(
                "The CA could not verify the hostname: it fetched the HTTP-01 challenge and did not get our answer ({detail}). Make sure DNS points only at us and nothing in front of us intercepts port 80."
            )),
            "dns" => IssueError::Refused(format!(
                "The CA could not resolve the hostname in DNS: {detail}"
            )),
            "connection" => IssueError::Refused(format!(
                "The CA could not connect to the hostname on port 80: {detail}. Make sure its DNS records point at our addresses."
            )),
            "caa" => IssueError::Refused(format!(
                "A CAA record forbids the CA from issuing: {detail}"
            )),
            "rateLimited" => IssueError::RateLimited(
                format!(
                    "The CA's rate limit was reached: {detail}. Landlord will retry automatically."
                ),
                retry_after(detail, time::OffsetDateTime::now_utc())
                    .unwrap_or(Duration::from_secs(3600)),
            ),
            "serverInternal" | "badNonce" => {
                IssueError::Transient(format!("The CA had a temporary problem: {detail}"))
            }
            _ => IssueError::Refused(format!("The CA refused the order ({kind}): {detail}")),
        }
    }
}

/// Plain words for a domain waiting on a CA budget.
pub(crate) fn queued_reason(
    kind: landlord_store::BudgetKind,
    budget: landlord_store::Budget,
    used: i64,
    until: time::OffsetDateTime,
    request: &landlord_store::OrderRequest<'_>,
) -> String {
    use landlord_store::BudgetKind;
    let window = schedule::human(budget.window);
    let limit = budget.limit;
    let what = match kind {
        BudgetKind::OrdersPerAccount => format!(
            "{used} new certificate orders were placed in the last {window}, as many as this platform allows ({limit} per {window}; Let's Encrypt's limit is 300 per account per 3 hours)"
        ),
        BudgetKind::TenantShare => format!(
            "your account placed {used} of the new certificate orders in the last {window}, its share of this platform's budget ({limit} per {window}, so that other accounts get certificates too)"
        ),
        BudgetKind::CertificatesPerRegisteredDomain => format!(
            "{used} certificates were ordered for names under {} in the last {window}, as many as this platform allows ({limit} per {window}; Let's Encrypt's limit is 50 per registered domain per week)",
            request.registered_domain
        ),
        BudgetKind::FailedValidationsPerHostname => format!(
            "the CA failed to validate {} {used} times in the last {window} ({limit} per {window} allowed; Let's Encrypt's limit is 5 per hostname per hour)",
            request.hostname
        ),
    };
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    let at = until
        .to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default();
    format!(
        "Queued to stay within the CA's rate limits: {what}. The certificate will be ordered automatically at {at}; nothing to do."
    )
}

/// Let's Encrypt says when a rate limit lifts in the problem detail ("…: retry after
/// 2026-11-25 05:00:00 UTC: see https://…"); the wait until then, if it says so.
fn retry_after(detail: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let at = detail.find("retry after ")? + "retry after ".len();
    let stamp = detail.get(at..at + 23)?;
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    let when = time::PrimitiveDateTime::parse(stamp, &format)
        .ok()?
        .assume_utc();
    (when - now).try_into().ok()
}

/// Run until `shutdown` resolves; in-flight work finishes (bounded by the lease).
pub async fn run(
    store: Store,
    config: WorkerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let owner = format!(
        "{}-{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()),
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    if let Some(platform) = config.dns01.as_ref().and_then(|d| d.platform.as_ref()) {
        let wildcard = Hostname::parse(&format!("*.{}", platform.domain))?;
        store.ensure_platform_wildcard(&wildcard).await?;
    }
    let ctx = Arc::new(process::Context::new(store.clone(), config.clone())?);
    let mut listener = store.listen(&[WAKE_CHANNEL]).await?;
    let pruner = tokio::spawn(prune(store.clone(), config.clone(), ctx.clone()));
    let compressor = tokio::spawn(compress::run(
        store.clone(),
        config.compression_concurrency,
        config.compress_wait,
    ));
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let finished = Arc::new(tokio::sync::Notify::new());
    tracing::info!(%owner, concurrency = config.concurrency, "worker started");
    tokio::pin!(shutdown);
    loop {
        let free = permits.available_permits();
        if free > 0 {
            match store
                .claim_due_domains(&owner, config.lease, free as i64)
                .await
            {
                Ok(claimed) => {
                    for domain in claimed {
                        let permit = permits.clone().acquire_owned().await?;
                        let (ctx, finished) = (ctx.clone(), finished.clone());
                        tokio::spawn(async move {
                            ctx.process(domain).await;
                            drop(permit);
                            finished.notify_one();
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming work failed; retrying"),
            }
        }
        let wait = match store.next_due_in().await {
            Ok(Some(d)) => d
                .min(Duration::from_secs(10))
                .max(Duration::from_millis(200)),
            Ok(None) => Duration::from_secs(10),
            Err(_) => Duration::from_secs(5),
        };
        tokio::select! {
            () = &mut shutdown => break,
            n = listener.recv() => {
                if let Err(e) = n {
                    tracing::warn!(error = %e, "wake-up channel failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            () = finished.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
    pruner.abort();
    compressor.abort();
    tracing::info!("worker stopping; waiting for work in flight");
    let all = u32::try_from(config.concurrency.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(config.lease, permits.acquire_many(all)).await;
    Ok(())
}

/// Keep the edges' change log and the timelines bounded: hourly, drop change-log entries
/// older than `change_retention`, and events past `event_retention` or beyond the newest
/// `events_per_domain` of a domain.
async fn prune(store: Store, config: WorkerConfig, ctx: Arc<process::Context>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        // DNS-01 records a crashed round left (a live round removes its own).
        ctx.clean_dns_records(None).await;
        match store.prune_changes(config.change_retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "change log pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning the change log failed"),
        }
        match store
            .prune_events(config.event_retention, config.events_per_domain)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "timeline events pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning timeline events failed"),
        }
        if let Err(e) = store.prune_edges().await {
            tracing::warn!(error = %e, "forgetting silent edges failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: &str, detail: &str) -> instant_acme::Problem {
        serde_json::from_value(serde_json::json!({
            "type": format!("urn:ietf:params:acme:error:{kind}"),
            "detail": detail,
            "status": 403,
        }))
        .unwrap()
    }

    #[test]
    fn rate_limit_retry_after_is_read_from_the_detail() {
        let now = time::macros::datetime!(2026-11-25 04:00:00 UTC);
        let detail = "too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s, retry after 2026-11-25 05:30:00 UTC: see https://letsencrypt.org/docs/rate-limits/";
        assert_eq!(retry_after(detail, now), Some(Duration::from_secs(5400)));
        assert_eq!(retry_after("no time here", now), None);
    }

    #[test]
    fn internal_errors_are_a_plain_sentence_for_tenants() {
        let e = IssueError::internal("sealed with another master key (id 3f2a)");
        assert_eq!(e.for_tenant(), IssueError::INTERNAL_MESSAGE);
        assert!(
            e.to_string().contains("another master key"),
            "kept for the log"
        );
        let e = IssueError::Transient("The CA did not finish the order in time.".into());
        assert_eq!(e.for_tenant(), "The CA did not finish the order in time.");
    }

    #[test]
    fn ca_problems_become_plain_words() {
        let e =
            IssueError::from_problem(&problem("unauthorized", "Invalid response from http://x/"));
        assert!(
            matches!(&e, IssueError::Refused(m) if m.contains("could not verify") && m.contains("Invalid response"))
        );
        let e = IssueError::from_problem(&problem("connection", "connection refused"));
        assert!(
            matches!(&e, IssueError::Refused(m) if m.contains("could not connect") && m.contains("port 80"))
        );
        let e = IssueError::from_problem(&problem("caa", "CAA record forbids"));
        assert!(matches!(&e, IssueError::Refused(m) if m.contains("CAA")));
        let e = IssueError::from_problem(&problem("dns", "NXDOMAIN"));
        assert!(matches!(&e, IssueError::Refused(m) if m.contains("resolve")));
        let e = IssueError::from_problem(&problem("rateLimited", "too many certificates"));
        assert!(matches!(&e, IssueError::RateLimited(m, _) if m.contains("rate limit")));
        let e = IssueError::from_problem(&problem("serverInternal", "oops"));
        assert!(matches!(e, IssueError::Transient(_)));
    }
}
