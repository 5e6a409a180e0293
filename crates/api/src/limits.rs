//! `GET /v1/limits`: what the caller may hold and do, beside what it holds now.

use axum::Json;
use axum::extract::State;

use crate::AppState;
use crate::extract::Caller;
use crate::problem::Problem;
use crate::views::{Allowance, LimitsView, RateView};
use landlord_store::FILE_OVERHEAD_BYTES;

/// The caller's limits and current usage.
#[utoipa::path(get, path = "/v1/limits", tag = "tenant", operation_id = "get_limits",
    security(("api_key" = [])),
    responses(
        (status = 200, body = LimitsView),
    ))]
pub async fn show(
    Caller(tenant): Caller,
    State(state): State<AppState>,
) -> Result<Json<LimitsView>, Problem> {
    let usage = state.store.tenant_usage(tenant).await?;
    let config = &state.config;
    Ok(Json(LimitsView {
        domains: Allowance {
            used: usage.domains,
            limit: config.limits.max_domains,
        },
        sites: Allowance {
            used: usage.sites,
            limit: config.limits.max_sites,
        },
        api_keys: Allowance {
            used: usage.api_keys,
            limit: config.limits.max_api_keys,
        },
        files: Allowance {
            used: usage.files,
            limit: config.limits.max_files,
        },
        storage_bytes: Allowance {
            used: usage.used_bytes,
            limit: config.limits.quota_bytes,
        },
        max_file_bytes: config.limits.max_file_bytes,
        file_overhead_bytes: FILE_OVERHEAD_BYTES,
        event_streams: Allowance {
            used: state.hub.open_streams(tenant) as i64,
            limit: config.max_event_streams as i64,
        },
        api_requests: config.api_rate.map(|r| RateView {
            limit: r.limit,
            window_seconds: r.window.as_secs(),
        }),
        check_interval_seconds: config.check_interval.as_secs_f64(),
    }))
}
