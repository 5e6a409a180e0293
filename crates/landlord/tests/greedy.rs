//! Greedy tenants and slow DNS against real `landlord` processes, Pebble and
//! challtestsrv: fair shares of the CA budget, a DNS deadline no nameserver can stretch,
//! and leases that hold through a long ACME exchange but not past a stalled worker.

mod support;

use std::time::{Duration, Instant};

use sqlx::PgPool;
use support::*;

const ISSUE_DEADLINE: Duration = Duration::from_secs(90);

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn one_tenant_cannot_take_the_whole_ca_budget(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    // Ten new orders per hour; each tenant may place half.
    let mut p = Platform::start(pool.clone(), &[("LANDLORD_CA_BUDGET_ORDERS", "10/1h")]).await;
    p.spawn_edge().await;
    p.spawn("worker", &[("LANDLORD_WORKER_CONCURRENCY", "8")]);
    let greedy = p.tenant().await;
    let mut greedy_ids = Vec::new();
    for i in 0..30 {
        let host = unique(&format!("greedy{i}"));
        greedy_ids.push(p.add_pointed_domain(&greedy, &host).await);
    }
    // Every one of the 30 was looked at: 5 ordered, the rest queued.
    let end = Instant::now() + ISSUE_DEADLINE;
    loop {
        let mut settled = 0;
        for id in &greedy_ids {
            let d = p.domain(&greedy, id).await;
            if d["status"] == "active" || !d["queued"].is_null() {
                settled += 1;
            }
        }
        if settled == greedy_ids.len() {
            break;
        }
        assert!(Instant::now() < end, "only {settled} of 30 settled");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The second tenant arrives after the first took its share: it is not starved.
    let other = p.tenant().await;
    let mut other_ids = Vec::new();
    for i in 0..2 {
        let host = unique(&format!("patient{i}"));
        other_ids.push(p.add_pointed_domain(&other, &host).await);
    }
    for id in &other_ids {
        p.wait_domain(&other, id, ISSUE_DEADLINE, |d| d["status"] == "active")
            .await;
    }

    let mut active = 0;
    for id in &greedy_ids {
        let d = p.domain(&greedy, id).await;
        if d["status"] == "active" {
            active += 1;
            continue;
        }
        assert_eq!(d["status"], "issuing", "{d}");
        let reason = d["queued"]["reason"].as_str().unwrap();
        assert!(
            reason
                .contains("your account placed 5 of the new certificate orders in the last 1 hour")
                && reason.contains("other accounts get certificates too")
                && reason.contains("ordered automatically at"),
            "{reason}"
        );
        assert!(d["queued"]["until"].is_string(), "{d}");
    }
    assert_eq!(
        active, 5,
        "the first tenant got its share of the window, no more"
    );
    let orders = count(&pool, "SELECT count(*) FROM ca_ledger WHERE kind = 'order'").await;
    assert_eq!(orders, 7, "5 for the first tenant, 2 for the second");
}

#[sqlx::test(migrations = false)]
async fn a_slow_dns_domain_cannot_hold_a_worker(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[]).await;
    // Between the worker and challtestsrv: a resolver that drops every CAA query for the
    // slow tenant's names (they time out; the others are answered).
    let upstream = p.env.dns_server.parse().unwrap();
    let resolver = dropping_resolver(upstream, |qname, qtype| {
        qtype == 257 && qname.split('.').any(|l| l.starts_with("slow-"))
    })
    .await;
    p.spawn_edge().await;
    // One domain at a time: a domain holding the only slot would stall all the others.
    p.spawn(
        "worker",
        &[
            ("LANDLORD_WORKER_CONCURRENCY", "1"),
            ("LANDLORD_WORKER_LEASE_SECONDS", "30"),
            ("LANDLORD_DNS_DEADLINE", "3s"),
            ("LANDLORD_DNS_SERVERS", &resolver.to_string()),
        ],
    );
    let key = p.tenant().await;
    // A long name behind a CNAME chain: a.b.c.d.e.slow -> hop -> its own target.
    let slow = format!("a.b.c.d.e.{}", unique("slow"));
    let hop = unique("hop");
    let slow_id = p.add_domain(&key, &slow).await;
    p.point(&slow).await;
    let target = p.target_of(&slow).await;
    p.dns(
        "/set-cname",
        serde_json::json!({"host": slow, "target": hop}),
    )
    .await;
    p.dns(
        "/set-cname",
        serde_json::json!({"host": hop, "target": target}),
    )
    .await;
    p.wake(&slow).await;
    let mut ids = Vec::new();
    for i in 0..2 {
        let host = unique(&format!("quick{i}"));
        ids.push(p.add_pointed_domain(&key, &host).await);
    }
    for id in &ids {
        p.wait_domain(&key, id, ISSUE_DEADLINE, |d| d["status"] == "active")
            .await;
    }
    let d = p
        .wait_domain(&key, &slow_id, ISSUE_DEADLINE, |d| {
            d["check"]["problem"]
                .as_str()
                .is_some_and(|s| s.contains("did not finish within 3 seconds"))
        })
        .await;
    assert_eq!(
        d["status"], "pending_dns",
        "bounded, never a silent pass: {d}"
    );
    let events = p.events(&key, &slow_id).await;
    assert!(events.iter().any(|e| e == "dns_slow"), "{events:?}");
    let orders = count(&pool, "SELECT count(*) FROM ca_ledger WHERE kind = 'order'").await;
    assert_eq!(orders, 2, "nothing ordered for the slow domain");
}

