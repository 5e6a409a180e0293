//! One round of work on one claimed domain: the contract's state machine.

use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tracing::Instrument;

use landlord_store::{
    CheckRecord, Claimed, DomainStatus, EventKind, IssuedBy, NewCertificate, Store,
    certificate_key_context,
};

use crate::acme::{AcmeIssuer, OrderContext, Proof, spki_of};
use crate::dns::{DnsChecker, Expect, Verdict};
use crate::lease::Progress;
use crate::local::LocalCa;
use crate::transition::{IssuedCert, Outcome, READY_BEFORE_SWITCH, Round, Rules, transition};
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

    /// The driver: perform the I/O, turn what happened into an [`Outcome`], and record
    /// the [`Transition`](landlord_store::Transition) the state machine decides.
    async fn step(&self, d: &Claimed) -> anyhow::Result<()> {
        let now = OffsetDateTime::now_utc();
        let mut round = Round {
            domain: d,
            now,
            rules: Rules {
                moved_after: self.config.moved_after,
                recheck_active: self.config.recheck_active,
            },
            renew_at: d.cert_renew_at,
            next_ari_check: d.cert_ari_next_check_at,
        };
        let platform = self.platform_wildcard(d);
        let delegation = match platform {
            Some(_) => None,
            None => self.check_delegation(d).await,
        };
        let verdict = match platform {
            // The platform's own name: nothing of a tenant's to check.
            Some(_) => Verdict::Pointed {
                found: serde_json::Value::Null,
                ownership_proved: true,
            },
            // A wildcard is certified through DNS-01 only: it waits for the delegation.
            None if d.hostname.is_wildcard() && delegation.is_none() => {
                match self.check_dns(d).await {
                    Verdict::Pointed { found, .. } | Verdict::NotPointed { found, .. } => {
                        Verdict::NotPointed {
                            found,
                            problem: self.wildcard_problem(d),
                        }
                    }
                    inconclusive => inconclusive,
                }
            }
            None => self.check_dns(d).await,
        };
        let mut before_switch = None;
        let (found, ownership_proved) = match verdict {
            Verdict::Transient(why) => {
                tracing::info!(%why, "DNS check inconclusive; retrying soon");
                return self
                    .record(&round, Outcome::DnsInconclusive { problem: None }, None)
                    .await;
            }
            Verdict::TooSlow(why) => {
                tracing::info!(%why, "DNS check hit its bound; retrying later");
                let outcome = Outcome::DnsInconclusive { problem: Some(why) };
                return self.record(&round, outcome, None).await;
            }
            // Traffic has not moved here, but validation is delegated to us: the
            // certificate comes through DNS-01 first (and such a domain is never `moved`).
            // The delegated CNAME at this registration's own label proves control as
            // the per-domain target does.
            Verdict::NotPointed { found, problem } if delegation.is_some() => {
                before_switch = Some(problem);
                (found, true)
            }
            Verdict::NotPointed { found, problem } => {
                let outcome = Outcome::NotPointed { found, problem };
                return self.record(&round, outcome, None).await;
            }
            Verdict::Pointed {
                found,
                ownership_proved,
            } => (found, ownership_proved || delegation.is_some()),
        };
        let check = CheckRecord {
            found: Some(found),
            problem: before_switch
                .as_deref()
                .map(|p| before_switch_problem(p, round.has_valid_cert())),
            ownership_proved,
        };
        if round.has_valid_cert()
            && matches!(d.status, DomainStatus::Active | DomainStatus::Moved)
            && let Some((at, next)) = self.poll_renewal_info(d, now).await?
        {
            round.renew_at = Some(at);
            round.next_ari_check = Some(next);
        }
        let Some(issuance) = round.needs_certificate() else {
            return self.record(&round, Outcome::Serving { check }, None).await;
        };
        if issuance.enter_issuing {
            let message = match before_switch {
                Some(_) => {
                    "The _acme-challenge delegation is in place: requesting a certificate through DNS-01 before traffic moves."
                }
                None => "DNS points at us. Requesting a certificate.",
            };
            if !self
                .store
                .start_issuing(d.id, &d.lease, &check, message)
                .await?
            {
                return Ok(());
            }
        }
        let proof = match platform {
            Some(p) => Some(Delegation::Platform(p)),
            None => delegation.as_deref().map(Delegation::Label),
        };
        let Some((mut outcome, cert)) = self.attempt(d, check, issuance.renewing, proof).await
        else {
            return Ok(());
        };
        if let (Some(p), Outcome::Issued { check, .. }) = (&before_switch, &mut outcome) {
            check.problem = Some(before_switch_problem(p, true));
        }
        self.record(&round, outcome, cert.as_ref()).await
    }

    /// One issuance attempt, as the state machine's outcome (with the certificate when
    /// one was obtained); `None` when the lease was lost and nothing may be written.
    async fn attempt(
        &self,
        d: &Claimed,
        check: CheckRecord,
        renewing: bool,
        delegation: Option<Delegation<'_>>,
    ) -> Option<(Outcome, Option<NewCertificate>)> {
        let result = self.issue_holding_lease(d, renewing, delegation).await;
        Some(match result {
            Ok(cert) => {
                tracing::info!(not_after = %cert.not_after, "certificate obtained");
                let issued = IssuedCert {
                    issuer: cert.issuer.clone(),
                    not_after: cert.not_after,
                    renew_at: cert.renew_at,
                };
                (
                    Outcome::Issued {
                        check,
                        cert: issued,
                    },
                    Some(cert),
                )
            }
            Err(IssueError::LeaseLost) => {
                tracing::warn!(
                    "lost the lease (taken over after this worker stalled, or the domain was deleted); stopping without writing"
                );
                return None;
            }
            Err(IssueError::Refused(why)) => {
                tracing::warn!(%why, failures = d.ca_failures + 1, "the CA refused");
                self.record_failed_validation(d, renewing).await;
                (Outcome::Refused { check, why }, None)
            }
            Err(IssueError::RateLimited(why, wait)) => {
                (Outcome::RateLimited { check, why, wait }, None)
            }
            Err(IssueError::Queued { reason, until }) => {
                tracing::info!(%reason, "waiting for CA budget");
                (
                    Outcome::Queued {
                        check,
                        reason,
                        until,
                    },
                    None,
                )
            }
            Err(e @ (IssueError::Transient(_) | IssueError::Internal(_))) => {
                if let IssueError::Internal(cause) = &e {
                    tracing::error!(error = %cause, "issuance interrupted by an internal error");
                }
                let why = e.for_tenant();
                tracing::info!(%why, "issuance interrupted; retrying soon");
                (Outcome::Interrupted { check, why }, None)
            }
        })
    }

    /// Record the transition `outcome` causes (installing `cert` with it, all or
    /// nothing); a lost lease discards it.
    async fn record(
        &self,
        round: &Round<'_>,
        outcome: Outcome,
        cert: Option<&NewCertificate>,
    ) -> anyhow::Result<()> {
        let d = round.domain;
        let t = transition(round, outcome);
        for event in &t.events {
            if event.kind == EventKind::ExpiryWarning {
                tracing::warn!(message = %event.message, "renewal keeps failing; the certificate expires soon");
            }
        }
        let applied = match cert {
            Some(cert) => {
                self.store
                    .install_certificate(d.id, &d.lease, cert, &t)
                    .await?
            }
            None => self.store.record_transition(d.id, &d.lease, &t).await?,
        };
        if !applied {
            tracing::warn!("lost the lease (domain deleted or taken over); result discarded");
        }
        Ok(())
    }

    /// With DNS-01 configured: is `_acme-challenge.<name>` a CNAME to this registration's
    /// label in the challenge zone? Recorded for the API (`dcv_delegation.verified`);
    /// the label when it is (validation then goes through DNS-01). A failed lookup
    /// changes nothing recorded, and counts as not delegated for this round.
    async fn check_delegation(&self, d: &Claimed) -> Option<String> {
        let dns01 = self.config.dns01.as_ref()?;
        let label = d.dcv_label.clone()?;
        let name = format!(
            "_acme-challenge.{}",
            landlord_store::dcv_name(d.hostname.as_str())
        );
        let lookup = tokio::time::timeout(self.config.dns_deadline, self.dns.cname_targets(&name));
        let Ok(Ok(targets)) = lookup.await else {
            return None;
        };
        let verified = targets.contains(&dns01.delegation_target(&label));
        match self
            .store
            .set_dcv_verified(d.tenant_id, &d.hostname, verified)
            .await
        {
            Ok(true) => tracing::info!(%name, verified, "delegated DCV record changed"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "recording the delegation failed"),
        }
        verified.then_some(label)
    }

    /// Remove the DNS-01 records written for `domain` (or, with `None`, every one a
    /// crashed round left for an hour), forgetting each once it is gone.
    pub(crate) async fn clean_dns_records(&self, domain: Option<landlord_store::DomainId>) {
        let Some(dns01) = &self.config.dns01 else {
            return;
        };
        let records = match self
            .store
            .dns_records(domain, std::time::Duration::from_secs(3600))
            .await
        {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e, "listing DNS-01 records failed");
                return;
            }
        };
        for r in records {
            let (Ok(zone), Ok(name)) = (
                hickory_proto::rr::Name::from_ascii(&r.zone),
                hickory_proto::rr::Name::from_ascii(&r.name),
            ) else {
                continue;
            };
            use crate::dns::update::UpdateError;
            match dns01.updater.remove_txt(&zone, &name, &r.value).await {
                // A zone that refuses our updates holds nothing we wrote (the write
                // noted before it was refused the same way).
                Ok(()) | Err(UpdateError::Refused { .. } | UpdateError::OutOfZone { .. }) => {
                    if let Err(e) = self.store.forget_dns_record(r.id).await {
                        tracing::warn!(error = %e, "forgetting a removed DNS-01 record failed");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, record = %r.name, "removing a DNS-01 record failed; retried later")
                }
            }
        }
    }

    /// DNS-01 through the delegation when there is one (and DNS-01 is configured), or in
    /// the platform domain's own zone for its wildcard; HTTP-01 otherwise.
    fn proof(&self, delegation: Option<Delegation<'_>>) -> Result<Proof<'_>, IssueError> {
        let (Some(dns01), Some(delegation)) = (&self.config.dns01, delegation) else {
            return Ok(Proof::Http01);
        };
        let name = |s: String| {
            hickory_proto::rr::Name::from_ascii(format!("{s}.")).map_err(IssueError::internal)
        };
        let (zone, record) = match delegation {
            Delegation::Label(label) => (&dns01.zone, dns01.delegation_target(label)),
            Delegation::Platform(p) => (&p.zone, format!("_acme-challenge.{}", p.domain)),
        };
        Ok(Proof::Dns01 {
            updater: &dns01.updater,
            zone: name(zone.to_string())?,
            record: name(record)?,
            propagation: dns01.propagation_timeout,
        })
    }

    /// The platform domain's settings when `d` is its wildcard (`*.<LANDLORD_PLATFORM_DOMAIN>`,
    /// a name no tenant can register).
    fn platform_wildcard(&self, d: &Claimed) -> Option<&crate::PlatformDomain> {
        let platform = self.config.dns01.as_ref()?.platform.as_ref()?;
        (d.hostname.as_str().strip_prefix("*.") == Some(platform.domain.as_str()))
            .then_some(platform)
    }

    /// What a wildcard registration waits for, in words for its tenant.
    fn wildcard_problem(&self, d: &Claimed) -> String {
        let base = landlord_store::dcv_name(d.hostname.as_str());
        match (&self.config.dns01, &d.dcv_label) {
            (Some(dns01), Some(label)) => format!(
                "{} is a wildcard: its certificate can only be obtained through DNS-01. Create the CNAME record _acme-challenge.{base} pointing at {} (see dcv_delegation); nothing else is needed before it.",
                d.hostname,
                dns01.delegation_target(label)
            ),
            _ => format!(
                "{} is a wildcard: its certificate can only be obtained through DNS-01, which this platform no longer has configured.",
                d.hostname
            ),
        }
    }

    /// The DNS check, bounded by the round's DNS deadline (the tenant's nameservers).
    async fn check_dns(&self, d: &Claimed) -> Verdict {
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
        tokio::time::timeout(deadline, self.dns.check(&d.hostname, expect))
            .await
            .unwrap_or_else(|_| {
                Verdict::TooSlow(format!(
                    "The DNS check of {} did not finish within {}: its nameservers answer too slowly or not at all (a long CNAME chain, or a server that drops some queries, e.g. CAA). Landlord retries automatically.",
                    d.hostname,
                    schedule::human(deadline)
                ))
            })
    }

    /// One issuance attempt while holding the lease, counted in the metrics.
    async fn issue_holding_lease(
        &self,
        d: &Claimed,
        renewing: bool,
        delegation: Option<Delegation<'_>>,
    ) -> Result<NewCertificate, IssueError> {
        let in_flight = metrics::gauge!("landlord_worker_orders_in_flight");
        in_flight.increment(1.0);
        let progress = Progress::new();
        let result = crate::lease::hold(
            &self.store,
            d.id,
            &d.lease,
            self.config.lease,
            &progress,
            self.issue(d, &progress, delegation),
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
        result
    }

    async fn issue(
        &self,
        d: &Claimed,
        progress: &Progress,
        delegation: Option<Delegation<'_>>,
    ) -> Result<NewCertificate, IssueError> {
        let issuer = self
            .issuer
            .get_or_try_init(|| self.connect_issuer())
            .await?;
        let registered_domain = d.hostname.registrable_domain();
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
                    registered_domain,
                    budgets: &self.config.budgets,
                    progress,
                    max_poll_interval: crate::lease::max_poll_interval(self.config.lease),
                    edge_sync_timeout: self.config.edge_sync_timeout,
                    proof: self.proof(delegation)?,
                };
                // Records a crashed round of this domain left go first; this round's after.
                self.clean_dns_records(Some(d.id)).await;
                let obtained = acme.obtain(&ctx).await;
                self.clean_dns_records(Some(d.id)).await;
                let (chain, key) = obtained?;
                (
                    acme.directory_url().to_owned(),
                    (chain, key, IssuedBy::Acme),
                )
            }
            Issuer::Local(ca) => {
                let key = rcgen::KeyPair::generate().map_err(IssueError::internal)?;
                let chain = ca
                    .issue(d.hostname.as_str(), &key)
                    .map_err(IssueError::internal)?;
                (
                    "local".to_owned(),
                    (chain, key.serialize_pem(), IssuedBy::Local),
                )
            }
        };
        let (_, spki) = spki_of(&key_pem).map_err(IssueError::internal)?;
        let leaf = certificate::inspect(&chain, &spki, d.hostname.as_str()).map_err(|e| {
            IssueError::Refused(format!("The CA returned an unusable certificate: {e}."))
        })?;
        Ok(NewCertificate {
            renew_at: match self.config.renew_before {
                Some(window) => leaf.not_after - window,
                None => schedule::renew_at(leaf.not_before, leaf.not_after, rand::random()),
            },
            ari_cert_id: if issued_by == IssuedBy::Acme {
                leaf.ari_id
            } else {
                None
            },
            ca,
            registered_domain: registered_domain.to_owned(),
            replaces: d.cert_serial.clone(),
            chain_pem: chain,
            key_sealed: self.config.master_key.seal(
                key_pem.as_bytes(),
                &certificate_key_context(d.hostname.as_str()),
            ),
            not_before: leaf.not_before,
            not_after: leaf.not_after,
            serial: leaf.serial,
            issuer: leaf.issuer,
            issued_by,
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
        if d.cert_issued_by != Some(IssuedBy::Acme)
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
                            .record_event(d.id, &d.lease, EventKind::RenewalWindow, &message)
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
            hostname: d.hostname.as_str(),
            registered_domain: d.hostname.registrable_domain(),
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

/// How a DNS-01 name is reached: a registration's delegated label, or the platform
/// domain's own `_acme-challenge`.
#[derive(Clone, Copy)]
pub(crate) enum Delegation<'a> {
    Label(&'a str),
    Platform(&'a crate::PlatformDomain),
}

/// What a domain whose traffic has not moved here yet, but whose validation is delegated,
/// tells its tenant (`problem`: what DNS shows now).
fn before_switch_problem(problem: &str, certified: bool) -> String {
    match certified {
        true => format!(
            "{READY_BEFORE_SWITCH} (validated through the _acme-challenge delegation): HTTPS works from the first request once traffic moves here. Not yet: {problem}"
        ),
        false => format!(
            "Traffic has not moved here yet: {problem} The certificate is being obtained through the _acme-challenge delegation meanwhile, so HTTPS works from the first request once it does."
        ),
    }
}
