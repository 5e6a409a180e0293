//! Judging what DNS answered: pure, so every rule has a table test. The query step in
//! the parent module asks what [`judge`] needs until it decides.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::{DnsConfig, Expect, MAX_CAA_NAMES, Verdict};

/// What DNS answered so far: the query step's results, the judge's input. `None` is a
/// question not asked (yet); `Err` a lookup that failed (timeout, SERVFAIL), in plain
/// words for the tenant.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    pub addresses: Option<Result<Records, String>>,
    /// TXT values at the ownership record name.
    pub ownership: Option<Result<Vec<String>, String>>,
    /// The CAA records of each name of the climb, in the order asked.
    pub caa: Option<Vec<Result<Vec<Caa>, String>>>,
}

/// The CNAME chain and the addresses a hostname resolves to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    /// CNAME targets, normalised, in chain order.
    pub cnames: Vec<String>,
    pub addresses: Vec<IpAddr>,
}

/// One CAA record.
#[derive(Debug, Clone, PartialEq)]
pub enum Caa {
    /// `issue`: the CA's domain, `None` for `;` (no CA).
    Issue(Option<String>),
    /// Any other tag (`issuewild`, `iodef`…): makes the set non-empty, allows nobody.
    Other,
}

/// What the judge needs next, or its verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    Done(Verdict),
    Ask(Question),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Question {
    Addresses,
    /// The TXT record proving ownership (its name).
    Ownership(String),
    /// CAA on every name of the climb, closest first.
    Caa(Vec<String>),
}

/// Does `hostname` point at us, and may our CA issue for it? Pure: decides from
/// `answers`, or asks for what it is missing.
pub fn judge(
    hostname: &str,
    answers: &Answers,
    expect: Expect<'_>,
    config: &DnsConfig,
) -> Judgement {
    use Judgement::{Ask, Done};
    if config.localhost_is_ours && (hostname == "localhost" || hostname.ends_with(".localhost")) {
        return Done(Verdict::Pointed {
            found: json!({ "localhost": "resolves to loopback (RFC 6761)" }),
            ownership_proved: false,
        });
    }
    let records = match &answers.addresses {
        None => return Ask(Question::Addresses),
        Some(Err(e)) => return Done(Verdict::Transient(e.clone())),
        Some(Ok(records)) => records,
    };
    let found = found(records, &config.edge_ips);
    let not_pointed = |problem: String| {
        Done(Verdict::NotPointed {
            found: found.clone(),
            problem,
        })
    };
    if let Some(problem) = pointing_problem(hostname, records, expect, config) {
        return not_pointed(problem);
    }
    // Pointed with A/AAAA records at our addresses: anyone could point anyone's name at
    // us that way, so the first certificate waits for the TXT proof.
    let mut ownership_proved = false;
    if records.cnames.is_empty()
        && let Some(token) = expect.ownership
    {
        let name = landlord_store::ownership_record_name(hostname);
        match &answers.ownership {
            None => return Ask(Question::Ownership(name)),
            Some(Err(e)) => return Done(Verdict::Transient(e.clone())),
            Some(Ok(values)) if !values.iter().any(|v| v == token) => {
                return not_pointed(format!(
                    "{hostname} points at our addresses. To prove it is yours, add a TXT record {name} with the value {token} (it can go once the domain is active), or use a CNAME to {} instead.",
                    expect.own_target
                ));
            }
            Some(Ok(_)) => ownership_proved = true,
        }
    }
    let names = caa_names(hostname);
    if names.len() > MAX_CAA_NAMES {
        return Done(Verdict::TooSlow(format!(
            "{hostname} is {} labels below its top-level domain; Landlord checks CAA records for at most {MAX_CAA_NAMES} names per hostname, so it cannot confirm the CA may issue. Use a hostname with fewer labels.",
            names.len()
        )));
    }
    let Some(sets) = &answers.caa else {
        return Ask(Question::Caa(names));
    };
    match caa_problem(&names, sets, &config.caa_identities) {
        Err(e) => Done(Verdict::Transient(e)),
        Ok(Some(problem)) => not_pointed(problem),
        Ok(None) => Done(Verdict::Pointed {
            found,
            ownership_proved,
        }),
    }
}

