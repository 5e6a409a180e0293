//! Timelines stay bounded: pruned by age and by count per domain.

use std::time::Duration;

use landlord_store::{Hostname, Store};
use sqlx::PgPool;

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn events_are_pruned_by_age_and_count_per_domain(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let (tenant, _) = store
        .create_tenant(&landlord_store::TenantName::parse("t").unwrap())
        .await
        .unwrap();
    let tenant = tenant.id;
    let busy = store
        .create_domain(
            tenant,
            &Hostname::parse("busy.example.com").unwrap(),
            None,
            10,
        )
        .await
        .unwrap();
    let quiet = store
        .create_domain(
            tenant,
            &Hostname::parse("quiet.example.com").unwrap(),
            None,
            10,
        )
        .await
        .unwrap();
    // 30 more events on one domain (each has its "created" event already), one old one
    // on the other.
    sqlx::query(
        "INSERT INTO events (domain_id, tenant_id, kind, message) \
         SELECT $1, $2, 'check_requested', 'n' || g FROM generate_series(1, 30) g",
    )
    .bind(busy.id)
    .bind(tenant)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO events (domain_id, tenant_id, kind, message, at) \
         VALUES ($1, $2, 'dns_problem', 'old', now() - interval '100 days')",
    )
    .bind(quiet.id)
    .bind(tenant)
    .execute(&pool)
    .await
    .unwrap();

    let pruned = store
        .prune_events(Duration::from_secs(90 * 86_400), 10)
        .await
        .unwrap();
    assert_eq!(pruned, 21 + 1);
    let busy_events = store
        .domain_events(tenant, busy.id, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(busy_events.len(), 10);
    assert_eq!(busy_events[0].message, "n30", "the newest are kept");
    let quiet_events = store
        .domain_events(tenant, quiet.id, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(quiet_events.len(), 1, "only the old one went");
    assert_eq!(quiet_events[0].kind, landlord_store::EventKind::Created);
}
