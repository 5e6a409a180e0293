//! ACME Renewal Information (RFC 9773): when the CA wants a certificate renewed.
//!
//! The CA publishes a suggested window per certificate (and moves it forward when it
//! must revoke early). The worker polls it for every ACME certificate it serves, picks a
//! uniformly random moment inside the window (so a fleet does not renew in lock-step),
//! and names the certificate in the renewal order's `replaces` field, which Let's Encrypt
//! exempts from every rate limit. instant-acme makes the request; this module decides.

use std::time::Duration;

use instant_acme::{CertificateIdentifier, RenewalInfo};
use rustls_pki_types::Der;
use time::OffsetDateTime;

use landlord_store::RenewalInfoRecord;

/// Polls at most this often, whatever the CA's `Retry-After` says…
pub const MIN_POLL: Duration = Duration::from_secs(3600);
/// …and at least this often: Let's Encrypt asks integrators to check twice a day.
pub const MAX_POLL: Duration = Duration::from_secs(12 * 3600);

/// The RFC 9773 §4.1 identifier of a certificate: base64url(AKI keyIdentifier) "."
/// base64url(DER serial). `None` without an Authority Key Identifier.
pub fn certificate_id(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<String> {
    let aki = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0)
            }
            _ => None,
        })?;
    Some(
        CertificateIdentifier::new(
            Der::from_slice(aki),
            Der::from_slice(cert.tbs_certificate.raw_serial()),
        )
        .to_string(),
    )
}

/// The identifier back as instant-acme's type (for `renewalInfo` and `replaces`).
pub fn parse_certificate_id(id: &str) -> Option<CertificateIdentifier<'static>> {
    let (aki, serial) = id.split_once('.')?;
    if aki.is_empty() || serial.is_empty() || serial.contains('.') {
        return None;
    }
    Some(CertificateIdentifier {
        authority_key_identifier: aki.to_owned().into(),
        serial: serial.to_owned().into(),
    })
}