/// What DNS answered, as the tenant sees it in `check.found`. Private and loopback
/// addresses of a name not pointed at us are nobody's business but the network's: they
/// are counted, never shown.
fn found(records: &Records, edge_ips: &[IpAddr]) -> Value {
    let shown: Vec<&IpAddr> = records
        .addresses
        .iter()
        .filter(|ip| edge_ips.contains(ip) || !is_internal(ip))
        .collect();
    let mut found = json!({
        "cname": records.cnames,
        "a": shown.iter().filter(|ip| ip.is_ipv4()).map(ToString::to_string).collect::<Vec<_>>(),
        "aaaa": shown.iter().filter(|ip| ip.is_ipv6()).map(ToString::to_string).collect::<Vec<_>>(),
    });
    let hidden = records.addresses.len() - shown.len();
    if hidden > 0 {
        found["private_addresses"] = json!(hidden);
    }
    found
}

/// Why the records do not point at this registration, in words for the tenant; `None`
/// when they do (its own CNAME target, or only our addresses).
fn pointing_problem(
    hostname: &str,
    records: &Records,
    expect: Expect<'_>,
    config: &DnsConfig,
) -> Option<String> {
    let (cnames, addresses) = (&records.cnames, &records.addresses);
    let shared = config.cname_target.as_str();
    let target = expect.own_target;
    let edge_ips = &config.edge_ips;
    let ours = join(edge_ips);
    if cnames.iter().any(|c| c == target)
        || (expect.shared_ok && cnames.iter().any(|c| c == shared))
    {
        return None;
    }
    if let Some(other) = cnames
        .iter()
        .find(|c| *c == shared || c.ends_with(&format!(".{shared}")))
    {
        // Another registration's target (e.g. a record left behind by a deleted one),
        // or the bare shared one: never proof for this registration.
        return Some(format!(
            "{hostname} is a CNAME to {other}, which is not this domain's target: every domain has its own. Point it at {target}."
        ));
    }
    if let Some(first) = cnames.first() {
        return Some(format!(
            "{hostname} is a CNAME to {first}, not to {target}."
        ));
    }
    if addresses.is_empty() {
        return Some(format!(
            "{hostname} has no DNS record yet. Create a CNAME record pointing to {target}{}.",
            if ours.is_empty() {
                String::new()
            } else {
                format!(" (or A/AAAA records to {ours})")
            }
        ));
    }
    if edge_ips.is_empty() {
        return Some(format!(
            "{hostname} has address records ({}), but it must be a CNAME to {target}.",
            describe(addresses, edge_ips)
        ));
    }
    let stray: Vec<IpAddr> = addresses
        .iter()
        .filter(|ip| !edge_ips.contains(ip))
        .copied()
        .collect();
    if stray.len() == addresses.len() {
        return Some(format!(
            "{hostname} points to {}, which is not one of our addresses ({ours}). \
             Create a CNAME record pointing to {target} instead.",
            describe(&stray, edge_ips)
        ));
    }
    if !stray.is_empty() {
        let kind = if stray[0].is_ipv4() { "A" } else { "AAAA" };
        return Some(format!(
            "The {kind} record {} is not one of our addresses ({ours}). Remove it.",
            describe(&stray, edge_ips)
        ));
    }
    None
}

/// The names RFC 8659 climbs for CAA: the hostname and each parent below the TLD.
fn caa_names(hostname: &str) -> Vec<String> {
    let labels: Vec<&str> = hostname.split('.').collect();
    (0..labels.len().saturating_sub(1))
        .map(|i| labels[i..].join("."))
        .collect()
}

