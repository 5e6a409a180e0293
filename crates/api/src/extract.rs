//! Extractors whose rejections are problem documents, and the two kinds of caller.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::problem::Problem;
use landlord_store::{ApiKey, Authenticated, TenantId};

/// `axum::Json` with problem+json rejections, for bodies that are JSON objects: every
/// body of this API is one, and serde alone would also read a struct from an array
/// (`[null, null]` for two optional fields).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Problem> {
        let axum::Json(object) =
            axum::Json::<serde_json::Map<String, serde_json::Value>>::from_request(req, state)
                .await?;
        serde_json::from_value(serde_json::Value::Object(object))
            .map(Json)
            .map_err(|e| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-body",
                    "Invalid request body",
                    format!("The JSON body could not be read: {e}"),
                )
            })
    }
}

/// `axum::extract::Path` with problem+json rejections.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct Path<T>(pub T);

/// `axum::extract::Query` with problem+json rejections.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct Query<T>(pub T);

/// A listing's query: `limit` and the `next_cursor` of the previous page.
#[derive(serde::Deserialize)]
pub struct PageQuery<C> {
    limit: Option<u32>,
    pub cursor: Option<C>,
}

/// How [`PageQuery`] is documented, per cursor type (a cursor is opaque to clients, but
/// its format is what a client may send).
macro_rules! page_params {
    ($params:ident, $cursor:ty, $doc_type:ty) => {
        #[derive(utoipa::IntoParams)]
        #[into_params(parameter_in = Query)]
        #[allow(dead_code)]
        struct $params {
            /// Page size, 1 to 1000 (default 100).
            #[param(minimum = 1, maximum = 1000)]
            limit: Option<u32>,
            /// `next_cursor` of the previous page.
            cursor: Option<$doc_type>,
        }

        impl utoipa::IntoParams for PageQuery<$cursor> {
            fn into_params(
                parameter_in_provider: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                $params::into_params(parameter_in_provider)
            }
        }
    };
}
page_params!(DomainPageParams, landlord_store::DomainId, uuid::Uuid);
page_params!(PathPageParams, String, String);

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

impl<C> PageQuery<C> {
    /// `limit`: 1 to 1000, 100 when not given.
    pub fn limit(&self) -> Result<u32, Problem> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Problem::invalid(
                "invalid-limit",
                format!("limit must be between 1 and {MAX_PAGE}; it was {limit}."),
            ));
        }
        Ok(limit)
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let detail = match &r {
            JsonRejection::MissingJsonContentType(_) => {
                "Send the body as JSON with the header Content-Type: application/json.".to_owned()
            }
            _ => format!("The JSON body could not be read: {}", r.body_text()),
        };
        Problem::new(status, "invalid-body", "Invalid request body", detail)
    }
}

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Self {
        // A malformed id cannot name anything, so it is "not found", with the reason.
        Problem::not_found(format!("Nothing matches this path: {}", r.body_text()))
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Self {
        Problem::bad_request(format!("The query string is invalid: {}", r.body_text()))
    }
}

impl From<BytesRejection> for Problem {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "file-too-large",
                "File too large",
                "The request body is larger than the per-file limit.",
            )
        } else {
            Problem::bad_request(format!(
                "The request body could not be read: {}",
                r.body_text()
            ))
        }
    }
}

/// The tenant making the request, authenticated by `Authorization: Bearer <api key>`.
pub struct Caller(pub TenantId);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = bearer(parts).ok_or_else(|| {
            Problem::unauthorized("Send your API key as the header Authorization: Bearer <key>.")
        })?;
        match state
            .store
            .authenticate_metered(token, state.config.api_rate)
            .await?
        {
            Authenticated::Tenant(tenant) => Ok(Caller(tenant)),
            Authenticated::Limited(_, retry_after) => {
                let rate = state.config.api_rate.unwrap_or(crate::DEFAULT_API_RATE);
                Err(Problem::too_many(
                    "rate-limited",
                    format!(
                        "Your account sent more than {} API requests in {} (the limit per account). Retry after the Retry-After header's seconds.",
                        rate.limit,
                        crate::problem::human_secs(rate.window)
                    ),
                    retry_after,
                ))
            }
            Authenticated::Suspended(_) => Err(Problem::new(
                StatusCode::FORBIDDEN,
                "tenant-suspended",
                "Account suspended",
                "This account is suspended by the platform's operator: its hostnames are not served and its API keys are refused. Contact the operator.",
            )),
            Authenticated::Unknown => Err(Problem::unauthorized(
                "The API key is not valid (unknown or revoked).",
            )),
        }
    }
}

/// The display prefix of the request's API key (`ll_` and 8 hex digits), to record who
/// made something; only after [`Caller`] has accepted the key.
pub struct KeyPrefix(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for KeyPrefix {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(bearer(parts).map(ApiKey::display_prefix)))
    }
}

/// An operator, authenticated by `LANDLORD_ADMIN_TOKEN`.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Some(expected) = &state.config.admin_token_hash else {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "admin-disabled",
                "Admin endpoints disabled",
                "Admin endpoints are disabled on this server: set LANDLORD_ADMIN_TOKEN to enable them.",
            ));
        };
        let token = bearer(parts).ok_or_else(|| {
            Problem::unauthorized(
                "Send the admin token as the header Authorization: Bearer <token>.",
            )
        })?;
        // Comparing digests keeps the comparison's timing independent of the secret.
        if hash_admin_token(token) == *expected {
            Ok(Admin)
        } else {
            Err(Problem::unauthorized("The admin token is not valid."))
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The admin token as stored in memory: its digest only.
pub fn hash_admin_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}