#[sqlx::test(migrations = false)]
async fn a_lease_holds_through_a_slow_ca_but_not_past_a_stalled_worker(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[]).await;
    // The CA's HTTP-01 validation reaches the edge through a relay that holds it up
    // (longer than the 5 s lease), so the ACME exchange stays pending meanwhile.
    let (edge_http, _) = p.spawn_edge_anywhere().await;
    let relay = held_relay(p.env.http01_port, edge_http, Duration::from_secs(8)).await;
    let first = p.spawn("worker", &[]);
    let key = p.tenant().await;

    // 1. The CA keeps answering (the order is pending): the lease is renewed, nobody
    //    takes the domain over, even with a second worker waiting for work.
    let host = unique("slowca");
    let id = p.add_pointed_domain(&key, &host).await;
    wait_until(
        &pool,
        "the first order is placed",
        "SELECT count(*) FROM ca_ledger WHERE kind = 'order'",
        1,
    )
    .await;
    let second = p.spawn("worker", &[]);
    let mut leases = std::collections::BTreeSet::new();
    let end = Instant::now() + ISSUE_DEADLINE;
    loop {
        let (status, lease): (String, Option<String>) =
            sqlx::query_as("SELECT status, lease_owner FROM domains WHERE hostname = $1")
                .bind(&host)
                .fetch_one(&pool)
                .await
                .unwrap();
        if status == "active" {
            break;
        }
        leases.extend(lease);
        assert!(Instant::now() < end, "never issued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(relay.connections.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(
        leases.len(),
        1,
        "one claim held the domain throughout: {leases:?}"
    );
    let events = p.events(&key, &id).await;
    assert_eq!(
        events.iter().filter(|e| *e == "order_placed").count(),
        1,
        "{events:?}"
    );

    // 2. The worker holding the lease stalls (SIGSTOP) past the lease: the other worker
    //    takes over and finishes; the stalled one, thawed, stops at its next write.
    p.procs[second].kill9();
    let before = relay.connections.load(std::sync::atomic::Ordering::SeqCst);
    let host = unique("stalled");
    let id = p.add_pointed_domain(&key, &host).await;
    // Stall it mid-exchange: once the CA's validation for this order has arrived.
    let end = Instant::now() + ISSUE_DEADLINE;
    while relay.connections.load(std::sync::atomic::Ordering::SeqCst) <= before {
        assert!(
            Instant::now() < end,
            "the CA never came for the second challenge"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.signal(first, "STOP");
    let taker = p.spawn("worker", &[]);
    p.wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    p.signal(first, "CONT");
    let end = Instant::now() + Duration::from_secs(30);
    while !p.log(first).contains("lost the lease") {
        assert!(
            Instant::now() < end,
            "the stalled worker did not notice: {}",
            p.log(first)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        p.log(taker).contains("resuming the order in flight"),
        "{}",
        p.log(taker)
    );
    let events = p.events(&key, &id).await;
    assert_eq!(
        events.iter().filter(|e| *e == "issued").count(),
        1,
        "{events:?}"
    );
    let issued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ca_ledger WHERE kind = 'certificate' AND hostname = $1",
    )
    .bind(&host)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(issued, 1, "issued exactly once");
}

/// Wait until `sql` counts `n`.
async fn wait_until(pool: &PgPool, what: &str, sql: &'static str, n: i64) {
    let end = Instant::now() + ISSUE_DEADLINE;
    while count(pool, sql).await < n {
        assert!(Instant::now() < end, "{what}: timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn a_resumed_order_whose_key_is_unusable_is_dropped_for_a_new_one(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[]).await;
    p.spawn_edge().await;
    let worker = p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("lostkey");
    let first = p.add_pointed_domain(&key, &host).await;
    // Remember the order URL while it is in flight.
    let mut order_url = None;
    let end = Instant::now() + ISSUE_DEADLINE;
    loop {
        let (status, url): (String, Option<String>) =
            sqlx::query_as("SELECT status, order_url FROM domains WHERE hostname = $1")
                .bind(&host)
                .fetch_one(&pool)
                .await
                .unwrap();
        order_url = url.or(order_url);
        if status == "active" {
            break;
        }
        assert!(Instant::now() < end, "never issued");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let order_url = order_url.expect("the order URL was never seen");
    p.procs[worker].kill9();

    // The same hostname again, as if a worker had finalized that (now valid) order and its
    // key were lost: sealed under another master key, unreadable.
    p.delete_domain(&key, &first).await;
    let id = p.add_domain(&key, &host).await;
    p.point(&host).await;
    sqlx::query(
        "UPDATE domains SET status = 'issuing', order_url = $2, order_key_sealed = $3, \
             next_attempt_at = now() WHERE hostname = $1",
    )
    .bind(&host)
    .bind(&order_url)
    .bind(vec![7u8; 80])
    .execute(&pool)
    .await
    .unwrap();
    p.spawn("worker", &[]);
    let d = p
        .wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    assert!(d["last_error"].is_null(), "{d}");
    let events = p.events(&key, &id).await;
    assert!(events.iter().any(|e| e == "order_dropped"), "{events:?}");
    assert_eq!(
        events.iter().filter(|e| *e == "order_placed").count(),
        1,
        "{events:?}"
    );
}

/// SIGTERM drains: a worker told to stop with an order in flight finishes it (the CA's
/// validation held up meanwhile) and then exits 0, instead of leaving the order to the
/// next worker's takeover.
#[sqlx::test(migrations = false)]
async fn sigterm_lets_the_order_in_flight_finish(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool.clone(), &[]).await;
    let (edge_http, _) = p.spawn_edge_anywhere().await;
    let relay = held_relay(p.env.http01_port, edge_http, Duration::from_secs(3)).await;
    // A lease longer than the held validation: the drain waits at most one lease.
    let worker = p.spawn("worker", &[("LANDLORD_WORKER_LEASE_SECONDS", "20")]);
    let key = p.tenant().await;
    let host = unique("drain");
    let id = p.add_pointed_domain(&key, &host).await;
    wait_until(
        &pool,
        "the order is placed",
        "SELECT count(*) FROM ca_ledger WHERE kind = 'order'",
        1,
    )
    .await;
    let asked = Instant::now();
    // Signal and wait without blocking this runtime: it runs the relay.
    p.signal(worker, "TERM");
    let status = loop {
        if let Some(status) = p.procs[worker].child.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "the worker never stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.success(),
        "the worker exits 0 after draining: {status}"
    );
    assert!(
        relay.connections.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the CA's validation was held up while the worker drained"
    );
    let d = p.domain(&key, &id).await;
    assert_eq!(d["status"], "active", "finished before exiting: {d}");
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "drained within the lease bound"
    );
}
