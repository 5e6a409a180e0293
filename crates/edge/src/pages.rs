//! Tenant pages over HTTPS: the owning tenant's files, with `ETag`/`304`, `HEAD`,
//! compression for text, `421` when `Host` is not the SNI name.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::compression::{Compression, CompressionLayer};

use landlord_store::{FilePath, Hostname, TenantId};

use crate::directory::Directory;

struct Site {
    dir: Arc<Directory>,
    host: Hostname,
    tenant: TenantId,
    /// `Strict-Transport-Security`, built once per connection rather than per request.
    hsts: Option<HeaderValue>,
}

/// The pages of one TLS connection: a plain tower service (no router: every path is a
/// file).
#[derive(Clone)]
pub struct Pages(Arc<Site>);

/// What hyper calls for one connection: `Pages`, through tower-http's compression when
/// the request accepts an encoding. A request without `Accept-Encoding` (an API client,
/// a load generator) skips the layer: its response body type has room for a Brotli
/// encoder (about 6 KB) and would otherwise be moved around for every request. Both ways
/// answer with the same headers, `Vary: Accept-Encoding` included (see `page`).
#[derive(Clone)]
pub struct Service {
    plain: Pages,
    compressed: Compression<Pages>,
}

type BoxedFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
>;

impl hyper::service::Service<axum::http::Request<hyper::body::Incoming>> for Service {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = BoxedFuture;

    fn call(&self, request: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        // Both are ready at once (no backpressure), and cloning them clones an `Arc`.
        if request.headers().contains_key(header::ACCEPT_ENCODING) {
            let compressed = tower::Service::call(&mut self.compressed.clone(), request);
            Box::pin(async move { Ok(compressed.await?.map(Body::new)) })
        } else {
            tower::Service::call(&mut self.plain.clone(), request)
        }
    }
}

impl tower::Service<axum::http::Request<hyper::body::Incoming>> for Pages {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = BoxedFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        let site = self.0.clone();
        Box::pin(async move {
            let (request, _body) = request.into_parts();
            Ok(page(&site, &request).await)
        })
    }
}

/// The service for one TLS connection (it knows its SNI name and tenant).
pub fn service(dir: Arc<Directory>, host: Hostname, tenant: TenantId) -> Service {
    let hsts = dir
        .config
        .hsts
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok());
    let pages = Pages(Arc::new(Site {
        dir,
        host,
        tenant,
        hsts,
    }));
    Service {
        compressed: tower::Layer::layer(&CompressionLayer::new(), pages.clone()),
        plain: pages,
    }
}

async fn page(site: &Site, request: &axum::http::request::Parts) -> Response {
    let mut response = respond(site, request).await;
    let headers = response.headers_mut();
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Some(hsts) = &site.hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    // What the compression layer adds when it could compress (it does not add it twice),
    // here also for requests that skip the layer: caches must know the body varies.
    if DefaultPredicate::new().should_compress(&response) {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

async fn respond(site: &Site, request: &axum::http::request::Parts) -> Response {
    if request.method != Method::GET && request.method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "Method not allowed\n",
        )
            .into_response();
    }
    let authority = request
        .uri
        .authority()
        .map(|a| a.host().to_owned())
        .or_else(|| {
            let h = request.headers.get(header::HOST)?.to_str().ok()?;
            Some(h.rsplit_once(':').map_or(h, |(name, _)| name).to_owned())
        });
    // The common case, the SNI name itself, without running IDNA per request.
    let same = authority.as_deref().is_some_and(|a| {
        a.eq_ignore_ascii_case(site.host.as_str())
            || Hostname::parse(a).is_ok_and(|h| h == site.host)
    });
    if !same {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "This connection is for another hostname.\n",
        )
            .into_response();
    }
    // The tenant may have changed hands or the domain been deleted since the handshake.
    if site.dir.tenant_of(&site.host) != Some(site.tenant) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "This hostname is no longer served here.\n",
        )
            .into_response();
    }
    let Some(path) = file_path(request.uri.path()) else {
        return not_found();
    };
    let file = match site.dir.file(site.tenant, &path).await {
        Ok(Some(file)) => file,
        Ok(None) => return not_found(),
        Err(_) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "Temporarily unavailable, try again.\n",
            )
                .into_response();
        }
    };
    let etag = file.etag_header.clone();
    let matches = request
        .headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == file.etag);
    if matches {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let body = if request.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(file.body.clone())
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    if let Some(ct) = &file.content_type_header {
        headers.insert(header::CONTENT_TYPE, ct.clone());
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.body.len()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `/` and directory paths map to `index.html`; the path is percent-decoded. Checked as
/// `FilePath` checks it, without allocating for `/` or a path that needs no decoding.
fn file_path(raw: &str) -> Option<Cow<'_, str>> {
    if raw == "/" {
        return Some(Cow::Borrowed("index.html"));
    }
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    let path = if decoded.ends_with('/') {
        Cow::Owned(format!("{decoded}index.html"))
    } else {
        decoded
    };
    FilePath::check(&path).ok()?;
    // As stored: without the one leading slash `check` allows.
    Some(match path {
        Cow::Borrowed(p) => Cow::Borrowed(p.strip_prefix('/').unwrap_or(p)),
        Cow::Owned(mut p) => {
            if p.starts_with('/') {
                p.remove(0);
            }
            Cow::Owned(p)
        }
    })
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><title>Not found</title><h1>Not found</h1>\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::file_path;

    #[test]
    fn request_paths_map_to_stored_file_paths() {
        let cases = [
            ("/", Some("index.html")),
            ("/about.html", Some("about.html")),
            ("/docs/", Some("docs/index.html")),
            ("/a%20b.html", Some("a b.html")),
            ("/caf%C3%A9/", Some("café/index.html")),
            ("//x.html", None),
            ("/../x.html", None),
            ("/%2e%2e/x.html", None),
            ("/a%00.html", None),
            ("/%ff.html", None),
        ];
        for (raw, want) in cases {
            assert_eq!(file_path(raw).as_deref(), want, "{raw}");
        }
    }
}
