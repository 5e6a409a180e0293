//! `landlord-api`: the REST API and the tenant dashboard.
//!
//! Handlers are small: they parse (hostnames, paths, ids) into store types, call one
//! [`Store`] function scoped by the caller's tenant, and shape JSON. Every failure is a
//! [`problem::Problem`].

mod admin;
pub mod archive;
mod claims;
mod dashboard;
pub mod delivery;
mod domains;
mod extract;
mod files;
mod keys;
mod limits;
mod live;
mod metrics;
mod openapi;
mod problem;
mod sites;
mod ssrf;
mod tenants;
mod views;
mod webhooks;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{delete, get, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use landlord_store::{Budget, Hostname, HostnamePolicy, Store, TenantLimits};

pub use metrics::render_metrics;
pub use problem::Problem;

/// What the API needs to know beyond the database.
#[derive(Clone)]
pub struct ApiConfig {
    /// The hostname tenants point their CNAME at.
    pub cname_target: Hostname,
    /// Which hostnames tenants may register (suffixes, reserved names, the platform's own).
    pub hostnames: HostnamePolicy,
    /// Addresses an A/AAAA record may point at instead of the CNAME.
    pub edge_ips: Vec<IpAddr>,
    /// The resolver for claim lookups (the binary gives the worker's, asking
    /// `LANDLORD_DNS_SERVERS`); `None`: the system's, built on the first claim.
    pub resolver: Option<hickory_resolver::TokioResolver>,
    /// SHA-256 of `LANDLORD_ADMIN_TOKEN`; `None` disables the admin endpoints.
    pub admin_token_hash: Option<Vec<u8>>,
    /// What one tenant may hold (files, bytes, domains).
    pub limits: TenantLimits,
    /// API requests per tenant (every request its key authorizes); `None`: unlimited.
    pub api_rate: Option<Budget>,
    /// "Check now" is accepted at most once per this per domain.
    pub check_interval: Duration,
    /// Open `GET /v1/events` streams per tenant on this API process.
    pub max_event_streams: usize,
    /// This process's metrics recorder, rendered under the fleet gauges at `/metrics`.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Whether the API's own address serves `/metrics` (not when `LANDLORD_METRICS_ADDR`
    /// gives it an address of its own).
    pub serve_metrics: bool,
    /// What one deploy's archive may be.
    pub deploys: DeployLimits,
    /// `LANDLORD_ACME_DNS_ZONE` when DNS-01 is configured: domains then show the
    /// `_acme-challenge` CNAME that delegates their validation into it.
    pub acme_dns_zone: Option<Hostname>,
    /// `LANDLORD_PLATFORM_DOMAIN`: sites show `platform_hostname` `<slug>.<it>`.
    pub platform_domain: Option<Hostname>,
    /// Seals webhook secrets; `None`: webhooks answer 503 and are not delivered.
    pub master_key: Option<landlord_store::MasterKey>,
    /// How webhooks are delivered.
    pub webhooks: delivery::WebhookSettings,
}

/// Bounds on one deploy's archive (the per-file size and the file count are the tenant
/// limits').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployLimits {
    /// The uploaded archive, as sent.
    pub max_upload_bytes: u64,
    /// What it may expand to.
    pub max_expanded_bytes: u64,
    /// Expanded bytes per uploaded byte (beyond the first MiB).
    pub max_ratio: u64,
    /// Time to read and check it.
    pub timeout: Duration,
    /// Archives read at once per API process (each takes a core while it is read).
    pub concurrency: usize,
}

impl Default for DeployLimits {
    /// 100 MiB uploaded, 256 MiB expanded, 100× at most, 60 s, two at a time.
    fn default() -> Self {
        Self {
            max_upload_bytes: 100 * 1024 * 1024,
            max_expanded_bytes: 256 * 1024 * 1024,
            max_ratio: 100,
            timeout: Duration::from_secs(60),
            concurrency: 2,
        }
    }
}

/// 1 200 requests per minute per tenant (20 per second on average, and bursts of up to
/// the whole minute's allowance): far above what a dashboard or an integration needs.
pub const DEFAULT_API_RATE: Budget = Budget {
    limit: 1200,
    window: Duration::from_secs(60),
};
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_EVENT_STREAMS: usize = 10;

