//! The production commands: migrate, tenant create, api.

use anyhow::Context;

use std::future::Future;

use crate::Fatal;
use crate::config::{Config, Database, Settings};

/// The database settings alone, checked (commands that need nothing else).
fn database(settings: &Settings) -> Result<Database, Fatal> {
    settings.database().map_err(Fatal::Config)
}

pub async fn migrate(settings: &Settings) -> Result<(), Fatal> {
    database(settings)?.connect(true).await?;
    tracing::info!("migrations applied");
    Ok(())
}

pub async fn create_tenant(settings: &Settings, migrate: bool, name: &str) -> Result<(), Fatal> {
    let name = landlord_store::TenantName::parse(name).map_err(Fatal::Config)?;
    let store = database(settings)?.connect(migrate).await?;
    let (tenant, key) = store
        .create_tenant(&name)
        .await
        .context("creating the tenant")?;
    println!(
        "{}",
        serde_json::json!({ "id": tenant.id, "name": tenant.name, "api_key": key.secret })
    );
    Ok(())
}

/// `landlord tenant list`: one JSON object per tenant and line.
pub async fn list_tenants(settings: &Settings, migrate: bool) -> Result<(), Fatal> {
    let store = database(settings)?.connect(migrate).await?;
    for tenant in store.list_tenants().await.context("listing tenants")? {
        println!("{}", serde_json::to_string(&tenant).context("encoding")?);
    }
    Ok(())
}

/// `landlord tenant suspend|unsuspend ID`: prints the tenant as JSON; exit 2 for an
/// unknown id.
pub async fn suspend_tenant(
    settings: &Settings,
    migrate: bool,
    id: uuid::Uuid,
    suspend: bool,
    reason: &str,
    operator: Option<String>,
) -> Result<(), Fatal> {
    let store = database(settings)?.connect(migrate).await?;
    let why = landlord_store::Because {
        reason,
        operator: operator.as_deref(),
    };
    let tenant = store
        .set_tenant_suspended(id, suspend, why)
        .await
        .context("updating the tenant")?
        .ok_or_else(|| Fatal::Config(format!("there is no tenant with id {id}")))?;
    println!("{}", serde_json::to_string(&tenant).context("encoding")?);
    Ok(())
}

/// `landlord keys rotate`: seal every sealed value again under LANDLORD_MASTER_KEY, opening
/// it under the key that sealed it (LANDLORD_MASTER_KEY_PREVIOUS, during a rotation).
/// Batches commit one by one, so an interrupted run is resumed by running it again.
/// Progress goes to stderr, one line per batch and kind; exit 1 when a value stays under
/// another key.
pub async fn rotate_keys(settings: &Settings, migrate: bool, batch: i64) -> Result<(), Fatal> {
    use landlord_store::rotation::SEALED_KINDS;
    let key = settings.master_key().map_err(Fatal::Config)?;
    let store = database(settings)?.connect(migrate).await?;
    match key.previous_id() {
        Some(previous) => eprintln!(
            "sealing everything under master key {} (reading key {previous} too)",
            key.id()
        ),
        None => eprintln!(
            "sealing everything under master key {} (no LANDLORD_MASTER_KEY_PREVIOUS: only values already under it can be read)",
            key.id()
        ),
    }
    let mut left = Vec::new();
    for kind in SEALED_KINDS {
        let (all, stale) = store.sealed_count(kind, &key).await?;
        let mut skip: Vec<String> = Vec::new();
        let mut done = all - stale;
        eprintln!("{}: {done} of {all} under the current key", kind.name);
        // Rows other transactions hold are skipped by a batch: look again a few times.
        for round in 0..5 {
            loop {
                let step = store.reseal_batch(kind, &key, &skip, batch).await?;
                done += step.resealed as i64;
                for (row, why) in &step.unreadable {
                    eprintln!("{}: {row}: cannot be opened: {why}", kind.name);
                }
                let unreadable = step.unreadable.len();
                skip.extend(step.unreadable.into_iter().map(|(row, _)| row));
                if step.resealed == 0 && unreadable == 0 {
                    break;
                }
                eprintln!("{}: {done} of {all} resealed", kind.name);
            }
            let (_, stale) = store.sealed_count(kind, &key).await?;
            if stale <= skip.len() as i64 || round == 4 {
                break;
            }
            eprintln!(
                "{}: {} rows busy elsewhere; trying again",
                kind.name,
                stale - skip.len() as i64
            );
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let (all, stale) = store.sealed_count(kind, &key).await?;
        if stale > 0 {
            left.push(format!("{stale} of {all} {}", kind.name));
        }
    }
    if !left.is_empty() {
        return Err(Fatal::Runtime(anyhow::anyhow!(
            "still sealed under another key: {}. Set the key they were sealed with as LANDLORD_MASTER_KEY_PREVIOUS (or, for values written meanwhile, make sure every process runs with the new LANDLORD_MASTER_KEY) and run `landlord keys rotate` again",
            left.join(", ")
        )));
    }
    println!(
        "{}",
        serde_json::json!({"master_key_id": key.id(), "resealed": "all"})
    );
    eprintln!(
        "done: every sealed value is under master key {}; LANDLORD_MASTER_KEY_PREVIOUS can be removed",
        key.id()
    );
    Ok(())
}

pub async fn export_ca(settings: &Settings, migrate: bool) -> Result<(), Fatal> {
    let key = settings.master_key().map_err(Fatal::Config)?;
    let database = database(settings)?;
    let store = database.connect(migrate).await?;
    let pem = landlord_worker::local_ca_pem(&store, &key)
        .await
        .context("loading the local CA")?;
    print!("{pem}");
    Ok(())
}

/// Which roles one process runs.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub api: bool,
    pub worker: bool,
    pub edge: bool,
}

