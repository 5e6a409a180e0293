//! Hostile clients against real `landlord` processes: idle half-open connections,
//! connection caps, challenge and random-path floods, file-descriptor exhaustion.
//! Floods come from 127.0.0.2; the legitimate client is 127.0.0.1.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use support::*;

const ISSUE_DEADLINE: Duration = Duration::from_secs(60);

/// A connection from 127.0.0.2 to `port` on 127.0.0.1.
async fn connect_from_flood(port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind("127.0.0.2:0".parse().unwrap())?;
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
}

/// Read until the server closes; how long that took (None: still open at `limit`).
async fn closed_within(mut s: TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout_at((started + limit).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// A platform with an edge (on Pebble's HTTP-01 port) serving `index.html` of one
/// active domain; `env` goes to every process. Returns the platform, the hostname, the
/// edge's HTTPS port and its metrics address.
async fn serving(pool: PgPool, env: &[(&str, &str)]) -> (Platform, String, u16, String) {
    let mut p = Platform::start(pool, env).await;
    let http = format!("127.0.0.1:{}", p.env.http01_port);
    let (_, https) = p
        .start_edge(&http, &[("LANDLORD_METRICS_ADDR", "127.0.0.1:0")])
        .await;
    let edge = p.procs.len() - 1;
    let metrics = format!("127.0.0.1:{}", p.bound(edge, "LANDLORD_METRICS_ADDR").await);
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("hostile");
    let id = p.add_pointed_domain(&key, &host).await;
    let page = format!("<h1>{}</h1>", "x".repeat(20_000));
    p.put_file(&key, "index.html", "text/html", &page).await;
    p.wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    // The edge has applied every change so far (the order ended, its challenge is gone).
    let latest: i64 = sqlx::query_scalar("SELECT max(seq) FROM changes")
        .fetch_one(&p.pool)
        .await
        .unwrap();
    let m = metrics.clone();
    p.wait_for("the edge to catch up", Duration::from_secs(10), |_| {
        let m = m.clone();
        async move { metric(&m, "landlord_edge_change_position", &[]).await >= latest as f64 }
    })
    .await;
    (p, host, https, metrics)
}

/// Legitimate HTTPS requests from 127.0.0.1, each on a new connection: all must succeed.
async fn legitimate_requests(p: &Platform, host: &str, port: u16, n: usize) {
    for i in 0..n {
        let client = p.https_client(host, port);
        let res = client
            .get(format!("https://{host}:{port}/"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("legitimate request {i} failed: {e}"));
        assert_eq!(res.status(), 200, "legitimate request {i}");
        assert_eq!(res.bytes().await.unwrap().len(), 20_009);
    }
}

#[sqlx::test]
async fn idle_half_open_connections_are_closed_within_the_header_timeout(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let (p, host, https, metrics) = serving(
        pool,
        &[
            ("LANDLORD_HEADER_READ_TIMEOUT", "8s"),
            ("LANDLORD_TLS_HANDSHAKE_TIMEOUT", "8s"),
            ("LANDLORD_MAX_CONNECTIONS_PER_IP", "5000"),
        ],
    )
    .await;
    let http = p.env.http01_port;
    let flood_started = Instant::now();
    let mut flood = Vec::new();
    // 1 000 plain-HTTP connections with half a request head.
    for _ in 0..1000 {
        let mut s = connect_from_flood(http).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: ").await.unwrap();
        flood.push(s);
    }
    // 500 TLS connections with a finished handshake and half a request head, 500 that
    // never finish their handshake.
    let tls = trusting(&std::fs::read(&p.env.pebble_root).unwrap());
    let connector = tokio_rustls::TlsConnector::from(tls);
    let name = rustls::pki_types::ServerName::try_from(host.clone()).unwrap();
    let mut tls_flood = Vec::new();
    for _ in 0..500 {
        let s = connect_from_flood(https).await.unwrap();
        let mut t = connector.connect(name.clone(), s).await.unwrap();
        t.write_all(b"GET / HTTP/1.1\r\nHost: ").await.unwrap();
        t.flush().await.unwrap();
        tls_flood.push(t);
    }
    for _ in 0..500 {
        let mut s = connect_from_flood(https).await.unwrap();
        s.write_all(&[22, 3, 1]).await.unwrap();
        flood.push(s);
    }
    // The API's listener is held to the same limits.
    let api_port: u16 = p.api.rsplit(':').next().unwrap().parse().unwrap();
    for _ in 0..50 {
        let mut s = connect_from_flood(api_port).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
        flood.push(s);
    }
    let opened = flood_started.elapsed();
    // All of it is held at once (unless opening it took longer than the timeout, on a
    // busy machine: then the first ones are gone already, as they should be).
    if opened < Duration::from_secs(6) {
        let open = metric(&metrics, "landlord_connections_open", &[]).await;
        assert!(open >= 1900.0, "only {open} flood connections are open");
    }
    // During the flood, visitors from elsewhere are served, and the edge counts their
    // handshakes (each request is a new connection).
    let handshakes = || {
        metric(
            &metrics,
            "landlord_edge_handshakes_total",
            &[("outcome", "ok")],
        )
    };
    let before = handshakes().await;
    legitimate_requests(&p, &host, https, 20).await;
    let counted = handshakes().await - before;
    assert!(counted >= 20.0, "20 handshakes, {counted} counted");

    // Each flood connection is closed within the header (or handshake) timeout of its
    // own start; the flood took `opened` to open.
    let limit = Duration::from_secs(8) + opened + Duration::from_secs(2);
    let waits = flood.into_iter().map(|s| closed_within(s, limit));
    for (i, closed) in futures::future::join_all(waits)
        .await
        .into_iter()
        .enumerate()
    {
        assert!(
            closed.is_some(),
            "flood connection {i} still open after {limit:?}"
        );
    }
    for (i, mut t) in tls_flood.into_iter().enumerate() {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), t.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "TLS flood connection {i} still open");
    }
    let timeouts = |t: &'static str| {
        let metrics = metrics.clone();
        async move {
            metric(
                &metrics,
                "landlord_connection_timeouts_total",
                &[("timeout", t)],
            )
            .await
        }
    };
    assert!(timeouts("header").await >= 1500.0);
    assert!(timeouts("handshake").await >= 500.0);
    assert!(metric(&metrics, "landlord_connections_open", &[]).await < 10.0);
}

