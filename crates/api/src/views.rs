//! The JSON the API sends, as types: serialised by the handlers and described by the
//! OpenAPI document from the same definitions, so the two cannot drift.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::ApiConfig;
use landlord_store::{Domain, DomainId, DomainStatus, Event, FileMeta, Hostname, SiteId, TenantId};

/// A tenant's custom hostname and where it stands.
#[derive(Serialize, ToSchema)]
pub struct DomainView {
    #[schema(value_type = Uuid)]
    pub id: DomainId,
    /// Normalised ASCII form (punycode for internationalised names).
    #[schema(value_type = String)]
    pub hostname: Hostname,
    /// The site it serves.
    #[schema(value_type = Uuid)]
    pub site_id: SiteId,
    /// The same name as a person reads it.
    pub hostname_unicode: String,
    #[schema(value_type = Status)]
    pub status: DomainStatus,
    pub dns: DnsInstructions,
    /// The TXT record that proves control of the hostname when it is pointed with A/AAAA
    /// records instead of the CNAME (absent when only a CNAME can point it here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership: Option<OwnershipRecord>,
    /// When the platform does DNS-01: the CNAME that delegates this name's ACME validation
    /// to the platform, so its certificate can be issued before its traffic moves here
    /// (and a wildcard at all). Registrations of one account sharing the name (with or
    /// without a leading `*.`) share it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dcv_delegation: Option<DcvDelegation>,
    pub check: CheckView,
    pub certificate: Option<CertificateView>,
    /// Why the last issuance attempt failed, in plain words.
    pub last_error: Option<String>,
    /// Set while the domain waits for CA budget (Landlord's mirror of the CA's rate
    /// limits) instead of ordering: why, in plain words, and until when.
    pub queued: Option<QueuedView>,
    #[schema(format = DateTime)]
    pub next_attempt_at: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// Where a domain is in its life.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum Status {
    PendingDns,
    Issuing,
    Active,
    Failed,
    Moved,
}

/// The DNS record the tenant must create, and the address records that may replace it.
#[derive(Serialize, ToSchema)]
pub struct DnsInstructions {
    #[serde(rename = "type")]
    #[schema(example = "CNAME")]
    pub kind: String,
    pub name: String,
    /// This domain's own CNAME target (every registration has its own).
    pub value: String,
    /// Registered before per-domain targets: the bare shared target still verifies this
    /// domain; move the CNAME to `value` at your convenience.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shared_target_accepted: bool,
    pub alternatives: Vec<DnsRecord>,
}

/// A TXT record to publish, and whether a check has found it.
#[derive(Serialize, ToSchema, Clone)]
pub struct OwnershipRecord {
    #[serde(rename = "type")]
    #[schema(example = "TXT")]
    pub kind: String,
    #[schema(example = "_landlord.status.example.com")]
    pub name: String,
    pub value: String,
    pub verified: bool,
}

/// The `_acme-challenge` CNAME of delegated DCV, and whether a check has found it.
#[derive(Serialize, ToSchema, Clone)]
pub struct DcvDelegation {
    #[serde(rename = "type")]
    #[schema(example = "CNAME")]
    pub kind: String,
    #[schema(example = "_acme-challenge.status.example.com")]
    pub name: String,
    #[schema(example = "3f1c9a0e5b7d42c8a1e6f0b2c4d8e9a7.acme.platform.example")]
    pub value: String,
    pub verified: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DnsRecord {
    #[serde(rename = "type")]
    #[schema(example = "A")]
    pub kind: String,
    pub name: String,
    pub value: String,
}

/// What DNS answered at the last check, and what is wrong, in plain words.
#[derive(Serialize, ToSchema)]
pub struct CheckView {
    #[schema(format = DateTime)]
    pub checked_at: Option<String>,
    /// `{"cname": [...], "a": [...], "aaaa": [...]}` as DNS answered.
    #[schema(value_type = Option<Object>)]
    pub found: Option<Value>,
    pub problem: Option<String>,
}

/// Waiting for CA budget.
#[derive(Serialize, ToSchema)]
pub struct QueuedView {
    #[schema(
        example = "Waiting for CA budget: 300 new orders were placed in the last 3 hours, the most this platform allows (Let's Encrypt's limit is 300 per account per 3 hours). The order will be placed at 2026-11-25 09:12 UTC."
    )]
    pub reason: String,
    #[schema(format = DateTime)]
    pub until: String,
}

