//! The plain-HTTP listener.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use std::sync::Arc;

use landlord_store::Hostname;

use crate::directory::Directory;

/// Routes of the plain-HTTP listener.
pub fn http_router(dir: Arc<Directory>) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(challenge))
        .fallback(redirect)
        .layer(axum::middleware::from_fn_with_state(
            dir.clone(),
            access_log,
        ))
        .with_state(dir)
}

/// `LANDLORD_ACCESS_LOG` on this listener too (redirects and challenge answers).
async fn access_log(
    State(dir): State<Arc<Directory>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !dir.access.sampled() {
        return next.run(request).await;
    }
    let started = std::time::Instant::now();
    let host = request_host(request.headers());
    let client = request
        .extensions()
        .get::<crate::listen::ClientAddr>()
        .map(|c| c.0);
    let (method, version) = (request.method().clone(), request.version());
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    crate::access::Entry {
        tenant: host.as_ref().and_then(|h| dir.tenant_of(h)),
        host: host.as_ref(),
        client,
        tls: "-",
        method: &method,
        path: &path,
        version,
        status: response.status().as_u16(),
        bytes: hyper::body::Body::size_hint(response.body())
            .exact()
            .unwrap_or(0),
        duration: started.elapsed(),
    }
    .log();
    response
}

/// The request's hostname, normalised like registered ones; `None` when absent or invalid.
fn request_host(headers: &HeaderMap) -> Option<Hostname> {
    let raw = headers.get(header::HOST)?.to_str().ok()?;
    let host = match raw.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => raw,
    };
    Hostname::parse(host).ok()
}

async fn challenge(
    State(dir): State<Arc<Directory>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(host) = request_host(&headers) else {
        return not_found();
    };
    match dir.challenge(&host, &token).await {
        Ok(Some(key_authorization)) => {
            tracing::info!(hostname = %host, "answered an HTTP-01 challenge");
            ([(header::CONTENT_TYPE, "text/plain")], key_authorization).into_response()
        }
        Ok(None) => not_found(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Registered hostnames go to HTTPS (decided from memory: no query per request).
async fn redirect(State(dir): State<Arc<Directory>>, headers: HeaderMap, uri: Uri) -> Response {
    let Some(host) = request_host(&headers) else {
        return not_found();
    };
    dir.visited(&host);
    if dir.tenant_of(&host).is_none() {
        return not_found();
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let port = match dir.config.https_port {
        443 => String::new(),
        p => format!(":{p}"),
    };
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, format!("https://{host}{port}{path}"))],
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain")],
        "Not found\n",
    )
        .into_response()
}
