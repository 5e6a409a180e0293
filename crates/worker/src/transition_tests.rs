//! Every transition in the README's list, every schedule rule, and a property test that
//! no sequence of outcomes leaves a domain stuck. Time is passed in.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

use super::*;

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);
const RULES: Rules = Rules {
    moved_after: 3,
    recheck_active: Duration::from_secs(86_400),
};

/// What a passing check calls for: a new certificate through `issuing`, or a renewal
/// inside `active`.
const ISSUE: Option<Issuance> = Some(Issuance {
    renewing: false,
    enter_issuing: true,
});
const RENEW: Option<Issuance> = Some(Issuance {
    renewing: true,
    enter_issuing: false,
});

fn domain(status: DomainStatus) -> Claimed {
    Claimed {
        lease: "worker/1".into(),
        id: landlord_store::DomainId::for_tests(uuid::Uuid::nil()),
        tenant_id: landlord_store::TenantId::for_tests(uuid::Uuid::nil()),
        hostname: landlord_store::Hostname::parse("status.example.com").unwrap(),
        status,
        attempts: 0,
        ca_failures: 0,
        dns_misses: 0,
        order_url: None,
        order_key_sealed: None,
        check_problem: None,
        last_error: None,
        created_at: NOW - time::Duration::minutes(5),
        cert_not_before: None,
        cert_not_after: None,
        cert_renew_at: None,
        cert_serial: None,
        cert_issued_by: None,
        cert_ari_id: None,
        cert_ari_next_check_at: None,
        queued_reason: None,
        target_label: "k3x9".into(),
        shared_target_ok: false,
        ownership_token: "token".into(),
        ownership_verified_at: None,
        dcv_label: None,
    }
}

/// A domain serving a 90-day certificate issued `age` ago, renewal at two thirds.
fn serving(status: DomainStatus, age: time::Duration) -> Claimed {
    let mut d = domain(status);
    let nb = NOW - age;
    d.cert_not_before = Some(nb);
    d.cert_not_after = Some(nb + time::Duration::days(90));
    d.cert_renew_at = Some(nb + time::Duration::days(60));
    d.cert_serial = Some("01".into());
    d
}

fn round(d: &Claimed) -> Round<'_> {
    Round {
        domain: d,
        now: NOW,
        rules: RULES,
        renew_at: d.cert_renew_at,
        next_ari_check: d.cert_ari_next_check_at,
    }
}

fn check() -> CheckRecord {
    CheckRecord {
        found: Some(json!({"cname": ["k3x9.edge.example.net"]})),
        problem: None,
        ownership_proved: false,
    }
}

fn not_pointed(problem: &str) -> Outcome {
    Outcome::NotPointed {
        found: json!({"cname": ["elsewhere.example.org"]}),
        problem: problem.into(),
    }
}

fn issued() -> Outcome {
    Outcome::Issued {
        check: check(),
        cert: IssuedCert {
            issuer: "Pebble Intermediate".into(),
            not_after: NOW + time::Duration::days(90),
            renew_at: NOW + time::Duration::days(60),
        },
    }
}

fn refused() -> Outcome {
    Outcome::Refused {
        check: check(),
        why: "The CA could not verify the hostname.".into(),
    }
}

fn interrupted() -> Outcome {
    Outcome::Interrupted {
        check: check(),
        why: "Could not reach the certificate authority.".into(),
    }
}

fn kinds(t: &Transition) -> Vec<EventKind> {
    t.events.iter().map(|e| e.kind).collect()
}

fn wait(t: &Transition) -> Duration {
    (t.next_attempt_at - NOW).try_into().unwrap()
}

// --- Transitions, in the README's order -------------------------------------------

#[test]
fn pending_dns_to_issuing_when_a_check_passes() {
    let d = domain(DomainStatus::PendingDns);
    assert_eq!(round(&d).needs_certificate(), ISSUE);
}