/// The CA's suggested renewal window (ACME Renewal Information, RFC 9773).
#[derive(Serialize, ToSchema)]
pub struct RenewalWindowView {
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    /// Why the CA suggests this window, when it says (e.g. a revocation notice).
    pub explanation_url: Option<String>,
    #[schema(format = DateTime)]
    pub checked_at: String,
}

/// The certificate being served.
#[derive(Serialize, ToSchema)]
pub struct CertificateView {
    #[schema(format = DateTime)]
    pub not_before: String,
    #[schema(format = DateTime)]
    pub not_after: String,
    pub issuer: String,
    pub serial: String,
    /// When renewal is due: a moment inside the CA's suggested window when it offers
    /// one, else when a third of the lifetime remains (half under 10 days), with jitter.
    #[schema(format = DateTime)]
    pub renew_at: String,
    /// The CA's renewal window at the last poll; null when the CA offers none.
    pub renewal_window: Option<RenewalWindowView>,
}

#[derive(Serialize, ToSchema)]
pub struct DomainList {
    pub domains: Vec<DomainView>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(value_type = Option<Uuid>)]
    pub next_cursor: Option<DomainId>,
}

/// One entry of a domain's timeline.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    #[schema(format = DateTime)]
    pub at: String,
    #[schema(example = "issued")]
    pub kind: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<EventView>,
}

/// A file's bytes as uploaded (`PUT /v1/files/{path}`): any binary content.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct FileBytes(Vec<u8>);

/// One Server-Sent Event of `GET /v1/events` (Open API 3.1 describes an event stream by
/// the schema of one event). Keep-alive comments carry no event.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LiveEvent {
    pub event: LiveEventKind,
    /// JSON: `{}` for `ready`; `{"id": "<domain id>", "kind": "changed" | "deleted"}` for
    /// `domain`; `{"domain_id": "<domain id>"}` for `timeline`; `{"reason": "..."}` for
    /// `resync`.
    #[schema(content_media_type = "application/json", example = "{}")]
    pub data: String,
}

/// `ready` once, first, when the stream is live; then `domain` when one of the caller's
/// domains changes or is deleted and `timeline` when an entry is added to its timeline.
/// `account` `{"id"}`: a new entry of the caller's own log (`GET /v1/tenant/events`).
/// `resync` means changes may have been missed (the stream fell behind, or the server's
/// database notifications reconnected): re-read what you show.
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum LiveEventKind {
    #[schema(rename = "ready")]
    Ready,
    #[schema(rename = "domain")]
    Domain,
    #[schema(rename = "timeline")]
    Timeline,
    #[schema(rename = "resync")]
    Resync,
    #[schema(rename = "account")]
    Account,
}