/// Decide from one renewal-information response: renew at a uniformly random moment in
/// the window (`random` in [0, 1)), or now when the window has already begun to close
/// (its end is past); poll again after `Retry-After`, kept within [`MIN_POLL`,
/// `MAX_POLL`].
pub fn decide(
    info: &RenewalInfo,
    retry_after: Duration,
    now: OffsetDateTime,
    random: f64,
) -> RenewalInfoRecord {
    let window = &info.suggested_window;
    let (start, end) = if window.end < window.start {
        // A malformed window: the RFC says to treat it as absent; the start is the CA's
        // clearest wish.
        (window.start, window.start)
    } else {
        (window.start, window.end)
    };
    let renew_at = if end <= now {
        now
    } else {
        let span = end - start;
        (start + span * random.clamp(0.0, 1.0)).max(now)
    };
    RenewalInfoRecord {
        window_start: window.start,
        window_end: window.end,
        explanation_url: info.explanation_url.clone(),
        renew_at,
        next_check_at: now + retry_after.clamp(MIN_POLL, MAX_POLL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// RFC 9773 §4.2's example response.
    const RFC_EXAMPLE: &str = r#"{
        "suggestedWindow": {
            "start": "2025-01-02T04:00:00Z",
            "end": "2025-01-03T04:00:00Z"
        },
        "explanationURL": "https://acme.example.com/docs/ari"
    }"#;

    /// A Let's Encrypt-style response announcing an early renewal (revocation pending).
    const EARLY: &str = r#"{
        "suggestedWindow": {
            "start": "2025-01-01T00:00:00Z",
            "end": "2025-01-01T00:00:01Z"
        },
        "explanationURL": "https://community.letsencrypt.org/t/incident"
    }"#;

    #[test]
    fn identifier_matches_the_rfc_example() {
        // RFC 9773 §4.1: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4
        // and serial 0x0087654321 give "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE".
        let aki = [
            0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
            0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4,
        ];
        let serial = [0x00, 0x87, 0x65, 0x43, 0x21];
        let id =
            CertificateIdentifier::new(Der::from_slice(&aki), Der::from_slice(&serial)).to_string();
        assert_eq!(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
        let back = parse_certificate_id(&id).unwrap();
        assert_eq!(back.to_string(), id);
        assert!(parse_certificate_id("no-dot").is_none());
        assert!(parse_certificate_id("a.b.c").is_none());
        assert!(parse_certificate_id(".b").is_none());
    }

    #[test]
    fn identifier_is_read_from_a_certificate() {
        // A certificate signed by a CA carries the CA's key id as its AKI.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.example.com".into()]).unwrap();
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x87, 0x65, 0x43, 0x21]));
        let leaf = params.signed_by(&key, &issuer).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.der()).unwrap();
        let id = certificate_id(&parsed).unwrap();
        let (_, serial) = id.split_once('.').unwrap();
        // DER INTEGER of 0x87654321 needs a leading zero byte: AIdlQyE.
        assert_eq!(serial, "AIdlQyE");
        let (_, ca_parsed) = x509_parser::parse_x509_certificate(ca.der()).unwrap();
        assert!(
            certificate_id(&ca_parsed).is_none(),
            "a self-signed root without AKI has no ARI identity"
        );
    }

    #[test]
    fn renews_inside_the_window_and_polls_within_bounds() {
        let info: RenewalInfo = serde_json::from_str(RFC_EXAMPLE).unwrap();
        let now = datetime!(2025-01-01 00:00 UTC);
        let d = decide(&info, Duration::from_secs(21_600), now, 0.5);
        assert_eq!(d.window_start, datetime!(2025-01-02 04:00 UTC));
        assert_eq!(d.window_end, datetime!(2025-01-03 04:00 UTC));
        assert_eq!(d.renew_at, datetime!(2025-01-02 16:00 UTC));
        assert_eq!(d.next_check_at, now + time::Duration::hours(6));
        assert_eq!(
            d.explanation_url.as_deref(),
            Some("https://acme.example.com/docs/ari")
        );
        // Spread over the whole window.
        assert_eq!(
            decide(&info, Duration::ZERO, now, 0.0).renew_at,
            d.window_start
        );
        assert!(decide(&info, Duration::ZERO, now, 0.999_999).renew_at < d.window_end);
        // Retry-After is bounded: not more than hourly, not less than twice a day.
        assert_eq!(
            decide(&info, Duration::from_secs(5), now, 0.5).next_check_at,
            now + time::Duration::hours(1)
        );
        assert_eq!(
            decide(&info, Duration::from_secs(7 * 86_400), now, 0.5).next_check_at,
            now + time::Duration::hours(12)
        );
    }

    #[test]
    fn a_window_in_the_past_means_now() {
        let info: RenewalInfo = serde_json::from_str(EARLY).unwrap();
        let now = datetime!(2025-01-01 12:00 UTC);
        let d = decide(&info, Duration::from_secs(3600), now, 0.7);
        assert_eq!(d.renew_at, now);
        // A window that has started but not ended never yields a moment in the past.
        let info: RenewalInfo = serde_json::from_str(RFC_EXAMPLE).unwrap();
        let inside = datetime!(2025-01-02 20:00 UTC);
        assert!(decide(&info, Duration::ZERO, inside, 0.0).renew_at >= inside);
    }

    #[test]
    fn malformed_responses_are_rejected() {
        for body in [
            r#"{}"#,
            r#"{"suggestedWindow": {"start": "yesterday", "end": "2025-01-03T04:00:00Z"}}"#,
            r#"{"suggestedWindow": {"start": "2025-01-02T04:00:00Z"}}"#,
        ] {
            assert!(serde_json::from_str::<RenewalInfo>(body).is_err(), "{body}");
        }
        // end before start: renew at the start.
        let info: RenewalInfo = serde_json::from_str(
            r#"{"suggestedWindow": {"start": "2025-01-03T00:00:00Z", "end": "2025-01-02T00:00:00Z"}}"#,
        )
        .unwrap();
        let now = datetime!(2025-01-01 00:00 UTC);
        assert_eq!(
            decide(&info, Duration::ZERO, now, 0.9).renew_at,
            datetime!(2025-01-03 00:00 UTC)
        );
    }
}
