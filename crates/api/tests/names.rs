//! Which hostnames a tenant may register: ICANN suffixes (plus the operator's extra
//! ones), never reserved names or the platform's own.

mod common;

use common::{problem, spawn_app_with};
use landlord_store::Hostname;
use sqlx::PgPool;

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn reserved_internal_and_unknown_suffix_names_are_422(pool: PgPool) {
    let app = spawn_app_with(pool, |c| {
        c.hostnames.reserved = vec![Hostname::parse("status.example.com").unwrap()];
    })
    .await;
    let t = app.tenant("t").await;
    for (name, why) in [
        ("status.example.com", "reserved"),
        ("metadata.google.internal", "\"internal\" is not one"),
        ("db.svc.cluster.local", "\"local\" is not one"),
        ("shop.customer.test", "\"test\" is not one"),
        ("nas.home.arpa.lan", "\"lan\" is not one"),
        ("x.edge.platform.test", "belongs to this platform"),
    ] {
        let body = problem(app.add_domain(&t, name).await, 422).await;
        assert_eq!(body["type"], "/problems/invalid-hostname", "{name}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(why),
            "{name}: {body}"
        );
    }
    for ok in ["www.example.com", "shop.example.co.uk", "blog.example.dev"] {
        assert_eq!(app.add_domain(&t, ok).await.status(), 201, "{ok}");
    }
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn extra_suffixes_admit_test_beds(pool: PgPool) {
    let app = spawn_app_with(pool, |c| c.hostnames.extra_suffixes = vec!["test".into()]).await;
    let t = app.tenant("t").await;
    assert_eq!(app.add_domain(&t, "shop.customer.test").await.status(), 201);
    problem(app.add_domain(&t, "db.svc.cluster.local").await, 422).await;
}
