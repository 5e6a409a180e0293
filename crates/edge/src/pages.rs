//! Tenant pages over HTTPS: the owning tenant's files, with `ETag`/`304`, `HEAD`, the
//! precompressed body `Accept-Encoding` prefers (computed once when the file was stored:
//! nothing is compressed here), single byte ranges of the identity body, and `421` when
//! `Host` is not the SNI name.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use landlord_store::rules::{self, Action};
use landlord_store::{FilePath, Hostname, TenantId};

use crate::directory::{Directory, FileEntry, Live, Representation};
use crate::encoding::{self, Encoding, Range};

struct Site {
    dir: Arc<Directory>,
    host: Hostname,
    tenant: TenantId,
    /// `Strict-Transport-Security`, built once per connection rather than per request.
    hsts: Option<HeaderValue>,
    /// The connection's client, TLS version and the tenant's counters.
    peer: crate::access::Peer,
}

/// The pages of one TLS connection: a plain service (no router: every path is a file).
#[derive(Clone)]
pub struct Service(Arc<Site>);

type BoxedFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
>;

impl hyper::service::Service<axum::http::Request<hyper::body::Incoming>> for Service {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = BoxedFuture;

    fn call(&self, request: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        let site = self.0.clone();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let (request, _body) = request.into_parts();
            let response = page(&site, &request).await;
            let log = site.dir.access.sampled();
            site.peer.record(
                crate::access::Entry {
                    host: Some(&site.host),
                    tenant: Some(site.tenant),
                    client: Some(site.peer.client),
                    tls: site.peer.tls,
                    method: &request.method,
                    path: request.uri.path(),
                    version: request.version,
                    status: response.status().as_u16(),
                    bytes: hyper::body::Body::size_hint(response.body())
                        .exact()
                        .unwrap_or(0),
                    duration: started.elapsed(),
                },
                log,
            );
            Ok(response)
        })
    }
}

/// The service for one TLS connection (it knows its SNI name and tenant).
pub fn service(
    dir: Arc<Directory>,
    host: Hostname,
    tenant: TenantId,
    peer: crate::access::Peer,
) -> Service {
    let hsts = dir
        .config
        .hsts
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok());
    Service(Arc::new(Site {
        dir,
        host,
        tenant,
        hsts,
        peer,
    }))
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
    let served = site.dir.served(&site.host);
    if served.as_ref().map(|(tenant, _)| *tenant) != Some(site.tenant) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "This hostname is no longer served here.\n",
        )
            .into_response();
    }
    let Some((_, Some(live))) = served else {
        return not_found();
    };
    if let Some(canonical) = canonical_redirect(site, &live, request) {
        return canonical;
    }
    let Some(path) = decoded(request.uri.path()) else {
        return not_found();
    };
    let found = match find(site, &live, &path).await {
        Ok(found) => found,
        Err(busy) => return busy,
    };
    let mut response = match live.rules.action(&path, found.is_some()) {
        Some(Action::Redirect { status, location }) => {
            redirect(status, &location, request.uri.query())
        }
        Some(Action::Rewrite {
            status,
            path: target,
        }) => match find(site, &live, &target).await {
            Ok(Some(file)) => with_status(serve(&file, request), status),
            Ok(None) => not_found_page(site, &live, request).await,
            Err(busy) => return busy,
        },
        None => match found {
            Some(file) => serve(&file, request),
            None => not_found_page(site, &live, request).await,
        },
    };
    let headers = response.headers_mut();
    for (name, value) in live.rules.headers_for(&path) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    response
}

/// A 308 to the site's canonical hostname, when this is another of its hostnames and the
/// canonical one is ready (path and query kept).
fn canonical_redirect(
    site: &Site,
    live: &Live,
    request: &axum::http::request::Parts,
) -> Option<Response> {
    let canonical = site.dir.canonical_for(&site.host, live)?;
    let port = match site.dir.config.https_port {
        443 => String::new(),
        p => format!(":{p}"),
    };
    let path = request.uri.path_and_query().map_or("/", |p| p.as_str());
    Some(redirect(
        308,
        &format!("https://{canonical}{port}{path}"),
        None,
    ))
}

/// The file that answers a request path in the live deploy, trying clean URLs; the rule
/// files are configuration, never served.
async fn find(site: &Site, live: &Live, path: &str) -> Result<Option<Arc<FileEntry>>, Response> {
    let mut candidates = candidates(path);
    candidates.retain(|c| c != rules::REDIRECTS_FILE && c != rules::HEADERS_FILE);
    match site.dir.file(live.deployment, &candidates).await {
        Ok(found) => Ok(found),
        Err(_) => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "Temporarily unavailable, try again.\n",
        )
            .into_response()),
    }
}

/// The deploy's `404.html` with status 404, or the platform's own 404 page.
async fn not_found_page(
    site: &Site,
    live: &Live,
    request: &axum::http::request::Parts,
) -> Response {
    let path = format!("/{}", rules::NOT_FOUND_PAGE);
    match find(site, live, &path).await {
        Ok(Some(file)) => with_status(serve(&file, request), 404),
        Ok(None) => not_found(),
        Err(busy) => busy,
    }
}

/// A page served for another path keeps its headers, with `status` (a 404 page, or a
/// rewrite): only a whole answer's status is replaced, not a 304 or a range's.
fn with_status(mut response: Response, status: u16) -> Response {
    if response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    }
    response
}

