//! CA budgets against a real PostgreSQL: sliding windows, renewal exemptions, and the
//! moment a queued order may go.

use std::time::Duration;

use landlord_store::{
    Budget, BudgetKind, Budgets, DomainId, OrderRequest, Reservation, Store, TenantId,
};
use sqlx::PgPool;
use uuid::Uuid;

const CA: &str = "https://ca.test/dir";

fn order<'a>(hostname: &'a str, registered_domain: &'a str, renewal: bool) -> OrderRequest<'a> {
    OrderRequest {
        ca: CA,
        tenant_id: tenant(Uuid::nil()),
        domain_id: DomainId::for_tests(Uuid::new_v4()),
        hostname,
        registered_domain,
        renewal,
    }
}

fn tenant(id: Uuid) -> TenantId {
    TenantId::for_tests(id)
}

fn budget(limit: u32, secs: u64) -> Option<Budget> {
    Some(Budget {
        limit,
        window: Duration::from_secs(secs),
    })
}

/// Move every ledger entry `secs` into the past.
async fn age(pool: &PgPool, secs: i64) {
    sqlx::query("UPDATE ca_ledger SET at = at - make_interval(secs => $1)")
        .bind(secs as f64)
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn orders_per_account_queue_until_the_oldest_leaves_the_window(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let budgets = Budgets {
        orders_per_account: budget(2, 3600),
        certificates_per_registered_domain: None,
        failed_validations_per_hostname: None,
        tenant_share_percent: 100,
    };
    for host in ["a.one.test", "b.two.test"] {
        let r = store
            .reserve_order(&budgets, &order(host, host, false))
            .await
            .unwrap();
        assert_eq!(r, Reservation::Granted);
        age(&pool, 600).await;
    }
    // The oldest order is 20 minutes old: it leaves the hour in 40 minutes.
    let r = store
        .reserve_order(&budgets, &order("c.three.test", "three.test", false))
        .await
        .unwrap();
    let Reservation::Queued {
        kind, used, until, ..
    } = r
    else {
        panic!("granted beyond the budget: {r:?}");
    };
    assert_eq!(kind, BudgetKind::OrdersPerAccount);
    assert_eq!(used, 2);
    let wait = until - time::OffsetDateTime::now_utc();
    assert!(
        wait > time::Duration::minutes(39) && wait <= time::Duration::minutes(40),
        "{wait}"
    );
    // Renewals do not count and are not held back by this budget.
    let r = store
        .reserve_order(&budgets, &order("a.one.test", "one.test", true))
        .await
        .unwrap();
    assert_eq!(r, Reservation::Granted);
    // Once the window has passed, new orders go again.
    age(&pool, 3000).await;
    let r = store
        .reserve_order(&budgets, &order("c.three.test", "three.test", false))
        .await
        .unwrap();
    assert_eq!(r, Reservation::Granted);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn certificates_per_registered_domain_are_counted_per_etld_plus_one(pool: PgPool) {
    let store = Store::from_pool(pool);
    let budgets = Budgets {
        orders_per_account: None,
        certificates_per_registered_domain: budget(2, 7 * 86_400),
        failed_validations_per_hostname: None,
        tenant_share_percent: 100,
    };
    for host in ["a.shop.co.uk", "b.shop.co.uk"] {
        let r = store
            .reserve_order(&budgets, &order(host, "shop.co.uk", false))
            .await
            .unwrap();
        assert_eq!(r, Reservation::Granted);
    }
    let r = store
        .reserve_order(&budgets, &order("c.shop.co.uk", "shop.co.uk", false))
        .await
        .unwrap();
    assert!(
        matches!(
            r,
            Reservation::Queued {
                kind: BudgetKind::CertificatesPerRegisteredDomain,
                ..
            }
        ),
        "{r:?}"
    );
    // Another registered domain has its own budget.
    let r = store
        .reserve_order(&budgets, &order("a.other.co.uk", "other.co.uk", false))
        .await
        .unwrap();
    assert_eq!(r, Reservation::Granted);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn failed_validations_hold_back_renewals_too(pool: PgPool) {
    let store = Store::from_pool(pool);
    let budgets = Budgets {
        orders_per_account: budget(100, 3600),
        certificates_per_registered_domain: budget(100, 3600),
        failed_validations_per_hostname: budget(2, 3600),
        tenant_share_percent: 100,
    };
    let host = order("flaky.example.com", "example.com", true);
    store.record_failed_validation(&host).await.unwrap();
    assert_eq!(
        store.reserve_order(&budgets, &host).await.unwrap(),
        Reservation::Granted
    );
    store.record_failed_validation(&host).await.unwrap();
    let r = store.reserve_order(&budgets, &host).await.unwrap();
    assert!(
        matches!(
            r,
            Reservation::Queued {
                kind: BudgetKind::FailedValidationsPerHostname,
                used: 2,
                ..
            }
        ),
        "{r:?}"
    );
    // Other hostnames are unaffected.
    assert_eq!(
        store
            .reserve_order(&budgets, &order("ok.example.com", "example.com", false))
            .await
            .unwrap(),
        Reservation::Granted
    );
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn concurrent_reservations_never_exceed_the_budget(pool: PgPool) {
    let store = Store::from_pool(pool);
    let budgets = Budgets {
        orders_per_account: budget(5, 3600),
        certificates_per_registered_domain: None,
        failed_validations_per_hostname: None,
        tenant_share_percent: 100,
    };
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, budgets) = (store.clone(), budgets);
            tokio::spawn(async move {
                let host = format!("h{i}.example.com");
                store
                    .reserve_order(&budgets, &order(&host, "example.com", false))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        if t.await.unwrap() == Reservation::Granted {
            granted += 1;
        }
    }
    assert_eq!(granted, 5);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn one_tenant_gets_at_most_its_share_of_a_window(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let budgets = Budgets {
        orders_per_account: budget(10, 3600),
        certificates_per_registered_domain: None,
        failed_validations_per_hostname: None,
        tenant_share_percent: 50,
    };
    let (greedy, other) = (tenant(Uuid::new_v4()), tenant(Uuid::new_v4()));
    let ask = |tenant: TenantId, i: usize| {
        let store = store.clone();
        async move {
            let host = format!("n{i}.example.test");
            let mut request = order(&host, "example.test", false);
            request.tenant_id = tenant;
            store.reserve_order(&budgets, &request).await.unwrap()
        }
    };
    let mut granted = 0;
    for i in 0..30 {
        match ask(greedy, i).await {
            Reservation::Granted => granted += 1,
            Reservation::Queued {
                kind, budget, used, ..
            } => {
                assert_eq!(kind, BudgetKind::TenantShare);
                assert_eq!((budget.limit, used), (5, 5));
            }
        }
    }
    assert_eq!(granted, 5, "half of the window's 10 orders");
    // The other half stays for everyone else.
    for i in 0..5 {
        assert_eq!(ask(other, 100 + i).await, Reservation::Granted);
    }
    assert!(matches!(
        ask(tenant(Uuid::new_v4()), 200).await,
        Reservation::Queued {
            kind: BudgetKind::OrdersPerAccount,
            ..
        }
    ));
    // Renewals are exempt from the share too.
    let mut renewal = order("n0.example.test", "example.test", true);
    renewal.tenant_id = greedy;
    assert_eq!(
        store.reserve_order(&budgets, &renewal).await.unwrap(),
        Reservation::Granted
    );
}
