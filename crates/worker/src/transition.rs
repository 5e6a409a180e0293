//! The domain lifecycle as pure functions: what one round's outcome means for a claimed
//! domain's status, schedule and timeline. No I/O and no clock of its own: `process.rs`
//! performs the DNS check and the issuance, turns what happened into an [`Outcome`], and
//! records the [`Transition`] decided here. The README's transition list is this file;
//! each transition has a unit test named after it below.

use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use landlord_store::{CheckRecord, Claimed, DomainStatus, EventKind, NewEvent, Queued, Transition};

use crate::schedule;

/// The settings a transition follows.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Consecutive failed checks before an active domain becomes `moved`.
    pub moved_after: i32,
    /// How often an active domain's DNS is re-checked.
    pub recheck_active: Duration,
}

/// One round as the state machine sees it: the claimed domain, the time, and the
/// renewal schedule as known this round (the CA's renewal information may have moved it).
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    pub domain: &'a Claimed,
    pub now: OffsetDateTime,
    pub rules: Rules,
    pub renew_at: Option<OffsetDateTime>,
    pub next_ari_check: Option<OffsetDateTime>,
}

/// What one round found out.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// DNS did not decide. `problem` is set when a bound was hit (deadline, CAA climb)
    /// and is shown to the tenant; a plain transient failure (one lost packet) is not.
    DnsInconclusive { problem: Option<String> },
    /// DNS does not point at us (or CAA forbids our CA); `problem` is for the tenant.
    NotPointed { found: Value, problem: String },
    /// DNS points at us and the served certificate is valid and not due:
    /// [`Round::needs_certificate`] said no.
    Serving { check: CheckRecord },
    /// A certificate was obtained and is about to be installed.
    Issued {
        check: CheckRecord,
        cert: IssuedCert,
    },
    /// The CA refused (validation failed, CAA, unusable certificate).
    Refused { check: CheckRecord, why: String },
    /// The CA's rate limit: wait at least `wait`.
    RateLimited {
        check: CheckRecord,
        why: String,
        wait: Duration,
    },
    /// A CA budget is spent: no order was placed.
    Queued {
        check: CheckRecord,
        reason: String,
        until: OffsetDateTime,
    },
    /// Network trouble, CA 5xx, our own database: the same order is resumed soon.
    /// `why` is the sentence the tenant reads.
    Interrupted { check: CheckRecord, why: String },
}

/// What the tenant is told about a new certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub issuer: String,
    pub not_after: OffsetDateTime,
    pub renew_at: OffsetDateTime,
}

/// The issuance a passing check calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issuance {
    /// A renewal inside `active` (a valid certificate keeps being served meanwhile).
    pub renewing: bool,
    /// Move to `issuing` (with `dns_verified`) before the order: everything but a renewal
    /// and a domain already `issuing`.
    pub enter_issuing: bool,
}

impl Round<'_> {
    /// A certificate is stored and has not expired.
    pub fn has_valid_cert(&self) -> bool {
        self.domain.cert_not_after.is_some_and(|t| t > self.now)
    }

    /// After a passing check: does the domain need a certificate now?
    pub fn needs_certificate(&self) -> Option<Issuance> {
        let d = self.domain;
        let serving = matches!(d.status, DomainStatus::Active | DomainStatus::Moved);
        let due = self.renew_at.is_none_or(|t| t <= self.now);
        if serving && self.has_valid_cert() && !due {
            return None;
        }
        let renewing = d.status == DomainStatus::Active && self.has_valid_cert();
        Some(Issuance {
            renewing,
            enter_issuing: !renewing && d.status != DomainStatus::Issuing,
        })
    }

    /// A renewal inside `active`.
    fn renewing(&self) -> bool {
        self.domain.status == DomainStatus::Active && self.has_valid_cert()
    }

    /// While renewing: how long the served certificate has left.
    fn until_expiry(&self) -> Option<Duration> {
        if !self.renewing() {
            return None;
        }
        (self.domain.cert_not_after? - self.now).try_into().ok()
    }

    /// The routine visit of an active domain: at renewal, at the daily re-check, or at
    /// the next ARI poll, whichever is first. A poll already due that could not run (CA
    /// unreachable) does not make the domain due again at once.
    fn next_routine(&self, renew_at: OffsetDateTime) -> OffsetDateTime {
        let at = renew_at.min(self.now + self.rules.recheck_active);
        self.next_ari_check
            .filter(|ari| *ari > self.now)
            .map_or(at, |ari| at.min(ari))
    }

    fn age(&self) -> Duration {
        (self.now - self.domain.created_at)
            .try_into()
            .unwrap_or(Duration::ZERO)
    }

    /// The status of a domain that stays where it is during issuance: `active` while
    /// renewing, `issuing` otherwise.
    fn issuance_status(&self) -> DomainStatus {
        if self.renewing() {
            DomainStatus::Active
        } else {
            DomainStatus::Issuing
        }
    }

    /// The domain as it was, one attempt later: the base every transition edits.
    fn unchanged(&self, check: Option<CheckRecord>, wait: Duration) -> Transition {
        let d = self.domain;
        Transition {
            status: d.status,
            check,
            last_error: d.last_error.clone(),
            next_attempt_at: self.now + wait,
            attempts: d.attempts + 1,
            ca_failures: d.ca_failures,
            dns_misses: d.dns_misses,
            clear_order: false,
            events: Vec::new(),
            queued: None,
        }
    }
}

