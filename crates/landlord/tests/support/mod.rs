//! End-to-end harness: real `landlord` processes, a per-test PostgreSQL database, and
//! the Pebble + pebble-challtestsrv started by `scripts/test-acme.sh` (`just test`).
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;

pub const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const ADMIN_TOKEN: &str = "e2e-admin";
pub const TARGET: &str = "edge.platform.test";

/// Pebble validates HTTP-01 on one fixed port, so tests that run an edge take turns
/// (nextest: the `pebble` test group; `cargo test`: this lock).
pub static EDGE_PORT_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Env {
    pub acme_directory: String,
    pub acme_roots: String,
    pub pebble_root: String,
    pub dns_server: String,
    pub challtestsrv: String,
    pub http01_port: u16,
}

impl Env {
    pub fn get() -> Env {
        let var = |k: &str| {
            std::env::var(k).unwrap_or_else(|_| {
                panic!("{k} is not set: run the end-to-end tests through `just test` (it starts Pebble)")
            })
        };
        Env {
            acme_directory: var("LANDLORD_TEST_ACME_DIRECTORY"),
            acme_roots: var("LANDLORD_TEST_ACME_CA_ROOTS"),
            pebble_root: var("LANDLORD_TEST_PEBBLE_ROOT"),
            dns_server: var("LANDLORD_TEST_DNS_SERVER"),
            challtestsrv: var("LANDLORD_TEST_CHALLTESTSRV"),
            http01_port: var("LANDLORD_TEST_HTTP01_PORT").parse().unwrap(),
        }
    }
}

/// A `landlord` child process, SIGKILLed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Platform {
    pub env: Env,
    pub db_url: String,
    pub pool: PgPool,
    pub api: String,
    pub client: reqwest::Client,
    pub procs: Vec<Proc>,
    pub extra_env: Vec<(String, String)>,
}

pub async fn db_url(pool: &PgPool) -> String {
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set by `just test`");
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{db}")
}

/// A TLS client configuration that trusts only the certificates in `root_pem`.
pub fn trusting(root_pem: &[u8]) -> std::sync::Arc<rustls::ClientConfig> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(root_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    std::sync::Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The port a process reported binding for `setting` (`LANDLORD_API_ADDR listening
/// addr=127.0.0.1:41234`): processes bind port 0 and say where, so no two tests race for
/// a port picked in advance.
pub fn bound_port(log: &str, setting: &str) -> Option<u16> {
    let plain = strip_ansi(log);
    let line = plain
        .lines()
        .find(|l| l.contains(&format!("{setting} listening")))?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))?
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

