//! One round of work on one claimed domain: the contract's state machine.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tracing::Instrument;

use landlord_store::{
    CheckRecord, Claimed, DomainStatus, NewCertificate, Outcome, Store, certificate_key_context,
};

use crate::acme::{AcmeIssuer, OrderContext, spki_of};
use crate::dns::{DnsChecker, Verdict};
use crate::local::LocalCa;
use crate::{IssueError, IssuerConfig, WorkerConfig, certificate, schedule};

enum Issuer {
    Acme(AcmeIssuer),
    Local(LocalCa),
}

pub struct Context {
    store: Store,
    config: WorkerConfig,
    owner: String,
    dns: DnsChecker,
    issuer: OnceCell<Issuer>,
}

impl Context {
    pub fn new(store: Store, config: WorkerConfig, owner: String) -> anyhow::Result<Self> {
        let dns = DnsChecker::new(config.dns.clone())?;
        Ok(Self {
            store,
            config,
            owner,
            dns,
            issuer: OnceCell::new(),
        })
    }

    pub async fn process(&self, domain: Claimed) {
        let span = tracing::info_span!("domain", hostname = %domain.hostname, id = %domain.id, status = ?domain.status);
        async {
            if let Err(e) = self.step(&domain).await {
                // Our own trouble (database): the lease expires and the domain is retried.
                tracing::warn!(error = %e, "processing failed; the domain will be retried");
            }
        }
        .instrument(span)
        .await
    }

    async fn step(&self, d: &Claimed) -> anyhow::Result<()> {
        let now = OffsetDateTime::now_utc();
        let outcome = match self.dns.check(&d.hostname).await {
            Verdict::Transient(why) => {
                tracing::info!(%why, "DNS check inconclusive; retrying soon");
                Outcome {
                    status: d.status,
                    check: None,
                    last_error: d.last_error.clone(),
                    next_attempt_at: now + schedule::transient_retry(d.attempts),
                    attempts: d.attempts + 1,
                    ca_failures: d.ca_failures,
                    dns_misses: d.dns_misses,
                    clear_order: false,
                    events: vec![],
                }
            }
            Verdict::NotPointed { found, problem } => self.not_pointed(d, now, found, problem),
            Verdict::Pointed { found } => return self.pointed(d, now, found).await,
        };
        self.store
            .record_outcome(d.id, &self.owner, &outcome)
            .await?;
        Ok(())
    }

    fn not_pointed(
        &self,
        d: &Claimed,
        now: OffsetDateTime,
        found: serde_json::Value,
        problem: String,
    ) -> Outcome {
        let age = (now - d.created_at).try_into().unwrap_or(Duration::ZERO);
        let mut events = Vec::new();
        let changed = d.check_problem.as_deref() != Some(problem.as_str());
        let (status, dns_misses, next) = match d.status {
            DomainStatus::Active => {
                let misses = d.dns_misses + 1;
                if misses >= self.config.moved_after {
                    events.push(("moved".into(), format!("DNS no longer points at us: {problem} The certificate keeps being served until it expires but is not renewed.")));
                    (
                        DomainStatus::Moved,
                        misses,
                        now + schedule::dns_retry(d.attempts, age),
                    )
                } else {
                    if misses == 1 {
                        events.push((
                            "dns_problem".into(),
                            format!("{problem} (check {misses} of {}).", self.config.moved_after),
                        ));
                    }
                    // Confirm soon (but never later than the routine re-check would).
                    let wait = schedule::dns_retry(misses - 1, Duration::ZERO)
                        .min(self.config.recheck_active);
                    (DomainStatus::Active, misses, now + wait)
                }
            }
            DomainStatus::Moved => {
                let wait = schedule::dns_retry(d.attempts, age).min(self.config.recheck_active);
                (DomainStatus::Moved, d.dns_misses, now + wait)
            }
            status => {
                if status == DomainStatus::Issuing {
                    events.push(("dns_changed".into(), format!("Issuance stopped: {problem}")));
                } else if changed {
                    events.push(("dns_problem".into(), problem.clone()));
                }
                (
                    DomainStatus::PendingDns,
                    0,
                    now + schedule::dns_retry(d.attempts, age),
                )
            }
        };
        Outcome {
            status,
            check: Some(CheckRecord {
                found,
                problem: Some(problem),
            }),
            last_error: d.last_error.clone(),
            next_attempt_at: next,
            attempts: d.attempts + 1,
            ca_failures: d.ca_failures,
            dns_misses,
            clear_order: status == DomainStatus::PendingDns,
            events,
        }
    }

