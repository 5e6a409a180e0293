//! Configuration: the settings as given (flags, the environment with the contract's
//! variable names, an optional TOML file with the same keys), and [`Config`], what each
//! role needs, built and validated from them before anything connects or binds.
//!
//! Precedence: a flag, then its variable, then the file, then the default shown in
//! `--help`. Secrets are [`SecretString`]s: `Debug` and logs never show them.

mod build;
mod file;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;
use tracing_subscriber::EnvFilter;

use landlord_edge::EdgeConfig;
use landlord_edge::listen::Limits;
use landlord_store::TenantLimits;

#[cfg(test)]
use build::parse_duration;
pub use build::{Config, Database};
pub use file::apply_file;

pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_HTTP_ADDR: &str = "[::]:80";
pub const DEFAULT_HTTPS_ADDR: &str = "[::]:443";
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Every setting, as given. Options are settings whose absence means something (or whose
/// default `landlord dev` changes); everything else carries its default.
#[derive(Args, Clone, Debug)]
pub struct Settings {
    /// PostgreSQL connection string [required, except for `dev`].
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<SecretString>,
    /// REST API and dashboard listen address [default: 127.0.0.1:8080; dev: 127.0.0.1:3000].
    #[arg(long, env = "LANDLORD_API_ADDR", global = true)]
    pub api_addr: Option<SocketAddr>,
    /// Bearer token for the admin endpoints; unset disables them.
    #[arg(
        long,
        env = "LANDLORD_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub admin_token: Option<SecretString>,
    /// The hostname tenants point their CNAME at [required for api and worker; dev:
    /// edge.landlord.localhost].
    #[arg(long, env = "LANDLORD_CNAME_TARGET", global = true)]
    pub cname_target: Option<String>,
    /// Comma-separated IPs an A/AAAA record may point at instead.
    #[arg(long, env = "LANDLORD_EDGE_IPS", global = true, value_delimiter = ',')]
    pub edge_ips: Vec<String>,
    /// Base64 of 32 random bytes; encrypts private keys at rest [required, except for
    /// `dev`].
    #[arg(
        long,
        env = "LANDLORD_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    pub master_key: Option<SecretString>,
    /// During a master key rotation: the key being replaced, still accepted for reading
    /// (values are sealed under LANDLORD_MASTER_KEY); see `landlord keys rotate`.
    #[arg(
        long,
        env = "LANDLORD_MASTER_KEY_PREVIOUS",
        global = true,
        hide_env_values = true
    )]
    pub master_key_previous: Option<SecretString>,
    /// Edge plain-HTTP listener (ACME HTTP-01, redirects to HTTPS) [default: [::]:80, IPv4
    /// too (IPv4 alone where IPv6 is off);
    /// dev: 127.0.0.1:8080].
    #[arg(long, env = "LANDLORD_HTTP_ADDR", global = true)]
    pub http_addr: Option<SocketAddr>,
    /// Edge HTTPS listener [default: [::]:443, IPv4 too; dev: 127.0.0.1:8443].
    #[arg(long, env = "LANDLORD_HTTPS_ADDR", global = true)]
    pub https_addr: Option<SocketAddr>,
    /// Comma-separated ip:port resolvers for DNS verification [default: the system's].
    #[arg(
        long,
        env = "LANDLORD_DNS_SERVERS",
        global = true,
        value_delimiter = ','
    )]
    pub dns_servers: Vec<String>,
    /// DNS-01: the authoritative server that takes RFC 2136 updates (`ip:port`).
    #[arg(long, env = "LANDLORD_DNS_UPDATE_SERVER", global = true)]
    pub dns_update_server: Option<String>,
    /// DNS-01: the TSIG key the updates are signed with, `name:algorithm:base64-secret`
    /// (hmac-sha256, hmac-sha384 or hmac-sha512).
    #[arg(
        long,
        env = "LANDLORD_DNS_UPDATE_TSIG",
        global = true,
        hide_env_values = true
    )]
    pub dns_update_tsig: Option<SecretString>,
    /// DNS-01: the zone delegated challenge records are written in (tenants point
    /// `_acme-challenge.<their name>` at a label in it).
    #[arg(long, env = "LANDLORD_ACME_DNS_ZONE", global = true)]
    pub acme_dns_zone: Option<String>,
    /// DNS-01: the servers a written record is looked for on before the CA is told
    /// (`ip:port`, comma-separated; default the update server).
    #[arg(
        long,
        env = "LANDLORD_DNS_UPDATE_CHECK_SERVERS",
        global = true,
        value_delimiter = ','
    )]
    pub dns_update_check_servers: Vec<String>,
    /// DNS-01: how long a written record may take to show on the check servers before
    /// the attempt is given up (and retried later).
    #[arg(
        long,
        env = "LANDLORD_DNS_PROPAGATION_TIMEOUT",
        global = true,
        default_value = "60s"
    )]
    pub dns_propagation_timeout: String,
    /// For edges reading a hot standby: the primary, for their few small writes
    /// (heartbeats, first-visitor nudges).
    #[arg(
        long,
        env = "LANDLORD_PRIMARY_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub primary_database_url: Option<SecretString>,
    /// When DATABASE_URL is a transaction-mode pooler (PgBouncer): the server itself, for
    /// LISTEN, session-level advisory locks and migrations (no prepared statements are
    /// kept on the pooled connections).
    #[arg(
        long,
        env = "LANDLORD_DIRECT_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub direct_database_url: Option<SecretString>,
    /// `true` treats DATABASE_URL as read-only (no migrations, no LISTEN), `false` never;
    /// default `auto`: a hot standby is detected with pg_is_in_recovery().
    #[arg(long, env = "LANDLORD_READ_ONLY", global = true)]
    pub read_only: Option<String>,
    /// Edges: how often the change log is read when no notification arrives (on a
    /// standby, always).
    #[arg(
        long,
        env = "LANDLORD_EDGE_POLL_INTERVAL",
        global = true,
        default_value = "1s"
    )]
    pub edge_poll_interval: String,
    /// Workers: the longest wait, after publishing an HTTP-01 challenge, for every live edge
    /// to have loaded it before the CA is told (edges on replicas replay behind).
    #[arg(
        long,
        env = "LANDLORD_EDGE_SYNC_TIMEOUT",
        global = true,
        default_value = "30s"
    )]
    pub edge_sync_timeout: String,
    /// Edges: the name in heartbeats and `/v1/admin/edges` [default: <host>-<pid>].
    #[arg(long, env = "LANDLORD_EDGE_NAME", global = true)]
    pub edge_name: Option<String>,
    /// Edges: the region label in heartbeats and `/v1/admin/edges`.
    #[arg(long, env = "LANDLORD_EDGE_REGION", global = true, default_value = "")]
    pub edge_region: String,
    /// Platform subdomains: every site is served at `<slug>.<this domain>` under one
    /// wildcard certificate obtained through DNS-01 (needs the DNS-01 settings).
    #[arg(long, env = "LANDLORD_PLATFORM_DOMAIN", global = true)]
    pub platform_domain: Option<String>,
    /// The zone the platform domain's `_acme-challenge` TXT record is written in
    /// [default: the platform domain itself].
    #[arg(long, env = "LANDLORD_PLATFORM_DNS_ZONE", global = true)]
    pub platform_dns_zone: Option<String>,
    /// `acme` or `local` [default: acme; dev: local].
    #[arg(long, env = "LANDLORD_ISSUER", global = true)]
    pub issuer: Option<String>,
    /// ACME directory URL.
    #[arg(long, env = "LANDLORD_ACME_DIRECTORY", global = true, default_value = LETS_ENCRYPT)]
    pub acme_directory: String,
    /// PEM file of extra roots to trust when talking to the ACME server.
    #[arg(long, env = "LANDLORD_ACME_CA_ROOTS", global = true)]
    pub acme_ca_roots: Option<PathBuf>,
    /// `mailto:` contact for the ACME account.
    #[arg(long, env = "LANDLORD_ACME_CONTACT", global = true)]
    pub acme_contact: Option<String>,
    /// CAA issuer domain names that identify our CA.
    #[arg(
        long,
        env = "LANDLORD_ACME_CAA_IDENTITIES",
        global = true,
        value_delimiter = ',',
        default_value = "letsencrypt.org"
    )]
    pub acme_caa_identities: Vec<String>,
    /// Domains a worker processes at once.
    #[arg(
        long,
        env = "LANDLORD_WORKER_CONCURRENCY",
        global = true,
        default_value_t = 8
    )]
    pub worker_concurrency: usize,
    /// Files a worker compresses at once (each takes one CPU core while it runs).
    #[arg(
        long,
        env = "LANDLORD_COMPRESSION_CONCURRENCY",
        global = true,
        default_value_t = 1
    )]
    pub compression_concurrency: usize,
    /// The longest a deploy asked to go live waits for its compressed variants; then it
    /// goes live with those that exist (the rest follow as they are computed).
    #[arg(
        long,
        env = "LANDLORD_DEPLOY_COMPRESS_WAIT",
        global = true,
        default_value = "60s"
    )]
    pub deploy_compress_wait: String,
    /// Seconds a worker's claim on a domain lasts without progress (at least 5).
    #[arg(
        long,
        env = "LANDLORD_WORKER_LEASE_SECONDS",
        global = true,
        default_value_t = 120
    )]
    pub worker_lease_seconds: u64,
    /// Seconds between DNS re-checks of active domains.
    #[arg(
        long,
        env = "LANDLORD_RECHECK_ACTIVE_SECONDS",
        global = true,
        default_value_t = 86_400
    )]
    pub recheck_active_seconds: u64,
    /// Consecutive failed checks before an active domain becomes `moved`.
    #[arg(long, env = "LANDLORD_MOVED_AFTER", global = true, default_value_t = 3)]
    pub moved_after: i32,
    /// Renew this many seconds before expiry [default: when a third of the lifetime remains].
    #[arg(long, env = "LANDLORD_RENEW_BEFORE_SECONDS", global = true)]
    pub renew_before_seconds: Option<u64>,
    /// New ACME orders per account per window, as N/DURATION or `off` (Let's Encrypt: 300/3h).
    #[arg(
        long,
        env = "LANDLORD_CA_BUDGET_ORDERS",
        global = true,
        default_value = "300/3h"
    )]
    pub ca_budget_orders: String,
    /// Certificates per registered domain (eTLD+1) per window (Let's Encrypt: 50/7d).
    #[arg(
        long,
        env = "LANDLORD_CA_BUDGET_REGISTERED_DOMAIN",
        global = true,
        default_value = "50/7d"
    )]
    pub ca_budget_registered_domain: String,
    /// Failed validations per hostname per window (Let's Encrypt: 5/1h).
    #[arg(
        long,
        env = "LANDLORD_CA_BUDGET_FAILED_VALIDATIONS",
        global = true,
        default_value = "5/1h"
    )]
    pub ca_budget_failed_validations: String,
    /// The most of a CA order budget window one tenant may use, in percent (100: off).
    #[arg(
        long,
        env = "LANDLORD_CA_BUDGET_TENANT_SHARE",
        global = true,
        default_value = "50"
    )]
    pub ca_budget_tenant_share: String,
    /// How long the edges' change log is kept, in seconds (edges away longer reload everything).
    #[arg(long, env = "LANDLORD_CHANGE_RETENTION_SECONDS", global = true, default_value_t = 7 * 86_400)]
    pub change_retention_seconds: u64,
    /// Validity of certificates from the local issuer, in minutes.
    #[arg(long, env = "LANDLORD_LOCAL_CERT_MINUTES", global = true, default_value_t = 90 * 24 * 60)]
    pub local_cert_minutes: u64,
    /// Where /metrics is served (then not on the API's address) [default: by the API only].
    #[arg(long, env = "LANDLORD_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,
    /// Bytes of certificates an edge keeps in memory at most.
    #[arg(long, env = "LANDLORD_EDGE_CERT_CACHE_BYTES", global = true, default_value_t = EdgeConfig::DEFAULT_CERT_CACHE_BYTES)]
    pub edge_cert_cache_bytes: u64,
    /// Bytes of tenant files (and remembered missing paths) an edge keeps in memory at most.
    #[arg(long, env = "LANDLORD_EDGE_FILE_CACHE_BYTES", global = true, default_value_t = EdgeConfig::DEFAULT_FILE_CACHE_BYTES)]
    pub edge_file_cache_bytes: u64,
    /// Bytes of remembered "registered, no certificate yet" names an edge keeps at most.
    #[arg(long, env = "LANDLORD_EDGE_MISS_CACHE_BYTES", global = true, default_value_t = EdgeConfig::DEFAULT_MISS_CACHE_BYTES)]
    pub edge_miss_cache_bytes: u64,
    /// Database queries visitors' cache misses may run at once on an edge.
    #[arg(long, env = "LANDLORD_EDGE_DB_CONCURRENCY", global = true, default_value_t = EdgeConfig::DEFAULT_DB_CONCURRENCY)]
    pub edge_db_concurrency: usize,
    /// Connections in each role's database pool.
    #[arg(
        long,
        env = "LANDLORD_DATABASE_POOL",
        global = true,
        default_value_t = 10
    )]
    pub database_pool: u32,
    /// Time for a request head (e.g. `10s`, `500ms`; a bare number is seconds).
    #[arg(long, env = "LANDLORD_HEADER_READ_TIMEOUT", global = true, default_value_t = span(Limits::default().header_read_timeout))]
    pub header_read_timeout: String,
    /// Keep-alive connections with no request in flight are closed after this.
    #[arg(long, env = "LANDLORD_IDLE_TIMEOUT", global = true, default_value_t = span(Limits::default().idle_timeout))]
    pub idle_timeout: String,
    /// The longest a request may take, head to last response byte (streams exempt).
    #[arg(long, env = "LANDLORD_REQUEST_TIMEOUT", global = true, default_value_t = span(Limits::default().request_timeout))]
    pub request_timeout: String,
    /// Time for a TLS handshake.
    #[arg(long, env = "LANDLORD_TLS_HANDSHAKE_TIMEOUT", global = true, default_value_t = span(Limits::default().handshake_timeout))]
    pub tls_handshake_timeout: String,
    /// HTTP/2 keep-alive ping interval.
    #[arg(long, env = "LANDLORD_H2_KEEPALIVE_INTERVAL", global = true, default_value_t = span(Limits::default().h2_keepalive_interval))]
    pub h2_keepalive_interval: String,
    /// HTTP/2: close the connection when a ping is not answered within this.
    #[arg(long, env = "LANDLORD_H2_KEEPALIVE_TIMEOUT", global = true, default_value_t = span(Limits::default().h2_keepalive_timeout))]
    pub h2_keepalive_timeout: String,
    /// Open connections per listener.
    #[arg(long, env = "LANDLORD_MAX_CONNECTIONS", global = true, default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,
    /// Open connections per client (IPv4 address or IPv6 /64) per listener.
    #[arg(long, env = "LANDLORD_MAX_CONNECTIONS_PER_IP", global = true, default_value_t = Limits::default().max_connections_per_ip)]
    pub max_connections_per_ip: usize,
    /// Tenant-page requests logged by the edge (target `landlord::access`): `off`, `on`, or
    /// the fraction to log (such as `0.01`).
    #[arg(
        long,
        env = "LANDLORD_ACCESS_LOG",
        global = true,
        default_value = "off"
    )]
    pub access_log: String,
    /// Tenants with per-tenant request and byte counters of their own in an edge's
    /// `/metrics` (the rest are counted under tenant="other").
    #[arg(long, env = "LANDLORD_METRICS_TENANTS", global = true, default_value_t = EdgeConfig::DEFAULT_METRICS_TENANTS)]
    pub metrics_tenants: usize,
    /// `v2`: the edge listeners read a PROXY protocol v2 header first (behind a TCP load
    /// balancer) and refuse connections without one; `off`: clients connect directly.
    #[arg(
        long,
        env = "LANDLORD_PROXY_PROTOCOL",
        global = true,
        default_value = "off"
    )]
    pub proxy_protocol: String,
    /// Comma-separated addresses or CIDR blocks of the balancers allowed to send PROXY
    /// headers (required with LANDLORD_PROXY_PROTOCOL=v2).
    #[arg(
        long,
        env = "LANDLORD_PROXY_TRUSTED",
        global = true,
        value_delimiter = ','
    )]
    pub proxy_trusted: Vec<String>,
    /// Strict-Transport-Security header on tenant pages (`off` for none).
    #[arg(long, env = "LANDLORD_HSTS", global = true, default_value = EdgeConfig::DEFAULT_HSTS)]
    pub hsts: String,
    /// Largest accepted file upload, in bytes.
    #[arg(long, env = "LANDLORD_MAX_FILE_BYTES", global = true, default_value_t = TenantLimits::default().max_file_bytes)]
    pub max_file_bytes: i64,
    /// Storage quota per tenant, in bytes (every stored body once, plus the path, type and
    /// 256 bytes of each file of every kept deploy).
    #[arg(long, env = "LANDLORD_TENANT_QUOTA_BYTES", global = true, default_value_t = TenantLimits::default().quota_bytes)]
    pub tenant_quota_bytes: i64,
    /// Files per deploy (the default site's files, for `/v1/files`).
    #[arg(long, env = "LANDLORD_TENANT_MAX_FILES", global = true, default_value_t = TenantLimits::default().max_files)]
    pub tenant_max_files: i64,
    /// Sites per tenant.
    #[arg(long, env = "LANDLORD_TENANT_MAX_SITES", global = true, default_value_t = TenantLimits::default().max_sites)]
    pub tenant_max_sites: i64,
    /// Deploys kept per site, the live one included (older ones are dropped).
    #[arg(long, env = "LANDLORD_KEPT_DEPLOYMENTS", global = true, default_value_t = TenantLimits::default().kept_deployments)]
    pub kept_deployments: i64,
    /// Domains per tenant.
    #[arg(long, env = "LANDLORD_TENANT_MAX_DOMAINS", global = true, default_value_t = TenantLimits::default().max_domains)]
    pub tenant_max_domains: i64,
    /// Webhook endpoints per tenant.
    #[arg(long, env = "LANDLORD_TENANT_MAX_WEBHOOKS", global = true, default_value_t = TenantLimits::default().max_webhooks)]
    pub tenant_max_webhooks: i64,
    /// `true` lets webhooks reach private, loopback and other special addresses and plain
    /// http:// URLs (test beds only).
    #[arg(
        long,
        env = "LANDLORD_WEBHOOK_ALLOW_PRIVATE",
        global = true,
        default_value = "false"
    )]
    pub webhook_allow_private: String,
    /// One webhook attempt, resolving to end of response.
    #[arg(long, env = "LANDLORD_WEBHOOK_TIMEOUT", global = true, default_value_t = span(landlord_api::delivery::WebhookSettings::default().timeout))]
    pub webhook_timeout: String,
    /// Comma-separated waits before each webhook retry (past the last, the delivery fails
    /// and its webhook is disabled).
    #[arg(
        long,
        env = "LANDLORD_WEBHOOK_RETRY_SCHEDULE",
        global = true,
        default_value = "5s,5m,30m,2h,5h,10h,10h"
    )]
    pub webhook_retry_schedule: String,
    /// How long finished webhook deliveries stay listed.
    #[arg(
        long,
        env = "LANDLORD_WEBHOOK_RETENTION",
        global = true,
        default_value = "7d"
    )]
    pub webhook_retention: String,
    /// Live API keys per tenant.
    #[arg(long, env = "LANDLORD_TENANT_MAX_API_KEYS", global = true, default_value_t = TenantLimits::default().max_api_keys)]
    pub tenant_max_api_keys: i64,
    /// API requests per tenant, as N/DURATION (e.g. 1200/1m) or `off`.
    #[arg(
        long,
        env = "LANDLORD_TENANT_API_RATE",
        global = true,
        default_value = "1200/1m"
    )]
    pub tenant_api_rate: String,
    /// "Check now" is accepted once per this per domain.
    #[arg(long, env = "LANDLORD_CHECK_NOW_INTERVAL", global = true, default_value_t = span(landlord_api::DEFAULT_CHECK_INTERVAL))]
    pub check_now_interval: String,
    /// The largest deploy archive accepted, in bytes, as uploaded.
    #[arg(long, env = "LANDLORD_DEPLOY_MAX_UPLOAD_BYTES", global = true, default_value_t = landlord_api::DeployLimits::default().max_upload_bytes)]
    pub deploy_max_upload_bytes: u64,
    /// The most a deploy archive may expand to, in bytes.
    #[arg(long, env = "LANDLORD_DEPLOY_MAX_EXPANDED_BYTES", global = true, default_value_t = landlord_api::DeployLimits::default().max_expanded_bytes)]
    pub deploy_max_expanded_bytes: u64,
    /// The most a compressed deploy archive may expand per uploaded byte (beyond 1 MiB).
    #[arg(long, env = "LANDLORD_DEPLOY_MAX_RATIO", global = true, default_value_t = landlord_api::DeployLimits::default().max_ratio)]
    pub deploy_max_ratio: u64,
    /// The longest reading and checking one deploy archive may take.
    #[arg(long, env = "LANDLORD_DEPLOY_TIMEOUT", global = true, default_value_t = span(landlord_api::DeployLimits::default().timeout))]
    pub deploy_timeout: String,
    /// Deploy archives read at once per API process (each takes a core while it is read).
    #[arg(long, env = "LANDLORD_DEPLOY_CONCURRENCY", global = true, default_value_t = landlord_api::DeployLimits::default().concurrency)]
    pub deploy_concurrency: usize,
    /// Open `GET /v1/events` streams per tenant, per API process.
    #[arg(long, env = "LANDLORD_TENANT_MAX_EVENT_STREAMS", global = true, default_value_t = landlord_api::DEFAULT_MAX_EVENT_STREAMS)]
    pub tenant_max_event_streams: usize,
    /// The longest the DNS part of a worker round may take, at most half the lease
    /// [default: 30s, or a third of the lease if that is shorter].
    #[arg(long, env = "LANDLORD_DNS_DEADLINE", global = true)]
    pub dns_deadline: Option<String>,
    /// Timeline events older than this are pruned.
    #[arg(
        long,
        env = "LANDLORD_EVENT_RETENTION",
        global = true,
        default_value = "90d"
    )]
    pub event_retention: String,
    /// Timeline events kept per domain (the newest).
    #[arg(
        long,
        env = "LANDLORD_EVENTS_PER_DOMAIN",
        global = true,
        default_value_t = 500
    )]
    pub events_per_domain: u32,
    /// Suffixes accepted besides ICANN's, comma-separated (test beds: `test`).
    #[arg(
        long,
        env = "LANDLORD_EXTRA_SUFFIXES",
        global = true,
        value_delimiter = ','
    )]
    pub extra_suffixes: Vec<String>,
    /// Hostnames no tenant may register, comma-separated (the API's own, …).
    #[arg(
        long,
        env = "LANDLORD_RESERVED_HOSTNAMES",
        global = true,
        value_delimiter = ','
    )]
    pub reserved_hostnames: Vec<String>,
}

/// A default duration as `--help` shows it and [`parse_duration`] reads it back.
fn span(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        _ if ms.is_multiple_of(86_400_000) => format!("{}d", ms / 86_400_000),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// `RUST_LOG` filters (default `info`); `LANDLORD_LOG_FORMAT=json` writes JSON lines.
pub fn init_tracing() -> Result<(), String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("LANDLORD_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().init(),
        Ok("text") | Ok("") | Err(_) => builder.init(),
        Ok(other) => {
            return Err(format!(
                "LANDLORD_LOG_FORMAT must be \"json\" or \"text\", not \"{other}\""
            ));
        }
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_durations_read_back_as_themselves() {
        for d in [
            Duration::from_millis(250),
            Duration::from_secs(10),
            Duration::from_secs(120),
            Duration::from_secs(3600),
            Duration::from_secs(90 * 86_400),
        ] {
            assert_eq!(parse_duration(&span(d)), Ok(d), "{}", span(d));
        }
    }
}