/// The one entry point: the transition an outcome causes.
pub fn transition(round: &Round, outcome: Outcome) -> Transition {
    // A renewal that keeps failing: every refusal, the third interruption in a row.
    let failing = match &outcome {
        Outcome::Refused { .. } => true,
        Outcome::Interrupted { .. } => round.domain.attempts == 2,
        _ => false,
    };
    let mut t = match outcome {
        Outcome::DnsInconclusive { problem } => on_dns_inconclusive(round, problem),
        Outcome::NotPointed { found, problem } => on_not_pointed(round, found, problem),
        Outcome::Serving { check } => on_serving(round, check),
        Outcome::Issued { check, cert } => on_issued(round, check, &cert),
        Outcome::Refused { check, why } => on_refused(round, check, why),
        Outcome::RateLimited { check, why, wait } => on_rate_limited(round, check, why, wait),
        Outcome::Queued {
            check,
            reason,
            until,
        } => on_queued(round, check, reason, until),
        Outcome::Interrupted { check, why } => on_interrupted(round, check, why),
    };
    if failing {
        t.events.extend(expiry_warning(round, &t));
    }
    t
}

/// DNS did not decide: keep the status and retry soon. A bound that was hit is shown as
/// the check's result, with a `dns_slow` event when it is new.
fn on_dns_inconclusive(round: &Round, problem: Option<String>) -> Transition {
    let d = round.domain;
    let mut t = round.unchanged(None, schedule::transient_retry(d.attempts));
    if let Some(p) = problem {
        if d.check_problem.as_deref() != Some(p.as_str()) {
            t.events.push(NewEvent::new(EventKind::DnsSlow, p.clone()));
        }
        t.check = Some(CheckRecord {
            found: None,
            problem: Some(p),
            ownership_proved: false,
        });
    }
    t
}

/// DNS points elsewhere: `active` counts misses towards `moved`, `moved` keeps looking,
/// everything else is (back to) `pending_dns` with the order dropped.
fn on_not_pointed(round: &Round, found: Value, problem: String) -> Transition {
    let d = round.domain;
    let rules = round.rules;
    let check = Some(CheckRecord {
        found: Some(found),
        problem: Some(problem.clone()),
        ownership_proved: false,
    });
    let slow = schedule::dns_retry(d.attempts, round.age());
    match d.status {
        DomainStatus::Active => {
            let misses = d.dns_misses + 1;
            if misses >= rules.moved_after {
                let mut t = round.unchanged(check, slow);
                t.status = DomainStatus::Moved;
                t.dns_misses = misses;
                t.events.push(NewEvent::new(EventKind::Moved, format!("DNS no longer points at us: {problem} The certificate keeps being served until it expires but is not renewed.")));
                return t;
            }
            // Confirm soon (but never later than the routine re-check would).
            let wait = schedule::dns_retry(misses - 1, Duration::ZERO).min(rules.recheck_active);
            let mut t = round.unchanged(check, wait);
            t.dns_misses = misses;
            if misses == 1 {
                t.events.push(NewEvent::new(
                    EventKind::DnsProblem,
                    format!("{problem} (check {misses} of {}).", rules.moved_after),
                ));
            }
            t
        }
        DomainStatus::Moved => round.unchanged(check, slow.min(rules.recheck_active)),
        status => {
            let mut t = round.unchanged(check, slow);
            t.status = DomainStatus::PendingDns;
            t.dns_misses = 0;
            t.clear_order = true;
            if status == DomainStatus::Issuing {
                t.events.push(NewEvent::new(
                    EventKind::DnsChanged,
                    format!("Issuance stopped: {problem}"),
                ));
            } else if d.check_problem.as_deref() != Some(problem.as_str()) {
                t.events.push(NewEvent::new(EventKind::DnsProblem, problem));
            }
            t
        }
    }
}

/// Pointed, serving, not due: record that DNS is still fine (`moved → active`).
fn on_serving(round: &Round, check: CheckRecord) -> Transition {
    let d = round.domain;
    let mut t = success(round, check, round.renew_at.unwrap_or(round.now));
    if d.status == DomainStatus::Moved {
        t.events.push(NewEvent::new(
            EventKind::BackActive,
            "DNS points at us again; the domain is active.",
        ));
    }
    t
}

/// `issuing → active`, or a renewal inside `active`.
/// How `check.problem` starts for a domain certified through its delegation before its
/// traffic came (and its `issued` event says so too).
pub const READY_BEFORE_SWITCH: &str = "Certificate ready before DNS switch";

