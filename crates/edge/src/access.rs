//! Access logs and per-tenant traffic counters for tenant pages (the HTTPS listener).
//!
//! - **Access log** (`LANDLORD_ACCESS_LOG`): off by default; `on` logs every request, a
//!   fraction such as `0.01` one request in 100 (every 100th, counted per edge process, so
//!   sampling costs one atomic add). One `INFO` event per request under the target
//!   `landlord::access`, a JSON line with `LANDLORD_LOG_FORMAT=json`: hostname, tenant,
//!   client address (the PROXY header's behind a balancer), method, path, status, bytes,
//!   duration, TLS and HTTP versions.
//! - **Counters** `landlord_tenant_requests_total{tenant}` and
//!   `landlord_tenant_response_bytes_total{tenant}`: the first `LANDLORD_METRICS_TENANTS`
//!   tenants an edge process serves get a label of their own, the rest share
//!   `tenant="other"`, so a platform with many tenants cannot blow up `/metrics`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use landlord_store::{Hostname, TenantId};

/// `LANDLORD_ACCESS_LOG`: which requests are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// Log one request in this many; 0: none.
    every: u64,
}

impl Sampling {
    pub const OFF: Sampling = Sampling { every: 0 };

    /// `off`, `on`, or a fraction in (0, 1].
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "" | "off" => Ok(Self::OFF),
            "on" => Ok(Sampling { every: 1 }),
            other => match other.parse::<f64>() {
                Ok(f) if f > 0.0 && f <= 1.0 => Ok(Sampling {
                    every: (1.0 / f).round().max(1.0) as u64,
                }),
                _ => Err(format!(
                    "LANDLORD_ACCESS_LOG must be off, on, or the fraction of requests to log (0 < f <= 1, such as 0.01), not \"{other}\""
                )),
            },
        }
    }
}

/// The tenant label of per-tenant counters, bounded in number.
pub const OTHER_TENANTS: &str = "other";

/// What the edge process keeps for access logs and counters.
pub struct Access {
    sampling: Sampling,
    seen: AtomicU64,
    max_labels: usize,
    labelled: Mutex<HashSet<TenantId>>,
}

impl Access {
    pub fn new(sampling: Sampling, max_labels: usize) -> Self {
        Self {
            sampling,
            seen: AtomicU64::new(0),
            max_labels,
            labelled: Mutex::default(),
        }
    }

    /// This tenant's counters (registered once per connection, so a request only adds).
    pub fn counters(&self, tenant: TenantId) -> TenantCounters {
        let label = {
            let mut labelled = self.labelled.lock().unwrap_or_else(|p| p.into_inner());
            if labelled.contains(&tenant) || labelled.len() < self.max_labels {
                labelled.insert(tenant);
                tenant.to_string()
            } else {
                OTHER_TENANTS.to_owned()
            }
        };
        TenantCounters {
            requests: metrics::counter!("landlord_tenant_requests_total", "tenant" => label.clone()),
            bytes: metrics::counter!("landlord_tenant_response_bytes_total", "tenant" => label),
        }
    }

    /// Whether to log the next request.
    pub fn sampled(&self) -> bool {
        let every = self.sampling.every;
        every != 0
            && self
                .seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(every)
    }
}

/// A tenant's counters, held by each of its connections.
pub struct TenantCounters {
    requests: metrics::Counter,
    bytes: metrics::Counter,
}

/// What one HTTPS connection knows about itself.
pub struct Peer {
    pub client: SocketAddr,
    /// `TLSv1.3` or `TLSv1.2`.
    pub tls: &'static str,
    pub counters: TenantCounters,
}

/// One answered request.
pub struct Entry<'a> {
    /// The SNI name (HTTPS) or the `Host` header (plain HTTP), when valid.
    pub host: Option<&'a Hostname>,
    pub tenant: Option<TenantId>,
    pub client: Option<SocketAddr>,
    /// `TLSv1.3`, `TLSv1.2`, or `-` on the plain-HTTP listener.
    pub tls: &'static str,
    pub method: &'a axum::http::Method,
    pub path: &'a str,
    pub version: axum::http::Version,
    pub status: u16,
    /// The response body's length (its exact size: every tenant page is in memory).
    pub bytes: u64,
    /// From the request head to the response head.
    pub duration: Duration,
}

impl Peer {
    /// Count a tenant-page request, and log it when `log`.
    pub fn record(&self, entry: Entry<'_>, log: bool) {
        self.counters.requests.increment(1);
        self.counters.bytes.increment(entry.bytes);
        if log {
            entry.log();
        }
    }
}

impl Entry<'_> {
    /// The access-log line.
    pub fn log(&self) {
        let path = self
            .path
            .get(..self.path.len().min(512))
            .unwrap_or(self.path);
        let host = self.host.map(Hostname::as_str).unwrap_or("-");
        let tenant = self
            .tenant
            .map(|t| t.to_string())
            .unwrap_or_else(|| "-".into());
        let client = self
            .client
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into());
        tracing::info!(
            target: "landlord::access",
            host,
            tenant,
            client,
            method = %self.method,
            path,
            status = self.status,
            bytes = self.bytes,
            duration_ms = self.duration.as_secs_f64() * 1000.0,
            tls = self.tls,
            http = ?self.version,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_off_on_or_one_in_n() {
        assert_eq!(Sampling::parse("off").unwrap(), Sampling::OFF);
        assert_eq!(Sampling::parse("").unwrap(), Sampling::OFF);
        let all = Access::new(Sampling::parse("on").unwrap(), 1);
        assert!((0..5).all(|_| all.sampled()));
        let some = Access::new(Sampling::parse("0.25").unwrap(), 1);
        assert_eq!((0..100).filter(|_| some.sampled()).count(), 25);
        let none = Access::new(Sampling::OFF, 1);
        assert!(!(0..5).any(|_| none.sampled()));
        for bad in ["0", "1.5", "-1", "sometimes"] {
            assert!(Sampling::parse(bad).is_err(), "{bad}");
        }
    }
}