#[test]
fn issuing_to_active_when_the_certificate_is_stored() {
    let mut d = domain(DomainStatus::Issuing);
    d.attempts = 3;
    d.last_error = Some("earlier trouble".into());
    let t = transition(&round(&d), issued());
    assert_eq!(t.status, DomainStatus::Active);
    assert_eq!(kinds(&t), [EventKind::Issued]);
    assert_eq!(
        t.events[0].message,
        "Certificate issued by Pebble Intermediate; valid until 2026-08-30."
    );
    assert_eq!((t.attempts, t.ca_failures, t.dns_misses), (0, 0, 0));
    assert!(t.clear_order && t.last_error.is_none());
    assert_eq!(
        wait(&t),
        RULES.recheck_active,
        "the daily re-check comes first"
    );
}

#[test]
fn issuing_to_failed_on_the_first_refusal() {
    let d = domain(DomainStatus::Issuing);
    let t = transition(&round(&d), refused());
    assert_eq!(t.status, DomainStatus::Failed);
    assert_eq!(kinds(&t), [EventKind::Failed]);
    assert_eq!(
        t.events[0].message,
        "The CA could not verify the hostname. Next attempt in 60 seconds."
    );
    assert_eq!(t.ca_failures, 1);
    assert!(t.clear_order);
    assert_eq!(
        t.last_error.as_deref(),
        Some("The CA could not verify the hostname.")
    );
}

#[test]
fn issuing_to_pending_dns_when_dns_changed() {
    let mut d = domain(DomainStatus::Issuing);
    d.order_url = Some("https://ca/order/1".into());
    let t = transition(&round(&d), not_pointed("x is a CNAME to y."));
    assert_eq!(t.status, DomainStatus::PendingDns);
    assert_eq!(kinds(&t), [EventKind::DnsChanged]);
    assert_eq!(t.events[0].message, "Issuance stopped: x is a CNAME to y.");
    assert!(t.clear_order, "the order is dropped");
}

#[test]
fn issuing_stays_issuing_when_rate_limited() {
    let d = domain(DomainStatus::Issuing);
    let outcome = Outcome::RateLimited {
        check: check(),
        why: "The CA's rate limit was reached.".into(),
        wait: Duration::from_secs(3600),
    };
    let t = transition(&round(&d), outcome);
    assert_eq!(t.status, DomainStatus::Issuing);
    assert_eq!(kinds(&t), [EventKind::RateLimited]);
    assert_eq!(wait(&t), Duration::from_secs(3600));
    assert_eq!(t.ca_failures, 0, "a rate limit is not a refusal");
}

#[test]
fn issuing_stays_issuing_and_resumes_the_order_after_an_interruption() {
    let mut d = domain(DomainStatus::Issuing);
    d.order_url = Some("https://ca/order/1".into());
    d.attempts = 1;
    let t = transition(&round(&d), interrupted());
    assert_eq!(t.status, DomainStatus::Issuing);
    assert!(!t.clear_order, "the same order is resumed");
    assert!(t.events.is_empty());
    assert_eq!(wait(&t), Duration::from_secs(20));
    assert_eq!(t.attempts, 2);
}

#[test]
fn failed_to_issuing_when_dns_still_points_at_us() {
    let mut d = domain(DomainStatus::Failed);
    d.ca_failures = 1;
    assert_eq!(round(&d).needs_certificate(), ISSUE);
}

#[test]
fn failed_to_pending_dns_when_dns_no_longer_points() {
    let d = domain(DomainStatus::Failed);
    let t = transition(&round(&d), not_pointed("x has no DNS record yet."));
    assert_eq!(t.status, DomainStatus::PendingDns);
    assert_eq!(kinds(&t), [EventKind::DnsProblem]);
    assert!(t.clear_order);
}

