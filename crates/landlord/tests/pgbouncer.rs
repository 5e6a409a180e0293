//! API, worker and edge behind PgBouncer in transaction pooling (`scripts/test-pgbouncer.sh`:
//! PgBouncer 1.21+ with `max_prepared_statements`, four server connections for every client):
//! every query through the pooler; LISTEN, session-level locks and migrations through
//! `LANDLORD_DIRECT_DATABASE_URL`.

mod support;

use std::time::Duration;

use sqlx::PgPool;
use support::*;

#[sqlx::test(migrations = false)]
async fn the_platform_runs_behind_pgbouncer(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let pooler = std::env::var("LANDLORD_TEST_PGBOUNCER_URL").unwrap_or_else(|_| {
        panic!("LANDLORD_TEST_PGBOUNCER_URL is not set: run through `just test` (scripts/test-pgbouncer.sh)")
    });
    let direct = db_url(&pool).await;
    let database = direct.rsplit_once('/').unwrap().1.to_owned();
    let pooled = format!("{pooler}/{database}");
    let env = [
        ("DATABASE_URL", pooled.as_str()),
        ("LANDLORD_DIRECT_DATABASE_URL", direct.as_str()),
    ];
    // `migrate` too goes through these settings: the migrations take the direct path.
    let mut p = Platform::start_at(pool.clone(), direct.clone(), &env).await;
    let https = p.spawn_edge().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("pooled");
    p.put_file(&key, "index.html", "text/html", "through the pooler")
        .await;
    let id = p.add_pointed_domain(&key, &host).await;
    p.check_now(&key, &id).await;
    p.wait_domain(&key, &id, Duration::from_secs(60), |d| {
        d["status"] == "active"
    })
    .await;
    let (_, body) = p.fetch(&host, https, "/").await.expect("served");
    assert_eq!(body, "through the pooler");
    // Many concurrent API calls over the pooler's four server connections: each
    // transaction lands on whichever is free, with sqlx's prepared statements following.
    let calls = (0..48).map(|i| {
        let (p, key, id) = (&p, key.clone(), id.clone());
        async move {
            match i % 3 {
                0 => p.domain(&key, &id).await["hostname"]
                    .as_str()
                    .map(str::to_owned),
                1 => Some(p.events(&key, &id).await.len().to_string()),
                _ => {
                    let name = format!("f{i}.txt");
                    p.put_file(&key, &name, "text/plain", "x").await;
                    Some(name)
                }
            }
        }
    });
    let answers = futures::future::join_all(calls).await;
    assert!(answers.iter().all(Option::is_some), "{answers:?}");
    // A change reaches the edge through its LISTEN on the direct connection.
    p.put_file(&key, "index.html", "text/html", "changed").await;
    let h = host.clone();
    p.wait_for("the change on the edge", Duration::from_secs(10), |p| {
        let h = h.clone();
        async move {
            p.fetch(&h, https, "/")
                .await
                .is_some_and(|(_, body)| body == "changed")
        }
    })
    .await;
    // The pooled connections really went through PgBouncer (its own application_name is
    // gone: the server sees PgBouncer's sessions under the database).
    let through_pooler: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name <> 'landlord'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    println!("server sessions not opened by landlord directly: {through_pooler}");
    // PgBouncer keeps its server sessions after the processes end: close them, so the test
    // database can be dropped.
    drop(p);
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&pool)
    .await
    .unwrap();
}