/// Connect, bind (then tell `ready` the bound addresses), and run the roles `config` was
/// built for until SIGTERM/SIGINT. Any role ending stops the others; a failure is the
/// process's exit status.
pub async fn roles(
    config: Config,
    migrate: bool,
    roles: Roles,
    ready: impl FnOnce(Bound),
) -> Result<(), Fatal> {
    let metrics = install_metrics();
    raise_file_limit(&config.limits, roles);
    let pools = Pools::connect(&config.database, migrate, roles).await?;
    let mut config = config;
    if let Some(edge) = config.edge.as_mut() {
        prepare_edge(&config.database, &pools.edge, edge).await?;
    }
    let listeners = Listeners::bind(&config, roles).await?;
    ready(listeners.bound());
    let Config {
        limits,
        mut api,
        worker,
        edge,
        metrics_addr,
        ..
    } = config;
    let limits = std::sync::Arc::new(limits);
    if let Some(api) = api.as_mut() {
        api.metrics = metrics.clone();
        api.serve_metrics = metrics_addr.is_none();
    }

    let shutdown = Shutdown::on_signal();
    let mut tasks = tokio::task::JoinSet::new();
    if let (Some(listener), Some(handle)) = (listeners.metrics, metrics) {
        let stop = shutdown.wait();
        // With the API in this process, the fleet gauges too (as its /metrics would).
        let router = metrics_router(handle, roles.api.then(|| pools.api.clone()));
        let limits = limits.clone();
        tasks.spawn(async move {
            landlord_edge::listen::serve(listener, "metrics", limits, router, stop)
                .await
                .context("serving metrics")
        });
    }
    if let (Some(config), Some(listener)) = (api, listeners.api) {
        let (store, stop, limits) = (pools.api.clone(), shutdown.wait(), limits.clone());
        // Webhook deliveries: a task of the API's own, ended with it.
        let deliveries = landlord_api::delivery::run(
            store.clone(),
            std::sync::Arc::new(config.clone()),
            shutdown.wait(),
        );
        tokio::spawn(deliveries);
        tasks.spawn(async move {
            let router = landlord_api::router(store, config);
            landlord_edge::listen::serve(listener, "api", limits, router, stop)
                .await
                .context("serving the API")
        });
    }
    if let Some(config) = worker {
        let (store, stop) = (pools.worker, shutdown.wait());
        tasks.spawn(async move {
            landlord_worker::run(store, config, stop)
                .await
                .context("running the worker")
        });
    }
    if let (Some((http, https)), Some(mut config)) = (listeners.edge, edge) {
        // Redirects name the port HTTPS listens on (the kernel's choice for port 0).
        if let Ok(bound) = https.local_addr() {
            config.https_port = bound.port();
        }
        let (store, stop) = (pools.edge, shutdown.clone());
        tasks.spawn(async move {
            landlord_edge::run(store, config, http, https, move || stop.wait())
                .await
                .context("running the edge")
        });
    }
    until_all_stop(tasks, shutdown).await
}

