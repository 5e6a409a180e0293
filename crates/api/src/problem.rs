//! Errors as RFC 9457 problem documents (`application/problem+json`).
//!
//! Every response the API sends for a failure goes through [`Problem`], including the
//! rejections of axum's extractors, unknown routes and wrong methods, so a client never
//! has to parse anything but a problem document.

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
    #[serde(skip)]
    #[schema(ignore)]
    www_authenticate: bool,
}

impl Problem {
    /// A problem with a specific type slug (`/problems/{slug}`).
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            www_authenticate: false,
        }
    }

    /// A problem that is nothing more than its HTTP status (`type` is `about:blank`).
    pub fn plain(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            www_authenticate: false,
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
            StoreError::Database(e) if is_unavailable(&e) => Problem::unavailable(&e),
            StoreError::Database(e) => Problem::internal(&e),
        }
    }
}

fn is_unavailable(err: &sqlx_error::Error) -> bool {
    matches!(
        err,
        sqlx_error::Error::PoolTimedOut | sqlx_error::Error::Io(_) | sqlx_error::Error::PoolClosed
    )
}

/// sqlx's error type, reached through the store so this crate needs no sqlx dependency.
mod sqlx_error {
    pub use landlord_store::SqlxError as Error;
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