/// A redirect rule's answer; the request's query string goes along unless the target
/// has its own.
fn redirect(status: u16, location: &str, query: Option<&str>) -> Response {
    let location = match query {
        Some(q) if !location.contains('?') => format!("{location}?{q}"),
        _ => location.to_owned(),
    };
    let encoded = percent_encoding::utf8_percent_encode(&location, LOCATION).to_string();
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// What a `Location` must not hold as is: controls, spaces and non-ASCII characters.
const LOCATION: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b' ');

/// The response for a found file: the representation `Accept-Encoding` prefers, or a
/// byte range of the identity body when one is asked for (and `If-Range`, if sent, names
/// the identity body).
fn serve(file: &FileEntry, request: &axum::http::request::Parts) -> Response {
    let header_str = |name| request.headers.get(name).and_then(|v| v.to_str().ok());
    let len = file.identity.body.len() as u64;
    let range = match header_str(header::IF_RANGE) {
        Some(tag) if tag.trim() != file.identity.etag => Range::Whole,
        _ if request.method != Method::GET => Range::Whole,
        _ => encoding::range(header_str(header::RANGE), len),
    };
    let chosen = match range {
        Range::Whole => {
            let available: Vec<Encoding> = file.variants.iter().map(|r| r.encoding).collect();
            match encoding::choose(header_str(header::ACCEPT_ENCODING), &available) {
                Encoding::Identity => &file.identity,
                e => file
                    .variants
                    .iter()
                    .find(|r| r.encoding == e)
                    .unwrap_or(&file.identity),
            }
        }
        _ => &file.identity,
    };
    let mut response = if not_modified(request, chosen) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match range {
            Range::Unsatisfiable => {
                let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                r
            }
            _ => body_response(request, chosen, range, len),
        }
    };
    let status_has_body = response.status().is_success();
    let headers = response.headers_mut();
    if let (true, Some(ct)) = (status_has_body, &file.content_type_header) {
        headers.insert(header::CONTENT_TYPE, ct.clone());
    }
    headers.insert(header::ETAG, chosen.etag_header.clone());
    if file.vary {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `If-None-Match` names this representation (or `*`).
fn not_modified(request: &axum::http::request::Parts, chosen: &Representation) -> bool {
    request
        .headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == chosen.etag)
}

fn body_response(
    request: &axum::http::request::Parts,
    chosen: &Representation,
    range: Range,
    len: u64,
) -> Response {
    let (status, bytes) = match range {
        Range::Part { start, end } => (
            StatusCode::PARTIAL_CONTENT,
            chosen.body.slice(start as usize..=end as usize),
        ),
        _ => (StatusCode::OK, chosen.body.clone()),
    };
    let size = bytes.len();
    let body = match request.method == Method::HEAD {
        true => Body::empty(),
        false => Body::from(bytes),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Range::Part { start, end } = range
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
    {
        headers.insert(header::CONTENT_RANGE, v);
    }
    if chosen.encoding != Encoding::Identity {
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(chosen.encoding.token()),
        );
    } else {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    response
}

/// The request path, percent-decoded (`None` when that is not UTF-8).
fn decoded(raw: &str) -> Option<Cow<'_, str>> {
    percent_encoding::percent_decode_str(raw).decode_utf8().ok()
}

/// The stored paths that may answer a (decoded) request path, in order: the path itself,
/// then clean URLs: `/about` → `about.html`, `about/index.html`; `/docs/` →
/// `docs/index.html`, then `docs.html`; `/` → `index.html`. Paths the file path rules
/// refuse are never tried.
fn candidates(path: &str) -> Vec<String> {
    if path == "/" {
        return vec!["index.html".to_owned()];
    }
    let bare = path.strip_suffix('/').unwrap_or(path);
    // `check` takes the one leading slash off and returns the stored form.
    let Ok(checked) = FilePath::check(bare) else {
        return Vec::new();
    };
    let list = match path.ends_with('/') {
        true => vec![format!("{checked}/index.html"), format!("{checked}.html")],
        false => vec![
            checked.to_owned(),
            format!("{checked}.html"),
            format!("{checked}/index.html"),
        ],
    };
    list.into_iter()
        .filter(|p| FilePath::check(p).is_ok())
        .collect()
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
    use super::{candidates, decoded};

    #[test]
    fn request_paths_map_to_stored_file_paths() {
        let cases: &[(&str, &[&str])] = &[
            ("/", &["index.html"]),
            (
                "/about.html",
                &["about.html", "about.html.html", "about.html/index.html"],
            ),
            ("/about", &["about", "about.html", "about/index.html"]),
            ("/docs/", &["docs/index.html", "docs.html"]),
            (
                "/a%20b.html",
                &["a b.html", "a b.html.html", "a b.html/index.html"],
            ),
            ("/caf%C3%A9/", &["café/index.html", "café.html"]),
            ("//x.html", &[]),
            ("/../x.html", &[]),
            ("/%2e%2e/x.html", &[]),
            ("/a%00.html", &[]),
        ];
        for (raw, want) in cases {
            let got = decoded(raw).map(|p| candidates(&p)).unwrap_or_default();
            assert_eq!(got, *want, "{raw}");
        }
        assert!(decoded("/%ff.html").is_none());
    }
}