#[sqlx::test]
async fn a_client_over_its_cap_is_refused_while_others_are_served(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let (p, host, https, metrics) =
        serving(pool, &[("LANDLORD_MAX_CONNECTIONS_PER_IP", "100")]).await;
    let mut held = Vec::new();
    for _ in 0..1000 {
        // Over the cap, the connection may already be reset by the time we write.
        if let Ok(mut s) = connect_from_flood(https).await {
            let _ = s.write_all(&[22, 3, 1]).await;
            held.push(s);
        }
    }
    // The first 100 are held; the rest were closed at once.
    let mut open = 0;
    let checks = held
        .into_iter()
        .map(|s| closed_within(s, Duration::from_millis(1500)));
    let results = futures::future::join_all(checks).await;
    for closed in &results {
        if closed.is_none() {
            open += 1;
        }
    }
    assert!(
        open <= 100,
        "the flood holds {open} connections, its cap is 100"
    );
    assert!(open >= 90, "only {open} of the flood's first 100 were held");
    assert!(
        metric(
            &metrics,
            "landlord_connections_refused_total",
            &[("reason", "max_connections_per_ip")]
        )
        .await
            >= 900.0
    );
    legitimate_requests(&p, &host, https, 20).await;
}

#[sqlx::test]
async fn strangers_challenge_requests_cause_no_database_queries(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let (p, host, _https, metrics) = serving(pool, &[]).await;
    let http = p.env.http01_port;
    let before = metric(&metrics, "landlord_edge_db_queries_total", &[]).await;
    let client = reqwest::Client::new();
    let requests = (0..10_000).map(|i| {
        let client = client.clone();
        // Random hosts, and random tokens for the registered (not validating) hostname.
        let target = match i % 2 {
            0 => format!("r{i}-{}.example.com", i * 7919),
            _ => host.clone(),
        };
        async move {
            client
                .get(format!(
                    "http://127.0.0.1:{http}/.well-known/acme-challenge/tok{i}x{}",
                    i * 31
                ))
                .header("host", target)
                .send()
                .await
                .map(|r| r.status())
        }
    });
    use futures::StreamExt;
    let statuses: Vec<_> = futures::stream::iter(requests)
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| s.as_ref().is_ok_and(|s| *s == 404)));
    let after = metric(&metrics, "landlord_edge_db_queries_total", &[]).await;
    assert_eq!(
        after, before,
        "challenge requests of strangers queried the database"
    );
}