#[derive(Serialize, ToSchema)]
pub struct FileView {
    pub path: String,
    pub size: i64,
    pub content_type: String,
    /// Strong ETag: the quoted SHA-256 of the content.
    pub etag: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// Storage used and allowed. `used_bytes` counts, per file, its body, path and
/// Content-Type plus a fixed overhead (`file_overhead_bytes`).
#[derive(Serialize, ToSchema)]
pub struct FileUsage {
    pub used_bytes: i64,
    pub quota_bytes: i64,
    pub max_file_bytes: i64,
    pub file_overhead_bytes: i64,
    pub files: i64,
    pub max_files: i64,
}

/// One page of the caller's files, by path.
#[derive(Serialize, ToSchema)]
pub struct FileList {
    pub files: Vec<FileView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    pub usage: FileUsage,
}

/// A count against its limit.
#[derive(Serialize, ToSchema)]
pub struct Allowance {
    pub used: i64,
    pub limit: i64,
}

/// A rate: at most `limit` per `window_seconds`.
#[derive(Serialize, ToSchema)]
pub struct RateView {
    pub limit: u32,
    pub window_seconds: u64,
}

/// What the caller may hold and do, and what it holds now.
#[derive(Serialize, ToSchema)]
pub struct LimitsView {
    pub domains: Allowance,
    pub sites: Allowance,
    /// Live API keys (`/v1/keys`).
    pub api_keys: Allowance,
    pub files: Allowance,
    /// Bytes counted against the storage quota (see `FileUsage`).
    pub storage_bytes: Allowance,
    pub max_file_bytes: i64,
    pub file_overhead_bytes: i64,
    /// Open `GET /v1/events` streams on this API server, and the most allowed.
    pub event_streams: Allowance,
    /// API requests per tenant; absent when unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_requests: Option<RateView>,
    /// "Check now" is accepted once per this many seconds per domain.
    pub check_interval_seconds: f64,
}

/// A new tenant. `api_key` is shown only here.
#[derive(Serialize, ToSchema)]
pub struct TenantCreated {
    #[schema(value_type = Uuid)]
    pub id: TenantId,
    pub name: String,
    pub api_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

impl DomainView {
    pub fn new(d: &Domain, config: &ApiConfig) -> Self {
        let alternatives = config
            .edge_ips
            .iter()
            .map(|ip| DnsRecord {
                kind: if ip.is_ipv4() { "A" } else { "AAAA" }.to_owned(),
                name: d.hostname.to_string(),
                value: ip.to_string(),
            })
            .collect();
        DomainView {
            id: d.id,
            hostname: d.hostname.clone(),
            hostname_unicode: d.hostname.to_unicode(),
            site_id: d.site_id,
            status: d.status,
            ownership: (!config.edge_ips.is_empty()).then(|| OwnershipRecord {
                kind: "TXT".to_owned(),
                name: landlord_store::ownership_record_name(d.hostname.as_str()),
                value: d.ownership_token.clone(),
                verified: d.ownership_verified_at.is_some(),
            }),
            dcv_delegation: config.acme_dns_zone.as_ref().zip(d.dcv_label.as_ref()).map(
                |(zone, label)| DcvDelegation {
                    kind: "CNAME".to_owned(),
                    name: format!(
                        "_acme-challenge.{}",
                        landlord_store::dcv_name(d.hostname.as_str())
                    ),
                    value: format!("{label}.{zone}"),
                    verified: d.dcv_verified_at.is_some(),
                },
            ),
            dns: DnsInstructions {
                kind: "CNAME".to_owned(),
                name: d.hostname.to_string(),
                value: format!("{}.{}", d.target_label, config.cname_target),
                shared_target_accepted: d.shared_target_ok,
                alternatives,
            },
            check: CheckView {
                checked_at: d.checked_at.map(rfc3339),
                found: d.check_found.clone(),
                problem: d.check_problem.clone(),
            },
            certificate: d.certificate().map(|c| CertificateView {
                not_before: rfc3339(c.not_before),
                not_after: rfc3339(c.not_after),
                issuer: c.issuer,
                serial: c.serial,
                renew_at: rfc3339(c.renew_at),
                renewal_window: c.renewal_window.map(|w| RenewalWindowView {
                    start: rfc3339(w.start),
                    end: rfc3339(w.end),
                    explanation_url: w.explanation_url,
                    checked_at: rfc3339(w.checked_at),
                }),
            }),
            last_error: d.last_error.clone(),
            queued: match (&d.queued_reason, d.queued_until) {
                (Some(reason), Some(until)) => Some(QueuedView {
                    reason: reason.clone(),
                    until: rfc3339(until),
                }),
                _ => None,
            },
            next_attempt_at: rfc3339(d.next_attempt_at),
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            at: rfc3339(e.at),
            kind: e.kind.as_str().to_owned(),
            message: e.message.clone(),
        }
    }
}

impl From<&FileMeta> for FileView {
    fn from(f: &FileMeta) -> Self {
        FileView {
            path: f.path.clone(),
            size: f.size,
            content_type: f.content_type.clone(),
            etag: f.etag.clone(),
            updated_at: rfc3339(f.updated_at),
        }
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// An entry of the caller's own log: what happened to the account (a hostname claimed
/// away by another account, a suspension), kept after the domains it names are gone.
#[derive(Serialize, ToSchema)]
pub struct TenantEventView {
    #[schema(format = DateTime)]
    pub at: String,
    /// `hostname_claimed`, `suspended`, `unsuspended`.
    pub kind: String,
    pub message: String,
}

impl From<landlord_store::TenantEvent> for TenantEventView {
    fn from(e: landlord_store::TenantEvent) -> Self {
        Self {
            at: rfc3339(e.at),
            kind: e.kind,
            message: e.message,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TenantEventList {
    pub events: Vec<TenantEventView>,
}
