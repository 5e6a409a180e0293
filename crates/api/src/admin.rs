//! `/v1/admin/…`: operator abuse controls (admin token). Every action is written to the
//! audit log with when, why and (when given) who.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::extract::{Admin, Json, Path};
use crate::problem::Problem;
use crate::views::rfc3339;
use landlord_store::{Because, Hostname};

/// Why (required) and who (optional), for the audit log.
#[derive(Deserialize, ToSchema)]
pub struct Action {
    /// Why, in a few words (1 to 500 characters).
    #[schema(min_length = 1, max_length = 500, example = "phishing report #1234")]
    reason: String,
    /// The operator's name, for the audit log.
    #[schema(max_length = 200)]
    operator: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewBlock {
    /// The hostname to block, e.g. `login.bank.example`.
    #[schema(min_length = 1, example = "login.bank.example")]
    hostname: String,
    /// Block every name below it too.
    #[serde(default)]
    subdomains: bool,
    #[schema(min_length = 1, max_length = 500)]
    reason: String,
    #[schema(max_length = 200)]
    operator: Option<String>,
}

/// A tenant as an operator sees it.
#[derive(Serialize, ToSchema)]
pub struct AdminTenant {
    id: Uuid,
    name: String,
    #[schema(format = DateTime)]
    created_at: String,
    suspended: bool,
    #[schema(format = DateTime)]
    suspended_at: Option<String>,
    suspended_reason: Option<String>,
    domains: i64,
}

#[derive(Serialize, ToSchema)]
pub struct AdminTenantList {
    tenants: Vec<AdminTenant>,
}

#[derive(Serialize, ToSchema)]
pub struct BlockView {
    hostname: String,
    subdomains: bool,
    reason: String,
    operator: Option<String>,
    #[schema(format = DateTime)]
    at: String,
}

#[derive(Serialize, ToSchema)]
pub struct BlockList {
    blocked: Vec<BlockView>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    #[schema(format = DateTime)]
    at: String,
    /// `tenant_suspended`, `tenant_unsuspended`, `hostname_blocked`, `hostname_unblocked`.
    action: String,
    /// The tenant id or the hostname.
    subject: String,
    reason: String,
    operator: Option<String>,
}

impl From<landlord_store::AuditEntry> for AuditView {
    fn from(e: landlord_store::AuditEntry) -> Self {
        Self {
            at: rfc3339(e.at),
            action: e.action,
            subject: e.subject,
            reason: e.reason,
            operator: e.operator,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    events: Vec<AuditView>,
}

/// An edge as its heartbeats describe it.
#[derive(Serialize, ToSchema)]
pub struct EdgeView {
    #[schema(value_type = Uuid)]
    id: Uuid,
    /// `LANDLORD_EDGE_NAME` (default `<host>-<pid>`).
    name: String,
    /// `LANDLORD_EDGE_REGION`.
    region: String,
    /// It reads a hot standby (or `LANDLORD_READ_ONLY`).
    read_only: bool,
    /// It reported in the last 10 seconds (workers wait for live edges only).
    live: bool,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    seen_at: String,
    /// The last change-log entry it applied, and how many entries the log has past it.
    position: i64,
    behind: i64,
    /// Everything committed before this moment is in its memory (its replica's replay
    /// time for a standby).
    #[schema(format = DateTime)]
    synced_at: Option<String>,
    /// How far its replica's replay is behind (null on the primary).
    replay_lag_seconds: Option<f64>,
}

impl From<landlord_store::fleet::EdgeStatus> for EdgeView {
    fn from(e: landlord_store::fleet::EdgeStatus) -> Self {
        Self {
            id: e.id,
            name: e.name,
            region: e.region,
            read_only: e.read_only,
            live: e.live,
            started_at: rfc3339(e.started_at),
            seen_at: rfc3339(e.seen_at),
            position: e.position,
            behind: e.behind,
            synced_at: e.synced_at.map(rfc3339),
            replay_lag_seconds: e.replay_lag_seconds,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EdgeList {
    edges: Vec<EdgeView>,
}

/// Every edge that reported in the last day, live ones first: which regions lag, and by
/// how much.
#[utoipa::path(get, path = "/v1/admin/edges", tag = "admin", operation_id = "admin_list_edges",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = EdgeList),
    ))]
pub async fn edges(
    _: Admin,
    State(state): State<AppState>,
) -> Result<axum::Json<EdgeList>, Problem> {
    let edges = state.store.edges().await?;
    Ok(axum::Json(EdgeList {
        edges: edges.into_iter().map(EdgeView::from).collect(),
    }))
}

/// Every tenant with its domain count and suspension.
#[utoipa::path(get, path = "/v1/admin/tenants", tag = "admin", operation_id = "admin_list_tenants",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = AdminTenantList),
    ))]
pub async fn tenants(
    _: Admin,
    State(state): State<AppState>,
) -> Result<axum::Json<AdminTenantList>, Problem> {
    let tenants = state.store.list_tenants().await?;
    Ok(axum::Json(AdminTenantList {
        tenants: tenants.into_iter().map(AdminTenant::from).collect(),
    }))
}

/// Suspend a tenant: its API keys answer 403 and its hostnames stop being served within
/// seconds; nothing is issued or renewed for it meanwhile. Its data is kept.
#[utoipa::path(post, path = "/v1/admin/tenants/{id}/suspend", tag = "admin", operation_id = "admin_suspend_tenant",
    params(("id" = Uuid, Path, description = "Tenant id")),
    request_body = Action,
    security(("admin_token" = [])),
    responses(
        (status = 200, body = AdminTenant),
    ))]