    async fn pointed(
        &self,
        d: &Claimed,
        now: OffsetDateTime,
        found: serde_json::Value,
    ) -> anyhow::Result<()> {
        let check = CheckRecord {
            found,
            problem: None,
        };
        let has_valid_cert = d.cert_not_after.is_some_and(|t| t > now);
        let renewal_due = d.cert_renew_at.is_none_or(|t| t <= now);
        let next_routine =
            |renew_at: OffsetDateTime| renew_at.min(now + self.config.recheck_active);

        // Serving and not yet due: just record that DNS is still fine.
        if has_valid_cert
            && !renewal_due
            && matches!(d.status, DomainStatus::Active | DomainStatus::Moved)
        {
            let mut events = Vec::new();
            if d.status == DomainStatus::Moved {
                events.push((
                    "back_active".into(),
                    "DNS points at us again; the domain is active.".into(),
                ));
            }
            let outcome = Outcome {
                status: DomainStatus::Active,
                check: Some(check),
                last_error: None,
                next_attempt_at: next_routine(d.cert_renew_at.unwrap_or(now)),
                attempts: 0,
                ca_failures: 0,
                dns_misses: 0,
                clear_order: true,
                events,
            };
            self.store
                .record_outcome(d.id, &self.owner, &outcome)
                .await?;
            return Ok(());
        }

        // Renewal happens inside `active`; everything else goes through `issuing`.
        let renewing = d.status == DomainStatus::Active && has_valid_cert;
        if !renewing && d.status != DomainStatus::Issuing {
            let message = "DNS points at us. Requesting a certificate.";
            if !self
                .store
                .start_issuing(d.id, &self.owner, &check, message)
                .await?
            {
                return Ok(());
            }
        }
        let in_flight = metrics::gauge!("landlord_worker_orders_in_flight");
        in_flight.increment(1.0);
        let result = self.issue(d).await;
        in_flight.decrement(1.0);
        let outcome = match &result {
            Ok(_) => "issued",
            Err(IssueError::Refused(_)) => "refused",
            Err(IssueError::RateLimited(..)) => "rate_limited",
            Err(IssueError::Transient(_)) => "interrupted",
        };
        let kind = if renewing { "renewal" } else { "issuance" };
        metrics::counter!("landlord_worker_certificates_total", "kind" => kind, "outcome" => outcome).increment(1);
        let (status, events, next, last_error, attempts, ca_failures, clear_order) = match &result {
            Ok(cert) => {
                let (kind, verb) = if renewing {
                    ("renewed", "renewed")
                } else {
                    ("issued", "issued")
                };
                let message = format!(
                    "Certificate {verb} by {}; valid until {}.",
                    cert.issuer,
                    cert.not_after.date()
                );
                tracing::info!(kind, not_after = %cert.not_after, "certificate stored");
                (
                    DomainStatus::Active,
                    vec![(kind.to_owned(), message)],
                    next_routine(cert.renew_at),
                    None,
                    0,
                    0,
                    true,
                )
            }
            Err(IssueError::Refused(why)) => {
                let failures = d.ca_failures + 1;
                let wait = schedule::ca_retry(failures);
                tracing::warn!(%why, failures, "the CA refused");
                let (status, kind) = if renewing {
                    (DomainStatus::Active, "renewal_failed")
                } else {
                    (DomainStatus::Failed, "failed")
                };
                let message = format!("{why} Next attempt in {}.", human(wait));
                (
                    status,
                    vec![(kind.to_owned(), message)],
                    now + wait,
                    Some(why.clone()),
                    d.attempts + 1,
                    failures,
                    true,
                )
            }
            Err(IssueError::RateLimited(why, wait)) => {
                let status = if renewing {
                    DomainStatus::Active
                } else {
                    DomainStatus::Issuing
                };
                (
                    status,
                    vec![("rate_limited".to_owned(), why.clone())],
                    now + *wait,
                    Some(why.clone()),
                    d.attempts + 1,
                    d.ca_failures,
                    true,
                )
            }
            Err(IssueError::Transient(why)) => {
                tracing::info!(%why, "issuance interrupted; retrying soon");
                let status = if renewing {
                    DomainStatus::Active
                } else {
                    DomainStatus::Issuing
                };
                (
                    status,
                    vec![],
                    now + schedule::transient_retry(d.attempts),
                    Some(why.clone()),
                    d.attempts + 1,
                    d.ca_failures,
                    false,
                )
            }
        };
        let outcome = Outcome {
            status,
            check: Some(check),
            last_error,
            next_attempt_at: next,
            attempts,
            ca_failures,
            dns_misses: 0,
            clear_order,
            events,
        };
        let applied = match &result {
            Ok(cert) => {
                self.store
                    .install_certificate(d.id, &self.owner, cert, &outcome)
                    .await?
            }
            Err(_) => {
                self.store
                    .record_outcome(d.id, &self.owner, &outcome)
                    .await?
            }
        };
        if !applied {
            tracing::warn!("lost the lease (domain deleted or taken over); result discarded");
        }
        Ok(())
    }

