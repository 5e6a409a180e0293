//! Errors as RFC 9457 problem documents (`application/problem+json`).
//!
//! Every response the API sends for a failure goes through [`Problem`], including the
//! rejections of axum's extractors, unknown routes and wrong methods, so a client never
//! has to parse anything but a problem document.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error response (RFC 9457). `detail` is written for the person who made the request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "/problems/invalid-hostname")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// On a 409 for a hostname another account holds: the TXT record that proves control
    /// of it (`{"type":"TXT","name","value","verified"}`); publish it and retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub ownership: Option<Box<serde_json::Value>>,
    #[serde(skip)]
    #[schema(ignore)]
    www_authenticate: bool,
    /// Seconds for the `Retry-After` header.
    #[serde(skip)]
    #[schema(ignore)]
    retry_after: Option<u64>,
}

impl Problem {
    /// A problem with a specific type slug (`/problems/{slug}`).
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            ownership: None,
            www_authenticate: false,
            retry_after: None,
        }
    }

    /// A problem that is nothing more than its HTTP status (`type` is `about:blank`).
    pub fn plain(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            ownership: None,
            www_authenticate: false,
            retry_after: None,
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut p = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        );
        p.www_authenticate = true;
        p
    }

    pub fn invalid(slug: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            slug,
            "Invalid request",
            detail,
        )
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// 429 with `Retry-After` (whole seconds, at least 1).
    pub fn too_many(slug: &str, detail: impl Into<String>, retry_after: Duration) -> Self {
        let mut p = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            slug,
            "Too many requests",
            detail,
        );
        p.retry_after = Some(retry_secs(retry_after));
        p
    }

    /// A failure of ours. The cause goes to the log, never to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "Something went wrong on our side. It has been logged; please retry.",
        )
    }

    /// The database is unreachable: a 503 the client may retry.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "database unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "The service cannot reach its database right now; please retry shortly.",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<landlord_store::StoreError> for Problem {
    fn from(err: landlord_store::StoreError) -> Self {
        use landlord_store::StoreError;
        match err {
            StoreError::HostnameAlreadyYours(h, id) => Problem::new(
                StatusCode::CONFLICT,
                "hostname-taken",
                "Hostname already registered",
                format!("{h} is already one of your domains (id {id})."),
            ),
            StoreError::HostnameTaken(h) => Problem::new(
                StatusCode::CONFLICT,
                "hostname-taken",
                "Hostname already registered",
                format!(
                    "{h} is already registered on this platform. If it is yours, remove it \
                     from the other account first."
                ),
            ),
            StoreError::QuotaExceeded {
                used,
                quota,
                needed,
            } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "quota-exceeded",
                "Storage quota exceeded",
                format!(
                    "This upload needs {needed} bytes but only {} of your {quota} bytes are \
                     free ({used} used). Delete files or upload a smaller one.",
                    (quota - used).max(0)
                ),
            ),
            StoreError::LimitReached { limit, max } => limit_reached(limit, max),
            StoreError::TooSoon {
                interval,
                retry_after,
            } => Problem::too_many(
                "check-too-soon",
                format!(
                    "A check of this domain was requested less than {} ago; \"check now\" is accepted once per {} per domain (the limit). Retry in {} s; the worker keeps re-checking on its own meanwhile.",
                    human_secs(interval),
                    human_secs(interval),
                    retry_secs(retry_after)
                ),
                retry_after,
            ),
            StoreError::HostnameBlocked(h) => Problem::invalid(
                "invalid-hostname",
                format!("{h} is blocked on this platform and cannot be registered."),
            ),
            StoreError::CanonicalNotOnSite(h) => Problem::invalid(
                "invalid-canonical-hostname",
                format!(
                    "{h} is not one of this site's domains: add it to the site first (POST /v1/domains with its site_id, or PATCH the domain)."
                ),
            ),
            StoreError::InvalidRules(why) => Problem::invalid("invalid-rules", format!("{why}.")),
            StoreError::SiteNameTaken(name) => Problem::new(
                StatusCode::CONFLICT,
                "site-name-taken",
                "Site name taken",
                format!("You already have a site named {name}. Site names are unique per account."),
            ),
            StoreError::SlugTaken(slug) => Problem::new(
                StatusCode::CONFLICT,
                "slug-taken",
                "Slug taken",
                format!(
                    "The slug {slug} is taken (slugs name platform subdomains, one namespace for all accounts). Choose another."
                ),
            ),
            StoreError::NoSuchSite => Problem::invalid(
                "invalid-site",
                "site_id names none of your sites (GET /v1/sites lists them).",
            ),
            StoreError::Unavailable(e) => Problem::unavailable(&e),
            StoreError::Database(e) => Problem::internal(&e),
        }
    }
}

/// A count limit was reached: which, and what to do.
fn limit_reached(limit: landlord_store::Limit, max: i64) -> Problem {
    use landlord_store::Limit;
    let (what, advice) = match limit {
        Limit::Files => ("files", "Delete files you no longer need first."),
        Limit::Domains => ("domains", "Delete a domain you no longer need first."),
        Limit::Sites => ("sites", "Delete a site you no longer need first."),
        Limit::ApiKeys => ("API keys", "Revoke a key you no longer need first."),
        Limit::Webhooks => ("webhooks", "Delete a webhook you no longer need first."),
    };
    Problem::new(
        StatusCode::FORBIDDEN,
        "limit-reached",
        "Limit reached",
        format!(
            "You have {max} {what}, the limit per account on this platform ({max} {what}). {advice}"
        ),
    )
}

/// Whole seconds to wait, rounded up, at least 1.
fn retry_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// "10 seconds", "1 minute", "1.5 seconds".
pub fn human_secs(d: Duration) -> String {
    let whole = d.subsec_nanos() == 0;
    match d.as_secs() {
        60 if whole => "1 minute".into(),
        s if whole && s >= 120 && s % 60 == 0 => format!("{} minutes", s / 60),
        1 if whole => "1 second".into(),
        _ => format!("{} seconds", d.as_secs_f64()),
    }
}

/// Unknown routes.
pub async fn not_found_fallback(uri: axum::http::Uri) -> Problem {
    Problem::not_found(format!("There is no resource at {}.", uri.path()))
}

/// Known routes with a method they do not support.
pub async fn method_not_allowed_fallback(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Problem {
    Problem::plain(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not supported on {}.", uri.path()),
    )
}
