//! Reading what a CA returned: the chain's leaf, its dates, serial and issuer, and a
//! check that it belongs to the key we hold.

use anyhow::{Context, bail};
use time::OffsetDateTime;
use x509_parser::pem::Pem;

#[derive(Debug, Clone)]
pub struct LeafInfo {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub serial: String,
    pub issuer: String,
    /// RFC 9773 identifier (needs an Authority Key Identifier, which public CAs set).
    pub ari_id: Option<String>,
}

/// Parse the leaf (first certificate) of a PEM chain and check that its public key is
/// `spki_der` (the SubjectPublicKeyInfo of our key) and that it names `hostname`.
pub fn inspect(chain_pem: &str, spki_der: &[u8], hostname: &str) -> anyhow::Result<LeafInfo> {
    let pem = Pem::iter_from_buffer(chain_pem.as_bytes())
        .next()
        .context("the chain holds no certificate")?
        .context("the chain is not valid PEM")?;
    let cert = pem
        .parse_x509()
        .context("the leaf certificate does not parse")?;
    if cert.public_key().raw != spki_der {
        bail!("the certificate does not match our private key");
    }
    let names_host = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value.general_names.iter().any(|n| {
                matches!(n, x509_parser::extensions::GeneralName::DNSName(d) if d.eq_ignore_ascii_case(hostname))
            })
        })
        .unwrap_or(false);
    if !names_host {
        bail!("the certificate does not name {hostname}");
    }
    let validity = cert.validity();
    Ok(LeafInfo {
        not_before: OffsetDateTime::from_unix_timestamp(validity.not_before.timestamp())?,
        not_after: OffsetDateTime::from_unix_timestamp(validity.not_after.timestamp())?,
        serial: cert.raw_serial_as_string(),
        issuer: cert.issuer().to_string(),
        ari_id: crate::ari::certificate_id(&cert),
    })
}