    async fn issue(&self, d: &Claimed) -> Result<NewCertificate, IssueError> {
        let issuer = self
            .issuer
            .get_or_try_init(|| self.connect_issuer())
            .await?;
        let (chain, key_pem, issued_by) = match issuer {
            Issuer::Acme(acme) => {
                let ctx = OrderContext {
                    store: &self.store,
                    key: &self.config.master_key,
                    owner: &self.owner,
                    domain: d.id,
                    hostname: &d.hostname,
                    order_url: d.order_url.as_deref(),
                    order_key_sealed: d.order_key_sealed.as_deref(),
                };
                let (chain, key) = acme.obtain(&ctx).await?;
                (chain, key, "acme")
            }
            Issuer::Local(ca) => {
                let key = rcgen::KeyPair::generate().map_err(IssueError::internal)?;
                let chain = ca.issue(&d.hostname, &key).map_err(IssueError::internal)?;
                (chain, key.serialize_pem(), "local")
            }
        };
        let (_, spki) = spki_of(&key_pem).map_err(IssueError::internal)?;
        let leaf = certificate::inspect(&chain, &spki, &d.hostname).map_err(|e| {
            IssueError::Refused(format!("The CA returned an unusable certificate: {e}."))
        })?;
        Ok(NewCertificate {
            renew_at: match self.config.renew_before {
                Some(window) => leaf.not_after - window,
                None => schedule::renew_at(leaf.not_before, leaf.not_after),
            },
            chain_pem: chain,
            key_sealed: self
                .config
                .master_key
                .seal(key_pem.as_bytes(), &certificate_key_context(&d.hostname)),
            not_before: leaf.not_before,
            not_after: leaf.not_after,
            serial: leaf.serial,
            issuer: leaf.issuer,
            issued_by: issued_by.to_owned(),
        })
    }

    async fn connect_issuer(&self) -> Result<Issuer, IssueError> {
        let result = match &self.config.issuer {
            IssuerConfig::Acme(acme) => {
                AcmeIssuer::connect(&self.store, &self.config.master_key, acme)
                    .await
                    .map(Issuer::Acme)
            }
            IssuerConfig::Local { validity } => {
                LocalCa::load_or_create(&self.store, &self.config.master_key, *validity)
                    .await
                    .map(Issuer::Local)
            }
        };
        result.map_err(|e| {
            IssueError::Transient(format!(
                "The certificate authority is not reachable yet: {e:#}"
            ))
        })
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} seconds"),
        120..=7199 => format!("{} minutes", s / 60),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}
