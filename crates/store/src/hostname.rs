//! Hostnames as the platform understands them.
//!
//! [`Hostname::parse`] is the only way to obtain a [`Hostname`], so a value of this type
//! is always normalised (lower-case ASCII, punycode for internationalised labels, no
//! trailing dot) and valid for a publicly trusted certificate: at least two labels, LDH
//! only, RFC 1035 lengths, not an IP address, not a bare public suffix. A wildcard is one
//! leading `*.` label before such a name (`*.customer.com`); it covers exactly one label.
//! Every rejection carries a message written for the tenant who typed the name.

use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// The longest hostname DNS can carry in presentation form, without the trailing dot.
pub const MAX_HOSTNAME_LEN: usize = 253;
/// The longest label DNS can carry.
pub const MAX_LABEL_LEN: usize = 63;

/// A normalised, validated hostname.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hostname(String);

/// Which hostnames tenants may register: names under an ICANN top-level domain or one of
/// the operator's extra suffixes, except reserved names and anything under the
/// platform's own registered domain.
#[derive(Debug, Clone, Default)]
pub struct HostnamePolicy {
    /// Suffixes accepted besides ICANN's (test beds: `test`; `landlord dev`: `localhost`).
    pub extra_suffixes: Vec<String>,
    /// Exact names no tenant may register (the API's and dashboard's own, …).
    pub reserved: Vec<Hostname>,
    /// The platform's registered domain (that of `LANDLORD_CNAME_TARGET`).
    pub platform_domain: String,
    /// `LANDLORD_PLATFORM_DOMAIN`, whose subdomains are the sites' slugs.
    pub platform_subdomains: Option<String>,
}

impl HostnamePolicy {
    /// Why a tenant may not register `h`, in words for that tenant; `None` when it may.
    pub fn refusal(&self, h: &Hostname) -> Option<String> {
        let subdomains = self.platform_subdomains.as_deref().unwrap_or_default();
        let ours = [self.platform_domain.as_str(), subdomains]
            .into_iter()
            .find(|ours| !ours.is_empty() && h.is_within(ours));
        if let Some(ours) = ours {
            return Some(format!(
                "{h} is under {ours}, which belongs to this platform. Use a hostname under your own domain."
            ));
        }
        if self.reserved.contains(h) {
            return Some(format!(
                "{h} is reserved on this platform. Use a hostname under your own domain."
            ));
        }
        if !h.has_icann_suffix() && !self.extra_suffixes.iter().any(|s| h.is_within(s)) {
            let tld = h.as_str().rsplit('.').next().unwrap_or_default();
            return Some(format!(
                "{h} does not end in a public top-level domain (\"{tld}\" is not one), so no public certificate authority can issue for it. Use a hostname under a domain you registered."
            ));
        }
        None
    }
}

/// Normalise a configured suffix (`.Test.` → `test`).
pub fn normalise_suffix(s: &str) -> String {
    s.trim().trim_matches('.').to_ascii_lowercase()
}