#[test]
fn active_to_moved_on_the_third_failed_check_in_a_row() {
    let mut d = serving(DomainStatus::Active, time::Duration::days(10));
    let t = transition(&round(&d), not_pointed("x is a CNAME to y."));
    assert_eq!(t.status, DomainStatus::Active);
    assert_eq!(kinds(&t), [EventKind::DnsProblem]);
    assert_eq!(t.events[0].message, "x is a CNAME to y. (check 1 of 3).");
    assert_eq!(wait(&t), Duration::from_secs(15));
    assert!(!t.clear_order);

    d.dns_misses = t.dns_misses;
    d.attempts = t.attempts;
    let t = transition(&round(&d), not_pointed("x is a CNAME to y."));
    assert_eq!((t.status, t.dns_misses), (DomainStatus::Active, 2));
    assert!(t.events.is_empty(), "said once");
    assert_eq!(wait(&t), Duration::from_secs(30));

    d.dns_misses = t.dns_misses;
    d.attempts = t.attempts;
    let t = transition(&round(&d), not_pointed("x is a CNAME to y."));
    assert_eq!(t.status, DomainStatus::Moved);
    assert_eq!(kinds(&t), [EventKind::Moved]);
    assert!(t.events[0].message.contains("keeps being served"));
}

#[test]
fn a_passing_check_resets_the_count_of_failed_checks() {
    let mut d = serving(DomainStatus::Active, time::Duration::days(10));
    d.dns_misses = 2;
    assert_eq!(round(&d).needs_certificate(), None);
    let t = transition(&round(&d), Outcome::Serving { check: check() });
    assert_eq!((t.status, t.dns_misses), (DomainStatus::Active, 0));
    assert!(t.events.is_empty());
}

#[test]
fn active_renews_inside_active_once_renew_at_passes() {
    let d = serving(DomainStatus::Active, time::Duration::days(61));
    let r = round(&d);
    assert_eq!(r.needs_certificate(), RENEW);
    let t = transition(&r, issued());
    assert_eq!(t.status, DomainStatus::Active);
    assert_eq!(kinds(&t), [EventKind::Renewed]);
    assert!(t.events[0].message.starts_with("Certificate renewed by"));
}

#[test]
fn a_refused_renewal_stays_active_and_names_the_expiry_date() {
    let d = serving(DomainStatus::Active, time::Duration::days(61));
    let t = transition(&round(&d), refused());
    assert_eq!(t.status, DomainStatus::Active);
    assert_eq!(kinds(&t), [EventKind::RenewalFailed]);
    assert_eq!(
        t.events[0].message,
        "Renewal failed: The CA could not verify the hostname. Next attempt in 60 seconds. \
         The current certificate stays in use until it expires on 2026-06-30 (in 29 days)."
    );
}

#[test]
fn an_active_domain_whose_certificate_expired_goes_through_issuing() {
    let d = serving(DomainStatus::Active, time::Duration::days(91));
    assert_eq!(round(&d).needs_certificate(), ISSUE);
}

#[test]
fn a_spent_budget_keeps_the_status_and_says_so_once() {
    let until = NOW + time::Duration::hours(2);
    let queued = || Outcome::Queued {
        check: check(),
        reason: "Queued to stay within the CA's rate limits.".into(),
        until,
    };
    let mut d = domain(DomainStatus::Issuing);
    d.attempts = 1;
    let t = transition(&round(&d), queued());
    assert_eq!(t.status, DomainStatus::Issuing);
    assert_eq!(kinds(&t), [EventKind::Queued]);
    assert_eq!(t.next_attempt_at, until);
    assert_eq!(t.attempts, 1, "no order placed: not an attempt");
    assert_eq!(t.queued.as_ref().map(|q| q.until), Some(until));
    assert!(!t.clear_order);

    d.queued_reason = t.queued.map(|q| q.reason);
    let t = transition(&round(&d), queued());
    assert!(t.events.is_empty(), "said once");

    let d = serving(DomainStatus::Active, time::Duration::days(61));
    assert_eq!(
        transition(&round(&d), queued()).status,
        DomainStatus::Active,
        "a queued renewal stays active"
    );
}

#[test]
fn moved_to_active_when_dns_points_back() {
    let mut d = serving(DomainStatus::Moved, time::Duration::days(10));
    d.dns_misses = 3;
    assert_eq!(round(&d).needs_certificate(), None);
    let t = transition(&round(&d), Outcome::Serving { check: check() });
    assert_eq!((t.status, t.dns_misses), (DomainStatus::Active, 0));
    assert_eq!(kinds(&t), [EventKind::BackActive]);
}

