//! Edges in another region: `landlord edge` reading a real hot standby that replays 3 s
//! behind its primary (`scripts/test-replica.sh`), with the API and the worker on the
//! primary, and the edge's heartbeats written there (`LANDLORD_PRIMARY_DATABASE_URL`).

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;
use support::*;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run through `just test` (scripts/test-replica.sh)")
    })
}

/// A fresh database on the bed's primary, and its URLs on the primary and the standby
/// (physical replication brings it there after the replay delay).
async fn replicated_database() -> (PgPool, String, String) {
    let (primary, standby) = (
        var("LANDLORD_TEST_REPLICA_PRIMARY_URL"),
        var("LANDLORD_TEST_REPLICA_STANDBY_URL"),
    );
    let name = format!(
        "replica_{}",
        unique("x").split('.').next().unwrap().replace('-', "_")
    );
    let admin = PgPool::connect(&primary).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let on = |url: &str| format!("{}/{name}", url.rsplit_once('/').unwrap().0);
    let pool = PgPool::connect(&on(&primary)).await.unwrap();
    (pool, on(&primary), on(&standby))
}

/// The platform on the primary (migrated there), and an edge on the standby taking
/// Pebble's HTTP-01 fetches (a worker with `worker_env`): its HTTPS port.
async fn two_regions(worker_env: &[(&str, &str)]) -> (Platform, u16) {
    let (pool, primary, standby) = replicated_database().await;
    let mut p = Platform::start_at(pool, primary.clone(), &[]).await;
    // The standby has the schema once it has replayed the migrations.
    let started = Instant::now();
    loop {
        let replayed = match PgPool::connect(&standby).await {
            Ok(s) => {
                sqlx::query_scalar::<_, Option<i64>>("SELECT max(version) FROM _sqlx_migrations")
                    .fetch_one(&s)
                    .await
                    .ok()
                    .flatten()
                    .is_some()
            }
            Err(_) => false,
        };
        if replayed {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the standby never replayed the migrations"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let http = format!("127.0.0.1:{}", p.env.http01_port);
    let (_, https) = p
        .start_edge(
            &http,
            &[
                ("DATABASE_URL", standby.as_str()),
                ("LANDLORD_PRIMARY_DATABASE_URL", primary.as_str()),
                ("LANDLORD_EDGE_NAME", "syd-1"),
                ("LANDLORD_EDGE_REGION", "syd"),
            ],
        )
        .await;
    p.spawn("worker", worker_env);
    (p, https)
}

/// A tenant's page `body` on a new domain pointed at us, issued through Pebble (which
/// fetched the challenge from the standby-backed edge) and served there: key, host, id.
async fn serving(p: &Platform, https: u16, prefix: &str, body: &str) -> (String, String, String) {
    let key = p.tenant().await;
    let host = unique(prefix);
    p.put_file(&key, "index.html", "text/html", body).await;
    let id = p.add_pointed_domain(&key, &host).await;
    p.wait_domain(&key, &id, Duration::from_secs(90), |d| {
        d["status"] == "active"
    })
    .await;
    wait_served(p, &host, https, Some(body), "served from the standby").await;
    (key, host, id)
}

async fn wait_served(p: &Platform, host: &str, port: u16, want: Option<&str>, what: &str) {
    let started = Instant::now();
    let (host, want) = (host.to_owned(), want.map(str::to_owned));
    p.wait_for(what, Duration::from_secs(30), |p| {
        let (host, want) = (host.clone(), want.clone());
        async move {
            let got = p.fetch(&host, port, "/").await;
            match &want {
                Some(body) => got == Some((200, body.clone())),
                None => got.is_none(),
            }
        }
    })
    .await;
    println!("{what}: {:?}", started.elapsed());
}

/// The CA fetches the HTTP-01 challenge through the standby-backed edge: the worker waits
/// until that edge has replayed and loaded it, so the validation passes the first time.
/// A changed file and a deleted domain then reach the edge within the poll plus the lag.
#[tokio::test]
async fn an_edge_on_a_standby_behind_its_primary_validates_serves_and_follows() {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let (p, https) = two_regions(&[]).await;
    let (key, host, id) = serving(&p, https, "region", "v1").await;
    let kinds: Vec<String> = p
        .events(&key, &id)
        .await
        .into_iter()
        .filter(|m| m.contains("fail") || m.contains("refused"))
        .collect();
    assert!(kinds.is_empty(), "validated the first time: {kinds:?}");

    let edges: Value = p
        .client
        .get(format!("{}/v1/admin/edges", p.api))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let edge = edges["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "syd-1")
        .unwrap_or_else(|| panic!("{edges}"));
    assert_eq!(edge["region"], "syd");
    assert_eq!(edge["read_only"], true);
    assert_eq!(edge["live"], true);
    assert!(edge["replay_lag_seconds"].is_number(), "{edge}");

    p.put_file(&key, "index.html", "text/html", "v2").await;
    wait_served(
        &p,
        &host,
        https,
        Some("v2"),
        "a changed file reached the standby edge",
    )
    .await;
    p.delete_domain(&key, &id).await;
    wait_served(
        &p,
        &host,
        https,
        None,
        "a deleted domain left the standby edge",
    )
    .await;
}

/// The standby is away for 30 s: every handshake and page for a cached name is still
/// served from memory; the edge catches up once it is back (a file changed meanwhile).
#[tokio::test]
async fn a_standby_away_for_thirty_seconds_costs_no_handshake() {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let (p, https) = two_regions(&[]).await;
    let (key, host, _) = serving(&p, https, "away", "before").await;

    let script = var("LANDLORD_TEST_REPLICA_SCRIPT");
    let run = |what: &str| {
        let status = std::process::Command::new(&script)
            .arg(what)
            .status()
            .unwrap();
        assert!(status.success(), "{script} {what}");
    };
    run("standby-stop");
    let away = Instant::now();
    let (mut served, mut failed) = (0, 0);
    let mut changed = false;
    while away.elapsed() < Duration::from_secs(30) {
        match p.fetch(&host, https, "/").await {
            Some((200, body)) if body == "before" => served += 1,
            other => {
                failed += 1;
                eprintln!("failed while the standby was away: {other:?}");
            }
        }
        if !changed && away.elapsed() > Duration::from_secs(5) {
            // The primary goes on: the change waits for the standby.
            p.put_file(&key, "index.html", "text/html", "after").await;
            changed = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run("standby-start");
    println!("{served} requests on new connections while the standby was away, {failed} failed");
    assert!(served > 100, "{served}");
    assert_eq!(failed, 0);
    wait_served(
        &p,
        &host,
        https,
        Some("after"),
        "caught up after the standby came back",
    )
    .await;
}

/// An edge refuses, with what to do, a schema it cannot read: one migrated past what it
/// knows in an incompatible way, or one older than it reads; a schema migrated past it
/// compatibly is served.
#[sqlx::test(migrations = false)]
async fn an_edge_refuses_a_schema_it_cannot_read(pool: PgPool) {
    let p = Platform::start(pool.clone(), &[]).await;
    let edge = |p: &Platform| {
        let mut cmd = p.command("edge");
        cmd.arg("--no-migrate")
            .env("LANDLORD_HTTP_ADDR", "127.0.0.1:0")
            .env("LANDLORD_HTTPS_ADDR", "127.0.0.1:0");
        cmd
    };
    let refused = |p: &Platform| {
        let out = edge(p).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "a configuration error");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    sqlx::query("UPDATE schema_compat SET edge_compatible_from = 999999")
        .execute(&pool)
        .await
        .unwrap();
    let why = refused(&p);
    assert!(
        why.contains("cannot serve") && why.contains("upgrade it"),
        "{why}"
    );
    sqlx::query("UPDATE schema_compat SET edge_compatible_from = 13")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version >= 13")
        .execute(&pool)
        .await
        .unwrap();
    let why = refused(&p);
    assert!(why.contains("run `landlord migrate`"), "{why}");
}

/// A TCP relay on `127.0.0.1:<port>` to the port in `target`, as a virtual IP or a DNS name
/// in front of "the primary" would be: switching it moves new connections elsewhere. It
/// runs on a thread of its own (the test blocks its runtime while `landlord migrate` runs).
fn switchable_relay(target: std::sync::Arc<std::sync::atomic::AtomicU16>) -> u16 {
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let to = target.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    });
    port
}

/// A primary and a standby of a test's own (`LANDLORD_TEST_REPLICA_DIR`), replaying at once,
/// for tests that promote the standby (the shared bed must keep its); stopped and removed
/// when dropped.
struct OwnBed {
    dir: String,
    primary: String,
    standby: String,
}

impl OwnBed {
    const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/test-replica.sh");

    fn start(name: &str) -> Self {
        let dir = format!(
            "{}/../../target/test-replica-{name}-{}",
            env!("CARGO_MANIFEST_DIR"),
            std::process::id()
        );
        let mut bed = OwnBed {
            dir,
            primary: String::new(),
            standby: String::new(),
        };
        let exports = bed.run("start");
        let url = |name: &str| {
            exports
                .lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap()
                .trim_matches('\'')
                .to_owned()
        };
        bed.primary = url("LANDLORD_TEST_REPLICA_PRIMARY_URL");
        bed.standby = url("LANDLORD_TEST_REPLICA_STANDBY_URL");
        bed
    }

    fn run(&self, what: &str) -> String {
        let out = std::process::Command::new(Self::SCRIPT)
            .arg(what)
            .env("LANDLORD_TEST_REPLICA_DIR", &self.dir)
            .env("LANDLORD_TEST_REPLICA_DELAY", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for OwnBed {
    fn drop(&mut self) {
        self.run("remove");
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// `url` (a server's) with the database `db`.
fn on(url: &str, db: &str) -> String {
    format!("{}/{db}", url.rsplit_once('/').unwrap().0)
}

/// Wait until the standby has replayed everything the primary has written so far.
async fn replayed(p: &Platform, primary: &str, standby: &str) {
    let primary = PgPool::connect(primary).await.unwrap();
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(&primary)
        .await
        .unwrap();
    primary.close().await;
    let standby = PgPool::connect(standby).await.unwrap();
    p.wait_for(
        "the standby to replay everything",
        Duration::from_secs(30),
        |_| {
            let (s, lsn) = (standby.clone(), lsn.clone());
            async move {
                sqlx::query_scalar::<_, bool>("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn")
                    .bind(lsn)
                    .fetch_one(&s)
                    .await
                    .unwrap_or(false)
            }
        },
    )
    .await;
}

/// The primary dies and its streaming replica is promoted in its place (behind the same
/// address): the API, the worker and the edge reconnect by themselves and work goes on; the
/// domain issued before is not issued again, and a new one is issued on the new primary.
#[tokio::test]
async fn the_primary_fails_over_to_its_replica_and_work_goes_on() {
    use std::sync::atomic::{AtomicU16, Ordering};
    let _turn = EDGE_PORT_LOCK.lock().await;
    // A bed of this test's own, replaying at once: the shared one must keep its standby.
    let bed = OwnBed::start("failover");
    let (primary, standby) = (bed.primary.clone(), bed.standby.clone());
    let target = std::sync::Arc::new(AtomicU16::new(port_of(&primary)));
    let relay = switchable_relay(target.clone());
    let admin = PgPool::connect(&primary).await.unwrap();
    sqlx::query("CREATE DATABASE failover")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let via_relay = format!("postgres://postgres@127.0.0.1:{relay}/failover");
    let pool = PgPool::connect(&via_relay).await.unwrap();
    let mut p = Platform::start_at(pool, via_relay.clone(), &[]).await;
    let https = p.spawn_edge().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    p.put_file(&key, "index.html", "text/html", "before").await;
    let (first, second) = (unique("before-failover"), unique("after-failover"));
    let first_id = p.add_pointed_domain(&key, &first).await;
    p.wait_domain(&key, &first_id, Duration::from_secs(60), |d| {
        d["status"] == "active"
    })
    .await;

    // Everything is on the standby (asynchronous replication loses what is not), then the
    // primary crashes and the standby takes its place behind the same address.
    replayed(&p, &on(&primary, "failover"), &on(&standby, "failover")).await;
    bed.run("primary-kill");
    bed.run("promote");
    target.store(port_of(&standby), Ordering::SeqCst);

    // Work goes on through the new primary: a new domain is issued, a file changes, the
    // edge (reconnected) serves both; the domain issued before is not issued again.
    p.put_file(&key, "index.html", "text/html", "after").await;
    let second_id = p.add_pointed_domain(&key, &second).await;
    p.wait_domain(&key, &second_id, Duration::from_secs(90), |d| {
        d["status"] == "active"
    })
    .await;
    for host in [&first, &second] {
        let h = host.to_string();
        p.wait_for(
            "the edge to serve after the failover",
            Duration::from_secs(30),
            |p| {
                let h = h.clone();
                async move {
                    p.fetch(&h, https, "/")
                        .await
                        .is_some_and(|(_, body)| body == "after")
                }
            },
        )
        .await;
    }
    let issued = p
        .events(&key, &first_id)
        .await
        .into_iter()
        .filter(|k| k == "issued")
        .count();
    assert_eq!(
        issued, 1,
        "the domain issued before the failover is not issued again"
    );
    let standby_pool = PgPool::connect(&on(&standby, "failover")).await.unwrap();
    let certificates: i64 = sqlx::query_scalar("SELECT count(*) FROM certificates")
        .fetch_one(&standby_pool)
        .await
        .unwrap();
    assert_eq!(certificates, 2);
    drop(p);
}

/// A standby further behind than `LANDLORD_EDGE_SYNC_TIMEOUT`: the CA is not told, the
/// domain stays `issuing` with a problem naming the edge (never `failed`), and it is
/// certified once the workers wait long enough.
#[tokio::test]
async fn an_edge_lagging_past_the_bound_is_named_and_nothing_fails() {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let (mut p, _) = two_regions(&[("LANDLORD_EDGE_SYNC_TIMEOUT", "1s")]).await;
    let key = p.tenant().await;
    let host = unique("lagging");
    let id = p.add_pointed_domain(&key, &host).await;
    let d = p
        .wait_domain(&key, &id, Duration::from_secs(30), |d| {
            d["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("had not loaded it"))
        })
        .await;
    let error = d["last_error"].as_str().unwrap();
    assert!(error.contains("syd-1 in syd"), "{error}");
    assert_eq!(d["status"], "issuing");
    let worker = p.procs.len() - 1;
    p.procs[worker].kill9();
    p.spawn("worker", &[]);
    p.wake(&host).await;
    let d = p
        .wait_domain(&key, &id, Duration::from_secs(60), |d| {
            d["status"] == "active"
        })
        .await;
    let failed = p
        .events(&key, &id)
        .await
        .into_iter()
        .filter(|k| k.contains("fail"))
        .count();
    assert_eq!(failed, 0, "{d}");
}

/// The edge's own standby is promoted (its primary died): the edge, still pointed at the
/// same server, now a primary, goes on without a restart: what it served stays served, and
/// changes and new domains written on the new primary reach it.
#[tokio::test]
async fn an_edge_whose_own_standby_is_promoted_goes_on() {
    use std::sync::atomic::{AtomicU16, Ordering};
    let bed = OwnBed::start("promoted");
    let (primary, standby) = (bed.primary.clone(), bed.standby.clone());
    // API and worker reach the primary through a relay, moved to the promoted node later.
    let target = std::sync::Arc::new(AtomicU16::new(port_of(&primary)));
    let relay = switchable_relay(target.clone());
    let admin = PgPool::connect(&primary).await.unwrap();
    sqlx::query("CREATE DATABASE promoted")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let via_relay = format!("postgres://postgres@127.0.0.1:{relay}/promoted");
    let pool = PgPool::connect(&via_relay).await.unwrap();
    let mut p = Platform::start_at(pool, via_relay.clone(), &[("LANDLORD_ISSUER", "local")]).await;
    replayed(&p, &on(&primary, "promoted"), &on(&standby, "promoted")).await;
    let on_standby = on(&standby, "promoted");
    let (_, https) = p
        .start_edge(
            "127.0.0.1:0",
            &[
                ("DATABASE_URL", on_standby.as_str()),
                ("LANDLORD_PRIMARY_DATABASE_URL", via_relay.as_str()),
                ("LANDLORD_EDGE_POLL_INTERVAL", "200ms"),
            ],
        )
        .await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    p.put_file(&key, "index.html", "text/html", "before").await;
    let (first, second) = (unique("promoted-a"), unique("promoted-b"));
    let first_id = p.add_pointed_domain(&key, &first).await;
    p.wait_domain(&key, &first_id, Duration::from_secs(60), |d| {
        d["status"] == "active"
    })
    .await;
    p.wait_for("the page from the standby", Duration::from_secs(20), |p| {
        let f = p.local_ca_page(first.clone(), https);
        async move { f.await.as_deref() == Some("before") }
    })
    .await;
    let edge_log = p.log(1);
    assert!(edge_log.contains("read-only"), "{edge_log}");

    // The primary dies; the edge's standby is promoted and takes the primary's place.
    replayed(&p, &on(&primary, "promoted"), &on_standby).await;
    bed.run("primary-kill");
    bed.run("promote");
    target.store(port_of(&standby), Ordering::SeqCst);

    p.put_file(&key, "index.html", "text/html", "after").await;
    let second_id = p.add_pointed_domain(&key, &second).await;
    p.wait_domain(&key, &second_id, Duration::from_secs(60), |d| {
        d["status"] == "active"
    })
    .await;
    for host in [&first, &second] {
        p.wait_for(
            "the edge to follow its promoted source",
            Duration::from_secs(20),
            |p| {
                let f = p.local_ca_page(host.to_string(), https);
                async move { f.await.as_deref() == Some("after") }
            },
        )
        .await;
    }
    let edge_log = p.log(1);
    assert!(!edge_log.contains("reloading everything"), "{edge_log}");
}

/// An edge whose source is replaced by one with another history (a replica promoted after
/// missing the old primary's last changes, behind the same address) notices that the log
/// is behind what it applied and reloads everything from the new source: a domain deleted
/// only on the old primary is served again, as the new source still has it.
#[tokio::test]
async fn an_edge_whose_source_has_another_history_reloads_everything() {
    use std::sync::atomic::{AtomicU16, Ordering};
    let bed = OwnBed::start("diverged");
    let (primary, standby) = (bed.primary.clone(), bed.standby.clone());
    let target = std::sync::Arc::new(AtomicU16::new(port_of(&primary)));
    let relay = switchable_relay(target.clone());
    let admin = PgPool::connect(&primary).await.unwrap();
    sqlx::query("CREATE DATABASE diverged")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let via_relay = format!("postgres://postgres@127.0.0.1:{relay}/diverged");
    let pool = PgPool::connect(&via_relay).await.unwrap();
    // The local CA: no ACME needed to have a certificate to serve with.
    let mut p = Platform::start_at(pool, via_relay.clone(), &[("LANDLORD_ISSUER", "local")]).await;
    let (_, https) = p.spawn_edge_anywhere().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    p.put_file(&key, "index.html", "text/html", "kept").await;
    let host = unique("diverged");
    let id = p.add_pointed_domain(&key, &host).await;
    p.wait_domain(&key, &id, Duration::from_secs(60), |d| {
        d["status"] == "active"
    })
    .await;
    let served = |p: &Platform| p.local_ca_page(host.clone(), https);
    p.wait_for("the page", Duration::from_secs(20), |p| {
        let f = served(p);
        async move { f.await.as_deref() == Some("kept") }
    })
    .await;

    // The standby is cut off (promoted: it keeps what it had); the old primary goes on and
    // deletes the domain, which the edge applies.
    replayed(&p, &on(&primary, "diverged"), &on(&standby, "diverged")).await;
    bed.run("promote");
    p.delete_domain(&key, &id).await;
    p.wait_for("the deletion on the edge", Duration::from_secs(20), |p| {
        let f = served(p);
        async move { f.await.is_none() }
    })
    .await;

    // Behind the same address, the source is now the promoted replica, without the
    // deletion: the edge reloads everything from it and serves the domain again.
    target.store(port_of(&standby), Ordering::SeqCst);
    bed.run("primary-kill");
    p.wait_for(
        "the edge to reload from the new source",
        Duration::from_secs(30),
        |p| {
            let f = served(p);
            async move { f.await.as_deref() == Some("kept") }
        },
    )
    .await;
    let edge_log = p.log(1);
    assert!(edge_log.contains("reloading everything"), "{edge_log}");
}
