//! `/v1/files`: the tenant's static pages.

use crate::AppState;
use crate::extract::{Caller, PageQuery, Path, Query};
use crate::problem::Problem;
use crate::views::{FileBytes, FileList, FileUsage, FileView};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use landlord_store::{FILE_OVERHEAD_BYTES, FilePath, choose_content_type};

/// The longest Content-Type stored with a file (the header is served back on every hit).
pub const MAX_CONTENT_TYPE_BYTES: usize = 255;

/// How `{path}` is validated (422 `invalid-path` otherwise), for the OpenAPI document. Its
/// `pattern` states the part a regular expression can state exactly: no control characters
/// (Unicode category Cc) and no backslash.
const PATH_RULES: &str = "File path, e.g. `index.html` or `css/site.css` (one leading `/` is \
    ignored). At most 1024 bytes, 32 segments and 255 bytes per segment; no empty, `.` or `..` \
    segments, no backslash, no control characters. Invalid paths answer 422.";

/// Store the request body as the file at `/{path}` (Content-Type from the request, or
/// guessed from the extension).
#[utoipa::path(put, path = "/v1/files/{path}", tag = "files", operation_id = "put_file",
    params(("path" = String, Path, description = PATH_RULES, min_length = 1, pattern = r"^[^\x00-\x1f\x7f-\x9f\\]+$")),
    request_body(content = inline(Option<FileBytes>), content_type = "application/octet-stream",
        description = "The file's bytes; an empty or missing body stores an empty file. Any \
            valid media type of at most 255 bytes is accepted as Content-Type and served back \
            with the file."),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "The body could not be read", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The path is not valid UTF-8 once percent-decoded", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The tenant holds the most files allowed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the per-file limit or the tenant quota", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid path or Content-Type", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<StatusCode, Problem> {
    let path = parse_path(&raw)?;
    let limits = state.config.limits;
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
    // A Content-Type that is not even ASCII is as malformed as one that does not parse:
    // refuse it rather than silently guessing from the extension.
    let declared_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| {
            v.to_str().map_err(|_| {
                Problem::invalid(
                    "invalid-content-type",
                    "The Content-Type header is not a valid media type (it contains non-ASCII bytes).",
                )
            })
        })
        .transpose()?;
    if let Some(t) = declared_type
        && t.len() > MAX_CONTENT_TYPE_BYTES
    {
        return Err(Problem::invalid(
            "invalid-content-type",
            format!(
                "The Content-Type header is {} bytes long; the limit is {MAX_CONTENT_TYPE_BYTES} bytes.",
                t.len()
            ),
        ));
    }
    let content_type = choose_content_type(declared_type, &path)
        .map_err(|detail| Problem::invalid("invalid-content-type", detail))?;
    let meta = state
        .store
        .put_file(tenant, &path, &content_type, &body, limits)
        .await?;
    tracing::info!(path = %meta.path, size = meta.size, "file stored");
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's files by path, a page at a time, and its storage usage.
#[utoipa::path(get, path = "/v1/files", tag = "files", operation_id = "list_files", params(PageQuery<String>),
    security(("api_key" = [])),
    responses(
        (status = 200, body = FileList),
    ))]
pub async fn list(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Query(params): Query<PageQuery<String>>,
) -> Result<axum::Json<FileList>, Problem> {
    let limit = params.limit()?;
    let page = state
        .store
        .list_files(tenant, limit, params.cursor.as_deref())
        .await?;
    let usage = state.store.tenant_usage(tenant).await?;
    let limits = state.config.limits;
    Ok(axum::Json(FileList {
        files: page.items.iter().map(FileView::from).collect(),
        next_cursor: page.next_cursor,
        usage: FileUsage {
            used_bytes: usage.used_bytes,
            quota_bytes: limits.quota_bytes,
            max_file_bytes: limits.max_file_bytes,
            file_overhead_bytes: FILE_OVERHEAD_BYTES,
            files: usage.files,
            max_files: limits.max_files,
        },
    }))
}

/// Delete one of the caller's files.
#[utoipa::path(delete, path = "/v1/files/{path}", tag = "files", operation_id = "delete_file",
    params(("path" = String, Path, description = PATH_RULES, min_length = 1, pattern = r"^[^\x00-\x1f\x7f-\x9f\\]+$")),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 422, description = "Invalid path", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<StatusCode, Problem> {
    let path = parse_path(&raw)?;
    if state
        .store
        .delete_file(tenant, &path, state.config.limits.kept_deployments)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("You have no file at /{path}.")))
    }
}

fn parse_path(raw: &str) -> Result<FilePath, Problem> {
    FilePath::parse(raw).map_err(|e| Problem::invalid("invalid-path", e.to_string()))
}
