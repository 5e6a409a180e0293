//! `/v1/files`: uploads, limits, quotas and hostile paths.

mod common;

use common::{problem, raw_request, spawn_app, spawn_app_with};
use landlord_store::{FILE_OVERHEAD_BYTES, file_cost};
use reqwest::Method;
use serde_json::Value;
use sqlx::PgPool;

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn files_are_stored_listed_replaced_and_deleted(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("acme").await;
    let put = |path: &str| app.as_tenant(&t, Method::PUT, path);

    assert_eq!(
        put("/v1/files/index.html")
            .body("<h1>hi</h1>")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        put("/v1/files/css/site.css")
            .header("content-type", "text/css")
            .body("b{}")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        put("/v1/files/data.bin")
            .header("content-type", "application/x-custom")
            .body("x")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let list: Value = app
        .as_tenant(&t, Method::GET, "/v1/files")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let files = list["files"].as_array().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["css/site.css", "data.bin", "index.html"]);
    assert_eq!(files[0]["content_type"], "text/css");
    assert_eq!(files[1]["content_type"], "application/x-custom");
    assert_eq!(
        files[2]["content_type"], "text/html; charset=utf-8",
        "guessed from the extension"
    );
    assert_eq!(files[2]["size"], 11);
    let etag = files[2]["etag"].as_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 66,
        "strong ETag: {etag}"
    );
    let used: i64 = files
        .iter()
        .map(|f| {
            file_cost(
                f["path"].as_str().unwrap(),
                f["content_type"].as_str().unwrap(),
                f["size"].as_u64().unwrap() as usize,
            )
        })
        .sum();
    assert_eq!(
        used,
        11 + 3 + 1 + 3 * FILE_OVERHEAD_BYTES + (12 + 8 + 10) + (8 + 20 + 24)
    );
    assert_eq!(
        list["usage"]["used_bytes"], used,
        "bodies, paths, types and overhead"
    );

    // replacing changes the ETag, not the count
    put("/v1/files/index.html")
        .body("<h1>bye</h1>")
        .send()
        .await
        .unwrap();
    let list: Value = app
        .as_tenant(&t, Method::GET, "/v1/files")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["files"].as_array().unwrap().len(), 3);
    assert_ne!(list["files"][2]["etag"], etag);

    let res = app
        .as_tenant(&t, Method::DELETE, "/v1/files/css/site.css")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    problem(
        app.as_tenant(&t, Method::DELETE, "/v1/files/css/site.css")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn evil_paths_are_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("acme").await;
    for path in [
        "/v1/files/%2e%2e/etc/passwd",
        "/v1/files/a/%2E%2E/%2e%2e/b",
        "/v1/files/a/./b",
        "/v1/files/a//b",
        "/v1/files/dir/",
        "/v1/files/a%00b",
        "/v1/files/a%0Ab",
        "/v1/files/a%5Cb",
    ] {
        let (status, body) = raw_request(&app, &t.key, "PUT", path, "x").await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("path"),
            "{path}: {body}"
        );
    }
    let long = format!("/v1/files/{}", "a/".repeat(600));
    problem(
        app.as_tenant(&t, Method::PUT, &long)
            .body("x")
            .send()
            .await
            .unwrap(),
        422,
    )
    .await;
    // invalid UTF-8 after percent-decoding
    let (status, body) = raw_request(&app, &t.key, "PUT", "/v1/files/%FF.html", "x").await;
    assert!((400..500).contains(&status), "{status}");
    assert!(body["detail"].is_string(), "{body}");
    let list: Value = app
        .as_tenant(&t, Method::GET, "/v1/files")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["files"].as_array().unwrap().len(),
        0,
        "nothing was stored"
    );
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn file_size_limit_and_quota_are_413(pool: PgPool) {
    // Each file costs its body, path and type plus the fixed overhead (bodies differ: an
    // identical one would be stored, and counted, once).
    let cost = |path: &str, size: usize| file_cost(path, "application/octet-stream", size);
    let quota = cost("a", 1000) + cost("b", 1000);
    let app = spawn_app_with(pool, |c| {
        c.limits.max_file_bytes = 1000;
        c.limits.quota_bytes = quota;
    })
    .await;
    let t = app.tenant("acme").await;
    let put = |path: &str, size: usize| {
        app.as_tenant(&t, Method::PUT, &format!("/v1/files/{path}"))
            .header("content-type", "application/octet-stream")
            .body(path.bytes().cycle().take(size).collect::<Vec<u8>>())
            .send()
    };
    let body = problem(put("big.bin", 1001).await.unwrap(), 413).await;
    assert!(body["detail"].as_str().unwrap().contains("1000"), "{body}");

    assert_eq!(put("a", 1000).await.unwrap().status(), 204);
    assert_eq!(put("b", 1000).await.unwrap().status(), 204);
    let body = problem(put("c", 0).await.unwrap(), 413).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&quota.to_string()),
        "{body}"
    );
    // replacing an existing file counts only the difference
    assert_eq!(put("b", 400).await.unwrap().status(), 204);
    let room = (quota - cost("a", 1000) - cost("b", 400)) as usize;
    let fits = room - (cost("c", 0) as usize);
    assert_eq!(put("c", fits).await.unwrap().status(), 204);
    let list: Value = app
        .as_tenant(&t, Method::GET, "/v1/files")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["usage"]["used_bytes"], quota);
    assert_eq!(list["usage"]["files"], 3);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn concurrent_uploads_cannot_overshoot_the_quota(pool: PgPool) {
    let one = file_cost("f0", "application/octet-stream", 1000);
    let app = std::sync::Arc::new(
        spawn_app_with(pool, |c| {
            c.limits.max_file_bytes = 1000;
            c.limits.quota_bytes = 5 * one + 5;
        })
        .await,
    );
    let t = std::sync::Arc::new(app.tenant("acme").await);
    let uploads = (0..12).map(|i| {
        let (app, t) = (app.clone(), t.clone());
        tokio::spawn(async move {
            app.as_tenant(&t, Method::PUT, &format!("/v1/files/f{i}"))
                .header("content-type", "application/octet-stream")
                .body(vec![i as u8; 1000])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    let statuses: Vec<u16> = futures::future::join_all(uploads)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 413).count(),
        7,
        "{statuses:?}"
    );
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn malformed_content_type_is_422(pool: PgPool) {
    let app = spawn_app(pool).await;
    let t = app.tenant("acme").await;
    let res = app
        .as_tenant(&t, Method::PUT, "/v1/files/x.txt")
        .header("content-type", "not a type")
        .body("x")
        .send()
        .await
        .unwrap();
    problem(res, 422).await;
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn non_ascii_content_type_is_422_not_ignored(pool: PgPool) {
    // Regression: a Content-Type that is not ASCII used to be ignored (type guessed from
    // the extension, 204) instead of refused like any other malformed media type.
    let app = spawn_app(pool).await;
    let t = app.tenant("acme").await;
    let res = app
        .as_tenant(&t, Method::PUT, "/v1/files/x.html")
        .header(
            "content-type",
            reqwest::header::HeaderValue::from_bytes(b"text/\x80html").unwrap(),
        )
        .body("x")
        .send()
        .await
        .unwrap();
    let body = problem(res, 422).await;
    assert_eq!(body["type"], "/problems/invalid-content-type", "{body}");
    let list: Value = app
        .as_tenant(&t, Method::GET, "/v1/files")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["files"].as_array().unwrap().len(), 0, "{list}");
}
