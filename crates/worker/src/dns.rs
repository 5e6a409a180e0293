//! DNS verification: does a hostname point at us, and may our CA issue for it?
//!
//! A hostname points at us when its CNAME chain reaches the configured target, or when
//! every A/AAAA answer is one of our edge addresses (one stray address means the CA may
//! validate against someone else's server). The resolver runs with its cache off so a
//! record the tenant just fixed is seen on the next check.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub cname_target: String,
    pub edge_ips: Vec<IpAddr>,
    /// Resolvers to ask; empty means the system's.
    pub servers: Vec<SocketAddr>,
    /// CAA issuer domains that identify our CA.
    pub caa_identities: Vec<String>,
    /// `landlord dev`: names under `.localhost` resolve to loopback (RFC 6761) and count
    /// as pointed at us.
    pub localhost_is_ours: bool,
}

/// What one registration's DNS must show.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// Its own CNAME target, `<label>.<LANDLORD_CNAME_TARGET>`.
    pub own_target: &'a str,
    /// Registered before per-domain targets: the bare shared target verifies it too.
    pub shared_ok: bool,
    /// The TXT value that proves control of a name pointed with A/AAAA records at our
    /// addresses; `None` once proved (the record may then go).
    pub ownership: Option<&'a str>,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Points at us and CAA allows our CA. `found` is what DNS answered;
    /// `ownership_proved` when this check found the TXT proof.
    Pointed {
        found: Value,
        ownership_proved: bool,
    },
    /// Does not point at us (or CAA forbids us); `problem` is written for the tenant.
    NotPointed { found: Value, problem: String },
    /// Timeout, SERVFAIL, network trouble: say nothing new to the tenant, retry soon.
    Transient(String),
    /// The check hit one of its bounds (the round's DNS deadline, the CAA climb's label
    /// limit): retry later, and tell the tenant in plain words (never a silent pass).
    TooSlow(String),
}

/// Names climbed for CAA at most (RFC 8659 climbs label by label towards the root; all
/// of them are asked at once, so the climb takes one lookup's time, not one per label).
pub const MAX_CAA_NAMES: usize = 10;

pub struct DnsChecker {
    resolver: TokioResolver,
    config: DnsConfig,
}

