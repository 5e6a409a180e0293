//! [`Config`]: what the roles of one process need, built from [`Settings`] in one pass
//! that reports every invalid setting together (exit 2) before anything connects or
//! binds.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use super::{DEFAULT_API_ADDR, DEFAULT_HTTP_ADDR, DEFAULT_HTTPS_ADDR, Settings};
use crate::Fatal;
use crate::run::Roles;
use landlord_api::ApiConfig;
use landlord_edge::EdgeConfig;
use landlord_edge::listen::Limits;
use landlord_store::{Budget, Budgets, Hostname, HostnamePolicy, MasterKey, Store, TenantLimits};
use landlord_worker::{AcmeConfig, DnsConfig, IssuerConfig, WorkerConfig};

const DEFAULT_DNS_DEADLINE: Duration = Duration::from_secs(30);

/// The validated configuration of one process.
pub struct Config {
    pub database: Database,
    /// Caps and timeouts of every listener of the process.
    pub limits: Limits,
    pub api: Option<ApiConfig>,
    pub api_addr: SocketAddr,
    pub worker: Option<WorkerConfig>,
    pub edge: Option<EdgeConfig>,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
}

/// Where the database is, and how many connections each role's pool holds.
#[derive(Debug, Clone)]
pub struct Database {
    url: SecretString,
    pool: u32,
    /// `LANDLORD_PRIMARY_DATABASE_URL`: where a read-only edge writes its heartbeats.
    primary_url: Option<SecretString>,
    /// `LANDLORD_DIRECT_DATABASE_URL`: `url` is a transaction-mode pooler, this the server.
    direct_url: Option<SecretString>,
    /// `LANDLORD_READ_ONLY`: `None` detects a hot standby.
    pub read_only: Option<bool>,
}

impl Config {
    /// Everything `roles` need, or every problem with the settings in one error.
    pub fn build(s: &Settings, roles: Roles, localhost_is_ours: bool) -> Result<Config, Fatal> {
        let mut p = Problems::default();
        let database = p.take(s.database());
        // Every role seals or unseals private keys.
        let key = p.take(s.master_key());
        let limits = p.take(s.limits());
        let api = roles.api.then(|| s.api_config(&mut p, key.clone()));
        let worker = roles
            .worker
            .then(|| s.worker_config(&mut p, key.clone(), localhost_is_ours));
        let edge = roles
            .edge
            .then(|| s.edge_config(&mut p, key, limits.clone()));
        p.finish()?;
        Ok(Config {
            database: database.expect("checked"),
            limits: limits.expect("checked"),
            api: api.flatten(),
            api_addr: s.api_addr(),
            worker: worker.flatten(),
            edge: edge.flatten(),
            http_addr: s.http_addr(),
            https_addr: s.https_addr(),
            metrics_addr: s.metrics_addr,
        })
    }
}

impl Database {
    /// Connect (failing fast when the server is unreachable) and migrate if asked. Each
    /// call is a pool of its own. A hot standby (or `LANDLORD_READ_ONLY=true`) is never
    /// migrated: its primary is.
    pub async fn connect(&self, migrate: bool) -> Result<Store, Fatal> {
        let timeout = Duration::from_secs(10);
        let store = match &self.direct_url {
            Some(direct) => Store::connect_pooled(
                self.url.expose_secret(),
                direct.expose_secret(),
                self.pool,
                timeout,
            )
            .await
            .context("cannot connect to the database through the pooler (DATABASE_URL)")?,
            None => Store::connect(self.url.expose_secret(), self.pool, timeout)
                .await
                .context("cannot connect to the database (DATABASE_URL)")?,
        };
        if migrate && self.is_read_only(&store).await? {
            tracing::info!(
                "DATABASE_URL is read-only (a hot standby, or LANDLORD_READ_ONLY): not migrating it"
            );
            return Ok(store);
        }
        if migrate {
            store
                .migrate()
                .await
                .context("applying database migrations")?;
        }
        Ok(store)
    }
}

impl Database {
    /// Whether `store` is to be treated as read-only: `LANDLORD_READ_ONLY`, else whether
    /// the server is a hot standby.
    pub async fn is_read_only(&self, store: &Store) -> Result<bool, Fatal> {
        match self.read_only {
            Some(forced) => Ok(forced),
            None => Ok(store
                .in_recovery()
                .await
                .context("asking the database whether it is a standby")?),
        }
    }