#[test]
fn moved_to_issuing_when_its_certificate_is_due() {
    let d = serving(DomainStatus::Moved, time::Duration::days(61));
    assert_eq!(round(&d).needs_certificate(), ISSUE);
}

#[test]
fn moved_keeps_checking_while_dns_points_elsewhere() {
    let mut d = serving(DomainStatus::Moved, time::Duration::days(10));
    d.attempts = 2;
    let t = transition(&round(&d), not_pointed("x is a CNAME to y."));
    assert_eq!(t.status, DomainStatus::Moved);
    assert!(t.events.is_empty());
    assert_eq!(wait(&t), Duration::from_secs(60));
}

#[test]
fn pending_dns_reports_a_problem_only_when_it_changes() {
    let mut d = domain(DomainStatus::PendingDns);
    let t = transition(&round(&d), not_pointed("x has no DNS record yet."));
    assert_eq!(kinds(&t), [EventKind::DnsProblem]);
    d.check_problem = Some("x has no DNS record yet.".into());
    let t = transition(&round(&d), not_pointed("x has no DNS record yet."));
    assert!(t.events.is_empty());
    let t = transition(&round(&d), not_pointed("x is a CNAME to y."));
    assert_eq!(kinds(&t), [EventKind::DnsProblem]);
}

#[test]
fn an_inconclusive_check_keeps_everything_and_says_only_a_bound() {
    let mut d = domain(DomainStatus::PendingDns);
    d.check_problem = Some("x has no DNS record yet.".into());
    let t = transition(&round(&d), Outcome::DnsInconclusive { problem: None });
    assert_eq!(t.status, DomainStatus::PendingDns);
    assert!(t.check.is_none(), "the last conclusive check stays shown");
    assert!(t.events.is_empty());

    let slow = "The DNS check of x did not finish within 30 seconds.";
    let outcome = || Outcome::DnsInconclusive {
        problem: Some(slow.into()),
    };
    let t = transition(&round(&d), outcome());
    assert_eq!(kinds(&t), [EventKind::DnsSlow]);
    assert_eq!(t.check.unwrap().problem.as_deref(), Some(slow));
    d.check_problem = Some(slow.into());
    assert!(transition(&round(&d), outcome()).events.is_empty());
}

// --- Schedules ----------------------------------------------------------------------

#[test]
fn dns_rechecks_back_off_and_become_daily_after_a_week() {
    let mut d = domain(DomainStatus::PendingDns);
    let mut waits = Vec::new();
    for attempts in 0..8 {
        d.attempts = attempts;
        waits.push(wait(&transition(&round(&d), not_pointed("p"))).as_secs());
    }
    assert_eq!(waits, [15, 30, 60, 120, 300, 600, 1800, 1800]);
    d.created_at = NOW - time::Duration::days(8);
    assert_eq!(
        wait(&transition(&round(&d), not_pointed("p"))).as_secs(),
        86_400
    );
}

#[test]
fn refusals_follow_the_ca_backoff() {
    let mut d = domain(DomainStatus::Failed);
    let mut waits = Vec::new();
    for failures in 0..5 {
        d.ca_failures = failures;
        waits.push(wait(&transition(&round(&d), refused())).as_secs());
    }
    assert_eq!(waits, [60, 600, 6000, 86_400, 86_400]);
}

#[test]
fn renewal_retries_come_well_before_expiry() {
    // Two hours left: a fourth refusal waits at most a quarter of that, not a day.
    let mut d = serving(
        DomainStatus::Active,
        time::Duration::days(90) - time::Duration::hours(2),
    );
    d.ca_failures = 3;
    assert_eq!(wait(&transition(&round(&d), refused())).as_secs(), 1800);
    d.attempts = 6;
    assert_eq!(wait(&transition(&round(&d), interrupted())).as_secs(), 600);
    let mut d = serving(
        DomainStatus::Active,
        time::Duration::days(90) - time::Duration::minutes(8),
    );
    d.attempts = 6;
    assert_eq!(
        wait(&transition(&round(&d), interrupted())).as_secs(),
        120,
        "a quarter of the 8 minutes left"
    );
}