/// `s` without terminal colour codes.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Platform {
    /// Migrate the test database and start `landlord api` (not yet a worker or edge).
    pub async fn start(pool: PgPool, extra_env: &[(&str, &str)]) -> Platform {
        let db_url = db_url(&pool).await;
        Self::start_at(pool, db_url, extra_env).await
    }

    /// [`Platform::start`] on the database `db_url` (which `pool` reaches).
    pub async fn start_at(pool: PgPool, db_url: String, extra_env: &[(&str, &str)]) -> Platform {
        let env = Env::get();
        let mut p = Platform {
            env,
            db_url,
            pool,
            api: String::new(),
            client: reqwest::Client::new(),
            procs: Vec::new(),
            extra_env: extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let out = p.command("migrate").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let api = p.spawn("api", &[("LANDLORD_API_ADDR", "127.0.0.1:0")]);
        p.api = format!(
            "http://127.0.0.1:{}",
            p.bound(api, "LANDLORD_API_ADDR").await
        );
        p.wait_for("the API", Duration::from_secs(30), |p| async move {
            p.client
                .get(format!("{}/healthz", p.api))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        // add-a appends: clear first, or every test adds another copy of the record.
        p.dns("/clear-a", json!({"host": TARGET})).await;
        p.dns(
            "/add-a",
            json!({"host": TARGET, "addresses": ["127.0.0.1"]}),
        )
        .await;
        p
    }

    pub fn command(&self, role: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_landlord"));
        cmd.arg(role)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info,landlord_worker=debug")
            .env("DATABASE_URL", &self.db_url)
            .env("LANDLORD_MASTER_KEY", MASTER_KEY)
            .env("LANDLORD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("LANDLORD_CNAME_TARGET", TARGET)
            .env("LANDLORD_EDGE_IPS", "127.0.0.1")
            .env("LANDLORD_EXTRA_SUFFIXES", "test")
            .env("LANDLORD_DNS_SERVERS", &self.env.dns_server)
            .env("LANDLORD_ACME_DIRECTORY", &self.env.acme_directory)
            .env("LANDLORD_ACME_CA_ROOTS", &self.env.acme_roots)
            .env(
                "LANDLORD_HTTP_ADDR",
                format!("127.0.0.1:{}", self.env.http01_port),
            )
            .env("LANDLORD_WORKER_LEASE_SECONDS", "5")
            // Tests poll the API hard; the rate has API tests of its own.
            .env("LANDLORD_TENANT_API_RATE", "off");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Start a role as a child process; its log goes to target/e2e-logs/.
    pub fn spawn(&mut self, role: &str, env: &[(&str, &str)]) -> usize {
        let mut cmd = self.command(role);
        cmd.arg("--no-migrate");
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.spawn_command(role, cmd)
    }

    /// Start `cmd` (built from [`Platform::command`]) as process `role`, its log in
    /// target/e2e-logs/.
    pub fn spawn_command(&mut self, role: &str, mut cmd: Command) -> usize {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
        std::fs::create_dir_all(&dir).unwrap();
        let name = format!(
            "{}-{role}-{}",
            self.db_url.rsplit('/').next().unwrap(),
            self.procs.len()
        );
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        cmd.stdout(Stdio::null()).stderr(log);
        self.procs.push(Proc {
            child: cmd.spawn().unwrap(),
            name,
        });
        self.procs.len() - 1
    }

    /// The port process `i` bound for `setting` (it was given port 0).
    pub async fn bound(&self, i: usize, setting: &str) -> u16 {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log(i);
            if let Some(port) = bound_port(&log, setting) {
                return port;
            }
            assert!(
                Instant::now() < end,
                "{} never reported its {setting}:\n{log}",
                self.procs[i].name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What process `i` logged so far.
    pub fn log(&self, i: usize) -> String {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
        std::fs::read_to_string(dir.join(format!("{}.log", self.procs[i].name))).unwrap_or_default()
    }

    /// Freeze (`SIGSTOP`) or thaw (`SIGCONT`) process `i`, as a stalled VM or a long GC
    /// pause would.
    pub fn signal(&self, i: usize, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.procs[i].child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal}");
    }

    /// Start `landlord edge` with plain HTTP on Pebble's HTTP-01 port; returns its
    /// HTTPS port once both listeners answer.
    pub async fn spawn_edge(&mut self) -> u16 {
        let http = self.env.http01_port;
        self.spawn_edge_on(http).await
    }

    /// Another edge, with plain HTTP on a port of its own.
    pub async fn spawn_extra_edge(&mut self) -> u16 {
        self.spawn_edge_anywhere().await.1
    }

    /// An edge with plain HTTP on `http`; returns its HTTPS port once both answer.
    pub async fn spawn_edge_on(&mut self, http: u16) -> u16 {
        self.start_edge(&format!("127.0.0.1:{http}"), &[]).await.1
    }

    /// An edge on ports of its own; returns its plain-HTTP and HTTPS ports.
    pub async fn spawn_edge_anywhere(&mut self) -> (u16, u16) {
        self.start_edge("127.0.0.1:0", &[]).await
    }

    /// Start an edge with plain HTTP on `http_addr` (port 0: any) and HTTPS anywhere,
    /// `env` added; returns both ports once it answers.
    pub async fn start_edge(&mut self, http_addr: &str, env: &[(&str, &str)]) -> (u16, u16) {
        let mut all = vec![
            ("LANDLORD_HTTP_ADDR", http_addr),
            ("LANDLORD_HTTPS_ADDR", "127.0.0.1:0"),
        ];
        all.extend_from_slice(env);
        let i = self.spawn("edge", &all);
        let http = self.bound(i, "LANDLORD_HTTP_ADDR").await;
        let https = self.bound(i, "LANDLORD_HTTPS_ADDR").await;
        self.edge_answers(http, https).await;
        (http, https)
    }

    /// Wait until an edge's ports take connections and its plain-HTTP listener answers.
    pub async fn edge_answers(&self, http: u16, https: u16) {
        for port in [http, https] {
            self.wait_for("the edge", Duration::from_secs(30), |_| async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            })
            .await;
        }
        // The ports take connections as soon as they are bound; an answer means the edge
        // loaded its state and follows the change log.
        self.wait_for(
            "the edge to answer",
            Duration::from_secs(30),
            |p| async move {
                p.client
                    .get(format!("http://127.0.0.1:{http}/"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok()
            },
        )
        .await;
    }

    pub async fn put_file(&self, key: &str, path: &str, content_type: &str, body: &str) {
        let res = self
            .client
            .put(format!("{}/v1/files/{path}", self.api))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }

    /// An HTTPS client that trusts only this Pebble's root and sends `host` to `port`.
    pub fn https_client(&self, host: &str, port: u16) -> reqwest::Client {
        let root = std::fs::read(&self.env.pebble_root).unwrap();
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
            .resolve(host, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// A GET of `path` over HTTPS to `host` on `port`, on a new connection trusting this
    /// Pebble's root: status and body (`None`: the handshake or the request failed).
    pub async fn fetch(&self, host: &str, port: u16, path: &str) -> Option<(u16, String)> {
        let res = self
            .https_client(host, port)
            .get(format!("https://{host}:{port}{path}"))
            .send()
            .await
            .ok()?;
        Some((res.status().as_u16(), res.text().await.ok()?))
    }

    /// `DELETE /v1/domains/{id}` as `key`; asserts the 204.
    /// `host`'s page from the edge at `https`, trusting the local CA
    /// (`LANDLORD_ISSUER=local`); `None` when the handshake or request fails.
    pub fn local_ca_page(
        &self,
        host: String,
        https: u16,
    ) -> impl std::future::Future<Output = Option<String>> + use<> {
        self.local_ca_page_at(host, std::net::SocketAddr::from(([127, 0, 0, 1], https)))
    }

    /// [`Platform::local_ca_page`] from the edge at `addr`.
    pub fn local_ca_page_at(
        &self,
        host: String,
        addr: std::net::SocketAddr,
    ) -> impl std::future::Future<Output = Option<String>> + use<> {
        let pool = self.pool.clone();
        async move {
            let root: String = sqlx::query_scalar("SELECT cert_pem FROM local_ca")
                .fetch_one(&pool)
                .await
                .ok()?;
            let client = reqwest::Client::builder()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).ok()?)
                .resolve(&host, addr)
                .build()
                .ok()?;
            let res = client
                .get(format!("https://{host}:{}/", addr.port()))
                .send()
                .await
                .ok()?;
            res.text().await.ok()
        }
    }

    pub async fn delete_domain(&self, key: &str, id: &str) {
        let res = self
            .client
            .delete(format!("{}/v1/domains/{id}", self.api))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }

    /// The serial of the certificate a fresh TLS handshake for `host` is presented (the
    /// chain verified against this Pebble's root), as the API writes serials.
    pub async fn presented_serial(&self, host: &str, port: u16) -> String {
        let config = trusting(&std::fs::read(&self.env.pebble_root).unwrap());
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .expect("handshake");
        let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        cert.raw_serial_as_string()
    }

    pub async fn dns(&self, path: &str, body: Value) {
        let res = self
            .client
            .post(format!("{}{path}", self.env.challtestsrv))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "challtestsrv {path}: {}",
            res.status()
        );
    }

    /// Point the registered `host` at us with a CNAME to its own target (which resolves
    /// to the edge, as the operator's wildcard `*.TARGET` would), and make sure no AAAA
    /// shadows it. DNS only: the workers find it at their next check.
    pub async fn point(&self, host: &str) {
        let target = self.target_of(host).await;
        self.dns("/clear-a", json!({"host": target})).await;
        self.dns(
            "/add-a",
            json!({"host": target, "addresses": ["127.0.0.1"]}),
        )
        .await;
        self.dns("/clear-aaaa", json!({"host": host})).await;
        self.dns("/set-cname", json!({"host": host, "target": target}))
            .await;
    }

    /// The registered `host`'s own CNAME target.
    pub async fn target_of(&self, host: &str) -> String {
        let label: String =
            sqlx::query_scalar("SELECT target_label FROM domains WHERE hostname = $1")
                .bind(host)
                .fetch_one(&self.pool)
                .await
                .expect("the domain is registered");
        format!("{label}.{TARGET}")
    }

    /// Publish the registered `host`'s TXT ownership proof (for names pointed with A
    /// records) and have the workers check it now.
    pub async fn prove_ownership(&self, host: &str) {
        let token: String =
            sqlx::query_scalar("SELECT ownership_token FROM domains WHERE hostname = $1")
                .bind(host)
                .fetch_one(&self.pool)
                .await
                .expect("the domain is registered");
        self.dns(
            "/set-txt",
            json!({"host": format!("_landlord.{host}."), "value": token}),
        )
        .await;
        self.wake(host).await;
    }

    /// Make `host` due now and wake the workers.
    pub async fn wake(&self, host: &str) {
        sqlx::query(
            "WITH d AS (UPDATE domains SET next_attempt_at = now() WHERE hostname = $1 RETURNING id) \
             SELECT pg_notify('landlord_wake', id::text) FROM d",
        )
        .bind(host)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// Register `host` for `key`, point it at us and have the workers check it now (as
    /// a first visitor would); its id.
    pub async fn add_pointed_domain(&self, key: &str, host: &str) -> String {
        let id = self.add_domain(key, host).await;
        self.point(host).await;
        self.wake(host).await;
        id
    }

    pub async fn tenant(&self) -> String {
        let res = self
            .client
            .post(format!("{}/v1/tenants", self.api))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"name": "e2e"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.unwrap()["api_key"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn add_domain(&self, key: &str, hostname: &str) -> String {
        let res = self
            .client
            .post(format!("{}/v1/domains", self.api))
            .bearer_auth(key)
            .json(&json!({"hostname": hostname}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn domain(&self, key: &str, id: &str) -> Value {
        self.client
            .get(format!("{}/v1/domains/{id}", self.api))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn events(&self, key: &str, id: &str) -> Vec<String> {
        let v: Value = self
            .client
            .get(format!("{}/v1/domains/{id}/events", self.api))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn check_now(&self, key: &str, id: &str) {
        let res = self
            .client
            .post(format!("{}/v1/domains/{id}/check", self.api))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }

    /// Wait until the domain satisfies `pred`, returning it; fails with the domain and
    /// its timeline after `deadline`.
    pub async fn wait_domain(
        &self,
        key: &str,
        id: &str,
        deadline: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = Instant::now() + deadline;
        loop {
            let d = self.domain(key, id).await;
            if pred(&d) {
                return d;
            }
            if Instant::now() > end {
                let events = self.events(key, id).await;
                panic!("domain never reached the expected state: {d:#}\nevents: {events:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_for<'a, F, Fut>(&'a self, what: &str, deadline: Duration, cond: F)
    where
        F: Fn(&'a Platform) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let end = Instant::now() + deadline;
        while !cond(self).await {
            assert!(Instant::now() < end, "{what} did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Sum of a metric's samples whose labels contain every `labels` pair.
pub async fn metric(addr: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A tar of `files` (path, body).
pub fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, body.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// A hostname no other test uses (challtestsrv and Pebble are shared).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}.customer.test", &uuid_like()[..10])
}

fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("{:016x}", h.finish())
}

/// A TCP relay from `127.0.0.1:listen` to `127.0.0.1:target` that holds every new
/// connection for `hold` before relaying: put in front of an edge's HTTP port, it holds
/// up the CA's HTTP-01 validation (and with it the ACME exchange) for as long as a test
/// needs. `connections` counts what arrived.
pub struct HeldRelay {
    pub hold: std::sync::Arc<std::sync::Mutex<Duration>>,
    pub connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HeldRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn held_relay(listen: u16, target: u16, hold: Duration) -> HeldRelay {
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", listen))
        .await
        .unwrap();
    let hold = std::sync::Arc::new(std::sync::Mutex::new(hold));
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (h, n) = (hold.clone(), connections.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            n.fetch_add(1, Ordering::SeqCst);
            let wait = *h.lock().unwrap();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                if let Ok(mut outbound) =
                    tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    HeldRelay {
        hold,
        connections,
        task,
    }
}

/// A DNS resolver address that relays to `upstream` but drops (never answers) the
/// queries `drop` picks, over UDP and TCP alike: a nameserver that loses some packets.
/// Returns its address; it runs until the test ends.
pub async fn dropping_resolver(
    upstream: std::net::SocketAddr,
    drop: fn(qname: &str, qtype: u16) -> bool,
) -> std::net::SocketAddr {
    // UDP and TCP on one port number.
    let (udp, tcp) = loop {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    let udp = std::sync::Arc::new(udp);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = tcp.accept().await {
            held.push(conn); // accepted, never answered
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                continue;
            };
            let packet = buf[..n].to_vec();
            if let Some((qname, qtype)) = question(&packet)
                && drop(&qname, qtype)
            {
                continue;
            }
            let udp = udp.clone();
            tokio::spawn(async move {
                let relay = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                if relay.send_to(&packet, upstream).await.is_err() {
                    return;
                }
                let mut answer = vec![0u8; 4096];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(5), relay.recv(&mut answer)).await
                {
                    let _ = udp.send_to(&answer[..n], from).await;
                }
            });
        }
    });
    addr
}

/// The first question of a DNS message: (name, type).
fn question(packet: &[u8]) -> Option<(String, u16)> {
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *packet.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(packet.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*packet.get(i)?, *packet.get(i + 1)?]);
    Some((labels.join("."), qtype))
}
