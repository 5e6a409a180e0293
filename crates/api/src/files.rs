//! `/v1/files`: the tenant's static pages.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use crate::AppState;
use crate::domains::rfc3339;
use crate::extract::{Caller, Path};
use crate::problem::Problem;
use landlord_store::{FilePath, choose_content_type};

pub async fn put(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<StatusCode, Problem> {
    let path = parse_path(&raw)?;
    let limits = state.config.file_limits;
    let too_large = |size: Option<u64>| {
        let size = size
            .map(|s| format!("{s} bytes"))
            .unwrap_or_else(|| "too large".into());
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file-too-large",
            "File too large",
            format!(
                "The file is {size}; the limit is {} bytes per file.",
                limits.max_file_bytes
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_file_bytes as u64) {
        return Err(too_large(declared));
    }
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(None)
        } else {
            r.into()
        }
    })?;
    let content_type = choose_content_type(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        &path,
    )
    .map_err(|detail| Problem::invalid("invalid-content-type", detail))?;
    let meta = state
        .store
        .put_file(tenant, &path, &content_type, &body, limits)
        .await?;
    tracing::info!(path = %meta.path, size = meta.size, "file stored");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list(
    Caller(tenant): Caller,
    State(state): State<AppState>,
) -> Result<axum::Json<Value>, Problem> {
    let files = state.store.list_files(tenant).await?;
    let used: i64 = files.iter().map(|f| f.size).sum();
    let files: Vec<Value> = files
        .iter()
        .map(|f| {
            json!({
                "path": f.path,
                "size": f.size,
                "content_type": f.content_type,
                "etag": f.etag,
                "updated_at": rfc3339(f.updated_at),
            })
        })
        .collect();
    let limits = state.config.file_limits;
    Ok(axum::Json(json!({
        "files": files,
        "usage": {
            "used_bytes": used,
            "quota_bytes": limits.quota_bytes,
            "max_file_bytes": limits.max_file_bytes,
        },
    })))
}

pub async fn delete(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<StatusCode, Problem> {
    let path = parse_path(&raw)?;
    if state.store.delete_file(tenant, &path).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("You have no file at /{path}.")))
    }
}

fn parse_path(raw: &str) -> Result<FilePath, Problem> {
    FilePath::parse(raw).map_err(|e| Problem::invalid("invalid-path", e.to_string()))
}
