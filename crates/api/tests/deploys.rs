//! `POST /v1/sites/{id}/deployments`: archives read defensively, deploys made live
//! atomically, staged, rolled back.

mod common;

use common::{TestApp, TestTenant, problem, spawn_app, spawn_app_with};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

/// A tar archive, entry by entry; raw headers so hostile archives can be made too.
struct Tar(Vec<u8>);

impl Tar {
    fn new() -> Self {
        Tar(Vec::new())
    }

    fn entry(mut self, name: &[u8], kind: tar::EntryType, data: &[u8]) -> Self {
        let mut header = tar::Header::new_gnu();
        let field = &mut header.as_gnu_mut().unwrap().name;
        let n = name.len().min(100);
        field[..n].copy_from_slice(&name[..n]);
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    fn file(self, name: &str, data: &str) -> Self {
        self.entry(name.as_bytes(), tar::EntryType::Regular, data.as_bytes())
    }

    fn dir(self, name: &str) -> Self {
        self.entry(name.as_bytes(), tar::EntryType::Directory, b"")
    }

    /// A GNU long name: the next entry's path, however long.
    fn long_name(self, name: &str, data: &str) -> Self {
        let mut long = name.as_bytes().to_vec();
        long.push(0);
        self.entry(b"././@LongLink", tar::EntryType::GNULongName, &long)
            .file("placeholder", data)
    }

    /// A PAX extended header giving the next entry's path.
    fn pax_path(self, name: &str, data: &str) -> Self {
        let record = |len: usize| format!("{len} path={name}\n");
        let mut len = record(0).len();
        while record(len).len() != len {
            len = record(len).len();
        }
        self.entry(
            b"PaxHeader",
            tar::EntryType::XHeader,
            record(len).as_bytes(),
        )
        .file("placeholder", data)
    }

    fn done(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0u8, 1024));
        self.0
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn site(app: &TestApp, t: &TestTenant, name: &str) -> String {
    let res = app
        .as_tenant(t, Method::POST, "/v1/sites")
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn default_site(app: &TestApp, t: &TestTenant) -> String {
    let list: Value = app
        .as_tenant(t, Method::GET, "/v1/sites")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["sites"][0]["id"].as_str().unwrap().to_owned()
}

async fn deploy(
    app: &TestApp,
    t: &TestTenant,
    site: &str,
    query: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.as_tenant(
        t,
        Method::POST,
        &format!("/v1/sites/{site}/deployments{query}"),
    )
    .header("content-type", "application/x-tar")
    .body(body)
    .send()
    .await
    .unwrap()
}

async fn files(app: &TestApp, t: &TestTenant) -> Vec<(String, i64)> {
    let list: Value = app
        .as_tenant(t, Method::GET, "/v1/files")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["size"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn archives_deploy_whole_in_tar_gzip_and_zstd(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("acme").await;
    let id = default_site(&app, &t).await;
    let v1 = Tar::new()
        .entry(
            b"pax_global_header",
            tar::EntryType::XGlobalHeader,
            b"52 comment=0123456789abcdef0123456789abcdef01234567\n",
        )
        .dir("./")
        .dir("./css/")
        .file("./index.html", "<h1>v1</h1>")
        .file("./css/site.css", "h1 { color: red }")
        .done();
    let res = deploy(&app, &t, &id, "", v1.clone()).await;
    assert_eq!(res.status(), 201);
    let d1: Value = res.json().await.unwrap();
    assert_eq!(d1["live"], true);
    assert_eq!(d1["file_count"], 2);
    assert_eq!(d1["source"], "upload");
    // Who: the uploading key's display prefix, never the key.
    assert_eq!(d1["created_by"], t.key[..11]);
    assert_eq!(
        files(&app, &t).await,
        [
            ("css/site.css".to_owned(), 17),
            ("index.html".to_owned(), 11)
        ]
    );

    // gzip: live at once, replacing the whole site (the stylesheet is gone).
    let v2 = Tar::new().file("index.html", "<h1>v2</h1>!").done();
    let d2: Value = deploy(&app, &t, &id, "", gzip(&v2))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(files(&app, &t).await, [("index.html".to_owned(), 12)]);

    // zstd, staged: nothing changes until it is activated.
    let v3 = Tar::new().file("index.html", "<h1>v3</h1>!!").done();
    let res = deploy(
        &app,
        &t,
        &id,
        "?activate=false",
        zstd::encode_all(&v3[..], 3).unwrap(),
    )
    .await;
    assert_eq!(res.status(), 201);
    let d3: Value = res.json().await.unwrap();
    assert_eq!(d3["live"], false);
    assert_eq!(files(&app, &t).await, [("index.html".to_owned(), 12)]);
    let activate = |deployment: &Value| {
        app.as_tenant(
            &t,
            Method::POST,
            &format!(
                "/v1/sites/{id}/deployments/{}/activate",
                deployment["id"].as_str().unwrap()
            ),
        )
        .send()
    };
    assert_eq!(activate(&d3).await.unwrap().status(), 200);
    assert_eq!(files(&app, &t).await, [("index.html".to_owned(), 13)]);
    // Rollback to the first deploy, in one call.
    assert_eq!(activate(&d1).await.unwrap().status(), 200);
    assert_eq!(files(&app, &t).await.len(), 2);

    let list: Value = app
        .as_tenant(&t, Method::GET, &format!("/v1/sites/{id}/deployments"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<(&str, bool)> = list["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap(), d["live"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        ids,
        [
            (d3["id"].as_str().unwrap(), false),
            (d2["id"].as_str().unwrap(), false),
            (d1["id"].as_str().unwrap(), true)
        ]
    );

    // Another account's site: 404, the archive is not even read.
    let other = app.tenant("other").await;
    problem(deploy(&app, &other, &id, "", v1).await, 404).await;
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_bad_entry_refuses_the_whole_deploy_naming_it(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("acme").await;
    let id = site(&app, &t, "docs").await;
    let good = || Tar::new().file("index.html", "ok");
    let long_evil = format!("{}/../../../etc/passwd", "a".repeat(120));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "symlink",
            good().entry(b"link", tar::EntryType::Symlink, b"").done(),
            "symbolic links",
        ),
        (
            "hard link",
            good().entry(b"hard", tar::EntryType::Link, b"").done(),
            "hard links",
        ),
        (
            "fifo",
            good().entry(b"pipe", tar::EntryType::Fifo, b"").done(),
            "fifos",
        ),
        (
            "device",
            good().entry(b"dev", tar::EntryType::Char, b"").done(),
            "character devices",
        ),
        (
            "absolute",
            good().file("/etc/passwd", "x").done(),
            "absolute",
        ),
        (
            "traversal",
            good().file("../x.html", "x").done(),
            "\"../x.html\"",
        ),
        (
            "inner traversal",
            good().file("a/../../x.html", "x").done(),
            "a/../../x.html",
        ),
        (
            "duplicate",
            good().file("./index.html", "again").done(),
            "same path",
        ),
        (
            "case duplicate",
            good().file("INDEX.html", "again").done(),
            "same path",
        ),
        (
            "unicode duplicate",
            good()
                .file("caf\u{e9}.html", "1")
                .file("cafe\u{301}.html", "2")
                .done(),
            "same path",
        ),
        (
            "GNU long name",
            good().long_name(&long_evil, "x").done(),
            "etc/passwd",
        ),
        (
            "PAX path",
            good().pax_path("../pax.html", "x").done(),
            "pax.html",
        ),
        (
            "control character",
            good().file("a\u{1}b.html", "x").done(),
            "a\\u{1}b.html",
        ),
        (
            "not an archive",
            b"this is not a tar archive at all, just text".repeat(20),
            "cannot be read",
        ),
        ("empty", Tar::new().dir("empty/").done(), "no file"),
    ];
    for (what, body, want) in cases {
        let res = deploy(&app, &t, &id, "", body).await;
        let body = problem(res, 422).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(want), "{what}: {detail}");
        assert_eq!(body["type"], "/problems/invalid-archive", "{what}");
    }
    let list: Value = app
        .as_tenant(&t, Method::GET, &format!("/v1/sites/{id}/deployments"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["deployments"], json!([]), "nothing was stored");
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn sizes_counts_bombs_and_the_quota_are_bounded(pool: PgPool) {
    let app = spawn_app_with(pool, |c| {
        c.limits.max_file_bytes = 1_000_000;
        c.limits.max_files = 5;
        c.limits.quota_bytes = 300_000;
        c.deploys.max_upload_bytes = 200_000;
        c.deploys.max_expanded_bytes = 10_000_000;
        c.deploys.max_ratio = 20;
    })
    .await;
    let t = app.tenant("acme").await;
    let id = site(&app, &t, "docs").await;
    let too_large = |body: Value, want: &str| {
        let detail = body["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(want), "{detail}");
    };
    // One file over the per-file limit (refused from its header, before its bytes).
    let big = gzip(&Tar::new().file("big.bin", &"x".repeat(1_000_001)).done());
    too_large(
        problem(deploy(&app, &t, &id, "", big).await, 413).await,
        "big.bin",
    );
    // The upload itself.
    let upload = vec![0u8; 200_001];
    too_large(
        problem(deploy(&app, &t, &id, "", upload).await, 413).await,
        "200000",
    );
    // A bomb: 4.5 MB of zeros in a few kB of gzip (more than 20 times the upload, and
    // more than the first MiB), each file within the limits.
    let mut zeros = Tar::new();
    for i in 0..5 {
        zeros = zeros.file(&format!("zeros{i}.bin"), &"\0".repeat(900_000));
    }
    let bomb = gzip(&zeros.done());
    assert!(bomb.len() < 50_000);
    too_large(
        problem(deploy(&app, &t, &id, "", bomb).await, 413).await,
        "20 times",
    );
    // More entries than a deploy may hold (twice the files: directories count too).
    let mut many = Tar::new();
    for i in 0..11 {
        many = many.dir(&format!("d{i}/"));
    }
    too_large(
        problem(
            deploy(&app, &t, &id, "", many.file("a", "a").done()).await,
            413,
        )
        .await,
        "entries",
    );
    // More files than a deploy may hold.
    let mut six = Tar::new();
    for i in 0..6 {
        six = six.file(&format!("f{i}.html"), &i.to_string());
    }
    let body = problem(deploy(&app, &t, &id, "", six.done()).await, 403).await;
    assert_eq!(body["type"], "/problems/limit-reached");
    // Over the quota once stored.
    let a = Tar::new()
        .file("a.bin", &"a".repeat(90_000))
        .file("b.bin", &"b".repeat(90_000))
        .done();
    assert_eq!(deploy(&app, &t, &id, "", a).await.status(), 201);
    let c = Tar::new()
        .file("c.bin", &"c".repeat(90_000))
        .file("d.bin", &"d".repeat(90_000))
        .done();
    let body = problem(deploy(&app, &t, &id, "", c).await, 413).await;
    assert_eq!(body["type"], "/problems/quota-exceeded");
    // Bodies already stored cost nothing more: a new deploy with them fits.
    let again = Tar::new()
        .file("a.bin", &"a".repeat(90_000))
        .file("b2.bin", &"b".repeat(90_000))
        .done();
    assert_eq!(deploy(&app, &t, &id, "", again).await.status(), 201);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn malformed_rules_are_refused_by_line_through_files_too(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("acme").await;
    let put = |path: &str, body: &str| {
        app.as_tenant(&t, Method::PUT, &format!("/v1/files/{path}"))
            .header("content-type", "text/plain")
            .body(body.to_owned())
            .send()
    };
    assert_eq!(put("index.html", "home").await.unwrap().status(), 204);
    let body = problem(
        put("_headers", "/*\n  Content-Length: 5\n").await.unwrap(),
        422,
    )
    .await;
    assert_eq!(body["type"], "/problems/invalid-rules");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("_headers line 2: Content-Length is set by the platform"),
        "{body}"
    );
    assert_eq!(files(&app, &t).await.len(), 1, "nothing was stored");
    assert_eq!(
        put("_redirects", "/* /index.html 200\n")
            .await
            .unwrap()
            .status(),
        204
    );
}