pub async fn suspend(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<Action>,
) -> Result<axum::Json<AdminTenant>, Problem> {
    set_suspended(&state, id, &body, true).await
}

/// Lift a suspension; the tenant's hostnames are served again.
#[utoipa::path(post, path = "/v1/admin/tenants/{id}/unsuspend", tag = "admin", operation_id = "admin_unsuspend_tenant",
    params(("id" = Uuid, Path, description = "Tenant id")),
    request_body = Action,
    security(("admin_token" = [])),
    responses(
        (status = 200, body = AdminTenant),
    ))]
pub async fn unsuspend(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<Action>,
) -> Result<axum::Json<AdminTenant>, Problem> {
    set_suspended(&state, id, &body, false).await
}

/// Block a hostname (optionally with every name below it) platform-wide: no tenant may
/// register it, and an existing registration stops being served.
#[utoipa::path(post, path = "/v1/admin/blocked-hostnames", tag = "admin", operation_id = "admin_block_hostname",
    request_body = NewBlock,
    security(("admin_token" = [])),
    responses(
        (status = 201, body = BlockView),
    ))]
pub async fn block(
    _: Admin,
    State(state): State<AppState>,
    Json(body): Json<NewBlock>,
) -> Result<(StatusCode, axum::Json<BlockView>), Problem> {
    let hostname = Hostname::parse(&body.hostname)
        .map_err(|e| Problem::invalid("invalid-hostname", e.to_string()))?;
    let why = because(&body.reason, body.operator.as_deref())?;
    let blocked = state
        .store
        .block_hostname(&hostname, body.subdomains, why)
        .await?;
    tracing::warn!(%hostname, subdomains = body.subdomains, reason = why.reason, "hostname blocked");
    Ok((StatusCode::CREATED, axum::Json(blocked.into())))
}

/// Every blocked hostname.
#[utoipa::path(get, path = "/v1/admin/blocked-hostnames", tag = "admin", operation_id = "admin_list_blocked",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = BlockList),
    ))]
pub async fn blocked(
    _: Admin,
    State(state): State<AppState>,
) -> Result<axum::Json<BlockList>, Problem> {
    let blocked = state.store.blocked_hostnames().await?;
    Ok(axum::Json(BlockList {
        blocked: blocked.into_iter().map(BlockView::from).collect(),
    }))
}

/// Lift a block (the reason goes to the audit log).
#[utoipa::path(post, path = "/v1/admin/blocked-hostnames/{hostname}/unblock", tag = "admin", operation_id = "admin_unblock_hostname",
    params(("hostname" = String, Path, description = "The blocked hostname")),
    request_body = Action,
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Unblocked"),
    ))]
pub async fn unblock(
    _: Admin,
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Json(body): Json<Action>,
) -> Result<StatusCode, Problem> {
    let hostname =
        Hostname::parse(&raw).map_err(|e| Problem::invalid("invalid-hostname", e.to_string()))?;
    let why = because(&body.reason, body.operator.as_deref())?;
    if state.store.unblock_hostname(&hostname, why).await? {
        tracing::warn!(%hostname, reason = why.reason, "hostname unblocked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("{hostname} is not blocked.")))
    }
}

/// The newest operator actions (at most 500), newest first.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", operation_id = "admin_audit_log",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = AuditList),
    ))]
pub async fn audit(
    _: Admin,
    State(state): State<AppState>,
) -> Result<axum::Json<AuditList>, Problem> {
    let entries = state.store.audit_log(500).await?;
    Ok(axum::Json(AuditList {
        events: entries.into_iter().map(AuditView::from).collect(),
    }))
}

async fn set_suspended(
    state: &AppState,
    id: Uuid,
    body: &Action,
    suspended: bool,
) -> Result<axum::Json<AdminTenant>, Problem> {
    let why = because(&body.reason, body.operator.as_deref())?;
    let tenant = state
        .store
        .set_tenant_suspended(id, suspended, why)
        .await?
        .ok_or_else(|| no_tenant(id))?;
    tracing::warn!(tenant = %id, suspended, reason = why.reason, operator = why.operator, "tenant suspension changed");
    Ok(axum::Json(tenant.into()))
}

fn because<'a>(reason: &'a str, operator: Option<&'a str>) -> Result<Because<'a>, Problem> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(Problem::invalid(
            "invalid-reason",
            "Give a reason of 1 to 500 characters without control characters; it goes to the audit log.",
        ));
    }
    let operator = operator.map(str::trim).filter(|o| !o.is_empty());
    if operator.is_some_and(|o| o.chars().count() > 200 || o.chars().any(char::is_control)) {
        return Err(Problem::invalid(
            "invalid-operator",
            "The operator's name must be at most 200 characters without control characters.",
        ));
    }
    Ok(Because { reason, operator })
}

fn no_tenant(id: Uuid) -> Problem {
    Problem::not_found(format!("There is no tenant with id {id}."))
}

impl From<landlord_store::TenantSummary> for AdminTenant {
    fn from(t: landlord_store::TenantSummary) -> Self {
        AdminTenant {
            id: t.id,
            name: t.name,
            created_at: rfc3339(t.created_at),
            suspended: t.suspended_at.is_some(),
            suspended_at: t.suspended_at.map(rfc3339),
            suspended_reason: t.suspended_reason,
            domains: t.domains,
        }
    }
}

impl From<landlord_store::BlockedHostname> for BlockView {
    fn from(b: landlord_store::BlockedHostname) -> Self {
        BlockView {
            hostname: b.hostname,
            subdomains: b.subdomains,
            reason: b.reason,
            operator: b.operator,
            at: rfc3339(b.at),
        }
    }
}