#[test]
fn expiry_warnings_start_when_a_sixth_of_the_lifetime_is_left() {
    // A 90-day certificate: a sixth is 15 days.
    let d = serving(DomainStatus::Active, time::Duration::days(76));
    let t = transition(&round(&d), refused());
    assert_eq!(
        kinds(&t),
        [EventKind::RenewalFailed, EventKind::ExpiryWarning]
    );
    assert!(
        t.events[1]
            .message
            .starts_with("Warning: renewal keeps failing (The CA could not verify the hostname.).")
    );
    let d = serving(DomainStatus::Active, time::Duration::days(70));
    assert_eq!(
        kinds(&transition(&round(&d), refused())),
        [EventKind::RenewalFailed]
    );

    // Interruptions warn on the third in a row.
    let mut d = serving(DomainStatus::Active, time::Duration::days(80));
    d.attempts = 1;
    assert!(transition(&round(&d), interrupted()).events.is_empty());
    d.attempts = 2;
    assert_eq!(
        kinds(&transition(&round(&d), interrupted())),
        [EventKind::ExpiryWarning]
    );
    // A DNS hiccup during a failing renewal is not a renewal failure.
    assert!(
        transition(&round(&d), Outcome::DnsInconclusive { problem: None })
            .events
            .is_empty()
    );
}

#[test]
fn the_routine_visit_is_the_earliest_of_renewal_recheck_and_ari_poll() {
    let mut d = serving(
        DomainStatus::Active,
        time::Duration::days(59) + time::Duration::hours(20),
    );
    // renew_at is in 4 hours: before the daily re-check.
    let t = transition(&round(&d), Outcome::Serving { check: check() });
    assert_eq!(wait(&t), Duration::from_secs(4 * 3600));
    d.cert_ari_next_check_at = Some(NOW + time::Duration::hours(1));
    let t = transition(&round(&d), Outcome::Serving { check: check() });
    assert_eq!(wait(&t), Duration::from_secs(3600));
    // An ARI poll that was due but could not run does not make the domain due at once.
    d.cert_ari_next_check_at = Some(NOW - time::Duration::hours(1));
    let t = transition(&round(&d), Outcome::Serving { check: check() });
    assert_eq!(wait(&t), Duration::from_secs(4 * 3600));
}

// --- No sequence of outcomes leaves a domain stuck ---------------------------------

/// What a round may find, with a wait for the CA's rate limit and the budget.
fn any_outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::DnsInconclusive { problem: None }),
        Just(Outcome::DnsInconclusive {
            problem: Some("slow".into())
        }),
        Just(not_pointed("elsewhere")),
        Just(not_pointed("elsewhere, differently")),
        Just(issued()),
        Just(refused()),
        (1u64..86_400).prop_map(|s| Outcome::RateLimited {
            check: check(),
            why: "rate limited".into(),
            wait: Duration::from_secs(s),
        }),
        (1i64..86_400).prop_map(|s| Outcome::Queued {
            check: check(),
            reason: "budget".into(),
            until: NOW + time::Duration::seconds(s),
        }),
        Just(interrupted()),
    ]
}

/// The statuses a status may move to (the README's list).
fn allowed(from: DomainStatus, to: DomainStatus) -> bool {
    use DomainStatus::*;
    from == to
        || matches!(
            (from, to),
            (PendingDns, Issuing | Active | Failed)
                | (Issuing, Active | Failed | PendingDns)
                | (Failed, Issuing | Active | PendingDns)
                | (Active, Moved | Issuing | Failed | PendingDns)
                | (Moved, Active | Issuing | Failed)
        )
}

