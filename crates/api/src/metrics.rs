//! `GET /metrics`: Prometheus text. Counters and histograms recorded by this process
//! (edge, worker, when they run here) plus fleet gauges read from PostgreSQL at
//! scrape time, so any API instance reports the whole fleet.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use landlord_store::{FleetSnapshot, Store};

use crate::AppState;
use crate::problem::Problem;

pub async fn render(State(state): State<AppState>) -> Result<impl IntoResponse, Problem> {
    render_metrics(Some(&state.store), state.config.metrics.as_ref()).await
}

/// The whole `/metrics` answer: the fleet gauges (when `fleet` is given) and what this
/// process recorded. Also what `LANDLORD_METRICS_ADDR` serves.
pub async fn render_metrics(
    fleet: Option<&Store>,
    process: Option<&metrics_exporter_prometheus::PrometheusHandle>,
) -> Result<impl IntoResponse + use<>, Problem> {
    let mut out = String::new();
    if let Some(store) = fleet {
        write_fleet(&mut out, &store.fleet_snapshot().await?);
        write_edges(&mut out, &store.edges().await?);
    }
    if let Some(handle) = process {
        out.push_str(&handle.render());
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}

fn write_fleet(out: &mut String, fleet: &FleetSnapshot) {
    let _ = writeln!(out, "# HELP landlord_domains Domains by status.");
    let _ = writeln!(out, "# TYPE landlord_domains gauge");
    for status in ["pending_dns", "issuing", "active", "failed", "moved"] {
        let n = fleet
            .domains_by_status
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "landlord_domains{{status=\"{status}\"}} {n}");
    }
    if let Some(secs) = fleet.earliest_expiry_seconds {
        gauge(
            out,
            "landlord_certificate_earliest_expiry_seconds",
            "Seconds until the earliest certificate expires (negative once expired).",
            secs,
        );
    }
    gauge(
        out,
        "landlord_certificates_renewal_overdue",
        "Certificates past their renewal time.",
        fleet.renewals_overdue,
    );
    gauge(
        out,
        "landlord_certificates_expiring_7d",
        "Certificates expiring within 7 days.",
        fleet.expiring_within_7d,
    );
}

/// Per live edge (bounded by the fleet's size): changes behind, and replica replay lag.
fn write_edges(out: &mut String, edges: &[landlord_store::fleet::EdgeStatus]) {
    let live: Vec<_> = edges.iter().filter(|e| e.live).collect();
    gauge(
        out,
        "landlord_edges_live",
        "Edges that reported in the last 10 seconds.",
        live.len(),
    );
    let label = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let _ = writeln!(
        out,
        "# HELP landlord_edge_behind_changes Change-log entries past a live edge's position."
    );
    let _ = writeln!(out, "# TYPE landlord_edge_behind_changes gauge");
    for e in &live {
        let _ = writeln!(
            out,
            "landlord_edge_behind_changes{{edge=\"{}\",region=\"{}\"}} {}",
            label(&e.name),
            label(&e.region),
            e.behind
        );
    }
    let _ = writeln!(
        out,
        "# HELP landlord_edge_replica_lag_seconds How far a live edge's replica replays behind."
    );
    let _ = writeln!(out, "# TYPE landlord_edge_replica_lag_seconds gauge");
    for e in &live {
        if let Some(lag) = e.replay_lag_seconds {
            let _ = writeln!(
                out,
                "landlord_edge_replica_lag_seconds{{edge=\"{}\",region=\"{}\"}} {lag}",
                label(&e.name),
                label(&e.region)
            );
        }
    }
}

/// One unlabelled gauge with its HELP and TYPE lines.
fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}