#[sqlx::test]
async fn a_random_path_flood_keeps_pages_cached_and_memory_bounded(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    // Half of LANDLORD_EDGE_MISS_CACHE_BYTES is for missing paths.
    const CAP: f64 = 256.0 * 1024.0;
    let (p, host, https, metrics) =
        serving(pool, &[("LANDLORD_EDGE_MISS_CACHE_BYTES", "524288")]).await;
    let client = p.https_client(&host, https);
    let get = |path: String| {
        let client = client.clone();
        let url = format!("https://{host}:{https}/{path}");
        async move { client.get(url).send().await.unwrap().status() }
    };
    for _ in 0..20 {
        assert_eq!(get(String::new()).await, 200);
    }
    let files = || async {
        metric(
            &metrics,
            "landlord_edge_db_queries_total",
            &[("kind", "file")],
        )
        .await
    };
    assert_eq!(files().await, 1.0, "the page is loaded once");
    use futures::StreamExt;
    // Paths of about 1 000 bytes (the longest a file may have), each a cache miss.
    let long = "a".repeat(240);
    let flood = (0..3000).map(|i| get(format!("{i}/{long}/{long}/{long}/{long}.html")));
    let statuses: Vec<_> = futures::stream::iter(flood)
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 404));
    // The gauge is refreshed every 5 s.
    let misses = || async {
        metric(
            &metrics,
            "landlord_edge_cache_bytes",
            &[("cache", "misses")],
        )
        .await
    };
    p.wait_for(
        "the flood to fill the misses",
        Duration::from_secs(15),
        |_| async { misses().await >= CAP / 4.0 },
    )
    .await;
    let bytes = misses().await;
    assert!(
        bytes <= CAP,
        "remembered misses hold {bytes} bytes, their cap is {CAP}"
    );
    let during = files().await;
    for _ in 0..10 {
        assert_eq!(get(String::new()).await, 200);
    }
    assert_eq!(
        files().await,
        during,
        "the page was pushed out of the cache"
    );
}

#[sqlx::test]
async fn out_of_file_descriptors_the_edge_backs_off_and_recovers(pool: PgPool) {
    let mut p = Platform::start(pool, &[]).await;
    // The edge with 128 file descriptors (its database pool and listeners take some).
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--nofile=128:128")
        .arg(env!("CARGO_BIN_EXE_landlord"))
        .args(["edge", "--no-migrate"]);
    let edge = p.command("edge");
    for (k, v) in edge.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.env("LANDLORD_HTTP_ADDR", "127.0.0.1:0")
        .env("LANDLORD_HTTPS_ADDR", "127.0.0.1:0")
        .env("LANDLORD_METRICS_ADDR", "127.0.0.1:0");
    let edge = p.spawn_command("edge-prlimit", cmd);
    let pid = p.procs[edge].child.id();
    let http = p.bound(edge, "LANDLORD_HTTP_ADDR").await;
    let metrics = format!("127.0.0.1:{}", p.bound(edge, "LANDLORD_METRICS_ADDR").await);
    p.wait_for("the edge", Duration::from_secs(30), |_| async move {
        TcpStream::connect(("127.0.0.1", http)).await.is_ok()
    })
    .await;
    // Hold more connections than it has descriptors.
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = connect_from_flood(http).await {
            held.push(s);
        }
    }
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        // utime + stime, in clock ticks (100 per second).
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let cpu_before = cpu();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spent = cpu() - cpu_before;
    assert!(
        spent < 60,
        "the edge spent {spent} ticks of CPU in 3 s while out of descriptors"
    );
    drop(held);
    // Descriptors free again: it accepts and answers, and counted what happened.
    let client = reqwest::Client::new();
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let res = client
            .get(format!("http://127.0.0.1:{http}/"))
            .header("host", "unknown.example.com")
            .send()
            .await;
        if res.is_ok_and(|r| r.status() == 404) {
            break;
        }
        assert!(Instant::now() < end, "the edge never accepted again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        metric(
            &metrics,
            "landlord_accept_errors_total",
            &[("error", "resources")]
        )
        .await
            >= 1.0,
        "accept errors are counted"
    );
}
