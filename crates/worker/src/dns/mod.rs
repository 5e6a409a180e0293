//! DNS verification: does a hostname point at us, and may our CA issue for it?
//!
//! A hostname points at us when its CNAME chain reaches the configured target, or when
//! every A/AAAA answer is one of our edge addresses (one stray address means the CA may
//! validate against someone else's server). The resolver runs with its cache off so a
//! record the tenant just fixed is seen on the next check. The deciding is pure, in
//! [`judge`]; this module asks DNS what the judge needs.

mod judge;
pub mod update;

pub use judge::{Answers, Caa, Judgement, Question, Records, judge};

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use landlord_store::Hostname;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub cname_target: Hostname,
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

/// A resolver asking `servers` (the system's when empty) with its cache off, so a record
/// the tenant just published or fixed is seen on the next lookup. The API's claim lookups
/// use one too (the binary builds it here), so both see DNS the same way.
pub fn resolver(servers: &[SocketAddr]) -> std::io::Result<TokioResolver> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if servers.is_empty() {
        TokioResolver::builder(provider).map_err(std::io::Error::other)?
    } else {
        let servers = servers
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
    builder.build().map_err(std::io::Error::other)
}

pub struct DnsChecker {
    resolver: TokioResolver,
    config: DnsConfig,
}

impl DnsChecker {
    pub fn new(config: DnsConfig) -> anyhow::Result<Self> {
        Ok(Self {
            resolver: resolver(&config.servers)?,
            config,
        })
    }

    /// Check `hostname`: ask DNS what [`judge`] needs, until it decides.
    pub async fn check(&self, hostname: &Hostname, expect: Expect<'_>) -> Verdict {
        let hostname = hostname.as_str();
        let mut answers = Answers::default();
        loop {
            match judge(hostname, &answers, expect, &self.config) {
                Judgement::Done(verdict) => return verdict,
                Judgement::Ask(Question::Addresses) => {
                    answers.addresses = Some(self.addresses(hostname).await);
                }
                Judgement::Ask(Question::Ownership(name)) => {
                    answers.ownership = Some(self.txt(&name).await);
                }
                Judgement::Ask(Question::Caa(names)) => {
                    answers.caa = Some(self.caa(&names).await);
                }
            }
        }
    }

    /// CNAME, A and AAAA at once. The CNAME query too: a CNAME whose target has no
    /// address yields no A answer from some servers, and the tenant must hear about it.
    async fn addresses(&self, hostname: &str) -> Result<Records, String> {
        let (cname, a, aaaa) = tokio::join!(
            self.records(hostname, RecordType::CNAME),
            self.records(hostname, RecordType::A),
            self.records(hostname, RecordType::AAAA)
        );
        let mut records = Records::default();
        for rdata in cname?.iter().chain(a?.iter()).chain(aaaa?.iter()) {
            match rdata {
                RData::CNAME(c) => {
                    let t = normalise(&c.0.to_ascii());
                    if !records.cnames.contains(&t) {
                        records.cnames.push(t);
                    }
                }
                RData::A(ip) => records.addresses.push(IpAddr::V4(ip.0)),
                RData::AAAA(ip) => records.addresses.push(IpAddr::V6(ip.0)),
                _ => {}
            }
        }
        records.addresses.dedup();
        Ok(records)
    }

    /// The CAA records of every name of the climb, asked at once.
    async fn caa(&self, names: &[String]) -> Vec<Result<Vec<Caa>, String>> {
        let answers =
            futures::future::join_all(names.iter().map(|name| self.records(name, RecordType::CAA)))
                .await;
        answers
            .into_iter()
            .map(|records| {
                Ok(records?
                    .iter()
                    .filter_map(|r| match r {
                        RData::CAA(caa) if caa.tag.eq_ignore_ascii_case("issue") => {
                            Some(Caa::Issue(
                                caa.value_as_issue()
                                    .ok()
                                    .and_then(|(name, _)| name)
                                    .map(|n| normalise(&n.to_ascii())),
                            ))
                        }
                        RData::CAA(_) => Some(Caa::Other),
                        _ => None,
                    })
                    .collect())
            })
            .collect()
    }

    /// The CNAME targets at `name` (lower case, no trailing dot).
    pub async fn cname_targets(&self, name: &str) -> Result<Vec<String>, String> {
        Ok(self
            .records(name, RecordType::CNAME)
            .await?
            .iter()
            .filter_map(|r| match r {
                RData::CNAME(c) => Some(normalise(&c.0.to_ascii())),
                _ => None,
            })
            .collect())
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
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}