impl ApiConfig {
    pub fn new(cname_target: Hostname, edge_ips: Vec<IpAddr>, admin_token: Option<&str>) -> Self {
        let hostnames = HostnamePolicy {
            platform_domain: cname_target.registrable_domain().to_owned(),
            ..HostnamePolicy::default()
        };
        Self {
            hostnames,
            resolver: None,
            cname_target,
            edge_ips,
            admin_token_hash: admin_token.map(extract::hash_admin_token),
            limits: TenantLimits::default(),
            api_rate: Some(DEFAULT_API_RATE),
            check_interval: DEFAULT_CHECK_INTERVAL,
            max_event_streams: DEFAULT_MAX_EVENT_STREAMS,
            metrics: None,
            serve_metrics: true,
            deploys: DeployLimits::default(),
            acme_dns_zone: None,
            platform_domain: None,
            master_key: None,
            webhooks: delivery::WebhookSettings::default(),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<ApiConfig>,
    hub: Arc<live::Hub>,
    /// Built on the first claim lookup.
    resolver: Arc<tokio::sync::OnceCell<hickory_resolver::TokioResolver>>,
    /// Turns for reading deploy archives.
    deploy_turns: Arc<tokio::sync::Semaphore>,
}

/// The whole HTTP surface of `landlord api`.
pub fn router(store: Store, config: ApiConfig) -> Router {
    let max_file = usize::try_from(config.limits.max_file_bytes).unwrap_or(usize::MAX);
    let max_upload = usize::try_from(config.deploys.max_upload_bytes).unwrap_or(usize::MAX);
    let deploy_turns = config.deploys.concurrency.max(1);
    let serve_metrics = config.serve_metrics;
    let state = AppState {
        store,
        config: Arc::new(config),
        hub: Arc::default(),
        resolver: Arc::default(),
        deploy_turns: Arc::new(tokio::sync::Semaphore::new(deploy_turns)),
    };
    let files = Router::new()
        .route("/v1/files", get(files::list))
        .route("/v1/files/{*path}", put(files::put).delete(files::delete))
        .layer(DefaultBodyLimit::max(max_file));
    let deploys = Router::new()
        .route(
            "/v1/sites/{id}/deployments",
            get(sites::deployments).post(sites::deploy),
        )
        .layer(DefaultBodyLimit::max(max_upload));
    let metrics = match serve_metrics {
        true => Router::new().route("/metrics", get(metrics::render)),
        false => Router::new(),
    };
    Router::new()
        .route("/", get(dashboard::index))
        .route("/app.js", get(dashboard::app_js))
        .route("/js/{file}", get(dashboard::module_js))
        .route("/style.css", get(dashboard::style_css))
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/tenants", post(tenants::create))
        .route("/v1/domains", post(domains::create).get(domains::list))
        .route(
            "/v1/domains/{id}",
            get(domains::get)
                .delete(domains::delete)
                .patch(domains::update),
        )
        .route("/v1/domains/{id}/check", post(domains::check))
        .route("/v1/domains/{id}/events", get(domains::events))
        .route("/v1/sites", post(sites::create).get(sites::list))
        .route(
            "/v1/sites/{id}",
            get(sites::get).patch(sites::update).delete(sites::delete),
        )
        .route(
            "/v1/sites/{id}/deployments/{deployment_id}/activate",
            post(sites::activate),
        )
        .route("/v1/events", get(live::stream))
        .route("/v1/limits", get(limits::show))
        .route("/v1/keys", post(keys::create).get(keys::list))
        .route("/v1/keys/{id}", delete(keys::revoke))
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/v1/webhooks/{id}/secret", post(webhooks::rotate_secret))
        .route("/v1/webhooks/{id}/ping", post(webhooks::ping))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/v1/tenant/events", get(tenants::events))
        .route("/v1/admin/tenants", get(admin::tenants))
        .route("/v1/admin/tenants/{id}/suspend", post(admin::suspend))
        .route("/v1/admin/tenants/{id}/unsuspend", post(admin::unsuspend))
        .route(
            "/v1/admin/blocked-hostnames",
            get(admin::blocked).post(admin::block),
        )
        .route(
            "/v1/admin/blocked-hostnames/{hostname}/unblock",
            post(admin::unblock),
        )
        .route("/v1/admin/audit", get(admin::audit))
        .route("/v1/admin/edges", get(admin::edges))
        .merge(files)
        .merge(deploys)
        .merge(metrics)
        .fallback(problem::not_found_fallback)
        .method_not_allowed_fallback(problem::method_not_allowed_fallback)
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(Problem::internal(&"handler panicked"))
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Serve `router` on `listener` until `shutdown` resolves, then finish in-flight requests.
/// For this crate's tests: `landlord api` serves the router through the edge crate's
/// hardened listener (`landlord_edge::listen::serve`), which this crate cannot depend on.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// 200 when the process and its database connection are up.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses(
        (status = 200, body = views::Health),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
async fn healthz(State(state): State<AppState>) -> Result<axum::Json<views::Health>, Problem> {
    state.store.ping().await?;
    Ok(axum::Json(views::Health {
        status: "ok".into(),
    }))
}

pub use openapi::ApiDoc;
