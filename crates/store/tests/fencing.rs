//! Fencing: a worker that lost its claim, and is still running (a stalled VM, a long
//! pause, not only a `kill -9`), can write nothing more about the domain; the claim that
//! replaced it can.

use std::time::Duration;

use landlord_store::{
    CheckRecord, DomainStatus, EventKind, Hostname, NewCertificate, NewEvent, Store, TenantName,
    Transition,
};
use sqlx::PgPool;

const LEASE: Duration = Duration::from_secs(60);

fn transition(message: &str) -> Transition {
    Transition {
        status: DomainStatus::Active,
        check: None,
        last_error: None,
        next_attempt_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        attempts: 0,
        ca_failures: 0,
        dns_misses: 0,
        clear_order: true,
        events: vec![NewEvent::new(EventKind::Issued, message)],
        queued: None,
    }
}

fn certificate() -> NewCertificate {
    let now = time::OffsetDateTime::now_utc();
    NewCertificate {
        chain_pem: "chain".into(),
        key_sealed: vec![1, 2, 3],
        not_before: now,
        not_after: now + time::Duration::days(90),
        serial: "0a:0b".into(),
        issuer: "stale CA".into(),
        renew_at: now + time::Duration::days(60),
        issued_by: landlord_store::IssuedBy::Local,
        ari_cert_id: None,
        ca: "local".into(),
        registered_domain: "example.com".into(),
        replaces: None,
    }
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_claim_that_was_taken_over_cannot_write(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let (tenant, _) = store
        .create_tenant(&TenantName::parse("t").unwrap())
        .await
        .unwrap();
    let tenant = tenant.id;
    let host = Hostname::parse("fenced.example.com").unwrap();
    store.create_domain(tenant, &host, None, 10).await.unwrap();

    // The worker claims the domain, then stalls past its lease; the same worker (after
    // a restart with the same name) claims it again: a new lease, a new fencing token.
    let stale = store
        .claim_due_domains("w1", LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    sqlx::query("UPDATE domains SET lease_expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let live = store
        .claim_due_domains("w1", LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    assert_ne!(stale.lease, live.lease);
    let (id, old) = (stale.id, stale.lease.as_str());

    // Every write the stale claim could still attempt is refused, none takes effect.
    let check = CheckRecord {
        found: Some(serde_json::json!({"cname": []})),
        problem: None,
        ownership_proved: false,
    };
    assert!(!store.renew_lease(id, old, LEASE).await.unwrap());
    assert!(!store.start_issuing(id, old, &check, "stale").await.unwrap());
    assert!(
        !store
            .save_order(id, old, "https://ca/order/stale", None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_order_placed(id, old, "https://ca/order/stale", "stale")
            .await
            .unwrap()
    );
    assert!(!store.forget_order(id, old, "stale").await.unwrap());
    assert!(
        !store
            .record_event(id, old, EventKind::ChallengeReady, "stale")
            .await
            .unwrap()
    );
    assert!(
        !store
            .save_challenge("tok", id, old, &host, "tok.x")
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_transition(id, old, &transition("stale"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .install_certificate(id, old, &certificate(), &transition("stale"))
            .await
            .unwrap()
    );
    let (status, order, certificates, challenges, stale_events): (
        String,
        Option<String>,
        i64,
        i64,
        i64,
    ) = sqlx::query_as(
        "SELECT d.status::text, d.order_url, \
                 (SELECT count(*) FROM certificates), (SELECT count(*) FROM acme_challenges), \
                 (SELECT count(*) FROM events WHERE message LIKE '%stale%') \
             FROM domains d",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (
            status.as_str(),
            order,
            certificates,
            challenges,
            stale_events
        ),
        ("pending_dns", None, 0, 0, 0),
        "a stale claim changed the domain"
    );

    // The live claim writes as usual.
    assert!(store.renew_lease(id, &live.lease, LEASE).await.unwrap());
    assert!(
        store
            .install_certificate(id, &live.lease, &certificate(), &transition("live"))
            .await
            .unwrap()
    );
}

/// "Check now" while a round is in flight (its DNS lookups may already be done) is not
/// overwritten by the round's own schedule: the domain is due again at once.
#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_check_requested_during_a_round_makes_the_next_one_due_at_once(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let (tenant, _) = store
        .create_tenant(&TenantName::parse("t").unwrap())
        .await
        .unwrap();
    let host = Hostname::parse("impatient.example.com").unwrap();
    let domain = store
        .create_domain(tenant.id, &host, None, 10)
        .await
        .unwrap();
    let due = |pool: PgPool| async move {
        sqlx::query_scalar::<_, bool>("SELECT next_attempt_at <= now() FROM domains")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    // Without a request, the round's schedule stands (an hour away).
    let claim = store
        .claim_due_domains("w1", LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    assert!(
        store
            .record_transition(claim.id, &claim.lease, &transition("scheduled"))
            .await
            .unwrap()
    );
    assert!(!due(pool.clone()).await);
    // With one that arrives mid-round, the next round is due now.
    sqlx::query("UPDATE domains SET next_attempt_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    let claim = store
        .claim_due_domains("w1", LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    store
        .request_check(tenant.id, domain.id, Duration::from_secs(10))
        .await
        .unwrap()
        .expect("accepted");
    assert!(
        store
            .record_transition(claim.id, &claim.lease, &transition("mid-round"))
            .await
            .unwrap()
    );
    assert!(due(pool).await);
}
