//! The edge's in-memory directory under load, against real PostgreSQL: what a handshake
//! costs in database queries, what a flood of random SNI names costs, and serving while
//! the database is unreachable.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use landlord_edge::{Directory, EdgeConfig};
use landlord_store::{Hostname, MasterKey, Store, TenantId, certificate_key_context};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

const KEY: [u8; 32] = [9; 32];

struct Edge {
    dir: Arc<Directory>,
    port: u16,
    root: rustls::RootCertStore,
    /// The HTTPS listener's task.
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A tenant with `hostname` registered and a self-signed certificate stored for it.
async fn seed(
    store: &Store,
    hostname: &str,
) -> (TenantId, rustls::pki_types::CertificateDer<'static>) {
    let (tenant, _) = store
        .create_tenant(&landlord_store::TenantName::parse("t").unwrap())
        .await
        .unwrap();
    let tenant = tenant.id;
    store
        .create_domain(tenant, &Hostname::parse(hostname).unwrap(), None, 100)
        .await
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![hostname.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let sealed = MasterKey::new(KEY).seal(
        key.serialize_pem().as_bytes(),
        &certificate_key_context(hostname),
    );
    sqlx::query(
        "INSERT INTO certificates (domain_id, tenant_id, hostname, chain_pem, key_sealed, not_before, \
             not_after, serial, issuer, renew_at, issued_by) \
         SELECT id, tenant_id, hostname, $2, $3, now(), now() + interval '1 day', '01', 'test', \
             now() + interval '12 hours', 'local' FROM domains WHERE hostname = $1",
    )
    .bind(hostname)
    .bind(cert.pem())
    .bind(sealed)
    .execute(store.pool())
    .await
    .unwrap();
    (tenant, cert.der().clone())
}

/// `index.html` with `body` for `tenant`; returns its ETag.
async fn put_index(store: &Store, tenant: TenantId, body: &[u8]) -> String {
    store
        .put_file(
            tenant,
            &landlord_store::FilePath::parse("index.html").unwrap(),
            "text/html",
            body,
            Default::default(),
        )
        .await
        .unwrap()
        .etag
}

async fn start_edge(store: Store, root_der: rustls::pki_types::CertificateDer<'static>) -> Edge {
    start_edge_until(store, root_der, std::future::pending()).await
}

/// An edge whose HTTPS listener stops when `shutdown` resolves.
async fn start_edge_until(
    store: Store,
    root_der: rustls::pki_types::CertificateDer<'static>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Edge {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = landlord_edge::start(
        store,
        EdgeConfig::new(MasterKey::new(KEY)),
        std::future::pending(),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(landlord_edge::serve_https(listener, dir.clone(), shutdown));
    let mut root = rustls::RootCertStore::empty();
    root.add(root_der).unwrap();
    Edge {
        dir,
        port,
        root,
        server,
    }
}

/// One TLS handshake and a GET; the status code, or the handshake error.
async fn get(edge: &Edge, sni: &str, path: &str) -> Result<u16, String> {
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(edge.root.clone())
        .with_no_client_auth();
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", edge.port))
        .await
        .unwrap();
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad response: {text}"))
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn cached_handshakes_make_no_database_queries(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (tenant, der) = seed(&store, "cached.example.com").await;
    put_index(&store, tenant, b"hi").await;
    let edge = start_edge(store, der).await;
    for _ in 0..200 {
        assert_eq!(get(&edge, "cached.example.com", "/").await, Ok(200));
    }
    let c = &edge.dir.counters;
    assert_eq!(
        c.db_lookups.load(Ordering::Relaxed),
        1,
        "one lookup, then memory"
    );
    assert_eq!(c.cert_hits.load(Ordering::Relaxed), 199);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn an_expired_certificate_is_never_presented(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let (tenant, der) = seed(&store, "expiring.example.com").await;
    put_index(&store, tenant, b"hi").await;
    let edge = start_edge(store, der).await;
    assert_eq!(get(&edge, "expiring.example.com", "/").await, Ok(200));
    // The stored certificate is about to expire (renewal failed, or the domain moved):
    // it is served until then, from memory, and not a handshake later.
    let not_after: f64 = sqlx::query_scalar(
        "UPDATE certificates SET not_after = now() + interval '2 seconds' \
         RETURNING EXTRACT(EPOCH FROM not_after)::float8",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    // The database and this test share the machine's clock; allow one scheduling slice.
    const SLACK: f64 = 0.25;
    let mut served = 0;
    loop {
        let started = now();
        match get(&edge, "expiring.example.com", "/").await {
            Ok(200) => {
                served += 1;
                assert!(
                    started < not_after + SLACK,
                    "presented {:.2} s after expiry",
                    started - not_after
                );
                assert!(now() < not_after + 5.0, "never refused");
            }
            Err(e) => {
                assert!(e.contains("UnrecognisedName"), "{e}");
                assert!(
                    now() > not_after - SLACK,
                    "refused {:.2} s before expiry",
                    not_after - now()
                );
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(served > 0, "served until expiry");
}

/// The plain-HTTP listener answers an HTTP-01 challenge only on the hostname it was
/// published for, and only its own token.
#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn http01_answers_only_their_own_token_and_hostname(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let (_, der) = seed(&store, "one.example.com").await;
    seed(&store, "two.example.com").await;
    sqlx::raw_sql(
        "UPDATE domains SET status = 'issuing'; \
         INSERT INTO acme_challenges (token, domain_id, hostname, key_authorization) \
         SELECT 'tok-one', id, hostname, 'tok-one.thumbprint' FROM domains \
         WHERE hostname = 'one.example.com'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let edge = start_edge(store, der).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(landlord_edge::listen::serve(
        listener,
        "http",
        Arc::new(Default::default()),
        landlord_edge::http_router(edge.dir.clone()),
        std::future::pending(),
    ));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ask = |host: &'static str, token: &'static str| {
        let client = client.clone();
        async move {
            let res = client
                .get(format!(
                    "http://127.0.0.1:{port}/.well-known/acme-challenge/{token}"
                ))
                .header("host", host)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    assert_eq!(
        ask("one.example.com", "tok-one").await,
        (200, "tok-one.thumbprint".to_owned())
    );
    assert_eq!(
        ask("two.example.com", "tok-one").await.0,
        404,
        "another hostname"
    );
    assert_eq!(
        ask("one.example.com", "tok-two").await.0,
        404,
        "another token"
    );
    assert_eq!(
        ask("nobody.example.com", "tok-one").await.0,
        404,
        "a stranger"
    );
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_change_committed_after_a_later_one_is_not_missed(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let (tenant, der) = seed(&store, "late.example.com").await;
    let edge = start_edge(store.clone(), der).await;
    assert_eq!(get(&edge, "late.example.com", "/").await, Ok(404));
    let slow = late_deletion(&pool, &store, tenant).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while edge.dir.tenant_of(&host("other.example.com")).is_none() {
        assert!(
            Instant::now() < deadline,
            "the edge never saw the later change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    slow.commit().await.unwrap();
    loop {
        match get(&edge, "late.example.com", "/").await {
            Err(e) if e.contains("UnrecognisedName") => break,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "the late deletion was missed: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Transaction 1 deletes `late.example.com` (taking change number N) and is returned
/// uncommitted; transaction 2 has meanwhile registered `other.example.com` (N+1) and
/// committed.
async fn late_deletion(
    pool: &PgPool,
    store: &Store,
    tenant: TenantId,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut slow = pool.begin().await.unwrap();
    sqlx::query("DELETE FROM domains WHERE hostname = 'late.example.com'")
        .execute(&mut *slow)
        .await
        .unwrap();
    store
        .create_domain(
            tenant,
            &Hostname::parse("other.example.com").unwrap(),
            None,
            100,
        )
        .await
        .unwrap();
    slow
}

/// The same, one level down and past the follower's first minute: the late change is
/// found because the follower remembered the sequence number it skipped.
#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_skipped_sequence_number_is_looked_for_until_it_commits(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let (tenant, _) = seed(&store, "late.example.com").await;
    let dir = Directory::load(store.clone(), EdgeConfig::new(MasterKey::new(KEY)))
        .await
        .unwrap();
    let mut follower =
        landlord_edge::Follower::new(store.latest_change().await.unwrap()).past_start_up();
    let slow = late_deletion(&pool, &store, tenant).await;
    follower.catch_up(&dir).await.unwrap();
    assert_eq!(dir.tenant_of(&host("other.example.com")), Some(tenant));
    assert_eq!(dir.tenant_of(&host("late.example.com")), Some(tenant));
    slow.commit().await.unwrap();
    follower.catch_up(&dir).await.unwrap();
    assert_eq!(
        dir.tenant_of(&host("late.example.com")),
        None,
        "the late deletion was missed"
    );
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn an_edge_behind_the_pruned_change_log_reloads_everything(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let (tenant, _) = seed(&store, "gone.example.com").await;
    let dir = Directory::load(store.clone(), EdgeConfig::new(MasterKey::new(KEY)))
        .await
        .unwrap();
    let mut follower = landlord_edge::Follower::new(store.latest_change().await.unwrap());
    assert!(dir.tenant_of(&host("gone.example.com")).is_some());
    // While this edge is away: one domain deleted, one added, and the log pruned.
    sqlx::query("DELETE FROM domains WHERE hostname = 'gone.example.com'")
        .execute(&pool)
        .await
        .unwrap();
    store
        .create_domain(
            tenant,
            &Hostname::parse("new.example.com").unwrap(),
            None,
            100,
        )
        .await
        .unwrap();
    let pruned = store.prune_changes(Duration::ZERO).await.unwrap();
    assert!(pruned >= 2, "{pruned}");
    assert!(store.changes_pruned_through().await.unwrap() > follower.position());
    follower.catch_up(&dir).await.unwrap();
    assert!(dir.tenant_of(&host("gone.example.com")).is_none());
    assert_eq!(dir.tenant_of(&host("new.example.com")), Some(tenant));
    assert!(follower.position() >= store.changes_pruned_through().await.unwrap());
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_flood_of_random_sni_names_costs_no_queries_and_no_memory(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (_, der) = seed(&store, "real.example.com").await;
    let edge = Arc::new(start_edge(store, der).await);
    let before = edge.dir.sizes().await;
    let mut rejected = 0;
    for batch in 0..100 {
        let attempts = (0..100).map(|i| {
            let edge = edge.clone();
            tokio::spawn(async move {
                get(&edge, &format!("r{batch}-{i}.random.example.net"), "/").await
            })
        });
        for result in futures_join(attempts).await {
            let err = result.expect_err("unknown names are refused");
            assert!(err.contains("UnrecognisedName"), "{err}");
            rejected += 1;
        }
    }
    assert_eq!(rejected, 10_000);
    let c = &edge.dir.counters;
    assert_eq!(
        c.db_lookups.load(Ordering::Relaxed),
        0,
        "unknown names are refused from memory"
    );
    assert_eq!(c.unknown_names.load(Ordering::Relaxed), 10_000);
    assert_eq!(
        edge.dir.sizes().await,
        before,
        "nothing was remembered for them"
    );
    // and the real name still works
    assert_eq!(get(&edge, "real.example.com", "/nothing").await, Ok(404));
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_registered_name_without_certificate_is_looked_up_once_per_negative_ttl(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (tenant, der) = seed(&store, "real.example.com").await;
    store
        .create_domain(
            tenant,
            &Hostname::parse("pending.example.com").unwrap(),
            None,
            100,
        )
        .await
        .unwrap();
    let edge = start_edge(store, der).await;
    for _ in 0..100 {
        assert!(
            get(&edge, "pending.example.com", "/")
                .await
                .unwrap_err()
                .contains("UnrecognisedName")
        );
    }
    let c = &edge.dir.counters;
    assert_eq!(c.db_lookups.load(Ordering::Relaxed), 1);
    assert_eq!(c.negative_hits.load(Ordering::Relaxed), 99);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn cached_names_keep_serving_while_the_database_is_away(pool: PgPool) {
    let direct = Store::from_pool(pool.clone());
    let (tenant, der) = seed(&direct, "steady.example.com").await;
    put_index(&direct, tenant, b"v1").await;

    // The edge reaches PostgreSQL through a proxy the test can cut.
    let proxy = Proxy::start(&pool).await;
    let store = Store::connect(&proxy.url, 4, Duration::from_secs(2))
        .await
        .unwrap();
    let edge = start_edge(store, der).await;
    assert_eq!(get(&edge, "steady.example.com", "/").await, Ok(200));
    let probe = Store::connect(&proxy.url, 1, Duration::from_secs(1))
        .await
        .unwrap();
    probe.ping().await.unwrap();

    proxy.cut();
    // The cut took effect: an open connection through the proxy is gone, and the edge
    // itself has tried to reach the database and been refused.
    assert!(
        probe.ping().await.is_err(),
        "the proxy still passes queries"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.refused.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the edge never noticed the outage"
        );
        assert_eq!(
            get(&edge, "steady.example.com", "/").await,
            Ok(200),
            "served from memory"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..20 {
        assert_eq!(
            get(&edge, "steady.example.com", "/").await,
            Ok(200),
            "served from memory"
        );
    }

    // Changes made while the edge could not see them arrive once it can again.
    put_index(&direct, tenant, b"v2").await;
    sqlx::query("DELETE FROM domains WHERE hostname = 'steady.example.com'")
        .execute(&pool)
        .await
        .unwrap();
    proxy.restore();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        match get(&edge, "steady.example.com", "/").await {
            Err(e) if e.contains("UnrecognisedName") => break,
            other => {
                assert!(
                    Instant::now() < end,
                    "the edge never resynchronised: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

/// A TCP proxy in front of PostgreSQL: `cut` drops every connection and refuses new
/// ones (the database is "away"), `restore` lets them through again.
struct Proxy {
    url: String,
    open: Arc<tokio::sync::watch::Sender<bool>>,
    /// Connections refused while cut: proof that a client tried and failed.
    refused: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    async fn start(pool: &PgPool) -> Proxy {
        let db: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(pool)
            .await
            .unwrap();
        let base = std::env::var("DATABASE_URL").unwrap();
        let (rest, _) = base.rsplit_once('/').unwrap();
        let (scheme_user, hostport) = rest.rsplit_once('@').unwrap_or((
            "postgres://postgres",
            rest.trim_start_matches("postgres://"),
        ));
        let upstream = hostport.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, _) = tokio::sync::watch::channel(true);
        let open = Arc::new(open);
        let gate = open.clone();
        let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let refusals = refused.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if !*gate.borrow() {
                    refusals.fetch_add(1, Ordering::Relaxed);
                    continue; // dropped: connection refused in effect
                }
                let mut rx = gate.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut c, mut s) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut s) => {}
                        _ = rx.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Proxy {
            url: format!("{scheme_user}@127.0.0.1:{port}/{db}"),
            open,
            refused,
        }
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }

    fn restore(&self) {
        self.open.send_replace(true);
    }
}

/// Many HTTP/2 streams on one connection (they run in the connection's task): pages,
/// missing files (a database lookup while the other streams go on) and `304`s all get
/// their own right answer.
#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn http2_streams_on_one_connection_each_get_their_answer(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (tenant, der) = seed(&store, "h2.example.com").await;
    let etag = put_index(&store, tenant, b"<h1>h2</h1>").await;
    let edge = start_edge(store, der).await;

    let sender = h2_connect(&edge, "h2.example.com").await;
    let requests = (0..60).map(|i| {
        let mut sender = sender.clone();
        let etag = etag.clone();
        async move {
            let (path, if_none_match, want) = match i % 3 {
                0 => ("/".to_owned(), None, 200),
                1 => (format!("/missing-{i}.html"), None, 404),
                _ => ("/index.html".to_owned(), Some(etag), 304),
            };
            let mut request = hyper::Request::get(format!("https://h2.example.com{path}"));
            if let Some(etag) = if_none_match {
                request = request.header("if-none-match", etag);
            }
            let response = sender
                .send_request(
                    request
                        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            (i, want, status, body)
        }
    });
    let answers =
        tokio::time::timeout(Duration::from_secs(30), futures::future::join_all(requests))
            .await
            .expect("every stream is answered");
    for (i, want, status, body) in answers {
        assert_eq!(status, want, "request {i}");
        if want == 200 {
            assert_eq!(&body[..], b"<h1>h2</h1>", "request {i}");
        }
    }
}

/// An HTTP/2 connection to the edge (ALPN h2), driven in the background.
async fn h2_connect(
    edge: &Edge,
    sni: &str,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<hyper::body::Bytes>> {
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(edge.root.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", edge.port))
        .await
        .unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), stream)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    sender
}

/// The edge never compresses: it serves the variants a worker stored, by
/// `Accept-Encoding`, with `Vary: Accept-Encoding` once on every answer for a compressible
/// type (before its variants exist too), and the identity body otherwise.
#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn stored_variants_are_served_when_accepted_and_always_vary(pool: PgPool) {
    let store = Store::from_pool(pool);
    let (tenant, der) = seed(&store, "gz.example.com").await;
    let page = "<p>compress me</p>".repeat(100);
    put_index(&store, tenant, page.as_bytes()).await;
    let edge = start_edge(store.clone(), der).await;
    let mut sender = h2_connect(&edge, "gz.example.com").await;
    let mut get = async |accept: Option<&str>| {
        let mut request = hyper::Request::get("https://gz.example.com/");
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        let response = sender
            .send_request(request.body(http_body_util::Empty::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{accept:?}");
        let headers = response.headers().clone();
        let vary: Vec<_> = headers.get_all("vary").iter().collect();
        assert_eq!(vary, ["accept-encoding"], "{accept:?}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers.contains_key("etag"));
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (headers.get("content-encoding").cloned(), body)
    };
    // Not compressed yet: identity for everyone, nothing compressed here.
    let (encoding, body) = get(Some("gzip")).await;
    assert_eq!((encoding, &body[..]), (None, page.as_bytes()));

    // A worker stores a gzip variant (here by hand); the edge follows the change log.
    let job = store
        .claim_uncompressed(Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, page.as_bytes()).unwrap();
    let variants = landlord_store::Variants {
        gzip: Some(gz.finish().unwrap()),
        ..Default::default()
    };
    assert!(store.store_variants(&job, &variants).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(Some("gzip")).await.0.is_none() {
        assert!(
            Instant::now() < deadline,
            "the variant never reached the edge"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for accept in [None, Some("gzip"), Some("identity"), Some("br")] {
        let (encoding, body) = get(accept).await;
        let gzip = accept == Some("gzip");
        assert_eq!(encoding.is_some_and(|e| e == "gzip"), gzip, "{accept:?}");
        if gzip {
            assert_eq!(body, variants.gzip.as_deref().unwrap());
        } else {
            assert_eq!(body, page.as_bytes(), "{accept:?}");
        }
    }
}

/// Graceful shutdown: once asked to stop, the edge refuses new connections at once, but a
/// request already in flight (here held up by a lock on `files`) is still answered, and
/// only then does the listener's future end.
#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn shutdown_refuses_new_connections_and_finishes_requests_in_flight(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let (tenant, der) = seed(&store, "bye.example.com").await;
    put_index(&store, tenant, b"still here").await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let edge = start_edge_until(store, der, async move {
        let _ = stopped.await;
    })
    .await;
    let mut sender = h2_connect(&edge, "bye.example.com").await;

    // The page is not cached yet, so the request waits for PostgreSQL, which waits for
    // the lock.
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE deployment_files IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let in_flight = tokio::spawn(async move {
        let request = hyper::Request::get("https://bye.example.com/")
            .body(http_body_util::Empty::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, body)
    });
    // The request is in flight: its query waits on the lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE NOT granted")
            .fetch_one(&pool)
            .await
            .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the request never reached the database"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !in_flight.is_finished(),
        "the request should be waiting on the lock"
    );

    stop.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(("127.0.0.1", edge.port))
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "still accepting connections");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !edge.server.is_finished(),
        "stopped before the request in flight"
    );

    lock.commit().await.unwrap();
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the request in flight is answered")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"still here");
    tokio::time::timeout(Duration::from_secs(10), edge.server)
        .await
        .expect("the listener's future ends once its connections have")
        .unwrap()
        .unwrap();
}

fn host(name: &str) -> Hostname {
    Hostname::parse(name).expect("a valid hostname")
}
