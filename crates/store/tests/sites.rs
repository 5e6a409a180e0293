//! Sites and deploys against a real PostgreSQL: the migration from per-tenant files,
//! content addressing, retention, and the quota over what is stored.

use landlord_store::{
    Activation, FilePath, Hostname, NewFile, Site, SiteName, Store, StoreError, TenantId,
    TenantLimits, TenantName,
};
use sqlx::PgPool;

fn file(path: &str, body: &str) -> NewFile {
    NewFile {
        path: FilePath::parse(path).unwrap(),
        content_type: "text/html".into(),
        body: body.as_bytes().to_vec(),
    }
}

/// A new tenant named `tenant` with a site named `site`.
async fn tenant_with_site(store: &Store, tenant: &str, site: &str) -> (TenantId, Site) {
    let (tenant, _) = store
        .create_tenant(&TenantName::parse(tenant).unwrap())
        .await
        .unwrap();
    let site = store
        .create_site(tenant.id, &SiteName::parse(site).unwrap(), None, 10)
        .await
        .unwrap();
    (tenant.id, site)
}

/// A database as the previous release left it (migrations before 0009): one tenant with
/// two files of the same content and a domain. After this release's migrations the
/// files are its default site's live deploy, stored once, and the domain serves it.
#[sqlx::test(migrations = false)]
async fn files_from_before_sites_become_the_default_site_live(pool: PgPool) {
    let dir = std::env::temp_dir().join(format!("landlord-sites-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0009" {
            std::fs::copy(&path, dir.join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(dir.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let tenant = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, 'legacy')")
        .bind(tenant)
        .execute(&pool)
        .await
        .unwrap();
    for path in ["index.html", "copy.html"] {
        sqlx::query(
            "INSERT INTO files (tenant_id, path, content_type, body, size, etag) \
             VALUES ($1, $2, 'text/html', 'same bytes', 10, \
                     '\"' || encode(sha256('same bytes'), 'hex') || '\"')",
        )
        .bind(tenant)
        .bind(path)
        .execute(&pool)
        .await
        .unwrap();
    }
    // A picture: its body is not worth compressing (no variants tried).
    sqlx::query(
        "INSERT INTO files (tenant_id, path, content_type, body, size, etag) \
         VALUES ($1, 'logo.png', 'image/png', $2, 300, \
                 '\"' || encode(sha256($2), 'hex') || '\"')",
    )
    .bind(tenant)
    .bind(vec![7u8; 300])
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO domains (id, tenant_id, hostname) VALUES ($1, $2, 'old.example.com')")
        .bind(uuid::Uuid::now_v7())
        .bind(tenant)
        .execute(&pool)
        .await
        .unwrap();

    landlord_store::MIGRATOR.run(&pool).await.unwrap();
    let store = Store::from_pool(pool.clone());
    let name = store
        .all_hostnames()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.hostname.as_str() == "old.example.com")
        .unwrap();
    let tenant = name.tenant_id;
    let sites = store.list_sites(tenant).await.unwrap();
    assert_eq!(sites.len(), 1);
    let site = &sites[0];
    assert!(site.is_default && site.name == "default" && site.domains == 1);
    assert_eq!(name.site_id, site.id);
    let live = site.live_deployment_id.expect("the files are live");
    let page = store
        .get_file(live, &FilePath::parse("copy.html").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.body, b"same bytes");
    let files = store.list_files(tenant, 10, None).await.unwrap();
    assert_eq!(files.items.len(), 3);
    assert_eq!(files.items[0].etag, page.etag, "ETags are kept");
    let blobs: Vec<(i64, bool, bool)> =
        sqlx::query_as("SELECT size, compressible, variants_done FROM blobs ORDER BY size")
            .fetch_all(&pool)
            .await
            .unwrap();
    // The same bytes are stored once; the short page and the picture are not compressed.
    assert_eq!(blobs, [(10, false, true), (300, false, true)]);
}

#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn deploys_share_bodies_keep_the_newest_and_count_what_is_stored(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let (tenant, site) = tenant_with_site(&store, "agency", "docs").await;
    let limits = TenantLimits::default();
    let big = "x".repeat(10_000);
    let mut ids = Vec::new();
    for v in 0..4 {
        // Nothing to compress (small, or a picture): live at once when asked.
        let picture = NewFile {
            content_type: "image/png".into(),
            ..file("big.html", &big)
        };
        let files = [file("index.html", &format!("v{v}")), picture];
        let d = store
            .create_deployment(
                tenant,
                site.id,
                &files,
                Some("ll_0123abcd"),
                Activation::Now,
                TenantLimits {
                    kept_deployments: 3,
                    ..limits
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert!(d.live && d.file_count == 2 && d.bytes == 10_002);
        assert_eq!(d.created_by.as_deref(), Some("ll_0123abcd"));
        ids.push(d.id);
    }
    // Three kept (the newest), the oldest dropped.
    let kept = store
        .list_deployments(tenant, site.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.iter().map(|d| d.id).collect::<Vec<_>>(),
        [ids[3], ids[2], ids[1]]
    );
    // The big body is stored once for all of them.
    let usage = store.tenant_usage(tenant).await.unwrap();
    let rows = 3
        * (2 * 256 + "index.html".len() + "big.html".len() + "text/html".len() + "image/png".len());
    assert_eq!(usage.used_bytes as usize, 10_000 + 3 * 2 + rows);
    assert_eq!(usage.files, 2);

    // A rollback keeps the rolled-back-to deploy whatever the retention.
    store
        .activate_deployment(tenant, site.id, ids[1])
        .await
        .unwrap()
        .unwrap();
    let staged = store
        .create_deployment(
            tenant,
            site.id,
            &[file("index.html", "v9")],
            None,
            Activation::Stage,
            TenantLimits {
                kept_deployments: 2,
                ..limits
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!staged.live);
    let kept = store
        .list_deployments(tenant, site.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.iter().map(|d| (d.id, d.live)).collect::<Vec<_>>(),
        [(staged.id, false), (ids[1], true)]
    );

    // Over the quota: refused, nothing written.
    let now = store.tenant_usage(tenant).await.unwrap();
    let tight = TenantLimits {
        quota_bytes: now.used_bytes + 100,
        ..limits
    };
    let err = store
        .create_deployment(
            tenant,
            site.id,
            &[file("new.html", &"y".repeat(500))],
            None,
            Activation::Now,
            TenantLimits {
                kept_deployments: 10,
                ..tight
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::QuotaExceeded { .. }), "{err}");
    assert_eq!(
        store
            .list_deployments(tenant, site.id)
            .await
            .unwrap()
            .unwrap()
            .len(),
        2
    );

    // Too many files in one deploy.
    let few = TenantLimits {
        max_files: 1,
        ..limits
    };
    let two = [file("a.html", "a"), file("b.html", "b")];
    let err = store
        .create_deployment(
            tenant,
            site.id,
            &two,
            None,
            Activation::Now,
            TenantLimits {
                kept_deployments: 10,
                ..few
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LimitReached { .. }), "{err}");

    // Another account's site is none of yours.
    let (other, _) = store
        .create_tenant(&TenantName::parse("other").unwrap())
        .await
        .unwrap();
    assert!(
        store
            .create_deployment(
                other.id,
                site.id,
                &two,
                None,
                Activation::Now,
                TenantLimits {
                    kept_deployments: 10,
                    ..limits
                }
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .list_deployments(other.id, site.id)
            .await
            .unwrap()
            .is_none()
    );

    // Deleting the site drops its deploys and, with them, its bodies.
    let domain = store
        .create_domain(
            tenant,
            &Hostname::parse("docs.example.com").unwrap(),
            Some(site.id),
            10,
        )
        .await
        .unwrap();
    assert_eq!(domain.site_id, site.id);
    assert_eq!(
        store.delete_site(tenant, site.id).await.unwrap(),
        landlord_store::SiteDeletion::HasDomains(1)
    );
    store.delete_domain(tenant, domain.id).await.unwrap();
    assert_eq!(
        store.delete_site(tenant, site.id).await.unwrap(),
        landlord_store::SiteDeletion::Deleted
    );
    let blobs: i64 = sqlx::query_scalar("SELECT count(*) FROM blobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(blobs, 0);
}

/// A deploy asked to go live waits for its compressed variants: it is `activating` (the
/// site still serves the deploy before) until the worker stores the last of them, in the
/// transaction that makes it live; a deploy with nothing to compress goes live at once,
/// and one that has waited long enough goes live without them.
#[sqlx::test(migrator = "landlord_store::MIGRATOR")]
async fn a_deploy_goes_live_once_its_variants_exist(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let (tenant, site) = tenant_with_site(&store, "waits", "www").await;
    let limits = TenantLimits::default();
    let deploy = |files: Vec<NewFile>| {
        let store = store.clone();
        async move {
            store
                .create_deployment(
                    tenant,
                    site.id,
                    &files,
                    None,
                    Activation::WhenCompressed,
                    TenantLimits {
                        kept_deployments: 10,
                        ..limits
                    },
                )
                .await
                .unwrap()
                .unwrap()
        }
    };
    let live = || async {
        store
            .get_site(tenant, site.id)
            .await
            .unwrap()
            .unwrap()
            .live_deployment_id
    };

    // Nothing worth compressing (small): live at once.
    let v1 = deploy(vec![file("index.html", "<p>v1</p>")]).await;
    assert!(v1.live && !v1.activating && v1.compressing == 0);

    // Two bodies to compress: activating, v1 still served.
    let page = |n: u32| format!("<p>{}</p>", "v2 ".repeat(100 + n as usize));
    let v2 = deploy(vec![
        file("index.html", &page(0)),
        file("about.html", &page(1)),
    ])
    .await;
    assert!(!v2.live && v2.activating && v2.compressing == 2, "{v2:?}");
    assert_eq!(live().await, Some(v1.id));

    // A worker stores the first body's variants: still waiting for the second.
    let first = store
        .claim_uncompressed(std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .store_variants(&first, &Default::default())
            .await
            .unwrap()
    );
    assert_eq!(live().await, Some(v1.id));
    // The overdue sweep leaves a deploy that has not waited long enough.
    assert!(
        store
            .activate_ready(Some(std::time::Duration::from_secs(60)))
            .await
            .unwrap()
            .is_empty()
    );
    let second = store
        .claim_uncompressed(std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .store_variants(&second, &Default::default())
            .await
            .unwrap()
    );
    assert_eq!(live().await, Some(v2.id), "live with its last variant");

    // A rollback to a deploy with its variants is immediate and cancels a waiting one.
    let v3 = deploy(vec![file("index.html", &page(7))]).await;
    assert!(v3.activating);
    let back = store
        .activate_deployment(tenant, site.id, v1.id)
        .await
        .unwrap()
        .unwrap();
    assert!(back.live);
    let listed = store
        .list_deployments(tenant, site.id)
        .await
        .unwrap()
        .unwrap();
    assert!(listed.iter().all(|d| !d.activating), "{listed:?}");

    // Without a compressor, a deploy that waited long enough goes live without them.
    let v4 = deploy(vec![file("index.html", &page(9))]).await;
    assert!(v4.activating);
    assert_eq!(
        store
            .activate_ready(Some(std::time::Duration::ZERO))
            .await
            .unwrap(),
        [site.id]
    );
    assert_eq!(live().await, Some(v4.id));
}