impl DnsChecker {
    pub fn new(config: DnsConfig) -> anyhow::Result<Self> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if config.servers.is_empty() {
            TokioResolver::builder(provider)?
        } else {
            let servers = config
                .servers
                .iter()
                .map(|addr| {
                    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                    for c in &mut ns.connections {
                        c.port = addr.port();
                    }
                    ns
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
        };
        let opts = builder.options_mut();
        opts.cache_size = 0;
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 2;
        opts.ndots = 0;
        opts.preserve_intermediates = true;
        Ok(Self {
            resolver: builder.build()?,
            config,
        })
    }

    pub async fn check(&self, hostname: &str, expect: Expect<'_>) -> Verdict {
        let shared = self.config.cname_target.as_str();
        let target = expect.own_target;
        if self.config.localhost_is_ours
            && (hostname == "localhost" || hostname.ends_with(".localhost"))
        {
            return Verdict::Pointed {
                found: json!({ "localhost": "resolves to loopback (RFC 6761)" }),
                ownership_proved: false,
            };
        }
        // The CNAME query too: a CNAME whose target has no address yields no A answer
        // from some servers, and the tenant must hear about the CNAME.
        let (cname, a, aaaa) = tokio::join!(
            self.records(hostname, RecordType::CNAME),
            self.records(hostname, RecordType::A),
            self.records(hostname, RecordType::AAAA)
        );
        let (cname, a, aaaa) = match (cname, a, aaaa) {
            (Ok(c), Ok(a), Ok(aaaa)) => (c, a, aaaa),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Verdict::Transient(e),
        };
        let mut cnames: Vec<String> = Vec::new();
        let mut addresses: Vec<IpAddr> = Vec::new();
        for rdata in cname.iter().chain(a.iter()).chain(aaaa.iter()) {
            match rdata {
                RData::CNAME(c) => {
                    let t = normalise(&c.0.to_ascii());
                    if !cnames.contains(&t) {
                        cnames.push(t);
                    }
                }
                RData::A(ip) => addresses.push(IpAddr::V4(ip.0)),
                RData::AAAA(ip) => addresses.push(IpAddr::V6(ip.0)),
                _ => {}
            }
        }
        addresses.dedup();
        // Private and loopback addresses of a name not pointed at us are nobody's business
        // but the network's: they are counted, never shown.
        let edge_ips = &self.config.edge_ips;
        let shown: Vec<IpAddr> = addresses
            .iter()
            .filter(|ip| edge_ips.contains(ip) || !is_internal(ip))
            .copied()
            .collect();
        let mut found = json!({
            "cname": cnames,
            "a": shown.iter().filter(|ip| ip.is_ipv4()).map(ToString::to_string).collect::<Vec<_>>(),
            "aaaa": shown.iter().filter(|ip| ip.is_ipv6()).map(ToString::to_string).collect::<Vec<_>>(),
        });
        let hidden = addresses.len() - shown.len();
        if hidden > 0 {
            found["private_addresses"] = json!(hidden);
        }
        let not_pointed = |problem: String| Verdict::NotPointed {
            found: found.clone(),
            problem,
        };
        let ours = self.ours();

        let mut ownership_proved = false;
        if cnames.iter().any(|c| c == target)
            || (expect.shared_ok && cnames.iter().any(|c| c == shared))
        {
            // pointed by CNAME, at this registration's own target
        } else if let Some(other) = cnames
            .iter()
            .find(|c| *c == shared || c.ends_with(&format!(".{shared}")))
        {
            // Another registration's target (e.g. a record left behind by a deleted one),
            // or the bare shared one: never proof for this registration.
            return not_pointed(format!(
                "{hostname} is a CNAME to {other}, which is not this domain's target: every domain has its own. Point it at {target}."
            ));
        } else if let Some(first) = cnames.first() {
            return not_pointed(format!(
                "{hostname} is a CNAME to {first}, not to {target}."
            ));
        } else if addresses.is_empty() {
            return not_pointed(format!(
                "{hostname} has no DNS record yet. Create a CNAME record pointing to {target}{}.",
                if ours.is_empty() {
                    String::new()
                } else {
                    format!(" (or A/AAAA records to {ours})")
                }
            ));
        } else if self.config.edge_ips.is_empty() {
            return not_pointed(format!(
                "{hostname} has address records ({}), but it must be a CNAME to {target}.",
                describe(&addresses, edge_ips)
            ));
        } else {
            let stray: Vec<IpAddr> = addresses
                .iter()
                .filter(|ip| !self.config.edge_ips.contains(ip))
                .copied()
                .collect();
            if stray.len() == addresses.len() {
                return not_pointed(format!(
                    "{hostname} points to {}, which is not one of our addresses ({ours}). \
                     Create a CNAME record pointing to {target} instead.",
                    describe(&stray, edge_ips)
                ));
            } else if !stray.is_empty() {
                let kind = if stray[0].is_ipv4() { "A" } else { "AAAA" };
                return not_pointed(format!(
                    "The {kind} record {} is not one of our addresses ({ours}). Remove it.",
                    describe(&stray, edge_ips)
                ));
            }
        }
        // Pointed with A/AAAA records at our addresses: anyone could point anyone's name
        // at us that way, so the first certificate waits for the TXT proof.
        if cnames.is_empty()
            && let Some(token) = expect.ownership
        {
            let name = landlord_store::ownership_record_name(hostname);
            let values = match self.txt(&name).await {
                Ok(v) => v,
                Err(e) => return Verdict::Transient(e),
            };
            if !values.iter().any(|v| v == token) {
                return not_pointed(format!(
                    "{hostname} points at our addresses. To prove it is yours, add a TXT record {name} with the value {token} (it can go once the domain is active), or use a CNAME to {target} instead."
                ));
            }
            ownership_proved = true;
        }
        match self.caa_problem(hostname).await {
            Ok(None) => Verdict::Pointed {
                found,
                ownership_proved,
            },
            Ok(Some(problem)) => not_pointed(problem),
            Err(CaaError::Lookup(e)) => Verdict::Transient(e),
            Err(CaaError::TooDeep(n)) => Verdict::TooSlow(format!(
                "{hostname} is {n} labels below its top-level domain; Landlord checks CAA records for at most {MAX_CAA_NAMES} names per hostname, so it cannot confirm the CA may issue. Use a hostname with fewer labels."
            )),
        }
    }

    /// RFC 8659: the first non-empty CAA set climbing from the name towards the root
    /// decides. `None` when our CA may issue. Every name of the climb is asked at once.
    async fn caa_problem(&self, hostname: &str) -> Result<Option<String>, CaaError> {
        let labels: Vec<&str> = hostname.split('.').collect();
        let names: Vec<String> = (0..labels.len().saturating_sub(1))
            .map(|i| labels[i..].join("."))
            .collect();
        if names.len() > MAX_CAA_NAMES {
            return Err(CaaError::TooDeep(names.len()));
        }
        let answers =
            futures::future::join_all(names.iter().map(|name| self.records(name, RecordType::CAA)))
                .await;
        for (name, records) in names.iter().zip(answers) {
            let records = records.map_err(CaaError::Lookup)?;
            let issuers: Vec<String> = records
                .iter()
                .filter_map(|r| match r {
                    RData::CAA(caa) if caa.tag.eq_ignore_ascii_case("issue") => Some(
                        caa.value_as_issue()
                            .ok()
                            .and_then(|(name, _)| name)
                            .map(|n| normalise(&n.to_ascii()))
                            .unwrap_or_else(|| ";".to_owned()),
                    ),
                    _ => None,
                })
                .collect();
            if records.iter().all(|r| !matches!(r, RData::CAA(_))) {
                continue;
            }
            if issuers.is_empty()
                || issuers
                    .iter()
                    .any(|i| self.config.caa_identities.contains(i))
            {
                return Ok(None);
            }
            let allowed: Vec<&str> = issuers
                .iter()
                .map(String::as_str)
                .filter(|i| *i != ";")
                .collect();
            return Ok(Some(if allowed.is_empty() {
                format!(
                    "A CAA record on {name} forbids every certificate authority. Remove it or add `0 issue \"{}\"`.",
                    self.config
                        .caa_identities
                        .first()
                        .map(String::as_str)
                        .unwrap_or("letsencrypt.org")
                )
            } else {
                format!(
                    "A CAA record on {name} allows only {}. Add `0 issue \"{}\"` to it.",
                    allowed.join(", "),
                    self.config
                        .caa_identities
                        .first()
                        .map(String::as_str)
                        .unwrap_or("letsencrypt.org")
                )
            }));
        }
        Ok(None)
    }

    /// The TXT values at `name` (each record's strings joined).
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        Ok(self
            .records(name, RecordType::TXT)
            .await?
            .iter()
            .filter_map(|r| match r {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }

    /// The answer records of one query; an empty answer or NXDOMAIN is an empty list.
    async fn records(&self, name: &str, kind: RecordType) -> Result<Vec<RData>, String> {
        match self.resolver.lookup(format!("{name}."), kind).await {
            Ok(lookup) => Ok(lookup.answers().iter().map(|r| r.data.clone()).collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(format!(
                "The DNS lookup of {name} ({kind}) failed: {e}. Landlord retries automatically."
            )),
        }
    }

    fn ours(&self) -> String {
        join(&self.config.edge_ips)
    }
}

/// Why the CAA climb could not decide.
enum CaaError {
    /// A lookup failed (timeout, SERVFAIL): plain words for the tenant.
    Lookup(String),
    /// More names to climb than [`MAX_CAA_NAMES`].
    TooDeep(usize),
}

/// Loopback, private (RFC 1918, unique local), link-local, shared (CGNAT) or unspecified.
fn is_internal(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(&IpAddr::V4(v4)))
        }
    }
}

/// Addresses for a tenant's eyes: public ones listed, private ones only counted.
fn describe(ips: &[IpAddr], edge_ips: &[IpAddr]) -> String {
    let (internal, public): (Vec<IpAddr>, Vec<IpAddr>) = ips
        .iter()
        .partition(|ip| !edge_ips.contains(ip) && is_internal(ip));
    let mut parts = Vec::new();
    if !public.is_empty() {
        parts.push(join(&public));
    }
    match internal.len() {
        0 => {}
        1 => parts.push("a private or internal address".to_owned()),
        n => parts.push(format!("{n} private or internal addresses")),
    }
    parts.join(" and ")
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_counted_not_shown() {
        let ips: Vec<IpAddr> = [
            "10.1.2.3",
            "203.0.113.9",
            "127.0.0.1",
            "fd00::1",
            "100.64.0.1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(
            describe(&ips, &[]),
            "203.0.113.9 and 4 private or internal addresses"
        );
        let edge: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
        assert_eq!(
            describe(&ips[2..3], &edge),
            "127.0.0.1",
            "our own are ours to show"
        );
        assert!(!is_internal(&"8.8.8.8".parse().unwrap()));
        assert!(is_internal(&"::ffff:192.168.1.1".parse().unwrap()));
    }
}
