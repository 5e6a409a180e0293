//! Configuration: one typed struct read from flags and the environment (the contract's
//! variable names), validated before anything starts.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use tracing_subscriber::EnvFilter;

use crate::Fatal;
use landlord_store::{Budget, Budgets, Hostname, MasterKey, Store};
use landlord_worker::{AcmeConfig, DnsConfig, IssuerConfig, WorkerConfig};

#[derive(Args, Clone, Debug)]
pub struct Settings {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// REST API and dashboard listen address.
    #[arg(long, env = "LANDLORD_API_ADDR", global = true)]
    pub api_addr: Option<SocketAddr>,
    /// Bearer token for the admin endpoints; unset disables them.
    #[arg(
        long,
        env = "LANDLORD_ADMIN_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// The hostname tenants point their CNAME at.
    #[arg(long, env = "LANDLORD_CNAME_TARGET", global = true)]
    pub cname_target: Option<String>,
    /// Comma-separated IPs an A/AAAA record may point at instead.
    #[arg(long, env = "LANDLORD_EDGE_IPS", global = true, value_delimiter = ',')]
    pub edge_ips: Vec<String>,
    /// Base64 of 32 random bytes; encrypts private keys at rest.
    #[arg(
        long,
        env = "LANDLORD_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    pub master_key: Option<String>,
    /// Edge plain-HTTP listener (ACME HTTP-01, redirects to HTTPS).
    #[arg(long, env = "LANDLORD_HTTP_ADDR", global = true)]
    pub http_addr: Option<SocketAddr>,
    /// Edge HTTPS listener.
    #[arg(long, env = "LANDLORD_HTTPS_ADDR", global = true)]
    pub https_addr: Option<SocketAddr>,
    /// Comma-separated ip:port resolvers for DNS verification (default: the system's).
    #[arg(
        long,
        env = "LANDLORD_DNS_SERVERS",
        global = true,
        value_delimiter = ','
    )]
    pub dns_servers: Vec<String>,
    /// `acme` or `local`.
    #[arg(long, env = "LANDLORD_ISSUER", global = true)]
    pub issuer: Option<String>,
    /// ACME directory URL.
    #[arg(long, env = "LANDLORD_ACME_DIRECTORY", global = true)]
    pub acme_directory: Option<String>,
    /// PEM file of extra roots to trust when talking to the ACME server.
    #[arg(long, env = "LANDLORD_ACME_CA_ROOTS", global = true)]
    pub acme_ca_roots: Option<std::path::PathBuf>,
    /// `mailto:` contact for the ACME account.
    #[arg(long, env = "LANDLORD_ACME_CONTACT", global = true)]
    pub acme_contact: Option<String>,
    /// CAA issuer domain names that identify our CA.
    #[arg(
        long,
        env = "LANDLORD_ACME_CAA_IDENTITIES",
        global = true,
        value_delimiter = ','
    )]
    pub acme_caa_identities: Vec<String>,
    /// Domains a worker processes at once.
    #[arg(long, env = "LANDLORD_WORKER_CONCURRENCY", global = true)]
    pub worker_concurrency: Option<usize>,
    /// Seconds a worker's claim on a domain lasts without progress.
    #[arg(long, env = "LANDLORD_WORKER_LEASE_SECONDS", global = true)]
    pub worker_lease_seconds: Option<u64>,
    /// Seconds between DNS re-checks of active domains.
    #[arg(long, env = "LANDLORD_RECHECK_ACTIVE_SECONDS", global = true)]
    pub recheck_active_seconds: Option<u64>,
    /// Consecutive failed checks before an active domain becomes `moved`.
    #[arg(long, env = "LANDLORD_MOVED_AFTER", global = true)]
    pub moved_after: Option<i32>,
    /// Renew this many seconds before expiry (default: when a third of the lifetime remains).
    #[arg(long, env = "LANDLORD_RENEW_BEFORE_SECONDS", global = true)]
    pub renew_before_seconds: Option<u64>,
    /// New ACME orders per account per window, as N/DURATION or `off` (Let's Encrypt: 300/3h).
    #[arg(long, env = "LANDLORD_CA_BUDGET_ORDERS", global = true)]
    pub ca_budget_orders: Option<String>,
    /// Certificates per registered domain (eTLD+1) per window (Let's Encrypt: 50/7d).
    #[arg(long, env = "LANDLORD_CA_BUDGET_REGISTERED_DOMAIN", global = true)]
    pub ca_budget_registered_domain: Option<String>,
    /// Failed validations per hostname per window (Let's Encrypt: 5/1h).
    #[arg(long, env = "LANDLORD_CA_BUDGET_FAILED_VALIDATIONS", global = true)]
    pub ca_budget_failed_validations: Option<String>,
    /// How long the edges' change log is kept, in seconds (edges away longer reload everything).
    #[arg(long, env = "LANDLORD_CHANGE_RETENTION_SECONDS", global = true)]
    pub change_retention_seconds: Option<u64>,
    /// Validity of certificates from the local issuer, in minutes.
    #[arg(long, env = "LANDLORD_LOCAL_CERT_MINUTES", global = true)]
    pub local_cert_minutes: Option<u64>,
    /// Where /metrics is served (then not on the API's address); unset: by the API only.
    #[arg(long, env = "LANDLORD_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,
    /// Bytes of certificates an edge keeps in memory at most.
    #[arg(long, env = "LANDLORD_EDGE_CERT_CACHE_BYTES", global = true)]
    pub edge_cert_cache_bytes: Option<u64>,
    /// Bytes of tenant files (and remembered missing paths) an edge keeps in memory at most.
    #[arg(long, env = "LANDLORD_EDGE_FILE_CACHE_BYTES", global = true)]
    pub edge_file_cache_bytes: Option<u64>,
    /// Bytes of remembered "registered, no certificate yet" names an edge keeps at most.
    #[arg(long, env = "LANDLORD_EDGE_MISS_CACHE_BYTES", global = true)]
    pub edge_miss_cache_bytes: Option<u64>,
    /// Database queries visitors' cache misses may run at once on an edge.
    #[arg(long, env = "LANDLORD_EDGE_DB_CONCURRENCY", global = true)]
    pub edge_db_concurrency: Option<usize>,
    /// Connections in each role's database pool.
    #[arg(long, env = "LANDLORD_DATABASE_POOL", global = true)]
    pub database_pool: Option<u32>,
    /// Time for a request head (e.g. `10s`, `500ms`; a bare number is seconds).
    #[arg(long, env = "LANDLORD_HEADER_READ_TIMEOUT", global = true)]
    pub header_read_timeout: Option<String>,
    /// Keep-alive connections with no request in flight are closed after this.
    #[arg(long, env = "LANDLORD_IDLE_TIMEOUT", global = true)]
    pub idle_timeout: Option<String>,
    /// The longest a request may take, head to last response byte (streams exempt).
    #[arg(long, env = "LANDLORD_REQUEST_TIMEOUT", global = true)]
    pub request_timeout: Option<String>,
    /// Time for a TLS handshake.
    #[arg(long, env = "LANDLORD_TLS_HANDSHAKE_TIMEOUT", global = true)]
    pub tls_handshake_timeout: Option<String>,
    /// HTTP/2 keep-alive ping interval.
    #[arg(long, env = "LANDLORD_H2_KEEPALIVE_INTERVAL", global = true)]
    pub h2_keepalive_interval: Option<String>,
    /// HTTP/2: close the connection when a ping is not answered within this.
    #[arg(long, env = "LANDLORD_H2_KEEPALIVE_TIMEOUT", global = true)]
    pub h2_keepalive_timeout: Option<String>,
    /// Open connections per listener.
    #[arg(long, env = "LANDLORD_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,
    /// Open connections per client (IPv4 address or IPv6 /64) per listener.
    #[arg(long, env = "LANDLORD_MAX_CONNECTIONS_PER_IP", global = true)]
    pub max_connections_per_ip: Option<usize>,
    /// Strict-Transport-Security header on tenant pages ("off" for none).
    #[arg(long, env = "LANDLORD_HSTS", global = true)]
    pub hsts: Option<String>,
    /// Largest accepted file upload, in bytes.
    #[arg(long, env = "LANDLORD_MAX_FILE_BYTES", global = true)]
    pub max_file_bytes: Option<i64>,
    /// Storage quota per tenant, in bytes (bodies, paths, types and 256 bytes per file).
    #[arg(long, env = "LANDLORD_TENANT_QUOTA_BYTES", global = true)]
    pub tenant_quota_bytes: Option<i64>,
    /// Files per tenant.
    #[arg(long, env = "LANDLORD_TENANT_MAX_FILES", global = true)]
    pub tenant_max_files: Option<i64>,
    /// Domains per tenant.
    #[arg(long, env = "LANDLORD_TENANT_MAX_DOMAINS", global = true)]
    pub tenant_max_domains: Option<i64>,
    /// API requests per tenant, as N/DURATION (e.g. 1200/1m) or `off`.
    #[arg(long, env = "LANDLORD_TENANT_API_RATE", global = true)]
    pub tenant_api_rate: Option<String>,
    /// "Check now" is accepted once per this per domain (e.g. 10s).
    #[arg(long, env = "LANDLORD_CHECK_NOW_INTERVAL", global = true)]
    pub check_now_interval: Option<String>,
    /// Open `GET /v1/events` streams per tenant, per API process.
    #[arg(long, env = "LANDLORD_TENANT_MAX_EVENT_STREAMS", global = true)]
    pub tenant_max_event_streams: Option<usize>,
    /// The most of a CA order budget window one tenant may use, in percent (100: off).
    #[arg(long, env = "LANDLORD_CA_BUDGET_TENANT_SHARE", global = true)]
    pub ca_budget_tenant_share: Option<String>,
    /// The longest the DNS part of a worker round may take (default 30 s, at most a third
    /// of the lease).
    #[arg(long, env = "LANDLORD_DNS_DEADLINE", global = true)]
    pub dns_deadline: Option<String>,
    /// Timeline events older than this are pruned (e.g. 90d).
    #[arg(long, env = "LANDLORD_EVENT_RETENTION", global = true)]
    pub event_retention: Option<String>,
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
    /// Timeline events kept per domain (the newest).
    #[arg(long, env = "LANDLORD_EVENTS_PER_DOMAIN", global = true)]
    pub events_per_domain: Option<u32>,
}

pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:80";
pub const DEFAULT_HTTPS_ADDR: &str = "0.0.0.0:443";
pub const DEFAULT_DATABASE_POOL: u32 = 10;
pub const DEFAULT_DNS_DEADLINE: Duration = Duration::from_secs(30);
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(90 * 86_400);
pub const DEFAULT_EVENTS_PER_DOMAIN: u32 = 500;
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

impl Settings {
    pub fn database_url(&self) -> Result<&str, Fatal> {
        self.database_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| {
                Fatal::Config("DATABASE_URL is not set (e.g. postgres://user@host/db)".into())
            })
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
            .unwrap_or_else(|| DEFAULT_API_ADDR.parse().expect("valid default"))
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
            .unwrap_or_else(|| DEFAULT_HTTP_ADDR.parse().expect("valid default"))
    }

    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
            .unwrap_or_else(|| DEFAULT_HTTPS_ADDR.parse().expect("valid default"))
    }

    /// Everything `landlord worker` needs, validated.
    /// `LANDLORD_DNS_SERVERS`, parsed (`ip` means port 53).
    pub fn dns_servers(&self) -> Result<Vec<SocketAddr>, Fatal> {
        self.dns_servers
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| {
                        Fatal::Config(format!(
                            "LANDLORD_DNS_SERVERS: \"{s}\" is not ip or ip:port"
                        ))
                    })
            })
            .collect()
    }

    pub fn worker_config(&self, localhost_is_ours: bool) -> Result<WorkerConfig, Fatal> {
        let servers = self.dns_servers()?;
        let mut caa: Vec<String> = self
            .acme_caa_identities
            .iter()
            .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        if caa.is_empty() {
            caa.push("letsencrypt.org".into());
        }
        let issuer = match self.issuer.as_deref().unwrap_or("acme") {
            "acme" => {
                if let Some(path) = &self.acme_ca_roots
                    && !path.is_file()
                {
                    return Err(Fatal::Config(format!(
                        "LANDLORD_ACME_CA_ROOTS: {} is not a readable file",
                        path.display()
                    )));
                }
                IssuerConfig::Acme(AcmeConfig {
                    directory_url: self
                        .acme_directory
                        .clone()
                        .unwrap_or_else(|| LETS_ENCRYPT.to_owned()),
                    extra_roots: self.acme_ca_roots.clone(),
                    contact: self.acme_contact.clone().filter(|c| !c.is_empty()),
                })
            }
            "local" => IssuerConfig::Local {
                validity: Duration::from_secs(60 * self.local_cert_minutes.unwrap_or(90 * 24 * 60)),
            },
            other => {
                return Err(Fatal::Config(format!(
                    "LANDLORD_ISSUER must be \"acme\" or \"local\", not \"{other}\""
                )));
            }
        };
        let lease = Duration::from_secs(self.worker_lease_seconds.unwrap_or(120).max(5));
        let dns_deadline = match &self.dns_deadline {
            None => DEFAULT_DNS_DEADLINE.min(lease / 3),
            Some(raw) => {
                let d = parse_duration(raw)
                    .map_err(|e| Fatal::Config(format!("LANDLORD_DNS_DEADLINE: {e}")))?;
                if d > lease / 2 {
                    return Err(Fatal::Config(format!(
                        "LANDLORD_DNS_DEADLINE ({raw}) must be at most half the lease (LANDLORD_WORKER_LEASE_SECONDS={})",
                        lease.as_secs()
                    )));
                }
                d
            }
        };
        let event_retention = match &self.event_retention {
            None => DEFAULT_EVENT_RETENTION,
            Some(raw) => parse_duration(raw)
                .map_err(|e| Fatal::Config(format!("LANDLORD_EVENT_RETENTION: {e}")))?,
        };
        let mut events_per_domain = DEFAULT_EVENTS_PER_DOMAIN;
        set_positive(
            &mut events_per_domain,
            self.events_per_domain,
            "LANDLORD_EVENTS_PER_DOMAIN",
        )?;
        Ok(WorkerConfig {
            dns: DnsConfig {
                cname_target: self.cname_target()?.to_string(),
                edge_ips: self.edge_ips()?,
                servers,
                caa_identities: caa,
                localhost_is_ours,
            },
            issuer,
            master_key: MasterKey::new(self.master_key()?),
            concurrency: self.worker_concurrency.unwrap_or(8).max(1),
            lease,
            recheck_active: Duration::from_secs(
                self.recheck_active_seconds.unwrap_or(86_400).max(1),
            ),
            moved_after: self.moved_after.unwrap_or(3).max(1),
            renew_before: self.renew_before_seconds.map(Duration::from_secs),
            budgets: self.budgets()?,
            change_retention: Duration::from_secs(
                self.change_retention_seconds.unwrap_or(7 * 86_400).max(60),
            ),
            dns_deadline,
            event_retention,
            events_per_domain,
        })
    }

    /// The CA budgets: Let's Encrypt's limits unless configured.
    fn budgets(&self) -> Result<Budgets, Fatal> {
        let defaults = Budgets::default();
        let parse = |value: &Option<String>, name: &str, default: Option<Budget>| match value {
            None => Ok(default),
            Some(v) => Budget::parse(v).map_err(|e| Fatal::Config(format!("{name}: {e}"))),
        };
        Ok(Budgets {
            orders_per_account: parse(
                &self.ca_budget_orders,
                "LANDLORD_CA_BUDGET_ORDERS",
                defaults.orders_per_account,
            )?,
            certificates_per_registered_domain: parse(
                &self.ca_budget_registered_domain,
                "LANDLORD_CA_BUDGET_REGISTERED_DOMAIN",
                defaults.certificates_per_registered_domain,
            )?,
            failed_validations_per_hostname: parse(
                &self.ca_budget_failed_validations,
                "LANDLORD_CA_BUDGET_FAILED_VALIDATIONS",
                defaults.failed_validations_per_hostname,
            )?,
            tenant_share_percent: match &self.ca_budget_tenant_share {
                None => defaults.tenant_share_percent,
                Some(raw) => parse_percent(raw)
                    .map_err(|e| Fatal::Config(format!("LANDLORD_CA_BUDGET_TENANT_SHARE: {e}")))?,
            },
        })
    }

    /// The per-tenant API request rate (`None`: unlimited).
    pub fn api_rate(&self) -> Result<Option<Budget>, Fatal> {
        match &self.tenant_api_rate {
            None => Ok(Some(landlord_api::DEFAULT_API_RATE)),
            Some(raw) => Budget::parse(raw)
                .map_err(|e| Fatal::Config(format!("LANDLORD_TENANT_API_RATE: {e}"))),
        }
    }

    /// Everything `landlord edge` needs, validated.
    pub fn edge_config(&self) -> Result<landlord_edge::EdgeConfig, Fatal> {
        let mut config = landlord_edge::EdgeConfig::new(MasterKey::new(self.master_key()?));
        config.https_port = self.https_addr().port();
        for (setting, value, name) in [
            (
                &mut config.cert_cache_bytes,
                self.edge_cert_cache_bytes,
                "LANDLORD_EDGE_CERT_CACHE_BYTES",
            ),
            (
                &mut config.file_cache_bytes,
                self.edge_file_cache_bytes,
                "LANDLORD_EDGE_FILE_CACHE_BYTES",
            ),
            (
                &mut config.miss_cache_bytes,
                self.edge_miss_cache_bytes,
                "LANDLORD_EDGE_MISS_CACHE_BYTES",
            ),
        ] {
            set_positive(setting, value, name)?;
        }
        set_positive(
            &mut config.db_concurrency,
            self.edge_db_concurrency,
            "LANDLORD_EDGE_DB_CONCURRENCY",
        )?;
        config.limits = self.limits()?;
        config.hsts = match self.hsts.as_deref() {
            None => config.hsts,
            Some("" | "off") => None,
            Some(v) => Some(v.to_owned()),
        };
        Ok(config)
    }

    /// The listeners' caps and timeouts (every listener of the process uses them).
    pub fn limits(&self) -> Result<landlord_edge::listen::Limits, Fatal> {
        let mut limits = landlord_edge::listen::Limits::default();
        for (setting, value, name) in [
            (
                &mut limits.header_read_timeout,
                &self.header_read_timeout,
                "LANDLORD_HEADER_READ_TIMEOUT",
            ),
            (
                &mut limits.idle_timeout,
                &self.idle_timeout,
                "LANDLORD_IDLE_TIMEOUT",
            ),
            (
                &mut limits.request_timeout,
                &self.request_timeout,
                "LANDLORD_REQUEST_TIMEOUT",
            ),
            (
                &mut limits.handshake_timeout,
                &self.tls_handshake_timeout,
                "LANDLORD_TLS_HANDSHAKE_TIMEOUT",
            ),
            (
                &mut limits.h2_keepalive_interval,
                &self.h2_keepalive_interval,
                "LANDLORD_H2_KEEPALIVE_INTERVAL",
            ),
            (
                &mut limits.h2_keepalive_timeout,
                &self.h2_keepalive_timeout,
                "LANDLORD_H2_KEEPALIVE_TIMEOUT",
            ),
        ] {
            if let Some(raw) = value {
                *setting =
                    parse_duration(raw).map_err(|e| Fatal::Config(format!("{name}: {e}")))?;
            }
        }
        for (setting, value, name) in [
            (
                &mut limits.max_connections,
                self.max_connections,
                "LANDLORD_MAX_CONNECTIONS",
            ),
            (
                &mut limits.max_connections_per_ip,
                self.max_connections_per_ip,
                "LANDLORD_MAX_CONNECTIONS_PER_IP",
            ),
        ] {
            set_positive(setting, value, name)?;
        }
        if limits.max_connections_per_ip > limits.max_connections {
            return Err(Fatal::Config(format!(
                "LANDLORD_MAX_CONNECTIONS_PER_IP ({}) is above LANDLORD_MAX_CONNECTIONS ({})",
                limits.max_connections_per_ip, limits.max_connections
            )));
        }
        Ok(limits)
    }

    pub fn cname_target(&self) -> Result<Hostname, Fatal> {
        let raw = self.cname_target.as_deref().ok_or_else(|| {
            Fatal::Config(
                "LANDLORD_CNAME_TARGET is not set (the hostname tenants point their CNAME at)"
                    .into(),
            )
        })?;
        Hostname::parse(raw)
            .map_err(|e| Fatal::Config(format!("LANDLORD_CNAME_TARGET is invalid: {e}")))
    }

    pub fn edge_ips(&self) -> Result<Vec<IpAddr>, Fatal> {
        self.edge_ips
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse().map_err(|_| {
                    Fatal::Config(format!("LANDLORD_EDGE_IPS: \"{s}\" is not an IP address"))
                })
            })
            .collect()
    }

    /// The 32-byte master key, decoded and checked.
    pub fn master_key(&self) -> Result<[u8; 32], Fatal> {
        let raw = self.master_key.as_deref().ok_or_else(|| {
            Fatal::Config("LANDLORD_MASTER_KEY is not set (base64 of 32 random bytes: `openssl rand -base64 32`)".into())
        })?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| Fatal::Config("LANDLORD_MASTER_KEY is not valid base64".into()))?;
        <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
            Fatal::Config(format!(
                "LANDLORD_MASTER_KEY must decode to 32 bytes, not {} (`openssl rand -base64 32`)",
                bytes.len()
            ))
        })
    }

    /// What one tenant may hold.
    pub fn tenant_limits(&self) -> Result<landlord_store::TenantLimits, Fatal> {
        let mut limits = landlord_store::TenantLimits::default();
        for (setting, value, name) in [
            (
                &mut limits.max_file_bytes,
                self.max_file_bytes,
                "LANDLORD_MAX_FILE_BYTES",
            ),
            (
                &mut limits.quota_bytes,
                self.tenant_quota_bytes,
                "LANDLORD_TENANT_QUOTA_BYTES",
            ),
            (
                &mut limits.max_files,
                self.tenant_max_files,
                "LANDLORD_TENANT_MAX_FILES",
            ),
            (
                &mut limits.max_domains,
                self.tenant_max_domains,
                "LANDLORD_TENANT_MAX_DOMAINS",
            ),
        ] {
            if value.is_some_and(|v| v < 0) {
                return Err(Fatal::Config(format!("{name} must be above zero")));
            }
            set_positive(setting, value, name)?;
        }
        Ok(limits)
    }

    /// Which hostnames tenants may register.
    pub fn hostname_policy(&self) -> Result<landlord_store::HostnamePolicy, Fatal> {
        let reserved = self
            .reserved_hostnames
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                Hostname::parse(s).map_err(|e| {
                    Fatal::Config(format!("LANDLORD_RESERVED_HOSTNAMES: \"{s}\": {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(landlord_store::HostnamePolicy {
            extra_suffixes: self
                .extra_suffixes
                .iter()
                .map(|s| landlord_store::normalise_suffix(s))
                .filter(|s| !s.is_empty())
                .collect(),
            reserved,
            platform_domain: self.cname_target()?.registrable_domain().to_owned(),
        })
    }

    /// Connections per role's pool.
    pub fn database_pool(&self) -> Result<u32, Fatal> {
        match self.database_pool {
            Some(0) => Err(Fatal::Config(
                "LANDLORD_DATABASE_POOL must be above zero".into(),
            )),
            Some(n) => Ok(n),
            None => Ok(DEFAULT_DATABASE_POOL),
        }
    }

    /// Connect (failing fast when the server is unreachable) and migrate unless told not
    /// to. Each call is a pool of its own (`LANDLORD_DATABASE_POOL` connections).
    pub async fn store(&self, migrate: bool) -> Result<Store, Fatal> {
        let url = self.database_url()?;
        let store = Store::connect(url, self.database_pool()?, Duration::from_secs(10))
            .await
            .context("cannot connect to the database (DATABASE_URL)")?;
        if migrate {
            store
                .migrate()
                .await
                .context("applying database migrations")?;
        }
        Ok(store)
    }
}

/// Overwrite `setting` with `value` when one is given; zero is refused.
pub fn set_positive<T: Copy + PartialEq + Default>(
    setting: &mut T,
    value: Option<T>,
    name: &str,
) -> Result<(), Fatal> {
    match value {
        Some(v) if v == T::default() => Err(Fatal::Config(format!("{name} must be above zero"))),
        Some(v) => {
            *setting = v;
            Ok(())
        }
        None => Ok(()),
    }
}

/// A duration setting: `250ms`, `10s`, `5m`, `1h`, or a bare number of seconds (`1.5`).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let s = raw.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (amount, unit) = s.split_at(split);
    let amount: f64 = amount
        .parse()
        .map_err(|_| format!("`{raw}` is not a duration (e.g. 500ms, 10s, 5m)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(format!("`{raw}`: the unit must be ms, s, m, h or d")),
    };
    let secs = amount * scale;
    if !(secs > 0.0 && secs < 1e9) {
        return Err(format!("`{raw}` must be above zero"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A percentage: `50`, `50%`, `12.5 %` is refused (whole percents, 1 to 100).
pub fn parse_percent(raw: &str) -> Result<u8, String> {
    let n: u8 = raw
        .trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .map_err(|_| format!("`{raw}` is not a whole percentage from 1 to 100 (e.g. 50%)"))?;
    if !(1..=100).contains(&n) {
        return Err(format!("`{raw}` must be from 1 to 100 %"));
    }
    Ok(n)
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
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration(" 1h ").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_duration("90d").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        for bad in ["", "0", "-1", "ten", "5 fortnights", "1e999"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percentages_are_whole_and_in_range() {
        assert_eq!(parse_percent("50"), Ok(50));
        assert_eq!(parse_percent(" 100% "), Ok(100));
        assert_eq!(parse_percent("1 %"), Ok(1));
        for bad in ["", "0", "101", "12.5", "-5", "half"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
    }
}
