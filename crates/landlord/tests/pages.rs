//! Pages as browsers fetch them: the precompressed body `Accept-Encoding` prefers
//! (computed once by a worker after the upload), each with its own ETag, `Vary`, byte
//! ranges of the identity body. Real `api`, `worker` and `edge` processes, Pebble.

mod support;

use std::io::Read;
use std::time::Duration;

use sqlx::PgPool;
use support::{EDGE_PORT_LOCK, Platform, tar_of, unique};

const ISSUE_DEADLINE: Duration = Duration::from_secs(90);

/// A 20 KB status page, as a page builder would write it.
fn status_page() -> String {
    let mut html =
        String::from("<!doctype html><html><head><title>Status</title></head><body><ul>");
    let mut i = 0;
    while html.len() < 20_000 {
        html.push_str(&format!(
            "<li class=\"component\"><span>Component {i}</span><em>operational</em></li>\n"
        ));
        i += 1;
    }
    html + "</ul></body></html>"
}

fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "br" => brotli::BrotliDecompress(&mut &body[..], &mut out).unwrap(),
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::decode_all(body).unwrap(),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

#[sqlx::test(migrations = false)]
async fn pages_are_served_precompressed_by_accept_encoding_and_by_range(pool: PgPool) {
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool, &[]).await;
    let port = p.spawn_edge().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("pages");
    let id = p.add_pointed_domain(&key, &host).await;
    let page = status_page();
    p.put_file(&key, "index.html", "text/html; charset=utf-8", &page)
        .await;
    p.put_file(&key, "logo.png", "image/png", &"\u{1}PNG".repeat(2000))
        .await;
    p.wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    let client = p.https_client(&host, port);
    let url = format!("https://{host}:{port}/");
    let get = |encoding: &'static str| client.get(&url).header("accept-encoding", encoding).send();

    // The worker compresses after the upload; the edge hears of it through the change log.
    p.wait_for("the Brotli variant", Duration::from_secs(20), |_| async {
        get("gzip, deflate, br, zstd")
            .await
            .unwrap()
            .headers()
            .get("content-encoding")
            .is_some_and(|v| v == "br")
    })
    .await;

    let mut etags = Vec::new();
    for (accept, want) in [
        ("gzip, deflate, br, zstd", "br"),
        ("gzip, deflate, zstd", "zstd"),
        ("gzip, deflate", "gzip"),
        ("br;q=0.1, gzip;q=0.9", "gzip"),
    ] {
        let res = get(accept).await.unwrap();
        assert_eq!(res.status(), 200);
        let headers = res.headers().clone();
        assert_eq!(headers["content-encoding"], want, "{accept}");
        assert_eq!(headers["vary"], "accept-encoding");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let body = res.bytes().await.unwrap();
        assert_eq!(headers["content-length"], body.len().to_string().as_str());
        assert!(body.len() < page.len() / 3, "{want}: {} bytes", body.len());
        assert_eq!(decode(want, &body), page.as_bytes(), "{want}");
        etags.push(headers["etag"].to_str().unwrap().to_owned());
    }
    let res = client.get(&url).send().await.unwrap();
    assert!(res.headers().get("content-encoding").is_none());
    assert_eq!(res.headers()["vary"], "accept-encoding");
    assert_eq!(res.headers()["accept-ranges"], "bytes");
    let identity_etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(res.text().await.unwrap(), page);
    etags.push(identity_etag.clone());
    etags.dedup();
    assert_eq!(etags.len(), 4, "one ETag per representation: {etags:?}");

    // A cached variant is revalidated against its own ETag.
    let res = get("br").await.unwrap();
    let br_etag = res.headers()["etag"].clone();
    let revalidate = |etag: &str, accept: &'static str| {
        client
            .get(&url)
            .header("accept-encoding", accept)
            .header("if-none-match", etag)
            .send()
    };
    assert_eq!(
        revalidate(br_etag.to_str().unwrap(), "br")
            .await
            .unwrap()
            .status(),
        304
    );
    assert_eq!(
        revalidate(&identity_etag, "br").await.unwrap().status(),
        200
    );

    // HEAD tells the chosen representation's length without a body.
    let res = client
        .head(&url)
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "br");
    assert!(
        res.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse::<usize>()
            .unwrap()
            < page.len()
    );

    // Ranges are of the identity body, whatever the client accepts.
    let range = |spec: &'static str| {
        client
            .get(&url)
            .header("accept-encoding", "gzip, br")
            .header("range", spec)
            .send()
    };
    let res = range("bytes=100-199").await.unwrap();
    assert_eq!(res.status(), 206);
    assert!(res.headers().get("content-encoding").is_none());
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 100-199/{}", page.len()).as_str()
    );
    assert_eq!(res.text().await.unwrap(), &page[100..200]);
    let res = range("bytes=-10").await.unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.text().await.unwrap(), &page[page.len() - 10..]);
    let res = range("bytes=999999-").await.unwrap();
    assert_eq!(res.status(), 416);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes */{}", page.len()).as_str()
    );
    // If-Range naming another version: the whole (current) page.
    let res = client
        .get(&url)
        .header("range", "bytes=0-9")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Incompressible types are served as stored, without Vary.
    let res = client
        .get(format!("https://{host}:{port}/logo.png"))
        .header("accept-encoding", "gzip, deflate, br, zstd")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("content-encoding").is_none());
    assert!(res.headers().get("vary").is_none());

    // A new version is served at once (identity) and compressed again shortly after.
    let v2 = page.replace("operational", "degraded");
    p.put_file(&key, "index.html", "text/html; charset=utf-8", &v2)
        .await;
    p.wait_for(
        "the new version, compressed",
        Duration::from_secs(20),
        |_| async {
            let res = get("br").await.unwrap();
            let br = res
                .headers()
                .get("content-encoding")
                .is_some_and(|v| v == "br");
            let body = res.bytes().await.unwrap();
            br && decode("br", &body) == v2.as_bytes()
        },
    )
    .await;
}