fn on_issued(round: &Round, check: CheckRecord, cert: &IssuedCert) -> Transition {
    let (kind, verb) = if round.renewing() {
        (EventKind::Renewed, "renewed")
    } else {
        (EventKind::Issued, "issued")
    };
    let early = check
        .problem
        .as_deref()
        .is_some_and(|p| p.starts_with(READY_BEFORE_SWITCH));
    let mut t = success(round, check, cert.renew_at);
    let mut message = format!(
        "Certificate {verb} by {}; valid until {}.",
        cert.issuer,
        cert.not_after.date()
    );
    if early {
        message.push_str(&format!(
            " {READY_BEFORE_SWITCH}: HTTPS works from the first request once traffic moves here."
        ));
    }
    t.events.push(NewEvent::new(kind, message));
    t
}

/// `active` with every counter reset, next visit the routine one.
fn success(round: &Round, check: CheckRecord, renew_at: OffsetDateTime) -> Transition {
    Transition {
        status: DomainStatus::Active,
        check: Some(check),
        last_error: None,
        next_attempt_at: round.next_routine(renew_at),
        attempts: 0,
        ca_failures: 0,
        dns_misses: 0,
        clear_order: true,
        events: Vec::new(),
        queued: None,
    }
}

/// `issuing → failed` on the first refusal, on the CA backoff; a refused renewal stays
/// `active` (`renewal_failed`), retried well before the certificate expires.
fn on_refused(round: &Round, check: CheckRecord, why: String) -> Transition {
    let d = round.domain;
    let failures = d.ca_failures + 1;
    let mut wait = schedule::ca_retry(failures);
    let until = round.until_expiry();
    if let Some(until) = until {
        wait = schedule::before_expiry(wait, until, Duration::from_secs(60));
    }
    let mut t = issuance_failure(round, check, wait, why.clone());
    t.ca_failures = failures;
    t.clear_order = true;
    let message = format!("{why} Next attempt in {}.", schedule::human(wait));
    let event = match until {
        Some(until) => NewEvent::new(
            EventKind::RenewalFailed,
            format!("Renewal failed: {message} {}", expiry_note(round, until)),
        ),
        None => {
            t.status = DomainStatus::Failed;
            NewEvent::new(EventKind::Failed, message)
        }
    };
    t.events.push(event);
    t
}

/// The CA's rate limit: keep the status, wait what the CA said.
fn on_rate_limited(round: &Round, check: CheckRecord, why: String, wait: Duration) -> Transition {
    let mut t = issuance_failure(round, check, wait, why.clone());
    t.clear_order = true;
    t.events.push(NewEvent::new(EventKind::RateLimited, why));
    t
}

/// A spent CA budget: no order placed, nothing counted as an attempt; `queued` once.
fn on_queued(
    round: &Round,
    check: CheckRecord,
    reason: String,
    until: OffsetDateTime,
) -> Transition {
    let d = round.domain;
    let mut t = round.unchanged(Some(check), Duration::ZERO);
    t.status = round.issuance_status();
    t.next_attempt_at = until;
    t.attempts = d.attempts;
    t.dns_misses = 0;
    if d.queued_reason.is_none() {
        t.events
            .push(NewEvent::new(EventKind::Queued, reason.clone()));
    }
    t.queued = Some(Queued { reason, until });
    t
}

/// Interrupted: keep the status and the order (it is resumed, never placed twice).
fn on_interrupted(round: &Round, check: CheckRecord, why: String) -> Transition {
    let mut wait = schedule::transient_retry(round.domain.attempts);
    if let Some(until) = round.until_expiry() {
        wait = schedule::before_expiry(wait, until, Duration::from_secs(5));
    }
    issuance_failure(round, check, wait, why)
}

/// An attempt that did not produce a certificate: the issuance status, `why` kept as
/// the last error, DNS fine.
fn issuance_failure(round: &Round, check: CheckRecord, wait: Duration, why: String) -> Transition {
    let mut t = round.unchanged(Some(check), wait);
    t.status = round.issuance_status();
    t.last_error = Some(why);
    t.dns_misses = 0;
    t
}

/// A renewal that keeps failing says so loudly once less than a sixth of the
/// certificate's life is left (half of the renewal window).
fn expiry_warning(round: &Round, t: &Transition) -> Option<NewEvent> {
    let d = round.domain;
    let until = round.until_expiry()?;
    let why = t.last_error.as_deref()?;
    let lifetime: Duration = match (d.cert_not_before, d.cert_not_after) {
        (Some(nb), Some(na)) => (na - nb).try_into().unwrap_or(Duration::ZERO),
        _ => Duration::ZERO,
    };
    (until < lifetime / 6).then(|| {
        NewEvent::new(
            EventKind::ExpiryWarning,
            format!(
                "Warning: renewal keeps failing ({why}). {} Landlord keeps retrying.",
                expiry_note(round, until)
            ),
        )
    })
}

fn expiry_note(round: &Round, until: Duration) -> String {
    let expires = round
        .domain
        .cert_not_after
        .map(|t| t.date().to_string())
        .unwrap_or_default();
    format!(
        "The current certificate stays in use until it expires on {expires} (in {}).",
        schedule::human(until)
    )
}

#[cfg(test)]
#[path = "transition_tests.rs"]
mod tests;
