//! `/v1/sites`: a tenant's sites and their deploys.

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use utoipa::IntoParams;

use landlord_store::{
    Activation, Deployment, DeploymentId, Hostname, Site, SiteDeletion, SiteId, SiteName, SiteSlug,
};

use crate::AppState;
use crate::archive::{self, Refusal};
use crate::extract::{Caller, Json, KeyPrefix, Path, Query};
use crate::problem::Problem;
use crate::views::rfc3339;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSite {
    /// 1 to 63 characters: lower-case letters, digits and `-`, not starting with `-`;
    /// unique among your sites.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z0-9][a-z0-9-]*$",
        example = "docs"
    )]
    name: String,
    /// Its platform subdomain label (`<slug>.<platform domain>`): one DNS label, unique
    /// across all accounts, not a reserved word. Default: the name when that is free,
    /// else the name with a random suffix.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
        example = "acme-docs"
    )]
    #[serde(default)]
    slug: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SitePatch {
    /// A new name (same rules as at creation).
    #[schema(min_length = 1, max_length = 63, pattern = "^[a-z0-9][a-z0-9-]*$")]
    #[serde(default)]
    name: Option<String>,
    /// A new slug (same rules as at creation); the old platform hostname stops serving.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
    )]
    #[serde(default)]
    slug: Option<String>,
    /// One of the site's domains: its other hostnames answer 308 to it (apex ↔ www) once
    /// it has a certificate; `null` turns it off.
    #[schema(value_type = Option<String>, example = "www.example.com")]
    #[serde(default, deserialize_with = "present")]
    canonical_hostname: Option<Option<String>>,
}

