//! `POST /v1/tenants` (admin).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::extract::{Admin, Json};
use crate::problem::Problem;

#[derive(Deserialize)]
pub struct NewTenant {
    name: String,
}

pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    Json(body): Json<NewTenant>,
) -> Result<(StatusCode, axum::Json<Value>), Problem> {
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
        axum::Json(json!({ "id": tenant.id, "name": tenant.name, "api_key": key.secret })),
    ))
}
