//! The production commands: migrate, tenant create, api.

use anyhow::Context;

use crate::Fatal;
use crate::config::{Settings, shutdown_signal};
use landlord_api::ApiConfig;
use landlord_store::Store;

pub async fn migrate(settings: &Settings) -> Result<(), Fatal> {
    settings.store(true).await?;
    tracing::info!("migrations applied");
    Ok(())
}

pub async fn create_tenant(settings: &Settings, migrate: bool, name: &str) -> Result<(), Fatal> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Fatal::Config(
            "the tenant name must be 1 to 200 characters".into(),
        ));
    }
    let store = settings.store(migrate).await?;
    let (tenant, key) = store
        .create_tenant(name)
        .await
        .context("creating the tenant")?;
    println!(
        "{}",
        serde_json::json!({ "id": tenant.id, "name": tenant.name, "api_key": key.secret })
    );
    Ok(())
}

/// Everything `landlord api` needs, validated before connecting.
pub fn api_config(settings: &Settings) -> Result<ApiConfig, Fatal> {
    let mut config = ApiConfig::new(
        settings.cname_target()?,
        settings.edge_ips()?,
        settings.admin_token.as_deref().filter(|t| !t.is_empty()),
    );
    config.file_limits = settings.file_limits()?;
    Ok(config)
}

pub async fn api(settings: &Settings, migrate: bool) -> Result<(), Fatal> {
    let config = api_config(settings)?;
    settings.master_key()?;
    let store = settings.store(migrate).await?;
    serve_api(store, config, settings.api_addr()).await
}

pub async fn serve_api(
    store: Store,
    config: ApiConfig,
    addr: std::net::SocketAddr,
) -> Result<(), Fatal> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Fatal::Config(format!("cannot listen on {addr} (LANDLORD_API_ADDR): {e}")))?;
    tracing::info!(%addr, "API listening");
    landlord_api::serve(
        listener,
        landlord_api::router(store, config),
        shutdown_signal(),
    )
    .await
    .context("serving the API")?;
    tracing::info!("API stopped");
    Ok(())
}