/// A field that is present, `null` or not, as `Some` (absent stays `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A site: a set of files served on the domains that name it, as deploys.
#[derive(Serialize, ToSchema)]
pub struct SiteView {
    #[schema(value_type = Uuid)]
    id: SiteId,
    name: String,
    /// Its platform subdomain label.
    slug: String,
    /// `<slug>.<platform domain>`, served over HTTPS from the site's creation under the
    /// platform's wildcard certificate; null when the platform has no platform domain.
    #[schema(example = "acme-docs.sites.example.com")]
    platform_hostname: Option<String>,
    /// The site `/v1/files` reads and writes (every account has one; it cannot be deleted).
    default: bool,
    /// The deploy its domains serve; null before the first deploy.
    #[schema(value_type = Option<Uuid>)]
    live_deployment_id: Option<DeploymentId>,
    /// Its other hostnames redirect to this one (308), once it has a certificate.
    #[schema(value_type = Option<String>)]
    canonical_hostname: Option<Hostname>,
    /// Domains serving it.
    domains: i64,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl SiteView {
    fn new(s: Site, config: &crate::ApiConfig) -> Self {
        Self {
            id: s.id,
            name: s.name,
            platform_hostname: config
                .platform_domain
                .as_ref()
                .map(|p| format!("{}.{p}", s.slug)),
            slug: s.slug,
            default: s.is_default,
            live_deployment_id: s.live_deployment_id,
            canonical_hostname: s.canonical_hostname,
            domains: s.domains,
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SiteList {
    sites: Vec<SiteView>,
}

/// One deploy of a site: an immutable set of files.
#[derive(Serialize, ToSchema)]
pub struct DeploymentView {
    #[schema(value_type = Uuid)]
    id: DeploymentId,
    #[schema(value_type = Uuid)]
    site_id: SiteId,
    #[schema(format = DateTime)]
    created_at: String,
    /// What made it: `upload` (an archive), `files` (a change through `/v1/files`),
    /// `migration` (the files an account had before sites existed).
    #[schema(example = "upload")]
    source: String,
    /// Who made it: the prefix of the API key that uploaded it (null for `files`).
    #[schema(example = "ll_3f9a02c1")]
    created_by: Option<String>,
    file_count: i32,
    /// The files' sizes together.
    bytes: i64,
    /// Its site serves it now.
    live: bool,
    /// Asked to go live and waiting for its compressed variants: it goes live once the
    /// last exists (or after `LANDLORD_DEPLOY_COMPRESS_WAIT`), all edges at once.
    activating: bool,
    /// Its files whose Brotli, gzip and zstd bodies are still being computed.
    compressing: i64,
}

impl From<Deployment> for DeploymentView {
    fn from(d: Deployment) -> Self {
        Self {
            id: d.id,
            site_id: d.site_id,
            created_at: rfc3339(d.created_at),
            source: d.source,
            created_by: d.created_by,
            file_count: d.file_count,
            bytes: d.bytes,
            live: d.live,
            activating: d.activating,
            compressing: d.compressing,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeploymentList {
    /// Newest first; the live one and up to the kept count of others.
    deployments: Vec<DeploymentView>,
}

fn site_name(raw: &str) -> Result<SiteName, Problem> {
    SiteName::parse(raw).map_err(|e| Problem::invalid("invalid-site-name", format!("{e}.")))
}

fn site_slug(raw: &str) -> Result<SiteSlug, Problem> {
    SiteSlug::parse(raw).map_err(|e| Problem::invalid("invalid-slug", format!("{e}.")))
}

pub(crate) fn no_site(id: SiteId) -> Problem {
    Problem::not_found(format!("You have no site with id {id}."))
}

/// Create a site (empty until its first deploy).
#[utoipa::path(post, path = "/v1/sites", tag = "sites", operation_id = "create_site",
    request_body = NewSite,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created", body = SiteView),
        (status = 403, description = "The account holds the most sites allowed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "You already have a site with this name, or the slug is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid name or slug, with the reason in `detail`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Json(body): Json<NewSite>,
) -> Result<(StatusCode, JsonResponse<SiteView>), Problem> {
    let name = site_name(&body.name)?;
    let slug = body.slug.as_deref().map(site_slug).transpose()?;
    let site = state
        .store
        .create_site(tenant, &name, slug.as_ref(), state.config.limits.max_sites)
        .await?;
    Ok((
        StatusCode::CREATED,
        JsonResponse(SiteView::new(site, &state.config)),
    ))
}

/// The caller's sites, oldest first.
#[utoipa::path(get, path = "/v1/sites", tag = "sites", operation_id = "list_sites",
    security(("api_key" = [])),
    responses((status = 200, body = SiteList)))]
pub async fn list(
    Caller(tenant): Caller,
    State(state): State<AppState>,
) -> Result<JsonResponse<SiteList>, Problem> {
    let sites = state.store.list_sites(tenant).await?;
    Ok(JsonResponse(SiteList {
        sites: sites
            .into_iter()
            .map(|s| SiteView::new(s, &state.config))
            .collect(),
    }))
}

/// One of the caller's sites.
#[utoipa::path(get, path = "/v1/sites/{id}", tag = "sites", operation_id = "get_site",
    params(("id" = Uuid, Path, description = "Site id")),
    security(("api_key" = [])),
    responses((status = 200, body = SiteView)))]
pub async fn get(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<SiteId>,
) -> Result<JsonResponse<SiteView>, Problem> {
    let site = state.store.get_site(tenant, id).await?;
    let site = site.ok_or_else(|| no_site(id))?;
    Ok(JsonResponse(SiteView::new(site, &state.config)))
}

/// Rename one of the caller's sites, or set its canonical hostname.
#[utoipa::path(patch, path = "/v1/sites/{id}", tag = "sites", operation_id = "update_site",
    params(("id" = Uuid, Path, description = "Site id")),
    request_body = SitePatch,
    security(("api_key" = [])),
    responses(
        (status = 200, body = SiteView),
        (status = 409, description = "You already have a site with this name, or the slug is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid name or slug, or a canonical hostname that is not one of the site's domains", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<SiteId>,
    Json(body): Json<SitePatch>,
) -> Result<JsonResponse<SiteView>, Problem> {
    let name = body.name.as_deref().map(site_name).transpose()?;
    let slug = body.slug.as_deref().map(site_slug).transpose()?;
    let canonical = match body.canonical_hostname {
        Some(Some(raw)) => {
            let hostname = Hostname::parse(&raw)
                .map_err(|e| Problem::invalid("invalid-canonical-hostname", e.to_string()))?;
            if hostname.is_wildcard() {
                return Err(Problem::invalid(
                    "invalid-canonical-hostname",
                    format!(
                        "{hostname} is a wildcard: visitors cannot be sent to it. Choose one of the site's other hostnames."
                    ),
                ));
            }
            Some(Some(hostname))
        }
        Some(None) => Some(None),
        None => None,
    };
    let site = state
        .store
        .update_site(
            tenant,
            id,
            name.as_ref(),
            slug.as_ref(),
            canonical.as_ref().map(Option::as_ref),
        )
        .await?;
    let site = site.ok_or_else(|| no_site(id))?;
    Ok(JsonResponse(SiteView::new(site, &state.config)))
}

/// Delete one of the caller's sites and its deploys. Refused while domains serve it
/// (move them with `PATCH /v1/domains/{id}` or delete them first), and for the default
/// site.
#[utoipa::path(delete, path = "/v1/sites/{id}", tag = "sites", operation_id = "delete_site",
    params(("id" = Uuid, Path, description = "Site id")),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "Domains still serve the site, or it is the default site", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<SiteId>,
) -> Result<StatusCode, Problem> {
    match state.store.delete_site(tenant, id).await? {
        SiteDeletion::Deleted => Ok(StatusCode::NO_CONTENT),
        SiteDeletion::NotFound => Err(no_site(id)),
        SiteDeletion::HasDomains(n) => Err(Problem::new(
            StatusCode::CONFLICT,
            "site-in-use",
            "Site in use",
            format!(
                "{n} domain(s) still serve this site. Move them to another site (PATCH /v1/domains/{{id}} with a site_id) or delete them first."
            ),
        )),
        SiteDeletion::Default => Err(Problem::new(
            StatusCode::CONFLICT,
            "default-site",
            "The default site stays",
            "This is your default site: it holds what /v1/files writes and cannot be deleted.",
        )),
    }
}

/// The deploys of one of the caller's sites, newest first.
#[utoipa::path(get, path = "/v1/sites/{id}/deployments", tag = "sites", operation_id = "list_deployments",
    params(("id" = Uuid, Path, description = "Site id")),
    security(("api_key" = [])),
    responses((status = 200, body = DeploymentList)))]
pub async fn deployments(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path(id): Path<SiteId>,
) -> Result<JsonResponse<DeploymentList>, Problem> {
    let list = state
        .store
        .list_deployments(tenant, id)
        .await?
        .ok_or_else(|| no_site(id))?;
    Ok(JsonResponse(DeploymentList {
        deployments: list.into_iter().map(DeploymentView::from).collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeployParams {
    /// `false` stages the deploy without making it live (activate it later).
    activate: Option<bool>,
}

/// Deploy a site: the body is a tar archive of its files (`application/x-tar`), optionally
/// gzip- or zstd-compressed (recognised by their magic bytes). Read and checked whole
/// before anything is stored (one bad entry refuses the deploy, naming it), stored
/// content-addressed, and made live atomically once its compressed variants exist
/// (`activating` until then; they are computed once, off the request path): every edge
/// switches the whole site at once, within 2 seconds.
#[utoipa::path(post, path = "/v1/sites/{id}/deployments", tag = "sites", operation_id = "create_deployment",
    params(("id" = Uuid, Path, description = "Site id"), DeployParams),
    request_body(content = inline(crate::views::FileBytes), content_type = "application/octet-stream",
        description = "A tar archive of the site's files (regular files and directories only), \
            optionally gzip- or zstd-compressed. The format is recognised by its magic bytes, so \
            the Content-Type may be `application/x-tar`, `application/gzip`, `application/zstd` \
            or `application/octet-stream`."),
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Stored, and live or activating unless `activate=false`", body = DeploymentView),
        (status = 403, description = "More files than one deploy may hold", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The upload, what it expands to, a file, or the quota is too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a readable archive, or an entry breaks a rule (named in `detail`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many archives are being read; retry", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn deploy(
    Caller(tenant): Caller,
    KeyPrefix(created_by): KeyPrefix,
    State(state): State<AppState>,
    Path(id): Path<SiteId>,
    Query(params): Query<DeployParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, JsonResponse<DeploymentView>), Problem> {
    let deploys = state.config.deploys;
    let too_large = |detail: String| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "deploy-too-large",
            "Deploy too large",
            detail,
        )
    };
    if state.store.get_site(tenant, id).await?.is_none() {
        return Err(no_site(id));
    }
    let body = body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(format!(
            "The upload is larger than {} bytes, the limit per deploy.",
            deploys.max_upload_bytes
        )),
        _ => r.into(),
    })?;
    let limits = state.config.limits;
    let bounds = archive::Bounds {
        max_expanded: deploys.max_expanded_bytes,
        max_ratio: deploys.max_ratio,
        max_entries: usize::try_from(limits.max_files.saturating_mul(2)).unwrap_or(usize::MAX),
        max_file: u64::try_from(limits.max_file_bytes).unwrap_or(0),
        max_time: deploys.timeout,
    };
    let _turn = tokio::time::timeout(deploys.timeout, state.deploy_turns.acquire())
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "Busy",
                "Too many deploys are being read right now; retry in a moment.",
            )
        })?;
    let files = tokio::task::spawn_blocking(move || archive::read(&body, bounds))
        .await
        .map_err(|e| Problem::internal(&e))?
        .map_err(|refusal| match refusal {
            Refusal::Invalid(why) => Problem::invalid("invalid-archive", format!("{why}.")),
            Refusal::TooLarge(why) => too_large(format!("{why}.")),
        })?;
    let activate = params.activate.unwrap_or(true);
    let activation = match activate {
        true => Activation::WhenCompressed,
        false => Activation::Stage,
    };
    let deployment = state
        .store
        .create_deployment(
            tenant,
            id,
            &files,
            created_by.as_deref(),
            activation,
            limits,
        )
        .await?
        .ok_or_else(|| no_site(id))?;
    tracing::info!(site = %id, deployment = %deployment.id, files = files.len(), activate, "deployed");
    Ok((StatusCode::CREATED, JsonResponse(deployment.into())))
}

/// Make a deploy of the site live again (a rollback in one call): every edge serves it
/// within 2 seconds, switching the whole site at once (a deploy whose compressed variants
/// are still being computed is `activating` until they exist).
#[utoipa::path(post, path = "/v1/sites/{id}/deployments/{deployment_id}/activate", tag = "sites",
    operation_id = "activate_deployment",
    params(
        ("id" = Uuid, Path, description = "Site id"),
        ("deployment_id" = Uuid, Path, description = "Deploy id"),
    ),
    security(("api_key" = [])),
    responses((status = 200, description = "Live now, or activating", body = DeploymentView)))]
pub async fn activate(
    Caller(tenant): Caller,
    State(state): State<AppState>,
    Path((id, deployment)): Path<(SiteId, DeploymentId)>,
) -> Result<JsonResponse<DeploymentView>, Problem> {
    let live = state
        .store
        .activate_deployment(tenant, id, deployment)
        .await?
        .ok_or_else(|| {
            Problem::not_found(format!(
                "Site {id} has no deploy with id {deployment} (GET /v1/sites/{id}/deployments lists them)."
            ))
        })?;
    tracing::info!(site = %id, %deployment, "deploy activated");
    Ok(JsonResponse(live.into()))
}