/// An edge reads what its database has: a hot standby is fine (no LISTEN, polling, its
/// few writes through `LANDLORD_PRIMARY_DATABASE_URL`), a schema it cannot read is not
/// (a clear refusal instead of failing queries later).
async fn prepare_edge(
    database: &Database,
    store: &landlord_store::Store,
    config: &mut landlord_edge::EdgeConfig,
) -> Result<(), Fatal> {
    config.read_only = database.is_read_only(store).await?;
    config.primary = database.primary()?;
    let known = landlord_store::latest_migration();
    match store
        .schema_state()
        .await
        .context("reading the database's schema version")?
    {
        None => {
            return Err(Fatal::Config(
                "the database has no Landlord schema: run `landlord migrate` against the primary first".into(),
            ));
        }
        Some(state) => {
            if let Some(why) = state.edge_refusal(known) {
                return Err(Fatal::Config(format!("this edge cannot serve: {why}")));
            }
            if state.applied > known {
                tracing::info!(
                    applied = state.applied,
                    known,
                    "the database is migrated past what this edge knows; its schema says edges from migration {} on can read it",
                    state.edge_compatible_from
                );
            }
        }
    }
    if config.read_only {
        tracing::info!(
            primary = config.primary.is_some(),
            poll = ?config.poll_interval,
            "read-only database: following the change log by polling; heartbeats and nudges go to the primary when LANDLORD_PRIMARY_DATABASE_URL is set"
        );
    }
    Ok(())
}

/// One pool per role, so a flood of edge misses cannot take the worker's or the API's
/// connections; the first one applies the migrations. A role not run here shares it.
struct Pools {
    api: landlord_store::Store,
    worker: landlord_store::Store,
    edge: landlord_store::Store,
}

impl Pools {
    async fn connect(database: &Database, migrate: bool, roles: Roles) -> Result<Self, Fatal> {
        let first = database.connect(migrate).await?;
        let own = |needed: bool| {
            let first = first.clone();
            async move {
                match needed {
                    true => database.connect(false).await,
                    false => Ok(first),
                }
            }
        };
        Ok(Self {
            worker: own(roles.worker && roles.api).await?,
            edge: own(roles.edge && (roles.api || roles.worker)).await?,
            api: first,
        })
    }
}

/// The process's sockets, bound before any role starts (a taken port is a configuration
/// error, exit 2).
struct Listeners {
    api: Option<tokio::net::TcpListener>,
    /// HTTP and HTTPS.
    edge: Option<(tokio::net::TcpListener, tokio::net::TcpListener)>,
    metrics: Option<tokio::net::TcpListener>,
}

/// The addresses the process listens on (with port 0, the kernel's choice).
pub struct Bound {
    pub api: Option<std::net::SocketAddr>,
    pub http: Option<std::net::SocketAddr>,
    pub https: Option<std::net::SocketAddr>,
}

impl Listeners {
    fn bound(&self) -> Bound {
        let addr = |l: &tokio::net::TcpListener| l.local_addr().ok();
        Bound {
            api: self.api.as_ref().and_then(addr),
            http: self.edge.as_ref().and_then(|(http, _)| addr(http)),
            https: self.edge.as_ref().and_then(|(_, https)| addr(https)),
        }
    }

    async fn bind(config: &Config, roles: Roles) -> Result<Self, Fatal> {
        Ok(Self {
            api: match config.api.is_some() {
                true => Some(bind(config.api_addr, "LANDLORD_API_ADDR").await?),
                false => None,
            },
            edge: match roles.edge {
                true => Some((
                    bind(config.http_addr, "LANDLORD_HTTP_ADDR").await?,
                    bind(config.https_addr, "LANDLORD_HTTPS_ADDR").await?,
                )),
                false => None,
            },
            metrics: match config.metrics_addr {
                Some(addr) => Some(bind(addr, "LANDLORD_METRICS_ADDR").await?),
                None => None,
            },
        })
    }
}

