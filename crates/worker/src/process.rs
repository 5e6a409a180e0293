//! One round of work on one claimed domain: the contract's state machine.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tracing::Instrument;

use landlord_store::{
    CheckRecord, Claimed, DomainStatus, NewCertificate, Outcome, Store, certificate_key_context,
};

use crate::acme::{AcmeIssuer, OrderContext, spki_of};
use crate::dns::{DnsChecker, Expect, Verdict};
use crate::lease::Progress;
use crate::local::LocalCa;
use crate::{IssueError, IssuerConfig, WorkerConfig, certificate, schedule};

enum Issuer {
    Acme(AcmeIssuer),
    Local(Box<LocalCa>),
}

pub struct Context {
    store: Store,
    config: WorkerConfig,
    dns: DnsChecker,
    issuer: OnceCell<Issuer>,
}

impl Context {
    pub fn new(store: Store, config: WorkerConfig) -> anyhow::Result<Self> {
        let dns = DnsChecker::new(config.dns.clone())?;
        Ok(Self {
            store,
            config,
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
        // The part of the round that depends on the tenant's nameservers, bounded well
        // inside the lease.
        let deadline = self.config.dns_deadline;
        let own_target = format!("{}.{}", d.target_label, self.config.dns.cname_target);
        let expect = Expect {
            own_target: &own_target,
            shared_ok: d.shared_target_ok,
            ownership: d
                .ownership_verified_at
                .is_none()
                .then_some(d.ownership_token.as_str()),
        };
        let verdict = tokio::time::timeout(deadline, self.dns.check(&d.hostname, expect))
            .await
            .unwrap_or_else(|_| {
                Verdict::TooSlow(format!(
                    "The DNS check of {} did not finish within {}: its nameservers answer too slowly or not at all (a long CNAME chain, or a server that drops some queries, e.g. CAA). Landlord retries automatically.",
                    d.hostname,
                    schedule::human(deadline)
                ))
            });
        let outcome = match verdict {
            Verdict::Transient(why) => {
                tracing::info!(%why, "DNS check inconclusive; retrying soon");
                self.inconclusive(d, now, None)
            }
            Verdict::TooSlow(why) => {
                tracing::info!(%why, "DNS check hit its bound; retrying later");
                self.inconclusive(d, now, Some(why))
            }
            Verdict::NotPointed { found, problem } => self.not_pointed(d, now, found, problem),
            Verdict::Pointed {
                found,
                ownership_proved,
            } => return self.pointed(d, now, found, ownership_proved).await,
        };
        self.store.record_outcome(d.id, &d.lease, &outcome).await?;
        Ok(())
    }

    /// DNS did not decide: keep the status and retry. A `problem` (a bound was hit) is
    /// shown to the tenant as the check's result, with an event when it is new; a plain
    /// transient failure (one lost packet) changes nothing the tenant sees.
    fn inconclusive(&self, d: &Claimed, now: OffsetDateTime, problem: Option<String>) -> Outcome {
        let mut events = Vec::new();
        if let Some(p) = &problem
            && d.check_problem.as_deref() != Some(p.as_str())
        {
            events.push(("dns_slow".to_owned(), p.clone()));
        }
        Outcome {
            status: d.status,
            check: problem.map(|p| CheckRecord {
                found: None,
                problem: Some(p),
                ownership_proved: false,
            }),
            last_error: d.last_error.clone(),
            next_attempt_at: now + schedule::transient_retry(d.attempts),
            attempts: d.attempts + 1,
            ca_failures: d.ca_failures,
            dns_misses: d.dns_misses,
            clear_order: false,
            events,
            queued: None,
        }
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
                found: Some(found),
                problem: Some(problem),
                ownership_proved: false,
            }),
            last_error: d.last_error.clone(),
            next_attempt_at: next,
            attempts: d.attempts + 1,
            ca_failures: d.ca_failures,
            dns_misses,
            clear_order: status == DomainStatus::PendingDns,
            events,
            queued: None,
        }
    }

    async fn pointed(
        &self,
        d: &Claimed,
        now: OffsetDateTime,
        found: serde_json::Value,
        ownership_proved: bool,
    ) -> anyhow::Result<()> {
        let check = CheckRecord {
            found: Some(found),
            problem: None,
            ownership_proved,
        };
        let has_valid_cert = d.cert_not_after.is_some_and(|t| t > now);
        let mut renew_at = d.cert_renew_at;
        let mut next_ari_check = d.cert_ari_next_check_at;
        if has_valid_cert
            && matches!(d.status, DomainStatus::Active | DomainStatus::Moved)
            && let Some((at, next)) = self.poll_renewal_info(d, now).await?
        {
            renew_at = Some(at);
            next_ari_check = Some(next);
        }
        let renewal_due = renew_at.is_none_or(|t| t <= now);
        // The next ARI poll brings the next visit forward; a poll that is already due but
        // could not run (CA unreachable) must not make the domain due again at once.
        let next_routine = |renew_at: OffsetDateTime| {
            let at = renew_at.min(now + self.config.recheck_active);
            next_ari_check
                .filter(|ari| *ari > now)
                .map_or(at, |ari| at.min(ari))
        };

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
                next_attempt_at: next_routine(renew_at.unwrap_or(now)),
                attempts: 0,
                ca_failures: 0,
                dns_misses: 0,
                clear_order: true,
                events,
                queued: None,
            };
            self.store.record_outcome(d.id, &d.lease, &outcome).await?;
            return Ok(());
        }

        // Renewal happens inside `active`; everything else goes through `issuing`.
        let renewing = d.status == DomainStatus::Active && has_valid_cert;
        if !renewing && d.status != DomainStatus::Issuing {
            let message = "DNS points at us. Requesting a certificate.";
            if !self
                .store
                .start_issuing(d.id, &d.lease, &check, message)
                .await?
            {
                return Ok(());
            }
        }
        let in_flight = metrics::gauge!("landlord_worker_orders_in_flight");
        in_flight.increment(1.0);
        let progress = Progress::new();
        let result = crate::lease::hold(
            &self.store,
            d.id,
            &d.lease,
            self.config.lease,
            &progress,
            self.issue(d, &progress),
        )
        .await;
        in_flight.decrement(1.0);
        let outcome = match &result {
            Ok(_) => "issued",
            Err(IssueError::Refused(_)) => "refused",
            Err(IssueError::RateLimited(..)) => "rate_limited",
            Err(IssueError::Transient(_) | IssueError::Internal(_)) => "interrupted",
            Err(IssueError::Queued { .. }) => "queued",
            Err(IssueError::LeaseLost) => "lease_lost",
        };
        let kind = if renewing { "renewal" } else { "issuance" };
        metrics::counter!("landlord_worker_certificates_total", "kind" => kind, "outcome" => outcome).increment(1);
        match &result {
            Err(IssueError::LeaseLost) => {
                tracing::warn!(
                    "lost the lease (taken over after this worker stalled, or the domain was deleted); stopping without writing"
                );
                return Ok(());
            }
            Err(IssueError::Internal(cause)) => {
                tracing::error!(error = %cause, "issuance interrupted by an internal error");
            }
            _ => {}
        }
        // While renewing, every retry must come well before the served certificate expires.
        let until_expiry: Option<Duration> = renewing
            .then(|| d.cert_not_after.and_then(|t| (t - now).try_into().ok()))
            .flatten();
        let lifetime = match (d.cert_not_before, d.cert_not_after) {
            (Some(nb), Some(na)) => (na - nb).try_into().unwrap_or(Duration::ZERO),
            _ => Duration::ZERO,
        };
        let expiry_note = |until: Duration| {
            let expires = d
                .cert_not_after
                .map(|t| t.date().to_string())
                .unwrap_or_default();
            format!(
                "The current certificate stays in use until it expires on {expires} (in {}).",
                schedule::human(until)
            )
        };
        let mut queued = None;
        let (status, mut events, next, last_error, attempts, ca_failures, clear_order) =
            match &result {
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
                    let mut wait = schedule::ca_retry(failures);
                    if let Some(until) = until_expiry {
                        wait = schedule::before_expiry(wait, until, Duration::from_secs(60));
                    }
                    tracing::warn!(%why, failures, "the CA refused");
                    self.record_failed_validation(d, renewing).await;
                    let (status, kind) = if renewing {
                        (DomainStatus::Active, "renewal_failed")
                    } else {
                        (DomainStatus::Failed, "failed")
                    };
                    let mut message = format!("{why} Next attempt in {}.", schedule::human(wait));
                    if let Some(until) = until_expiry {
                        message = format!("Renewal failed: {message} {}", expiry_note(until));
                    }
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
                Err(IssueError::Queued { reason, until }) => {
                    tracing::info!(%reason, "waiting for CA budget");
                    let status = if renewing {
                        DomainStatus::Active
                    } else {
                        DomainStatus::Issuing
                    };
                    let events = if d.queued_reason.is_none() {
                        vec![("queued".to_owned(), reason.clone())]
                    } else {
                        vec![]
                    };
                    queued = Some((reason.clone(), *until));
                    (
                        status,
                        events,
                        *until,
                        d.last_error.clone(),
                        d.attempts,
                        d.ca_failures,
                        false,
                    )
                }
                Err(
                    e
                    @ (IssueError::Transient(_) | IssueError::Internal(_) | IssueError::LeaseLost),
                ) => {
                    let why = e.for_tenant();
                    tracing::info!(%why, "issuance interrupted; retrying soon");
                    let status = if renewing {
                        DomainStatus::Active
                    } else {
                        DomainStatus::Issuing
                    };
                    let mut wait = schedule::transient_retry(d.attempts);
                    if let Some(until) = until_expiry {
                        wait = schedule::before_expiry(wait, until, Duration::from_secs(5));
                    }
                    (
                        status,
                        vec![],
                        now + wait,
                        Some(why.clone()),
                        d.attempts + 1,
                        d.ca_failures,
                        false,
                    )
                }
            };
        // A renewal that keeps failing says so loudly once less than a sixth of the
        // certificate's life is left (half of the renewal window).
        if let (Err(e), Some(until)) = (&result, until_expiry) {
            let failing = matches!(e, IssueError::Refused(_))
                || (matches!(e, IssueError::Transient(_) | IssueError::Internal(_))
                    && d.attempts == 2);
            if failing && until < lifetime / 6 {
                tracing::warn!(error = %e, expires_in = ?until, "renewal keeps failing; the certificate expires soon");
                events.push((
                    "expiry_warning".to_owned(),
                    format!(
                        "Warning: renewal keeps failing ({}). {} Landlord keeps retrying.",
                        e.for_tenant(),
                        expiry_note(until)
                    ),
                ));
            }
        }
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
            queued,
        };
        let applied = match &result {
            Ok(cert) => {
                self.store
                    .install_certificate(d.id, &d.lease, cert, &outcome)
                    .await?
            }
            Err(_) => self.store.record_outcome(d.id, &d.lease, &outcome).await?,
        };
        if !applied {
            tracing::warn!("lost the lease (domain deleted or taken over); result discarded");
        }
        Ok(())
    }

    async fn issue(&self, d: &Claimed, progress: &Progress) -> Result<NewCertificate, IssueError> {
        let issuer = self
            .issuer
            .get_or_try_init(|| self.connect_issuer())
            .await?;
        let registered_domain = registered_domain(&d.hostname);
        let (ca, (chain, key_pem, issued_by)) = match issuer {
            Issuer::Acme(acme) => {
                let ctx = OrderContext {
                    store: &self.store,
                    key: &self.config.master_key,
                    lease: &d.lease,
                    tenant: d.tenant_id,
                    domain: d.id,
                    hostname: &d.hostname,
                    order_url: d.order_url.as_deref(),
                    order_key_sealed: d.order_key_sealed.as_deref(),
                    replaces: d.cert_ari_id.as_deref(),
                    renewal: d.cert_serial.is_some(),
                    registered_domain: &registered_domain,
                    budgets: &self.config.budgets,
                    progress,
                    max_poll_interval: crate::lease::max_poll_interval(self.config.lease),
                };
                let (chain, key) = acme.obtain(&ctx).await?;
                (acme.directory_url().to_owned(), (chain, key, "acme"))
            }
            Issuer::Local(ca) => {
                let key = rcgen::KeyPair::generate().map_err(IssueError::internal)?;
                let chain = ca.issue(&d.hostname, &key).map_err(IssueError::internal)?;
                ("local".to_owned(), (chain, key.serialize_pem(), "local"))
            }
        };
        let (_, spki) = spki_of(&key_pem).map_err(IssueError::internal)?;
        let leaf = certificate::inspect(&chain, &spki, &d.hostname).map_err(|e| {
            IssueError::Refused(format!("The CA returned an unusable certificate: {e}."))
        })?;
        Ok(NewCertificate {
            renew_at: match self.config.renew_before {
                Some(window) => leaf.not_after - window,
                None => schedule::renew_at(leaf.not_before, leaf.not_after, rand::random()),
            },
            ari_cert_id: if issued_by == "acme" {
                leaf.ari_id
            } else {
                None
            },
            ca,
            registered_domain,
            replaces: d.cert_serial.clone(),
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

    /// Poll the CA's renewal information for the served certificate when it is due
    /// (ACME certificates with an RFC 9773 identifier). Returns the renewal time and the
    /// next poll when it learned something.
    async fn poll_renewal_info(
        &self,
        d: &Claimed,
        now: OffsetDateTime,
    ) -> anyhow::Result<Option<(OffsetDateTime, OffsetDateTime)>> {
        let (Some(id), Some(serial)) = (d.cert_ari_id.as_deref(), d.cert_serial.as_deref()) else {
            return Ok(None);
        };
        if d.cert_issued_by.as_deref() != Some("acme")
            || d.cert_ari_next_check_at.is_some_and(|t| t > now)
            || !matches!(self.config.issuer, IssuerConfig::Acme(_))
        {
            return Ok(None);
        }
        let Ok(Issuer::Acme(acme)) = self.issuer.get_or_try_init(|| self.connect_issuer()).await
        else {
            return Ok(None);
        };
        match acme.renewal_info(id).await {
            Ok(Some((info, retry_after))) => {
                let record = crate::ari::decide(&info, retry_after, now, rand::random());
                metrics::counter!("landlord_worker_ari_polls_total", "outcome" => "window")
                    .increment(1);
                if self
                    .store
                    .record_renewal_info(d.id, &d.lease, serial, &record)
                    .await?
                {
                    let first = d.cert_ari_next_check_at.is_none();
                    let early = d
                        .cert_renew_at
                        .is_some_and(|t| record.renew_at < t - time::Duration::days(1));
                    if first || early {
                        let mut message = format!(
                            "The CA suggests renewing between {} and {}; renewal scheduled for {}.",
                            record.window_start, record.window_end, record.renew_at
                        );
                        if let Some(url) = &record.explanation_url {
                            message.push_str(&format!(" The CA explains why: {url}"));
                        }
                        self.store
                            .record_event(d.id, &d.lease, "renewal_window", &message)
                            .await?;
                    }
                    return Ok(Some((record.renew_at, record.next_check_at)));
                }
                Ok(None)
            }
            Ok(None) => {
                // No ARI at this CA: the lifetime rule applies; look again tomorrow.
                metrics::counter!("landlord_worker_ari_polls_total", "outcome" => "unsupported")
                    .increment(1);
                let next = now + time::Duration::days(1);
                self.store.postpone_renewal_info(d.id, serial, next).await?;
                Ok(d.cert_renew_at.map(|at| (at, next)))
            }
            Err(e) => {
                metrics::counter!("landlord_worker_ari_polls_total", "outcome" => "error")
                    .increment(1);
                tracing::info!(error = %e, "renewal information unavailable; using the lifetime rule, retrying in an hour");
                let next = now + time::Duration::hours(1);
                self.store.postpone_renewal_info(d.id, serial, next).await?;
                Ok(d.cert_renew_at.map(|at| (at, next)))
            }
        }
    }

    /// A CA refusal counts against the hostname's failed-validation budget.
    async fn record_failed_validation(&self, d: &Claimed, renewal: bool) {
        let IssuerConfig::Acme(acme) = &self.config.issuer else {
            return;
        };
        let request = landlord_store::OrderRequest {
            ca: &acme.directory_url,
            tenant_id: d.tenant_id,
            domain_id: d.id,
            hostname: &d.hostname,
            registered_domain: &registered_domain(&d.hostname),
            renewal,
        };
        if let Err(e) = self.store.record_failed_validation(&request).await {
            tracing::warn!(error = %e, "could not record the failed validation");
        }
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
                    .map(|ca| Issuer::Local(Box::new(ca)))
            }
        };
        result.map_err(|e| {
            IssueError::Internal(format!(
                "the certificate authority is not usable yet: {e:#}"
            ))
        })
    }
}

/// The registered domain (eTLD+1 by the Public Suffix List) a CA counts a name under.
fn registered_domain(hostname: &str) -> String {
    landlord_store::Hostname::parse(hostname)
        .map(|h| h.registrable_domain().to_owned())
        .unwrap_or_else(|_| hostname.to_owned())
}