/// Why a string is not an acceptable hostname. `Display` is the tenant-facing detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    #[error("The hostname is empty. Send a name such as status.example.com.")]
    Empty,
    #[error("\"{0}\" looks like a URL. Send only the hostname, e.g. status.example.com.")]
    Url(String),
    #[error("\"{0}\" contains a port or a colon. Send only the hostname, without \":port\".")]
    Colon(String),
    #[error("\"{0}\" is an IP address. Certificates here are issued for hostnames only.")]
    IpAddress(String),
    #[error(
        "\"{0}\" has a '*' that is not a whole leading label. A wildcard hostname is written *.example.com and covers one label (a.example.com, not a.b.example.com)."
    )]
    Wildcard(String),
    #[error("\"{0}\" contains an underscore, which is not allowed in hostnames.")]
    Underscore(String),
    #[error("\"{0}\" contains whitespace or a control character.")]
    Whitespace(String),
    #[error("\"{0}\" has an empty label (two dots in a row, or a leading dot).")]
    EmptyLabel(String),
    #[error("\"{0}\" is {1} characters long; a hostname may have at most 253.")]
    TooLong(String, usize),
    #[error("The label \"{1}\" in \"{0}\" is {2} characters long; a label may have at most 63.")]
    LabelTooLong(String, String, usize),
    #[error("The label \"{1}\" in \"{0}\" starts or ends with a hyphen, which is not allowed.")]
    Hyphen(String, String),
    #[error(
        "\"{0}\" contains the character '{1}', which is not allowed in hostnames \
         (letters, digits, hyphens and dots only)."
    )]
    Character(String, char),
    #[error("\"{0}\" is not a valid internationalised domain name (IDNA): {1}.")]
    Idna(String, &'static str),
    #[error(
        "\"{0}\" is a single label. Use a fully qualified hostname such as status.example.com."
    )]
    SingleLabel(String),
    #[error("\"{0}\" ends in a numeric label; no top-level domain is numeric.")]
    NumericTld(String),
    #[error(
        "\"{0}\" is a public suffix (like com or co.uk), which nobody can own. \
         Use a hostname under your own domain."
    )]
    PublicSuffix(String),
}

