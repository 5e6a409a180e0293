//! `/v1/domains`: register, list, show, delete, check now, timeline.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::extract::{Caller, Json, Path, Query};
use crate::problem::Problem;
use crate::{ApiConfig, AppState};
use landlord_store::{Domain, Event, Hostname};

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;
const TIMELINE_LENGTH: u32 = 200;

#[derive(Deserialize)]
pub struct NewDomain {
    hostname: String,
}

pub async fn create(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Json(body): Json<NewDomain>,
) -> Result<(StatusCode, axum::Json<Value>), Problem> {
    let hostname = Hostname::parse(&body.hostname)
        .map_err(|e| Problem::invalid("invalid-hostname", e.to_string()))?;
    let ours = state.config.cname_target.registrable_domain();
    if hostname.is_within(ours) {
        return Err(Problem::invalid(
            "invalid-hostname",
            format!(
                "{hostname} is under {ours}, which belongs to this platform. Use a hostname under your own domain."
            ),
        ));
    }
    let domain = state.store.create_domain(tenant, &hostname).await?;
    tracing::info!(domain = %domain.id, %hostname, "domain registered");
    Ok((
        StatusCode::CREATED,
        axum::Json(view(&domain, &state.config)),
    ))
}

#[derive(Deserialize)]
pub struct ListParams {
    limit: Option<u32>,
    cursor: Option<Uuid>,
}

pub async fn list(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Value>, Problem> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::invalid(
            "invalid-limit",
            format!("limit must be between 1 and {MAX_PAGE}; it was {limit}."),
        ));
    }
    let page = state
        .store
        .list_domains(tenant, limit, params.cursor)
        .await?;
    let domains: Vec<Value> = page.items.iter().map(|d| view(d, &state.config)).collect();
    Ok(axum::Json(
        json!({ "domains": domains, "next_cursor": page.next_cursor }),
    ))
}

pub async fn get(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Value>, Problem> {
    let domain = state
        .store
        .get_domain(tenant, id)
        .await?
        .ok_or_else(|| no_domain(id))?;
    Ok(axum::Json(view(&domain, &state.config)))
}

pub async fn delete(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Problem> {
    if state.store.delete_domain(tenant, id).await? {
        tracing::info!(domain = %id, "domain deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_domain(id))
    }
}

pub async fn check(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, axum::Json<Value>), Problem> {
    let domain = state
        .store
        .request_check(tenant, id)
        .await?
        .ok_or_else(|| no_domain(id))?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(view(&domain, &state.config)),
    ))
}

pub async fn events(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Value>, Problem> {
    let events = state
        .store
        .domain_events(tenant, id, TIMELINE_LENGTH)
        .await?
        .ok_or_else(|| no_domain(id))?;
    let events: Vec<Value> = events.iter().map(event_view).collect();
    Ok(axum::Json(json!({ "events": events })))
}

fn no_domain(id: Uuid) -> Problem {
    Problem::not_found(format!("You have no domain with id {id}."))
}

/// The Domain object of the contract.
pub fn view(d: &Domain, config: &ApiConfig) -> Value {
    json!({
        "id": d.id,
        "hostname": d.hostname,
        "hostname_unicode": idna_display(&d.hostname),
        "status": d.status,
        "dns": dns_instructions(&d.hostname, config),
        "check": {
            "checked_at": d.checked_at.map(rfc3339),
            "found": d.check_found,
            "problem": d.check_problem,
        },
        "certificate": d.certificate().map(|c| json!({
            "not_before": rfc3339(c.not_before),
            "not_after": rfc3339(c.not_after),
            "issuer": c.issuer,
            "serial": c.serial,
            "renew_at": rfc3339(c.renew_at),
        })),
        "last_error": d.last_error,
        "next_attempt_at": rfc3339(d.next_attempt_at),
        "created_at": rfc3339(d.created_at),
        "updated_at": rfc3339(d.updated_at),
    })
}

/// What the tenant must create: the CNAME, and the A/AAAA records as the alternative
/// (for apex names, which cannot carry a CNAME).
fn dns_instructions(hostname: &str, config: &ApiConfig) -> Value {
    let alternatives: Vec<Value> = config
        .edge_ips
        .iter()
        .map(|ip| {
            let kind = if ip.is_ipv4() { "A" } else { "AAAA" };
            json!({ "type": kind, "name": hostname, "value": ip.to_string() })
        })
        .collect();
    json!({
        "type": "CNAME",
        "name": hostname,
        "value": config.cname_target.as_str(),
        "alternatives": alternatives,
    })
}

fn event_view(e: &Event) -> Value {
    json!({ "at": rfc3339(e.at), "kind": e.kind, "message": e.message })
}

fn idna_display(hostname: &str) -> String {
    Hostname::parse(hostname)
        .map(|h| h.to_unicode())
        .unwrap_or_else(|_| hostname.to_owned())
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}
