//! The tenant dashboard: plain HTML, CSS and ES modules from `static/`, embedded at build
//! time so a deployed binary needs no extra files. `/app.js` is the entry module; it imports
//! the modules of `static/js/`, served at `/js/<name>.js`.

use axum::extract::Path;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::problem::not_found_fallback;

const INDEX_HTML: &str = include_str!("../../../static/index.html");
const APP_JS: &str = include_str!("../../../static/app.js");
const STYLE_CSS: &str = include_str!("../../../static/style.css");

/// `(name, contents)` of `static/js/<name>` for each name.
macro_rules! modules {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../static/js/", $name)))),*]
    };
}

/// `static/js/`: every module `/app.js` imports, directly or not. A file added there must be
/// listed here too (the test below checks).
const MODULES: &[(&str, &str)] = modules![
    "api.js",
    "detail-sections.js",
    "dialog.js",
    "dom.js",
    "domain-detail.js",
    "domains-data.js",
    "domains-list.js",
    "dropzone.js",
    "files.js",
    "format.js",
    "keys.js",
    "live.js",
    "messages.js",
    "router.js",
    "session.js",
    "signin.js",
    "site-detail.js",
    "sites.js",
    "state.js",
    "tar.js",
    "uploads.js",
];

/// Only our own origin: the page talks to this API and nothing else.
const CSP: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /js/{file}`: one of [`MODULES`]; any other name is the usual problem+json 404.
pub async fn module_js(Path(file): Path<String>, uri: Uri) -> Response {
    let Some((_, body)) = MODULES.iter().find(|(name, _)| *name == file) else {
        return not_found_fallback(uri).await.into_response();
    };
    asset("text/javascript; charset=utf-8", body)
}

pub async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::MODULES;

    /// The table and `static/js/` agree, so no import 404s in the browser.
    #[test]
    fn every_module_is_served() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../static/js");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".js"))
            .collect();
        on_disk.sort();
        let mut served: Vec<&str> = MODULES.iter().map(|(name, _)| *name).collect();
        served.sort_unstable();
        assert_eq!(on_disk, served);
    }
}
