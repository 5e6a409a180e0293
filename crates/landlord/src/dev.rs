//! `landlord dev`: the whole platform on one machine with no setup.
//!
//! State lives under `./.landlord/` (git-ignored): the private PostgreSQL cluster when
//! `DATABASE_URL` is unset, a generated master key and admin token, and the demo
//! tenant's API key (shown again on every start).

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;

use secrecy::ExposeSecret;

use crate::Fatal;
use crate::config::{Config, Settings};
use crate::postgres::Cluster;
use crate::run::Roles;

/// Dev defaults: unprivileged ports and a CNAME target under `.localhost`.
pub const DEV_API_ADDR: &str = "127.0.0.1:3000";
pub const DEV_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEV_HTTPS_ADDR: &str = "127.0.0.1:8443";
pub const DEV_CNAME_TARGET: &str = "edge.landlord.localhost";
const DEMO_TENANT: &str = "demo";

pub async fn run(mut settings: Settings, migrate: bool) -> Result<(), Fatal> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let cluster = if settings.database_url.is_none() {
        let dir = dir.join("postgres");
        let cluster = tokio::task::spawn_blocking(move || Cluster::start(&dir))
            .await
            .context("starting PostgreSQL")??;
        settings.database_url = Some(cluster.url().into());
        Some(cluster)
    } else {
        None
    };

    let result = run_platform(&mut settings, migrate, &dir).await;
    if let Some(cluster) = cluster {
        let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;
    }
    result
}

async fn run_platform(settings: &mut Settings, migrate: bool, dir: &Path) -> Result<(), Fatal> {
    settings
        .api_addr
        .get_or_insert(DEV_API_ADDR.parse().expect("valid"));
    settings
        .cname_target
        .get_or_insert_with(|| DEV_CNAME_TARGET.to_owned());
    settings
        .http_addr
        .get_or_insert(DEV_HTTP_ADDR.parse().expect("valid"));
    settings
        .https_addr
        .get_or_insert(DEV_HTTPS_ADDR.parse().expect("valid"));
    settings.issuer.get_or_insert_with(|| "local".to_owned());
    // Names under .localhost (RFC 6761) resolve to this machine: the demo's domains.
    if !settings.extra_suffixes.iter().any(|s| s == "localhost") {
        settings.extra_suffixes.push("localhost".to_owned());
    }
    if settings.master_key.is_none() {
        let key = read_or_create_secret(&dir.join("master.key"), |b| {
            base64::engine::general_purpose::STANDARD.encode(b)
        })?;
        settings.master_key = Some(key.into());
    }
    let admin_token = match &settings.admin_token {
        Some(token) => token.expose_secret().to_owned(),
        None => read_or_create_secret(&dir.join("admin-token"), hex_string)?,
    };
    settings.admin_token = Some(admin_token.clone().into());
    let roles = Roles {
        api: true,
        worker: true,
        edge: true,
    };
    let config = Config::build(settings, roles, true)?;
    let store = config.database.connect(migrate).await?;

    let key = demo_key(&store, &dir.join("demo-api-key")).await?;
    let master = settings.master_key().map_err(Fatal::Config)?;
    let ca_pem = landlord_worker::local_ca_pem(&store, &master)
        .await
        .context("creating the local CA")?;
    let ca_path = dir.join("local-ca.pem");
    std::fs::write(&ca_path, ca_pem).with_context(|| format!("writing {}", ca_path.display()))?;
    drop(store);
    let cname_target = config.api.as_ref().map(|api| api.cname_target.to_string());
    // The developer's own local secrets: printing them is the point of `dev`.
    let banner = move |bound: crate::run::Bound| {
        let show =
            |addr: Option<std::net::SocketAddr>| addr.map(|a| a.to_string()).unwrap_or_default();
        let addr = show(bound.api);
        println!("Landlord dev is running.");
        println!("  Dashboard:     http://{addr}/");
        println!("  Demo API key:  {key}");
        println!("  Admin token:   {admin_token}");
        if let Some(target) = cname_target {
            println!(
                "  CNAME target:  {target} (hostnames under .localhost count as pointed at us)"
            );
        }
        println!("  Edge HTTP:     http://{}/", show(bound.http));
        println!("  Edge HTTPS:    https://{}/", show(bound.https));
        println!(
            "  Local CA:      {} (trust it, or pass it to curl --cacert)",
            ca_path.display()
        );
        println!("  Try: curl -H 'Authorization: Bearer {key}' http://{addr}/v1/domains");
    };
    crate::run::roles(config, false, roles, banner).await
}

/// The demo tenant's key: created once, kept in `path` (the database only has its hash).
async fn demo_key(store: &landlord_store::Store, path: &Path) -> Result<String, Fatal> {
    let existing = store
        .tenant_by_name(DEMO_TENANT)
        .await
        .context("looking up the demo tenant")?;
    if let (Some(_), Ok(saved)) = (&existing, std::fs::read_to_string(path)) {
        let saved = saved.trim().to_owned();
        if store
            .authenticate(&saved)
            .await
            .context("checking the demo key")?
            .is_some()
        {
            return Ok(saved);
        }
    }
    let key = match existing {
        Some(t) => store.issue_api_key(t.id).await,
        None => {
            let name = landlord_store::TenantName::parse(DEMO_TENANT).expect("a valid name");
            store.create_tenant(&name).await.map(|(_, k)| k)
        }
    }
    .context("creating the demo tenant")?;
    write_private(path, &key.secret)?;
    Ok(key.secret)
}

fn state_dir() -> PathBuf {
    std::env::var_os("LANDLORD_DEV_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".landlord"))
}

fn read_or_create_secret(path: &Path, encode: fn(&[u8]) -> String) -> Result<String, Fatal> {
    if let Ok(s) = std::fs::read_to_string(path) {
        return Ok(s.trim().to_owned());
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let secret = encode(&bytes);
    write_private(path, &secret)?;
    Ok(secret)
}

fn hex_string(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
