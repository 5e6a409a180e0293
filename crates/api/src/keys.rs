//! `/v1/keys`: a tenant's API keys (create, list, revoke).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use landlord_store::{KeyName, KeyRecord, Revocation};

use crate::AppState;
use crate::extract::{Caller, Json, KeyPrefix, Path};
use crate::problem::Problem;
use crate::views::rfc3339;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// What the key is for ("CI", "dashboard"): at most 100 characters without control
    /// characters. Optional.
    #[schema(
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$",
        example = "CI"
    )]
    #[serde(default)]
    name: Option<String>,
}

/// An API key, without its secret.
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    id: Uuid,
    name: Option<String>,
    /// The key's first characters (`ll_` and 8 hex digits): tells keys apart, cannot sign in.
    #[schema(example = "ll_3f9c2a10")]
    prefix: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// When the key last authenticated a request (refreshed at most once a minute).
    #[schema(value_type = Option<String>, format = DateTime)]
    last_used_at: Option<String>,
    /// Whether this is the key the request was made with.
    current: bool,
}

impl KeyView {
    fn of(k: KeyRecord, caller: &KeyPrefix) -> Self {
        Self {
            current: caller.0.as_deref() == Some(k.prefix.as_str()),
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
        }
    }
}

/// A new key: `api_key` is shown only here.
#[derive(Serialize, ToSchema)]
pub struct KeyCreated {
    #[serde(flatten)]
    key: KeyView,
    #[schema(example = "ll_3f9c2a10…")]
    api_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    keys: Vec<KeyView>,
}

/// Create another API key for your account (at most `LANDLORD_TENANT_MAX_API_KEYS` live
/// ones). Its secret is in this answer only.
#[utoipa::path(post, path = "/v1/keys", tag = "tenant", operation_id = "create_key",
    request_body = NewKey,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = KeyCreated),
        (status = 403, description = "The account holds the most keys allowed, or is suspended", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or body shape", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    Caller(tenant): Caller,
    caller: KeyPrefix,
    State(state): State<AppState>,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, axum::Json<KeyCreated>), Problem> {
    let name = KeyName::parse(body.name.as_deref()).map_err(|why| {
        Problem::invalid("invalid-name", format!("The key name is invalid: {why}."))
    })?;
    let (record, key) = state
        .store
        .create_api_key(tenant, &name, state.config.limits.max_api_keys)
        .await?;
    tracing::info!(tenant = %tenant, key = %record.prefix, "API key created");
    Ok((
        StatusCode::CREATED,
        axum::Json(KeyCreated {
            key: KeyView::of(record, &caller),
            api_key: key.secret,
        }),
    ))
}

/// Your live API keys, oldest first (never their secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "tenant", operation_id = "list_keys",
    security(("api_key" = [])),
    responses(
        (status = 200, body = KeyList),
        (status = 403, description = "The account is suspended", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    Caller(tenant): Caller,
    caller: KeyPrefix,
    State(state): State<AppState>,
) -> Result<axum::Json<KeyList>, Problem> {
    let keys = state.store.api_keys(tenant).await?;
    Ok(axum::Json(KeyList {
        keys: keys.into_iter().map(|k| KeyView::of(k, &caller)).collect(),
    }))
}

/// Revoke a key: from the next request on, on every API process, it authenticates
/// nothing. The account's last key cannot be revoked (create another first).
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "tenant", operation_id = "revoke_key",
    params(("id" = Uuid, Path, description = "Key id")),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "The account is suspended", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It is the account's last key", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Problem> {
    match state.store.revoke_api_key(tenant, id).await? {
        Revocation::Revoked => {
            tracing::info!(tenant = %tenant, key = %id, "API key revoked");
            Ok(StatusCode::NO_CONTENT)
        }
        Revocation::NotFound => Err(Problem::not_found(format!(
            "You have no live API key with id {id} (GET /v1/keys lists them)."
        ))),
        Revocation::LastKey => Err(Problem::new(
            StatusCode::CONFLICT,
            "last-key",
            "Last key",
            "This is your account's only live API key: revoking it would lock the account out. Create another key first (POST /v1/keys), then revoke this one with it.",
        )),
    }
}