/// RFC 8659: the first non-empty CAA set climbing from the name towards the root
/// decides. `None` when our CA may issue; a failed lookup before the deciding set is an
/// error (one after it does not matter).
fn caa_problem(
    names: &[String],
    sets: &[Result<Vec<Caa>, String>],
    identities: &[String],
) -> Result<Option<String>, String> {
    let mut deciding = None;
    for (name, set) in names.iter().zip(sets) {
        let set = set.as_ref().map_err(Clone::clone)?;
        if !set.is_empty() {
            deciding = Some((name, set));
            break;
        }
    }
    let Some((name, set)) = deciding else {
        return Ok(None);
    };
    let issuers: Vec<Option<&str>> = set
        .iter()
        .filter_map(|c| match c {
            Caa::Issue(i) => Some(i.as_deref()),
            Caa::Other => None,
        })
        .collect();
    if issuers.is_empty()
        || issuers
            .iter()
            .flatten()
            .any(|i| identities.iter().any(|o| o == i))
    {
        return Ok(None);
    }
    let ours = identities.first().map_or("letsencrypt.org", String::as_str);
    let allowed: Vec<&str> = issuers.into_iter().flatten().collect();
    Ok(Some(if allowed.is_empty() {
        format!(
            "A CAA record on {name} forbids every certificate authority. Remove it or add `0 issue \"{ours}\"`."
        )
    } else {
        format!(
            "A CAA record on {name} allows only {}. Add `0 issue \"{ours}\"` to it.",
            allowed.join(", ")
        )
    }))
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

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "status.example.com";
    const OWN: &str = "k3x9.edge.example.net";
    const TOKEN: &str = "landlord-verify=abc";

    fn config(edge_ips: &[&str]) -> DnsConfig {
        DnsConfig {
            cname_target: landlord_store::Hostname::parse("edge.example.net").unwrap(),
            edge_ips: edge_ips.iter().map(|s| s.parse().unwrap()).collect(),
            servers: vec![],
            caa_identities: vec!["letsencrypt.org".into()],
            localhost_is_ours: false,
        }
    }

    fn expect() -> Expect<'static> {
        Expect {
            own_target: OWN,
            shared_ok: false,
            ownership: Some(TOKEN),
        }
    }

    fn records(cnames: &[&str], addresses: &[&str]) -> Records {
        Records {
            cnames: cnames.iter().map(|s| (*s).to_owned()).collect(),
            addresses: addresses.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    /// Answers with every question answered: no CAA anywhere, the TXT proof present.
    fn answered(r: Records) -> Answers {
        Answers {
            addresses: Some(Ok(r)),
            ownership: Some(Ok(vec![TOKEN.into()])),
            caa: Some(vec![Ok(vec![]), Ok(vec![])]),
        }
    }

    fn problem(j: Judgement) -> String {
        match j {
            Judgement::Done(Verdict::NotPointed { problem, .. }) => problem,
            other => panic!("expected not pointed, got {other:?}"),
        }
    }

    fn pointed(j: &Judgement) -> bool {
        matches!(j, Judgement::Done(Verdict::Pointed { .. }))
    }

    #[test]
    fn questions_come_in_order_and_only_when_needed() {
        let c = config(&["192.0.2.1"]);
        let mut a = Answers::default();
        assert_eq!(
            judge(HOST, &a, expect(), &c),
            Judgement::Ask(Question::Addresses)
        );
        a.addresses = Some(Ok(records(&[OWN], &["192.0.2.1"])));
        assert_eq!(
            judge(HOST, &a, expect(), &c),
            Judgement::Ask(Question::Caa(vec![HOST.into(), "example.com".into()])),
            "a CNAME needs no TXT proof"
        );
        a.addresses = Some(Ok(records(&[], &["192.0.2.1"])));
        assert_eq!(
            judge(HOST, &a, expect(), &c),
            Judgement::Ask(Question::Ownership("_landlord.status.example.com".into()))
        );
        a.addresses = Some(Ok(records(&[], &["203.0.113.7"])));
        assert!(
            matches!(
                judge(HOST, &a, expect(), &c),
                Judgement::Done(Verdict::NotPointed { .. })
            ),
            "no further questions about a name pointed elsewhere"
        );
    }

    #[test]
    fn cname_rules() {
        let c = config(&["192.0.2.1"]);
        let table: &[(&[&str], bool, Option<&str>)] = &[
            // (CNAME chain, shared target accepted, the problem or None when pointed)
            (&[OWN], false, None),
            (&["www.example.org", OWN], false, None),
            (&["edge.example.net"], true, None),
            (
                &["edge.example.net"],
                false,
                Some(
                    "status.example.com is a CNAME to edge.example.net, which is not this domain's target: every domain has its own. Point it at k3x9.edge.example.net.",
                ),
            ),
            (
                &["zz99.edge.example.net"],
                false,
                Some(
                    "status.example.com is a CNAME to zz99.edge.example.net, which is not this domain's target: every domain has its own. Point it at k3x9.edge.example.net.",
                ),
            ),
            (
                &["x.herokudns.com"],
                false,
                Some(
                    "status.example.com is a CNAME to x.herokudns.com, not to k3x9.edge.example.net.",
                ),
            ),
        ];
        for (cnames, shared_ok, want) in table {
            let e = Expect {
                shared_ok: *shared_ok,
                ..expect()
            };
            let j = judge(HOST, &answered(records(cnames, &["192.0.2.1"])), e, &c);
            match want {
                None => assert!(pointed(&j), "{cnames:?}: {j:?}"),
                Some(p) => assert_eq!(problem(j), *p, "{cnames:?}"),
            }
        }
    }

    #[test]
    fn address_rules() {
        let table: &[(&[&str], &[&str], Option<&str>)] = &[
            // (our addresses, the name's addresses, the problem or None when pointed)
            (&["192.0.2.1"], &["192.0.2.1"], None),
            (
                &["192.0.2.1", "2001:db8::1"],
                &["192.0.2.1", "2001:db8::1"],
                None,
            ),
            (
                &["192.0.2.1"],
                &[],
                Some(
                    "status.example.com has no DNS record yet. Create a CNAME record pointing to k3x9.edge.example.net (or A/AAAA records to 192.0.2.1).",
                ),
            ),
            (
                &[],
                &[],
                Some(
                    "status.example.com has no DNS record yet. Create a CNAME record pointing to k3x9.edge.example.net.",
                ),
            ),
            (
                &[],
                &["203.0.113.7"],
                Some(
                    "status.example.com has address records (203.0.113.7), but it must be a CNAME to k3x9.edge.example.net.",
                ),
            ),
            (
                &["192.0.2.1"],
                &["203.0.113.7"],
                Some(
                    "status.example.com points to 203.0.113.7, which is not one of our addresses (192.0.2.1). Create a CNAME record pointing to k3x9.edge.example.net instead.",
                ),
            ),
            (
                &["192.0.2.1"],
                &["192.0.2.1", "203.0.113.7"],
                Some(
                    "The A record 203.0.113.7 is not one of our addresses (192.0.2.1). Remove it.",
                ),
            ),
            (
                &["192.0.2.1"],
                &["192.0.2.1", "2001:db8::9"],
                Some(
                    "The AAAA record 2001:db8::9 is not one of our addresses (192.0.2.1). Remove it.",
                ),
            ),
            (
                &["192.0.2.1"],
                &["10.0.0.8", "192.168.1.1"],
                Some(
                    "status.example.com points to 2 private or internal addresses, which is not one of our addresses (192.0.2.1). Create a CNAME record pointing to k3x9.edge.example.net instead.",
                ),
            ),
        ];
        for (ours, addresses, want) in table {
            let j = judge(
                HOST,
                &answered(records(&[], addresses)),
                expect(),
                &config(ours),
            );
            match want {
                None => assert!(pointed(&j), "{addresses:?}: {j:?}"),
                Some(p) => assert_eq!(problem(j), *p, "{addresses:?}"),
            }
        }
    }

    #[test]
    fn private_addresses_are_counted_in_found_not_listed() {
        let a = answered(records(&[], &["10.0.0.8", "203.0.113.7"]));
        let Judgement::Done(Verdict::NotPointed { found, .. }) =
            judge(HOST, &a, expect(), &config(&["192.0.2.1"]))
        else {
            panic!("not pointed")
        };
        assert_eq!(
            found,
            json!({"cname": [], "a": ["203.0.113.7"], "aaaa": [], "private_addresses": 1})
        );
    }

    #[test]
    fn addresses_need_the_txt_proof_until_it_was_seen_once() {
        let c = config(&["192.0.2.1"]);
        let mut a = answered(records(&[], &["192.0.2.1"]));
        let j = judge(HOST, &a, expect(), &c);
        assert!(matches!(
            j,
            Judgement::Done(Verdict::Pointed {
                ownership_proved: true,
                ..
            })
        ));
        a.ownership = Some(Ok(vec!["something else".into()]));
        assert_eq!(
            problem(judge(HOST, &a, expect(), &c)),
            "status.example.com points at our addresses. To prove it is yours, add a TXT record _landlord.status.example.com with the value landlord-verify=abc (it can go once the domain is active), or use a CNAME to k3x9.edge.example.net instead."
        );
        let proved = Expect {
            ownership: None,
            ..expect()
        };
        let j = judge(HOST, &a, proved, &c);
        assert!(matches!(
            j,
            Judgement::Done(Verdict::Pointed {
                ownership_proved: false,
                ..
            })
        ));
    }

    #[test]
    fn caa_climb_results() {
        let issue = |ca: &str| Caa::Issue(Some(ca.into()));
        type Climb = Vec<Result<Vec<Caa>, String>>;
        let table: Vec<(Climb, Result<Option<&str>, &str>)> = vec![
            (vec![Ok(vec![]), Ok(vec![])], Ok(None)),
            (
                vec![Ok(vec![]), Ok(vec![issue("letsencrypt.org")])],
                Ok(None),
            ),
            (
                vec![Ok(vec![Caa::Other]), Ok(vec![issue("pki.goog")])],
                Ok(None),
            ),
            (
                vec![
                    Ok(vec![]),
                    Ok(vec![issue("pki.goog"), issue("digicert.com")]),
                ],
                Ok(Some(
                    "A CAA record on example.com allows only pki.goog, digicert.com. Add `0 issue \"letsencrypt.org\"` to it.",
                )),
            ),
            (
                vec![Ok(vec![Caa::Issue(None)]), Ok(vec![])],
                Ok(Some(
                    "A CAA record on status.example.com forbids every certificate authority. Remove it or add `0 issue \"letsencrypt.org\"`.",
                )),
            ),
            // The closest set decides; a lookup failing further up does not matter then.
            (
                vec![Ok(vec![issue("letsencrypt.org")]), Err("timeout".into())],
                Ok(None),
            ),
            (vec![Err("timeout".into()), Ok(vec![])], Err("timeout")),
            (vec![Ok(vec![]), Err("SERVFAIL".into())], Err("SERVFAIL")),
        ];
        let c = config(&["192.0.2.1"]);
        for (sets, want) in table {
            let mut a = answered(records(&[OWN], &[]));
            a.caa = Some(sets.clone());
            let j = judge(HOST, &a, expect(), &c);
            match want {
                Ok(None) => assert!(pointed(&j), "{sets:?}: {j:?}"),
                Ok(Some(p)) => assert_eq!(problem(j), p, "{sets:?}"),
                Err(e) => assert_eq!(j, Judgement::Done(Verdict::Transient(e.into()))),
            }
        }
    }

    #[test]
    fn too_many_labels_for_the_caa_climb_is_said_never_passed() {
        let deep = "a.b.c.d.e.f.g.h.i.j.k.example.com";
        let j = judge(
            deep,
            &answered(records(&[OWN], &[])),
            expect(),
            &config(&[]),
        );
        assert!(
            matches!(&j, Judgement::Done(Verdict::TooSlow(m)) if m.contains("at most 10 names")),
            "{j:?}"
        );
    }

    #[test]
    fn failed_lookups_are_transient() {
        let c = config(&["192.0.2.1"]);
        let a = Answers {
            addresses: Some(Err("The DNS lookup timed out.".into())),
            ..Answers::default()
        };
        assert_eq!(
            judge(HOST, &a, expect(), &c),
            Judgement::Done(Verdict::Transient("The DNS lookup timed out.".into()))
        );
        let mut a = answered(records(&[], &["192.0.2.1"]));
        a.ownership = Some(Err("SERVFAIL".into()));
        assert_eq!(
            judge(HOST, &a, expect(), &c),
            Judgement::Done(Verdict::Transient("SERVFAIL".into()))
        );
    }

    #[test]
    fn localhost_names_are_ours_in_development_only() {
        let mut c = config(&[]);
        c.localhost_is_ours = true;
        assert!(pointed(&judge(
            "app.localhost",
            &Answers::default(),
            expect(),
            &c
        )));
        c.localhost_is_ours = false;
        assert_eq!(
            judge("app.localhost", &Answers::default(), expect(), &c),
            Judgement::Ask(Question::Addresses)
        );
    }

    #[test]
    fn describing_addresses_lists_public_ones_and_counts_the_rest() {
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