/// A site's version `v`: a page naming its stylesheet (large enough to be compressed),
/// and the stylesheet, both marked.
fn version(v: u32) -> Vec<u8> {
    let filler = "<p>A paragraph of the page.</p>\n".repeat(100);
    tar_of(&[
        (
            "index.html",
            &format!("<link rel=stylesheet href=/site.css>{filler}page v{v}"),
        ),
        ("site.css", &format!("/* v{v} */ body {{ color: black }}")),
    ])
}

async fn api(
    p: &Platform,
    key: &str,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    p.client
        .request(method, format!("{}{path}", p.api))
        .bearer_auth(key)
}

#[sqlx::test(migrations = false)]
async fn two_sites_deploy_atomically_on_two_edges_and_roll_back(pool: PgPool) {
    use reqwest::Method;
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool, &[]).await;
    let edges = [p.spawn_edge().await, p.spawn_extra_edge().await];
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let (www, docs) = (unique("www"), unique("docs"));
    let www_id = p.add_pointed_domain(&key, &www).await;
    let docs_domain = p.add_pointed_domain(&key, &docs).await;
    let site: serde_json::Value = api(&p, &key, Method::POST, "/v1/sites")
        .await
        .json(&serde_json::json!({"name": "docs"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let site_id = site["id"].as_str().unwrap().to_owned();
    let res = api(
        &p,
        &key,
        Method::PATCH,
        &format!("/v1/domains/{docs_domain}"),
    )
    .await
    .json(&serde_json::json!({"site_id": site_id}))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    p.put_file(&key, "index.html", "text/html", "the main site")
        .await;
    let deploy = async |v: u32| -> serde_json::Value {
        let res = api(
            &p,
            &key,
            Method::POST,
            &format!("/v1/sites/{site_id}/deployments"),
        )
        .await
        .header("content-type", "application/x-tar")
        .body(version(v))
        .send()
        .await
        .unwrap();
        assert_eq!(res.status(), 201);
        res.json().await.unwrap()
    };
    let v1 = deploy(1).await;
    for id in [&www_id, &docs_domain] {
        p.wait_domain(&key, id, ISSUE_DEADLINE, |d| d["status"] == "active")
            .await;
    }
    let fetch = async |host: &str, port: u16, path: &str| -> String {
        let res = p
            .https_client(host, port)
            .get(format!("https://{host}:{port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{host}{path}");
        res.text().await.unwrap()
    };
    // Two sites of one tenant, two hostnames, different files.
    for port in edges {
        assert_eq!(fetch(&www, port, "/").await, "the main site");
        assert!(fetch(&docs, port, "/").await.ends_with("page v1"));
    }

    // v2 goes live on both edges within 2 s; a visitor on the first edge fetching the page
    // then its stylesheet never gets the new page with the old stylesheet, never goes
    // back to v1 once it saw v2, and gets v2's page compressed from its first response
    // (a deploy goes live once its variants exist).
    let watcher = {
        let (docs, port) = (docs.clone(), edges[0]);
        let client = p.https_client(&docs, port);
        tokio::spawn(async move {
            let get = async |path: &str| {
                let res = client
                    .get(format!("https://{docs}:{port}{path}"))
                    .header("accept-encoding", "br")
                    .send()
                    .await
                    .unwrap();
                let encoding = res.headers().get("content-encoding").cloned();
                let body = res.bytes().await.unwrap();
                match encoding {
                    Some(e) => (
                        String::from_utf8(decode(e.to_str().unwrap(), &body)).unwrap(),
                        true,
                    ),
                    None => (String::from_utf8(body.to_vec()).unwrap(), false),
                }
            };
            let mut seen_v2 = false;
            let end = std::time::Instant::now() + Duration::from_secs(4);
            let mut rounds = 0;
            while std::time::Instant::now() < end {
                let (page, compressed) = get("/").await;
                let (css, _) = get("/site.css").await;
                let page_v2 = page.ends_with("page v2");
                assert!(
                    !page_v2 || compressed,
                    "v2's page uncompressed (round {rounds})"
                );
                let css_v2 = css.contains("/* v2 */");
                assert!(
                    !page_v2 || css_v2,
                    "new page, then old stylesheet (round {rounds})"
                );
                assert!(!seen_v2 || page_v2, "back to v1 after v2 (round {rounds})");
                seen_v2 |= page_v2;
                rounds += 1;
            }
            (seen_v2, rounds)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let v2 = deploy(2).await;
    for port in edges {
        while !fetch(&docs, port, "/").await.ends_with("page v2") {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "edge {port} still serves v1"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (seen_v2, rounds) = watcher.await.unwrap();
    assert!(seen_v2 && rounds > 10, "{rounds} rounds");
    assert_eq!(fetch(&www, edges[1], "/").await, "the main site");
    assert!(v2["live"] == true || v2["activating"] == true, "{v2}");

    // Rollback in one call: v1 again on both edges within 2 s.
    let started = std::time::Instant::now();
    let res = api(
        &p,
        &key,
        Method::POST,
        &format!(
            "/v1/sites/{site_id}/deployments/{}/activate",
            v1["id"].as_str().unwrap()
        ),
    )
    .await
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    for port in edges {
        while !fetch(&docs, port, "/").await.ends_with("page v1") {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "edge {port} still serves v2"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(fetch(&docs, port, "/site.css").await.contains("/* v1 */"));
    }
}

#[sqlx::test(migrations = false)]
async fn site_rules_clean_urls_and_the_404_page_are_served(pool: PgPool) {
    use reqwest::Method;
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool, &[]).await;
    let port = p.spawn_edge().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let host = unique("rules");
    let id = p.add_pointed_domain(&key, &host).await;
    let sites: serde_json::Value = api(&p, &key, Method::GET, "/v1/sites")
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let site = sites["sites"][0]["id"].as_str().unwrap().to_owned();
    let deploy = async |files: &[(&str, &str)]| {
        api(
            &p,
            &key,
            Method::POST,
            &format!("/v1/sites/{site}/deployments"),
        )
        .await
        .body(tar_of(files))
        .send()
        .await
        .unwrap()
    };
    // A malformed rule refuses the deploy, naming its line.
    let res = deploy(&[("index.html", "x"), ("_redirects", "/a /b\n/c /d 299\n")]).await;
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("_redirects line 2"),
        "{body}"
    );
    let res = deploy(&[
        ("index.html", "home"),
        ("about.html", "about"),
        ("docs/index.html", "docs"),
        ("404.html", "our own 404 page"),
        ("app/index.html", "the app shell"),
        ("shadowed.html", "a file wins over a rule"),
        ("forced.html", "a forced rule wins over the file"),
        (
            "_redirects",
            "# moved pages\n/old /about 301\n/go/* https://example.org/:splat 302\n\
             /app/* /app/index.html 200\n/shadowed /elsewhere 302\n/forced /about 302!\n",
        ),
        (
            "_headers",
            "/*\n  X-Frame-Options: DENY\n/about\n  Cache-Control: public, max-age=60\n",
        ),
    ])
    .await;
    assert_eq!(res.status(), 201);
    p.wait_domain(&key, &id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    let client = p.https_client(&host, port);
    let get = async |path: &str| {
        let res = client
            .get(format!("https://{host}:{port}{path}"))
            .send()
            .await
            .unwrap();
        let (status, headers) = (res.status().as_u16(), res.headers().clone());
        (status, headers, res.text().await.unwrap())
    };
    for (path, status, body) in [
        ("/", 200, "home"),
        ("/about", 200, "about"),
        ("/about/", 200, "about"),
        ("/about.html", 200, "about"),
        ("/docs", 200, "docs"),
        ("/docs/", 200, "docs"),
        ("/app/settings/42", 200, "the app shell"),
        ("/shadowed", 200, "a file wins over a rule"),
        ("/missing", 404, "our own 404 page"),
        ("/_redirects", 404, "our own 404 page"),
        ("/_headers", 404, "our own 404 page"),
    ] {
        let (got, headers, text) = get(path).await;
        assert_eq!((got, text.as_str()), (status, body), "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
    }
    let (_, headers, _) = get("/about").await;
    assert_eq!(headers["cache-control"], "public, max-age=60");
    let (_, headers, _) = get("/").await;
    assert_eq!(headers["cache-control"], "no-cache");
    for (path, status, location) in [
        ("/old", 301, "/about"),
        ("/go/a/b?x=1", 302, "https://example.org/a/b?x=1"),
        ("/forced", 302, "/about"),
    ] {
        let (got, headers, _) = get(path).await;
        assert_eq!(got, status, "{path}");
        assert_eq!(headers["location"], location, "{path}");
    }
}

#[sqlx::test(migrations = false)]
async fn landlord_deploy_publishes_a_folder_and_prints_its_urls(pool: PgPool) {
    use reqwest::Method;
    let p = Platform::start(pool, &[]).await;
    let key = p.tenant().await;
    let host = unique("cli");
    let id = p.add_domain(&key, &host).await;
    let dir = std::env::temp_dir().join(format!("landlord-deploy-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("css")).unwrap();
    std::fs::create_dir_all(dir.join(".git")).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>from the CLI</h1>").unwrap();
    std::fs::write(dir.join("css/site.css"), "h1 { color: red }").unwrap();
    std::fs::write(dir.join(".git/HEAD"), "ref: refs/heads/main").unwrap();
    let deploy = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_landlord"))
            .arg("deploy")
            .arg(&dir)
            .args(args)
            .env_clear()
            .env("LANDLORD_API_URL", &p.api)
            .env("LANDLORD_API_KEY", &key)
            .output()
            .unwrap()
    };
    let out = deploy(&["--site", "docs"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("creating site docs"), "{stderr}");
    assert!(stderr.contains("uploading 100 %"), "{stderr}");
    assert!(
        stdout.contains("2 files") && stdout.contains("live"),
        "{stdout}"
    );
    let sites: serde_json::Value = api(&p, &key, Method::GET, "/v1/sites")
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let docs = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "docs")
        .unwrap()
        .clone();
    assert!(docs["live_deployment_id"].is_string());

    // The domain moved to the site: the next deploy prints its URL; --stage leaves the
    // live deploy alone.
    let res = api(&p, &key, Method::PATCH, &format!("/v1/domains/{id}"))
        .await
        .json(&serde_json::json!({"site_id": docs["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let out = deploy(&["--site", "docs", "--stage"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("staged"), "{stdout}");
    assert!(
        stdout.contains(&format!("https://{host}/ (not served yet: pending_dns)")),
        "{stdout}"
    );
    let list: serde_json::Value = api(
        &p,
        &key,
        Method::GET,
        &format!("/v1/sites/{}/deployments", docs["id"].as_str().unwrap()),
    )
    .await
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let lives: Vec<bool> = list["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["live"].as_bool().unwrap())
        .collect();
    assert_eq!(lives, [false, true]);

    // A wrong key: a one-line error, exit 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_landlord"))
        .args(["deploy", dir.to_str().unwrap(), "--site", "docs"])
        .env_clear()
        .env("LANDLORD_API_URL", &p.api)
        .env("LANDLORD_API_KEY", "ll_wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[sqlx::test(migrations = false)]
async fn a_site_redirects_to_its_canonical_hostname_once_it_has_a_certificate(pool: PgPool) {
    use reqwest::Method;
    let _turn = EDGE_PORT_LOCK.lock().await;
    let mut p = Platform::start(pool, &[]).await;
    let port = p.spawn_edge().await;
    p.spawn("worker", &[]);
    let key = p.tenant().await;
    let (apex, www) = (unique("apex"), unique("www"));
    let apex_id = p.add_pointed_domain(&key, &apex).await;
    let www_id = p.add_domain(&key, &www).await;
    p.put_file(&key, "index.html", "text/html", "the site")
        .await;
    let sites: serde_json::Value = api(&p, &key, Method::GET, "/v1/sites")
        .await
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let site = sites["sites"][0]["id"].as_str().unwrap().to_owned();
    let patch = async |body: serde_json::Value| {
        api(&p, &key, Method::PATCH, &format!("/v1/sites/{site}"))
            .await
            .json(&body)
            .send()
            .await
            .unwrap()
    };
    // Only one of the site's own domains can be canonical.
    let res = patch(serde_json::json!({"canonical_hostname": "elsewhere.example.com"})).await;
    assert_eq!(res.status(), 422);
    let res = patch(serde_json::json!({"canonical_hostname": www})).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["canonical_hostname"], www.as_str());

    // www has no certificate yet: the apex serves the site itself.
    p.wait_domain(&key, &apex_id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    let client = p.https_client(&apex, port);
    let get = async || {
        client
            .get(format!("https://{apex}:{port}/docs/?q=1"))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(get().await.status(), 404, "served by the site itself");
    // Once www is active, the apex answers 308 to it, path and query kept.
    p.point(&www).await;
    p.check_now(&key, &www_id).await;
    p.wait_domain(&key, &www_id, ISSUE_DEADLINE, |d| d["status"] == "active")
        .await;
    let want = format!("https://{www}:{port}/docs/?q=1");
    p.wait_for(
        "the canonical redirect",
        Duration::from_secs(5),
        |_| async {
            let res = get().await;
            res.status() == 308 && res.headers()["location"] == want.as_str()
        },
    )
    .await;
    let res = p
        .https_client(&www, port)
        .get(format!("https://{www}:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "the site");
    // null turns it off.
    assert_eq!(
        patch(serde_json::json!({"canonical_hostname": null}))
            .await
            .status(),
        200
    );
    p.wait_for(
        "the apex serving again",
        Duration::from_secs(5),
        |_| async { get().await.status() == 404 },
    )
    .await;
}