/// Feed outcomes to the state machine as the driver does: a passing check only leads
/// to an issuance outcome when a certificate is needed (otherwise `Serving`), and the
/// database applies each transition.
fn drive(outcomes: Vec<Outcome>, clock: Vec<u32>) -> Result<(), TestCaseError> {
    let mut d = domain(DomainStatus::PendingDns);
    let mut now = NOW;
    for (outcome, advance) in outcomes.into_iter().zip(clock) {
        let r = Round {
            domain: &d,
            now,
            rules: RULES,
            renew_at: d.cert_renew_at,
            next_ari_check: d.cert_ari_next_check_at,
        };
        let pointed = !matches!(
            outcome,
            Outcome::DnsInconclusive { .. } | Outcome::NotPointed { .. }
        );
        let issuance = r.needs_certificate();
        let outcome = match (pointed, issuance) {
            (true, None) => Outcome::Serving { check: check() },
            _ => outcome,
        };
        let outcome = at(outcome, now);
        let status_before = match issuance {
            Some(i) if pointed && i.enter_issuing => DomainStatus::Issuing,
            _ => d.status,
        };
        let issued = matches!(outcome, Outcome::Issued { .. });
        let interrupted = matches!(outcome, Outcome::Interrupted { .. });
        let t = transition(&r, outcome);

        prop_assert!(t.next_attempt_at > now, "always a next attempt: {t:?}");
        prop_assert!(
            t.next_attempt_at <= now + time::Duration::days(1),
            "never more than a day away: {t:?}"
        );
        prop_assert!(
            allowed(d.status, t.status) && allowed(status_before, t.status),
            "{:?} → {:?} is not in the lifecycle",
            d.status,
            t.status
        );
        if interrupted {
            prop_assert!(
                !t.clear_order,
                "an interrupted order is resumed, not replaced"
            );
        }
        if t.status == DomainStatus::Active && d.status != DomainStatus::Active {
            prop_assert!(
                issued || d.cert_not_after.is_some_and(|na| na > now),
                "became active without a valid certificate: {t:?}"
            );
        }

        // The database applies the transition; time passes.
        let order_live = status_before == DomainStatus::Issuing || interrupted;
        apply(&mut d, &t, now, issued, order_live);
        now = t
            .next_attempt_at
            .max(now + time::Duration::seconds(i64::from(advance)));
    }
    Ok(())
}

/// An outcome written against `NOW`, moved to `now`.
fn at(outcome: Outcome, now: OffsetDateTime) -> Outcome {
    match outcome {
        Outcome::Queued {
            check,
            reason,
            until,
        } => Outcome::Queued {
            check,
            reason,
            until: now + (until - NOW),
        },
        Outcome::Issued { check, .. } => Outcome::Issued {
            check,
            cert: IssuedCert {
                issuer: "CA".into(),
                not_after: now + time::Duration::days(6),
                renew_at: now + time::Duration::days(3),
            },
        },
        other => other,
    }
}

/// What the database does with a transition (the fields the state machine reads back).
fn apply(d: &mut Claimed, t: &Transition, now: OffsetDateTime, issued: bool, order_live: bool) {
    d.status = t.status;
    d.attempts = t.attempts;
    d.ca_failures = t.ca_failures;
    d.dns_misses = t.dns_misses;
    d.last_error = t.last_error.clone();
    d.queued_reason = t.queued.as_ref().map(|q| q.reason.clone());
    if let Some(c) = &t.check {
        d.check_problem = c.problem.clone();
    }
    if issued {
        d.cert_not_before = Some(now);
        d.cert_not_after = Some(now + time::Duration::days(6));
        d.cert_renew_at = Some(now + time::Duration::days(3));
    }
    if t.clear_order {
        d.order_url = None;
    } else if order_live {
        d.order_url.get_or_insert_with(|| "https://ca/order".into());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_sequence_of_outcomes_leaves_a_domain_stuck(
        outcomes in proptest::collection::vec(any_outcome(), 1..60),
        clock in proptest::collection::vec(0u32..200_000, 60),
    ) {
        drive(outcomes, clock)?;
    }
}
