//! `POST /v1/tenants` (admin).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::extract::{Admin, Json};
use crate::problem::Problem;
use crate::views::TenantCreated;

#[derive(Deserialize, ToSchema)]
pub struct NewTenant {
    name: String,
}

/// Create a tenant and its first API key (admin token required).
#[utoipa::path(post, path = "/v1/tenants", tag = "admin", request_body = NewTenant,
    security(("admin_token" = [])),
    responses(
        (status = 201, body = TenantCreated),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admin endpoints are disabled", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    Json(body): Json<NewTenant>,
) -> Result<(StatusCode, axum::Json<TenantCreated>), Problem> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Problem::invalid(
            "invalid-name",
            "The tenant name must be 1 to 200 characters without control characters.",
        ));
    }
    let (tenant, key) = state.store.create_tenant(name).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(TenantCreated {
            id: tenant.id,
            name: tenant.name,
            api_key: key.secret,
        }),
    ))
}