    /// The pool a read-only edge writes its heartbeats through (connected on first use).
    pub fn primary(&self) -> Result<Option<Store>, Fatal> {
        self.primary_url
            .as_ref()
            .map(|u| {
                Store::connect_lazy(u.expose_secret(), 2, Duration::from_secs(5))
                    .context("LANDLORD_PRIMARY_DATABASE_URL")
                    .map_err(Fatal::from)
            })
            .transpose()
    }
}

/// Problems found so far; the build goes on after one to report them all.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn take<T>(&mut self, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }

    fn finish(self) -> Result<(), Fatal> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(Fatal::Config(self.0.join("; "))),
        }
    }
}

type Checked<T> = Result<T, String>;

impl Settings {
    /// `DATABASE_URL` and the pool size, checked without connecting.
    pub fn database(&self) -> Checked<Database> {
        let url = self
            .database_url
            .clone()
            .filter(|u| !u.expose_secret().trim().is_empty())
            .ok_or("DATABASE_URL is not set (e.g. postgres://user@host/db)")?;
        Store::check_url(url.expose_secret()).map_err(|e| format!("DATABASE_URL: {e}"))?;
        let primary_url = self
            .primary_database_url
            .clone()
            .filter(|u| !u.expose_secret().trim().is_empty());
        if let Some(u) = &primary_url {
            Store::check_url(u.expose_secret())
                .map_err(|e| format!("LANDLORD_PRIMARY_DATABASE_URL: {e}"))?;
        }
        let direct_url = self
            .direct_database_url
            .clone()
            .filter(|u| !u.expose_secret().trim().is_empty());
        if let Some(u) = &direct_url {
            Store::check_url(u.expose_secret())
                .map_err(|e| format!("LANDLORD_DIRECT_DATABASE_URL: {e}"))?;
        }
        let read_only = match self.read_only.as_deref().map(str::trim) {
            None | Some("" | "auto") => None,
            Some("true" | "1" | "yes" | "on") => Some(true),
            Some("false" | "0" | "no" | "off") => Some(false),
            Some(other) => {
                return Err(format!(
                    "LANDLORD_READ_ONLY: \"{other}\" is not true, false or auto"
                ));
            }
        };
        Ok(Database {
            url,
            pool: positive(self.database_pool, "LANDLORD_DATABASE_POOL")?,
            primary_url,
            direct_url,
            read_only,
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

    /// Everything `landlord api` needs; `None` after recording its problems.
    fn api_config(&self, p: &mut Problems, key: Option<MasterKey>) -> Option<ApiConfig> {
        let cname_target = p.take(self.cname_target());
        let edge_ips = p.take(self.edge_ips());
        let hostnames = p.take(self.hostname_policy());
        let dns_servers = p.take(self.dns_servers());
        let limits = p.take(self.tenant_limits());
        let api_rate = p.take(budget(&self.tenant_api_rate, "LANDLORD_TENANT_API_RATE"));
        let check_interval = p.take(duration(
            &self.check_now_interval,
            "LANDLORD_CHECK_NOW_INTERVAL",
        ));
        let max_event_streams = p.take(positive(
            self.tenant_max_event_streams,
            "LANDLORD_TENANT_MAX_EVENT_STREAMS",
        ));
        let deploys = p.take(self.deploy_limits());
        let dns01 = p.take(self.dns01());
        let webhooks = p.take(self.webhook_settings());
        let admin_token = self
            .admin_token
            .as_ref()
            .map(|t| t.expose_secret())
            .filter(|t| !t.is_empty());
        let mut config = ApiConfig::new(cname_target?, edge_ips?, admin_token);
        config.hostnames = hostnames?;
        config.resolver = Some(
            p.take(
                landlord_worker::dns::resolver(&dns_servers?)
                    .map_err(|e| format!("LANDLORD_DNS_SERVERS: no resolver can be built: {e}")),
            )?,
        );
        config.limits = limits?;
        config.api_rate = api_rate?;
        config.check_interval = check_interval?;
        config.max_event_streams = max_event_streams?;
        config.deploys = deploys?;
        let dns01 = dns01?;
        config.platform_domain = dns01
            .as_ref()
            .and_then(|d| d.platform.as_ref())
            .map(|p| p.domain.clone());
        config.acme_dns_zone = dns01.map(|d| d.zone);
        config.webhooks = webhooks?;
        config.master_key = Some(key?);
        Some(config)
    }

    /// Everything `landlord worker` needs; `None` after recording its problems.
    fn worker_config(
        &self,
        p: &mut Problems,
        master_key: Option<MasterKey>,
        localhost_is_ours: bool,
    ) -> Option<WorkerConfig> {
        let lease = Duration::from_secs(self.worker_lease_seconds.max(5));
        let cname_target = p.take(self.cname_target());
        let edge_ips = p.take(self.edge_ips());
        let servers = p.take(self.dns_servers());
        let issuer = p.take(self.issuer());
        let budgets = p.take(self.budgets());
        let dns_deadline = p.take(self.dns_deadline(lease));
        let event_retention = p.take(duration(&self.event_retention, "LANDLORD_EVENT_RETENTION"));
        let dns01 = p.take(self.dns01());
        let edge_sync = p.take(duration(
            &self.edge_sync_timeout,
            "LANDLORD_EDGE_SYNC_TIMEOUT",
        ));
        let compress_wait = p.take(duration(
            &self.deploy_compress_wait,
            "LANDLORD_DEPLOY_COMPRESS_WAIT",
        ));
        let events_per_domain = p.take(positive(
            self.events_per_domain,
            "LANDLORD_EVENTS_PER_DOMAIN",
        ));
        Some(WorkerConfig {
            dns: DnsConfig {
                cname_target: cname_target?,
                edge_ips: edge_ips?,
                servers: servers?,
                caa_identities: self.caa_identities(),
                localhost_is_ours,
            },
            issuer: issuer?,
            master_key: master_key?,
            concurrency: self.worker_concurrency.max(1),
            compression_concurrency: self.compression_concurrency.max(1),
            compress_wait: compress_wait?,
            edge_sync_timeout: edge_sync?,
            dns01: dns01?,
            lease,
            recheck_active: Duration::from_secs(self.recheck_active_seconds.max(1)),
            moved_after: self.moved_after.max(1),
            renew_before: self.renew_before_seconds.map(Duration::from_secs),
            budgets: budgets?,
            change_retention: Duration::from_secs(self.change_retention_seconds.max(60)),
            dns_deadline: dns_deadline?,
            event_retention: event_retention?,
            events_per_domain: events_per_domain?,
        })
    }

    /// Everything `landlord edge` needs; `None` after recording its problems.
    fn edge_config(
        &self,
        p: &mut Problems,
        key: Option<MasterKey>,
        limits: Option<Limits>,
    ) -> Option<EdgeConfig> {
        let [cert, file, miss] = [
            (self.edge_cert_cache_bytes, "LANDLORD_EDGE_CERT_CACHE_BYTES"),
            (self.edge_file_cache_bytes, "LANDLORD_EDGE_FILE_CACHE_BYTES"),
            (self.edge_miss_cache_bytes, "LANDLORD_EDGE_MISS_CACHE_BYTES"),
        ]
        .map(|(bytes, name)| p.take(positive(bytes, name)));
        let db = p.take(positive(
            self.edge_db_concurrency,
            "LANDLORD_EDGE_DB_CONCURRENCY",
        ));
        let platform = p.take(self.platform_domain_name());
        let proxy = p.take(self.proxy_policy());
        let access_log = p.take(landlord_edge::access::Sampling::parse(&self.access_log));
        let poll = p.take(duration(
            &self.edge_poll_interval,
            "LANDLORD_EDGE_POLL_INTERVAL",
        ));
        let mut config = EdgeConfig::new(key?);
        config.platform_domain = platform?;
        config.poll_interval = poll?.max(Duration::from_millis(50));
        if let Some(name) = self.edge_name.as_deref().filter(|n| !n.trim().is_empty()) {
            config.name = name.trim().to_owned();
        }
        config.region = self.edge_region.trim().to_owned();
        config.https_port = self.https_addr().port();
        config.cert_cache_bytes = cert?;
        config.file_cache_bytes = file?;
        config.miss_cache_bytes = miss?;
        config.db_concurrency = db?;
        config.limits = limits?;
        config.limits.proxy = proxy?;
        config.access_log = access_log?;
        config.metrics_tenants = self.metrics_tenants;
        config.hsts = match self.hsts.trim() {
            "" | "off" => None,
            v => Some(v.to_owned()),
        };
        Some(config)
    }

    /// How webhooks are delivered.
    fn webhook_settings(&self) -> Checked<landlord_api::delivery::WebhookSettings> {
        let allow_private = match self.webhook_allow_private.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" | "" => false,
            other => {
                return Err(format!(
                    "LANDLORD_WEBHOOK_ALLOW_PRIVATE must be true or false, not \"{other}\""
                ));
            }
        };
        let retry_schedule = self
            .webhook_retry_schedule
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| duration(s, "LANDLORD_WEBHOOK_RETRY_SCHEDULE"))
            .collect::<Result<Vec<_>, _>>()?;
        if retry_schedule.len() > 20 {
            return Err("LANDLORD_WEBHOOK_RETRY_SCHEDULE: at most 20 retries".into());
        }
        Ok(landlord_api::delivery::WebhookSettings {
            allow_private,
            timeout: duration(&self.webhook_timeout, "LANDLORD_WEBHOOK_TIMEOUT")?,
            retry_schedule,
            retention: duration(&self.webhook_retention, "LANDLORD_WEBHOOK_RETENTION")?,
            ..Default::default()
        })
    }

    /// PROXY protocol on the edge listeners: `None` when off.
    fn proxy_policy(&self) -> Checked<Option<landlord_edge::listen::ProxyPolicy>> {
        let trusted = list(&self.proxy_trusted)
            .map(|raw| {
                raw.parse::<ipnet::IpNet>()
                    .or_else(|_| raw.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        format!(
                            "LANDLORD_PROXY_TRUSTED: \"{raw}\" is not an IP address or CIDR block"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        match self.proxy_protocol.trim() {
            "" | "off" => Ok(None),
            "v2" if trusted.is_empty() => Err(
                "LANDLORD_PROXY_PROTOCOL=v2 needs LANDLORD_PROXY_TRUSTED: the load balancers' addresses or CIDR blocks (anyone else could claim any client address)".into(),
            ),
            "v2" => Ok(Some(landlord_edge::listen::ProxyPolicy { trusted })),
            other => Err(format!(
                "LANDLORD_PROXY_PROTOCOL must be v2 or off, not \"{other}\" (PROXY protocol v1, the text form, is not read)"
            )),
        }
    }

    /// The listeners' caps and timeouts.
    fn limits(&self) -> Checked<Limits> {
        let mut problems = Problems::default();
        let mut d = |raw: &str, name: &str| problems.take(duration(raw, name)).unwrap_or_default();
        let mut limits = Limits {
            header_read_timeout: d(&self.header_read_timeout, "LANDLORD_HEADER_READ_TIMEOUT"),
            idle_timeout: d(&self.idle_timeout, "LANDLORD_IDLE_TIMEOUT"),
            request_timeout: d(&self.request_timeout, "LANDLORD_REQUEST_TIMEOUT"),
            handshake_timeout: d(
                &self.tls_handshake_timeout,
                "LANDLORD_TLS_HANDSHAKE_TIMEOUT",
            ),
            h2_keepalive_interval: d(
                &self.h2_keepalive_interval,
                "LANDLORD_H2_KEEPALIVE_INTERVAL",
            ),
            h2_keepalive_timeout: d(&self.h2_keepalive_timeout, "LANDLORD_H2_KEEPALIVE_TIMEOUT"),
            ..Limits::default()
        };
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
            *setting = problems.take(positive(value, name)).unwrap_or(1);
        }
        if limits.max_connections_per_ip > limits.max_connections {
            problems.0.push(format!(
                "LANDLORD_MAX_CONNECTIONS_PER_IP ({}) is above LANDLORD_MAX_CONNECTIONS ({})",
                limits.max_connections_per_ip, limits.max_connections
            ));
        }
        match problems.0.is_empty() {
            true => Ok(limits),
            false => Err(problems.0.join("; ")),
        }
    }

    fn issuer(&self) -> Checked<IssuerConfig> {
        match self.issuer.as_deref().unwrap_or("acme") {
            "acme" => {
                if let Some(path) = &self.acme_ca_roots
                    && !path.is_file()
                {
                    return Err(format!(
                        "LANDLORD_ACME_CA_ROOTS: {} is not a readable file",
                        path.display()
                    ));
                }
                Ok(IssuerConfig::Acme(AcmeConfig {
                    directory_url: self.acme_directory.clone(),
                    extra_roots: self.acme_ca_roots.clone(),
                    contact: self.acme_contact.clone().filter(|c| !c.is_empty()),
                }))
            }
            "local" => Ok(IssuerConfig::Local {
                validity: Duration::from_secs(60 * self.local_cert_minutes),
            }),
            other => Err(format!(
                "LANDLORD_ISSUER must be \"acme\" or \"local\", not \"{other}\""
            )),
        }
    }

    fn caa_identities(&self) -> Vec<String> {
        let mut caa: Vec<String> = self
            .acme_caa_identities
            .iter()
            .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        if caa.is_empty() {
            caa.push("letsencrypt.org".into());
        }
        caa
    }

    fn dns_deadline(&self, lease: Duration) -> Checked<Duration> {
        let Some(raw) = &self.dns_deadline else {
            return Ok(DEFAULT_DNS_DEADLINE.min(lease / 3));
        };
        let d = duration(raw, "LANDLORD_DNS_DEADLINE")?;
        if d > lease / 2 {
            return Err(format!(
                "LANDLORD_DNS_DEADLINE ({raw}) must be at most half the lease (LANDLORD_WORKER_LEASE_SECONDS={})",
                lease.as_secs()
            ));
        }
        Ok(d)
    }

    /// The CA budgets: Let's Encrypt's limits unless configured.
    fn budgets(&self) -> Checked<Budgets> {
        Ok(Budgets {
            orders_per_account: budget(&self.ca_budget_orders, "LANDLORD_CA_BUDGET_ORDERS")?,
            certificates_per_registered_domain: budget(
                &self.ca_budget_registered_domain,
                "LANDLORD_CA_BUDGET_REGISTERED_DOMAIN",
            )?,
            failed_validations_per_hostname: budget(
                &self.ca_budget_failed_validations,
                "LANDLORD_CA_BUDGET_FAILED_VALIDATIONS",
            )?,
            tenant_share_percent: parse_percent(&self.ca_budget_tenant_share)
                .map_err(|e| format!("LANDLORD_CA_BUDGET_TENANT_SHARE: {e}"))?,
        })
    }

    /// `LANDLORD_DNS_SERVERS`, parsed (`ip` means port 53).
    fn dns_servers(&self) -> Checked<Vec<SocketAddr>> {
        list(&self.dns_servers)
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| format!("LANDLORD_DNS_SERVERS: \"{s}\" is not ip or ip:port"))
            })
            .collect()
    }

    /// DNS-01 through RFC 2136, when the update server, its key and the challenge zone are
    /// all set (some without the others is a mistake worth stopping for).
    fn dns01(&self) -> Checked<Option<landlord_worker::Dns01>> {
        fn set(v: Option<&str>) -> Option<&str> {
            v.map(str::trim).filter(|s| !s.is_empty())
        }
        let server = set(self.dns_update_server.as_deref());
        let tsig = set(self.dns_update_tsig.as_ref().map(|s| s.expose_secret()));
        let zone = set(self.acme_dns_zone.as_deref());
        let (server, tsig, zone) = match (server, tsig, zone) {
            (None, None, None) => {
                return match self.platform_domain_name()? {
                    Some(_) => Err("LANDLORD_PLATFORM_DOMAIN needs DNS-01 (LANDLORD_DNS_UPDATE_SERVER, LANDLORD_DNS_UPDATE_TSIG, LANDLORD_ACME_DNS_ZONE): its wildcard certificate is obtained through it".into()),
                    None => Ok(None),
                };
            }
            (Some(server), Some(tsig), Some(zone)) => (server, tsig, zone),
            _ => {
                return Err("DNS-01 needs LANDLORD_DNS_UPDATE_SERVER, LANDLORD_DNS_UPDATE_TSIG and LANDLORD_ACME_DNS_ZONE together (some are set, some are not)".into());
            }
        };
        let addr = |name: &str, s: &str| {
            s.parse::<SocketAddr>()
                .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| format!("{name}: \"{s}\" is not ip or ip:port"))
        };
        let server = addr("LANDLORD_DNS_UPDATE_SERVER", server)?;
        let key: landlord_worker::dns::update::TsigKey = tsig
            .parse()
            .map_err(|e| format!("LANDLORD_DNS_UPDATE_TSIG: {e}"))?;
        let zone = concrete("LANDLORD_ACME_DNS_ZONE", zone)?;
        let check = list(&self.dns_update_check_servers)
            .map(|s| addr("LANDLORD_DNS_UPDATE_CHECK_SERVERS", s))
            .collect::<Checked<Vec<_>>>()?;
        let updater = landlord_worker::dns::update::DnsUpdater::new(
            server,
            &key,
            check,
            Duration::from_secs(3),
        )
        .map_err(|e| format!("LANDLORD_DNS_UPDATE_TSIG: {e}"))?;
        let platform = self
            .platform_domain()?
            .map(|domain| {
                let zone = match set(self.platform_dns_zone.as_deref()) {
                    Some(z) => concrete("LANDLORD_PLATFORM_DNS_ZONE", z)?,
                    None => domain.clone(),
                };
                match domain.is_within(zone.as_str()) {
                    true => Ok(landlord_worker::PlatformDomain { domain, zone }),
                    false => Err(format!(
                        "LANDLORD_PLATFORM_DNS_ZONE: {domain} is not in the zone {zone}"
                    )),
                }
            })
            .transpose()?;
        Ok(Some(landlord_worker::Dns01 {
            updater,
            zone,
            platform,
            propagation_timeout: duration(
                &self.dns_propagation_timeout,
                "LANDLORD_DNS_PROPAGATION_TIMEOUT",
            )?,
        }))
    }