async fn until_all_stop(
    mut tasks: tokio::task::JoinSet<anyhow::Result<()>>,
    shutdown: Shutdown,
) -> Result<(), Fatal> {
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done.map_err(anyhow::Error::from).and_then(|r| r) {
            result = Err(Fatal::Runtime(e));
        }
        shutdown.trigger();
    }
    tracing::info!("stopped");
    result
}

/// `/metrics` on its own address: this process's metrics, and the fleet's gauges when
/// `fleet` (the API's store) is given.
fn metrics_router(
    handle: metrics_exporter_prometheus::PrometheusHandle,
    fleet: Option<landlord_store::Store>,
) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (handle, fleet) = (handle.clone(), fleet.clone());
            async move { landlord_api::render_metrics(fleet.as_ref(), Some(&handle)).await }
        }),
    )
}

/// Every connection is a file descriptor: raise the soft limit to the hard one (as
/// nginx's `worker_rlimit_nofile` does), and say so when even that cannot hold what the
/// connection caps allow.
fn raise_file_limit(limits: &landlord_edge::listen::Limits, roles: Roles) {
    let listeners = [roles.api, roles.edge, roles.edge]
        .iter()
        .filter(|on| **on)
        .count() as u64;
    let wanted = listeners * limits.max_connections as u64 + 1024;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => tracing::warn!(
            file_descriptors = got,
            wanted,
            "the open-file limit is below what LANDLORD_MAX_CONNECTIONS allows; \
             at the limit, listeners back off instead of accepting"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
}

/// The process-wide Prometheus recorder (once per process).
fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .ok()?
                .install_recorder()
                .ok()?;
            // Histograms keep raw samples until upkeep folds them into buckets; without
            // this an edge that is never scraped grows by a sample per handshake.
            let upkeep = handle.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    upkeep.run_upkeep();
                }
            });
            Some(handle)
        })
        .clone()
}

async fn bind(addr: std::net::SocketAddr, name: &str) -> Result<tokio::net::TcpListener, Fatal> {
    let refused = |addr, e| Fatal::Config(format!("cannot listen on {addr} ({name}): {e}"));
    let listener = match listen_on(addr) {
        Ok(listener) => listener,
        // `[::]` (the edge's default) where IPv6 is off: IPv4 alone.
        Err(e) if addr.ip() == std::net::Ipv6Addr::UNSPECIFIED && ipv6_unavailable(&e) => {
            let v4 = std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, addr.port()));
            tracing::warn!(%addr, error = %e, "IPv6 is unavailable: {name} listens on IPv4 only");
            listen_on(v4).map_err(|e| refused(v4, e))?
        }
        Err(e) => return Err(refused(addr, e)),
    };
    // The bound address: with port 0 the kernel's choice, which is how tests (and
    // operators who let the system pick) learn it.
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %bound, "{name} listening");
    Ok(listener)
}

/// A listening socket as tokio's `bind` makes one (SO_REUSEADDR, backlog 1024), except that
/// `[::]` accepts IPv4 too (IPV6_V6ONLY off, whatever the system's default).
fn listen_on(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.ip() == std::net::Ipv6Addr::UNSPECIFIED {
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// EAFNOSUPPORT, EADDRNOTAVAIL, EPROTONOSUPPORT: no IPv6 on this host.
fn ipv6_unavailable(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(97 | 99 | 93))
}

/// One shutdown for every role of the process: SIGTERM/SIGINT, or a role ending.
#[derive(Clone)]
pub struct Shutdown(tokio::sync::watch::Sender<bool>);

impl Shutdown {
    pub fn on_signal() -> Self {
        let (tx, _) = tokio::sync::watch::channel(false);
        let this = Shutdown(tx);
        let trigger = this.clone();
        tokio::spawn(async move {
            crate::config::shutdown_signal().await;
            trigger.trigger();
        });
        this
    }

    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}
