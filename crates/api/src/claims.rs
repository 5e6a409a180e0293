//! `POST /v1/domains` for a hostname another tenant holds: the claim flow.
//!
//! The first attempt answers 409 with the caller's own TXT value (`ownership`). Once it is
//! published at `_landlord.<hostname>` and the holder's value is not, the same request
//! moves the hostname to the caller (201). DNS is asked at most once per
//! `check_interval` per claim; the resolver is the worker's (`LANDLORD_DNS_SERVERS`).

use axum::http::StatusCode;
use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::{RData, RecordType};

use crate::AppState;
use crate::problem::Problem;
use landlord_store::{Domain, Hostname, SiteId, TenantId, ownership_record_name};

/// Try to claim `hostname` (held by another tenant) for `tenant`, to serve `site` (`None`:
/// the default site): the new domain when the DNS proves the caller's control, otherwise
/// the problem to answer.
pub async fn attempt(
    state: &AppState,
    tenant: TenantId,
    hostname: &Hostname,
    site: Option<SiteId>,
) -> Result<Domain, Problem> {
    let Some(claim) = state.store.open_claim(tenant, hostname).await? else {
        // Released meanwhile: register it plainly.
        return Ok(state
            .store
            .create_domain(tenant, hostname, site, state.config.limits.max_domains)
            .await?);
    };
    let name = ownership_record_name(hostname.as_str());
    let record = serde_json::json!({
        "type": "TXT", "name": name, "value": claim.token, "verified": false,
    });
    let taken = |detail: String| {
        let mut p = Problem::new(
            StatusCode::CONFLICT,
            "hostname-taken",
            "Hostname already registered",
            detail,
        );
        p.ownership = Some(Box::new(record.clone()));
        p
    };
    let instructions = format!(
        "{hostname} is registered by another account. If it is yours, prove it: publish a TXT record {name} with the value {} (and remove any other value there), then send this request again.",
        claim.token
    );
    if claim.new {
        return Err(taken(instructions));
    }
    if let Err(wait) = state
        .store
        .claim_lookup_due(tenant, hostname, state.config.check_interval)
        .await?
    {
        return Err(Problem::too_many(
            "claim-too-soon",
            format!(
                "The DNS of {hostname} was looked up for your claim moments ago; claims are looked up once per {} (the limit). Retry after the Retry-After header's seconds.",
                crate::problem::human_secs(state.config.check_interval)
            ),
            wait,
        ));
    }
    let values = match txt(state, &name).await {
        Ok(v) => v,
        Err(why) => {
            tracing::info!(%hostname, error = %why, "claim lookup failed");
            return Err(taken(format!(
                "The TXT record {name} could not be looked up just now ({why}); retry shortly. {instructions}"
            )));
        }
    };
    let ours = values.contains(&claim.token);
    let holders = values.contains(&claim.holder_token);
    if !ours {
        return Err(taken(format!(
            "The TXT record {name} does not hold your value yet. {instructions}"
        )));
    }
    if holders {
        return Err(taken(format!(
            "The TXT record {name} holds your value, but also the current holder's: remove the other value, then send this request again."
        )));
    }
    let domain = state
        .store
        .transfer_domain(
            hostname,
            claim.holder_domain,
            tenant,
            site,
            state.config.limits.max_domains,
        )
        .await?;
    tracing::info!(%hostname, domain = %domain.id, "hostname claimed through DNS");
    Ok(domain)
}

async fn txt(state: &AppState, name: &str) -> Result<Vec<String>, String> {
    let resolver = state
        .resolver
        .get_or_try_init(|| async {
            match &state.config.resolver {
                Some(resolver) => Ok(resolver.clone()),
                None => TokioResolver::builder_tokio()
                    .and_then(|b| b.build())
                    .map_err(|e| e.to_string()),
            }
        })
        .await
        .map_err(|e| format!("no resolver: {e}"))?;
    match resolver.lookup(format!("{name}."), RecordType::TXT).await {
        Ok(lookup) => Ok(lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect()),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}