impl Hostname {
    /// Parse and normalise what a tenant typed.
    ///
    /// Surrounding whitespace and one trailing dot are removed, case is folded, Unicode
    /// labels are mapped and converted to punycode by UTS 46 (nontransitional, STD3).
    pub fn parse(input: &str) -> Result<Self, HostnameError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(HostnameError::Empty);
        }
        let shown = shorten(trimmed);
        if trimmed.contains("://") || trimmed.contains('/') {
            return Err(HostnameError::Url(shown));
        }
        if trimmed.contains(':') || trimmed.starts_with('[') {
            return Err(HostnameError::Colon(shown));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(HostnameError::Whitespace(shown));
        }
        if let Some(base) = trimmed.strip_prefix("*.") {
            let base = Self::parse(base)?;
            if base.is_wildcard() {
                return Err(HostnameError::Wildcard(shown));
            }
            if base.0.len() + 2 > MAX_HOSTNAME_LEN {
                return Err(HostnameError::TooLong(shown, base.0.len() + 2));
            }
            return Ok(Hostname(format!("*.{}", base.0)));
        }
        if trimmed.contains('*') {
            return Err(HostnameError::Wildcard(shown));
        }
        if trimmed.contains('_') {
            return Err(HostnameError::Underscore(shown));
        }
        if trimmed.parse::<std::net::IpAddr>().is_ok() {
            return Err(HostnameError::IpAddress(shown));
        }
        let without_dot = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if without_dot.is_empty() || without_dot.split('.').any(str::is_empty) {
            return Err(HostnameError::EmptyLabel(shown));
        }

        let ascii = to_ascii(without_dot).map_err(|why| HostnameError::Idna(shown.clone(), why))?;
        // IDNA mapping may itself produce dots (e.g. from U+3002) or empty labels.
        if ascii.split('.').any(str::is_empty) {
            return Err(HostnameError::EmptyLabel(shown));
        }
        if ascii.len() > MAX_HOSTNAME_LEN {
            return Err(HostnameError::TooLong(shown, ascii.len()));
        }
        for label in ascii.split('.') {
            if label.len() > MAX_LABEL_LEN {
                return Err(HostnameError::LabelTooLong(
                    shown,
                    shorten(label),
                    label.len(),
                ));
            }
            if let Some(bad) = label
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            {
                return Err(HostnameError::Character(shown, bad));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(HostnameError::Hyphen(shown, label.to_owned()));
            }
        }
        let labels = ascii.split('.').count();
        let tld = ascii.rsplit('.').next().unwrap_or_default();
        if tld.bytes().all(|b| b.is_ascii_digit()) {
            return Err(if labels == 4 {
                HostnameError::IpAddress(shown)
            } else {
                HostnameError::NumericTld(shown)
            });
        }
        if labels < 2 {
            return Err(HostnameError::SingleLabel(shown));
        }
        if psl::suffix_str(&ascii) == Some(ascii.as_str()) {
            return Err(HostnameError::PublicSuffix(shown));
        }
        Ok(Hostname(ascii))
    }

    /// The normalised ASCII form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `*.customer.com`: a registration covering every name one label below
    /// `customer.com`, certified through DNS-01 only.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// The wildcard that would cover this name (`*.customer.com` for `a.customer.com`),
    /// when its parent is a name one could register (not a public suffix).
    pub fn covering_wildcard(&self) -> Option<Hostname> {
        if self.is_wildcard() {
            return None;
        }
        let (_, parent) = self.0.split_once('.')?;
        (parent.contains('.') && psl::suffix_str(parent) != Some(parent))
            .then(|| Hostname(format!("*.{parent}")))
    }

    /// The registrable domain (eTLD+1 by the Public Suffix List), e.g. `acme.co.uk` for
    /// `status.acme.co.uk`. Let's Encrypt counts certificates per registrable domain.
    pub fn registrable_domain(&self) -> &str {
        psl::domain_str(&self.0).unwrap_or(&self.0)
    }

    /// True when `self` is `other` or a name below it (`a.b.example.com` is within
    /// `example.com`; `badexample.com` is not).
    pub fn is_within(&self, other: &str) -> bool {
        let other = other.trim_end_matches('.');
        self.0 == other
            || (self.0.len() > other.len()
                && self.0.ends_with(other)
                && self.0.as_bytes()[self.0.len() - other.len() - 1] == b'.')
    }

    /// True when the top-level domain is an ICANN one (`com`, `uk`, `dev`…), so a public
    /// CA can issue for the name; `internal`, `local`, `test` or `localhost` are not.
    pub fn has_icann_suffix(&self) -> bool {
        let tld = self.0.rsplit('.').next().unwrap_or_default();
        psl::suffix(tld.as_bytes()).is_some_and(|s| s.typ() == Some(psl::Type::Icann))
    }

    /// The name as a person would read it (punycode labels decoded), for display only.
    pub fn to_unicode(&self) -> String {
        idna::domain_to_unicode(&self.0).0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Hostname {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Stored as `text`. Only parsed hostnames are ever written, so a row decodes without
/// parsing again (an edge loads every hostname at start); what cannot be one of ours
/// (upper case, spaces, empty) is refused as a decode error rather than trusted.
impl sqlx::Type<sqlx::Postgres> for Hostname {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <String as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Hostname {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let s = <String as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        let name = s.strip_prefix("*.").unwrap_or(&s);
        let stored = !name.is_empty()
            && s.len() <= MAX_HOSTNAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        match stored {
            true => Ok(Hostname(s)),
            false => Err(format!("{} is not a stored hostname", shorten(&s)).into()),
        }
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for Hostname {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.0.as_str(), buf)
    }
}

impl serde::Serialize for Hostname {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Hostname {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hostname::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// UTS 46 ToASCII with STD3 rules; length and hyphen checks are ours (better messages).
fn to_ascii(input: &str) -> Result<String, &'static str> {
    Uts46::new()
        .to_ascii(
            input.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Allow,
            DnsLength::Ignore,
        )
        .map(|cow| cow.into_owned())
        .map_err(|_| "it contains characters or a punycode label that IDNA does not allow")
}

/// Keep error messages readable when someone sends a megabyte of garbage.
fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, Ok(normalised) or Err(fragment of the message))
    const CASES: &[(&str, Result<&str, &str>)] = &[
        ("status.example.com", Ok("status.example.com")),
        ("Status.Example.COM", Ok("status.example.com")),
        ("status.example.com.", Ok("status.example.com")),
        ("  status.example.com  ", Ok("status.example.com")),
        ("bücher.example", Ok("xn--bcher-kva.example")),
        ("BÜCHER.example.com", Ok("xn--bcher-kva.example.com")),
        ("xn--bcher-kva.example.com", Ok("xn--bcher-kva.example.com")),
        ("münchen.de", Ok("xn--mnchen-3ya.de")),
        ("例え.テスト", Ok("xn--r8jz45g.xn--zckzah")),
        ("straße.de", Ok("xn--strae-oqa.de")),
        ("a.b.c.d.e.example.org", Ok("a.b.c.d.e.example.org")),
        ("1st.example.com", Ok("1st.example.com")),
        ("my-site.example.co.uk", Ok("my-site.example.co.uk")),
        ("example.co.uk", Ok("example.co.uk")),
        ("shop.example.test", Ok("shop.example.test")),
        ("app.dev.localhost", Ok("app.dev.localhost")),
        ("123.example.com", Ok("123.example.com")),
        ("", Err("empty")),
        ("   ", Err("empty")),
        (".", Err("empty label")),
        ("a..example.com", Err("empty label")),
        (".example.com", Err("empty label")),
        ("example.com..", Err("empty label")),
        ("https://status.example.com", Err("looks like a URL")),
        ("status.example.com/path", Err("looks like a URL")),
        ("status.example.com:443", Err("port")),
        ("[::1]", Err("port")),
        ("::1", Err("port")),
        ("192.0.2.1", Err("IP address")),
        ("192.0.2.1.", Err("IP address")),
        ("1.2.3.999", Err("IP address")),
        ("example.123", Err("numeric")),
        ("*.example.com", Ok("*.example.com")),
        ("*.Bücher.example", Ok("*.xn--bcher-kva.example")),
        ("*.*.example.com", Err("wildcard")),
        ("a.*.example.com", Err("wildcard")),
        ("*example.com", Err("wildcard")),
        ("a*b.example.com", Err("wildcard")),
        ("*.co.uk", Err("public suffix")),
        ("*.com", Err("single label")),
        ("_dmarc.example.com", Err("underscore")),
        ("a_b.example.com", Err("underscore")),
        ("sta tus.example.com", Err("whitespace")),
        ("status\0.example.com", Err("whitespace")),
        ("-status.example.com", Err("hyphen")),
        ("status-.example.com", Err("hyphen")),
        ("stat!us.example.com", Err("IDNA")),
        ("status@example.com", Err("IDNA")),
        ("localhost", Err("single label")),
        ("intranet", Err("single label")),
        ("com", Err("single label")),
        ("co.uk", Err("public suffix")),
        ("github.io", Err("public suffix")),
        ("xn--zz.example.com", Err("IDNA")),
        ("\u{200B}.example.com", Err("empty label")),
    ];

    #[test]
    fn normalisation_table() {
        for (input, expected) in CASES {
            let got = Hostname::parse(input);
            match (expected, &got) {
                (Ok(want), Ok(h)) => assert_eq!(h.as_str(), *want, "input {input:?}"),
                (Err(fragment), Err(e)) => {
                    let msg = e.to_string();
                    assert!(
                        msg.to_lowercase().contains(&fragment.to_lowercase()),
                        "input {input:?}: message {msg:?} lacks {fragment:?}"
                    );
                }
                _ => panic!("input {input:?}: expected {expected:?}, got {got:?}"),
            }
        }
        assert!(CASES.len() >= 30);
    }

    #[test]
    fn length_limits() {
        let label63 = "a".repeat(63);
        assert!(Hostname::parse(&format!("{label63}.example.com")).is_ok());
        let err = Hostname::parse(&format!("{}.example.com", "a".repeat(64))).unwrap_err();
        assert!(
            matches!(err, HostnameError::LabelTooLong(_, _, 64)),
            "{err}"
        );

        // 4 × 63 + 3 dots = 255 > 253
        let long = [label63.as_str(); 4].join(".");
        let err = Hostname::parse(&long).unwrap_err();
        assert!(matches!(err, HostnameError::TooLong(_, 255)), "{err}");
        // exactly 253: 3 × 63 + 61 + 3 dots
        let ok = format!("{label63}.{label63}.{label63}.{}", "b".repeat(61));
        assert_eq!(Hostname::parse(&ok).unwrap().as_str().len(), 253);
    }

    #[test]
    fn long_garbage_is_shortened_in_message() {
        let err = Hostname::parse(&"x/".repeat(10_000)).unwrap_err();
        assert!(err.to_string().len() < 300);
    }

    #[test]
    fn within_and_registrable_domain() {
        let h = Hostname::parse("a.status.acme.co.uk").unwrap();
        assert_eq!(h.registrable_domain(), "acme.co.uk");
        assert!(h.is_within("acme.co.uk"));
        assert!(h.is_within("status.acme.co.uk."));
        assert!(h.is_within("a.status.acme.co.uk"));
        assert!(!h.is_within("cme.co.uk"));
        assert!(!h.is_within("b.status.acme.co.uk"));
        let w = Hostname::parse("*.status.acme.co.uk").unwrap();
        assert_eq!(w.registrable_domain(), "acme.co.uk");
        assert!(w.is_within("acme.co.uk"));
    }

    #[test]
    fn the_wildcard_covering_a_name_is_one_label_up() {
        let covering = |n: &str| Hostname::parse(n).unwrap().covering_wildcard().map(|w| w.0);
        assert_eq!(
            covering("a.customer.com").as_deref(),
            Some("*.customer.com")
        );
        assert_eq!(
            covering("x.y.customer.com").as_deref(),
            Some("*.y.customer.com")
        );
        assert_eq!(covering("customer.com"), None, "*.com is nobody's");
        assert_eq!(covering("acme.co.uk"), None, "*.co.uk is nobody's");
        assert_eq!(covering("*.customer.com"), None);
    }

    #[test]
    fn only_icann_suffixes_or_the_operators_extra_ones() {
        let policy = HostnamePolicy {
            extra_suffixes: vec!["test".into()],
            reserved: vec![Hostname::parse("app.saas.com").unwrap()],
            platform_domain: "saas.com".into(),
            platform_subdomains: Some("sites.example.net".into()),
        };
        let refused = |name: &str| policy.refusal(&Hostname::parse(name).unwrap());
        for ok in [
            "status.example.com",
            "a.b.co.uk",
            "shop.github.io",
            "x.customer.test",
        ] {
            assert_eq!(refused(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("metadata.google.internal", "top-level domain"),
            ("db.svc.cluster.local", "top-level domain"),
            ("printer.lan", "top-level domain"),
            ("edge.saas.com", "belongs to this platform"),
            ("app.saas.com", "belongs to this platform"),
            ("docs.sites.example.net", "belongs to this platform"),
            ("*.sites.example.net", "belongs to this platform"),
        ] {
            let r = refused(bad).unwrap_or_default();
            assert!(r.contains(why), "{bad}: {r}");
        }
        let other = HostnamePolicy {
            reserved: vec![Hostname::parse("dashboard.example.net").unwrap()],
            ..HostnamePolicy::default()
        };
        let r = other.refusal(&Hostname::parse("dashboard.example.net").unwrap());
        assert!(r.unwrap().contains("reserved"));
        assert!(other.refusal(&Hostname::parse("x.test").unwrap()).is_some());
    }

    #[test]
    fn unicode_round_trip_for_display() {
        let h = Hostname::parse("Bücher.example").unwrap();
        assert_eq!(h.to_unicode(), "bücher.example");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_output_reparses(s in "\\PC{0,300}") {
            if let Ok(h) = Hostname::parse(&s) {
                let again = Hostname::parse(h.as_str()).expect("normalised form must parse");
                proptest::prop_assert_eq!(again, h);
            }
        }

        #[test]
        fn hostname_like_input_never_panics(s in "[a-zA-Z0-9.\\-_*:/ü]{0,80}") {
            let _ = Hostname::parse(&s);
        }
    }
}