    /// `LANDLORD_PLATFORM_DOMAIN` as the edge needs it (the name alone).
    fn platform_domain_name(&self) -> Checked<Option<Hostname>> {
        self.platform_domain
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|raw| concrete("LANDLORD_PLATFORM_DOMAIN", raw))
            .transpose()
    }

    /// `LANDLORD_PLATFORM_DOMAIN`, checked against the per-domain targets' namespace
    /// (slugs and target labels must never name the same host).
    fn platform_domain(&self) -> Checked<Option<Hostname>> {
        let Some(domain) = self.platform_domain_name()? else {
            return Ok(None);
        };
        let target = self.cname_target()?;
        if domain.is_within(target.as_str()) || target.is_within(domain.as_str()) {
            return Err(format!(
                "LANDLORD_PLATFORM_DOMAIN ({domain}) and LANDLORD_CNAME_TARGET ({target}) must not contain each other: site slugs and per-domain target labels would share names"
            ));
        }
        Ok(Some(domain))
    }

    fn cname_target(&self) -> Checked<Hostname> {
        let raw = self
            .cname_target
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(
                "LANDLORD_CNAME_TARGET is not set (the hostname tenants point their CNAME at)",
            )?;
        concrete("LANDLORD_CNAME_TARGET", raw)
    }

    fn edge_ips(&self) -> Checked<Vec<IpAddr>> {
        list(&self.edge_ips)
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("LANDLORD_EDGE_IPS: \"{s}\" is not an IP address"))
            })
            .collect()
    }

    /// The 32-byte master key, decoded and checked, with the previous one during a
    /// rotation.
    pub fn master_key(&self) -> Checked<MasterKey> {
        let raw = self.master_key.as_ref().ok_or(
            "LANDLORD_MASTER_KEY is not set (base64 of 32 random bytes: `openssl rand -base64 32`)",
        )?;
        let current = key_bytes(raw, "LANDLORD_MASTER_KEY")?;
        let key = MasterKey::new(current);
        match &self.master_key_previous {
            None => Ok(key),
            Some(raw) => {
                let previous = key_bytes(raw, "LANDLORD_MASTER_KEY_PREVIOUS")?;
                if previous == current {
                    return Err("LANDLORD_MASTER_KEY_PREVIOUS is the same key as LANDLORD_MASTER_KEY: set the new key as LANDLORD_MASTER_KEY and the old one as LANDLORD_MASTER_KEY_PREVIOUS".into());
                }
                Ok(key.with_previous(previous))
            }
        }
    }

    /// What one deploy archive may be.
    fn deploy_limits(&self) -> Checked<landlord_api::DeployLimits> {
        Ok(landlord_api::DeployLimits {
            max_upload_bytes: positive(
                self.deploy_max_upload_bytes,
                "LANDLORD_DEPLOY_MAX_UPLOAD_BYTES",
            )?,
            max_expanded_bytes: positive(
                self.deploy_max_expanded_bytes,
                "LANDLORD_DEPLOY_MAX_EXPANDED_BYTES",
            )?,
            max_ratio: positive(self.deploy_max_ratio, "LANDLORD_DEPLOY_MAX_RATIO")?,
            timeout: duration(&self.deploy_timeout, "LANDLORD_DEPLOY_TIMEOUT")?,
            concurrency: positive(self.deploy_concurrency, "LANDLORD_DEPLOY_CONCURRENCY")?,
        })
    }

    /// What one tenant may hold.
    fn tenant_limits(&self) -> Checked<TenantLimits> {
        Ok(TenantLimits {
            max_file_bytes: positive(self.max_file_bytes, "LANDLORD_MAX_FILE_BYTES")?,
            quota_bytes: positive(self.tenant_quota_bytes, "LANDLORD_TENANT_QUOTA_BYTES")?,
            max_files: positive(self.tenant_max_files, "LANDLORD_TENANT_MAX_FILES")?,
            max_domains: positive(self.tenant_max_domains, "LANDLORD_TENANT_MAX_DOMAINS")?,
            max_sites: positive(self.tenant_max_sites, "LANDLORD_TENANT_MAX_SITES")?,
            max_api_keys: positive(self.tenant_max_api_keys, "LANDLORD_TENANT_MAX_API_KEYS")?,
            max_webhooks: positive(self.tenant_max_webhooks, "LANDLORD_TENANT_MAX_WEBHOOKS")?,
            kept_deployments: positive(self.kept_deployments, "LANDLORD_KEPT_DEPLOYMENTS")?,
        })
    }

    /// Which hostnames tenants may register.
    fn hostname_policy(&self) -> Checked<HostnamePolicy> {
        let reserved = list(&self.reserved_hostnames)
            .map(|s| {
                Hostname::parse(s).map_err(|e| format!("LANDLORD_RESERVED_HOSTNAMES: \"{s}\": {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HostnamePolicy {
            extra_suffixes: list(&self.extra_suffixes)
                .map(landlord_store::normalise_suffix)
                .filter(|s| !s.is_empty())
                .collect(),
            reserved,
            platform_domain: self.cname_target()?.registrable_domain().to_owned(),
            platform_subdomains: self.platform_domain()?.map(|d| d.to_string()),
        })
    }
}

/// A hostname setting that names one host or zone (not a wildcard).
fn concrete(name: &str, raw: &str) -> Checked<Hostname> {
    let h = Hostname::parse(raw.trim_end_matches('.'))
        .map_err(|e| format!("{name} is invalid: {e}"))?;
    match h.is_wildcard() {
        true => Err(format!(
            "{name} is invalid: \"{h}\" is a wildcard; name the domain itself"
        )),
        false => Ok(h),
    }
}

/// The non-empty, trimmed items of a comma-separated setting.
fn list(items: &[String]) -> impl Iterator<Item = &str> {
    items.iter().map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// A count or size that must be above zero.
fn positive<T: Copy + PartialOrd + Default>(value: T, name: &str) -> Checked<T> {
    match value > T::default() {
        true => Ok(value),
        false => Err(format!("{name} must be above zero")),
    }
}

fn duration(raw: &str, name: &str) -> Checked<Duration> {
    parse_duration(raw).map_err(|e| format!("{name}: {e}"))
}

fn budget(raw: &str, name: &str) -> Checked<Option<Budget>> {
    Budget::parse(raw).map_err(|e| format!("{name}: {e}"))
}

/// A duration setting: `250ms`, `10s`, `5m`, `1h`, `7d`, or a bare number of seconds
/// (`1.5`).
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

/// A percentage: `50`, `50%`; `12.5 %` is refused (whole percents, 1 to 100).
fn parse_percent(raw: &str) -> Result<u8, String> {
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

/// A master key setting: base64 of 32 bytes.
fn key_bytes(raw: &SecretString, setting: &str) -> Checked<[u8; 32]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.expose_secret().trim())
        .map_err(|_| format!("{setting} is not valid base64"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "{setting} must decode to 32 bytes, not {} (`openssl rand -base64 32`)",
            bytes.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    fn defaults() -> Settings {
        Cli::parse_from(["landlord"]).settings
    }

    /// DNS-01 is on with all three settings, off with none, and a mistake with some.
    #[test]
    fn dns01_settings_come_together() {
        assert!(defaults().dns01().unwrap().is_none());
        let with = |args: &[&str]| {
            let mut all = vec!["landlord"];
            all.extend_from_slice(args);
            Cli::parse_from(all).settings.dns01()
        };
        let key = "--dns-update-tsig=landlord:hmac-sha256:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0";
        let on = with(&[
            "--dns-update-server=127.0.0.1:5353",
            key,
            "--acme-dns-zone=acme.example.net.",
        ])
        .unwrap()
        .expect("configured");
        assert_eq!(on.zone.as_str(), "acme.example.net");
        assert_eq!(on.delegation_target("ab12"), "ab12.acme.example.net");
        let partial = with(&["--acme-dns-zone=acme.example.net"]).unwrap_err();
        assert!(partial.contains("LANDLORD_DNS_UPDATE_SERVER"), "{partial}");
        let bad = with(&[
            "--dns-update-server=nowhere",
            key,
            "--acme-dns-zone=a.example",
        ])
        .unwrap_err();
        assert!(bad.contains("not ip or ip:port"), "{bad}");
        let weak = with(&[
            "--dns-update-server=127.0.0.1",
            "--dns-update-tsig=k:hmac-md5:c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
            "--acme-dns-zone=a.example",
        ])
        .unwrap_err();
        assert!(weak.contains("hmac-sha256"), "{weak}");
    }

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

    /// The defaults `--help` shows are the libraries' defaults.
    #[test]
    fn help_defaults_are_the_library_defaults() {
        let s = defaults();
        assert_eq!(s.limits().unwrap(), Limits::default());
        assert_eq!(s.budgets().unwrap(), Budgets::default());
        assert_eq!(s.tenant_limits().unwrap(), TenantLimits::default());
        assert_eq!(
            budget(&s.tenant_api_rate, "rate").unwrap(),
            Some(landlord_api::DEFAULT_API_RATE)
        );
        assert_eq!(
            duration(&s.check_now_interval, "x").unwrap(),
            landlord_api::DEFAULT_CHECK_INTERVAL
        );
    }

    #[test]
    fn every_problem_is_reported_together() {
        let mut s = defaults();
        s.database_url = Some("postgres://127.0.0.1:1/x".into());
        s.idle_timeout = "soon".into();
        s.max_connections = 0;
        s.ca_budget_orders = "lots".into();
        let roles = Roles {
            api: false,
            worker: true,
            edge: true,
        };
        let Err(Fatal::Config(message)) = Config::build(&s, roles, false) else {
            panic!("invalid settings accepted")
        };
        for name in [
            "LANDLORD_IDLE_TIMEOUT",
            "LANDLORD_MAX_CONNECTIONS",
            "LANDLORD_CA_BUDGET_ORDERS",
            "LANDLORD_CNAME_TARGET",
            "LANDLORD_MASTER_KEY",
        ] {
            assert!(message.contains(name), "{name} missing from {message}");
        }
        assert!(!message.contains('\n'));
    }

    #[test]
    fn secrets_never_print() {
        let mut s = defaults();
        s.database_url = Some("postgres://u:hunter2@db/x".into());
        s.master_key = Some("c2VjcmV0LWtleQ==".into());
        s.admin_token = Some("admin-s3cret".into());
        let shown = format!("{s:?}");
        for secret in ["hunter2", "c2VjcmV0LWtleQ==", "admin-s3cret"] {
            assert!(!shown.contains(secret), "{secret} printed");
        }
    }
}
