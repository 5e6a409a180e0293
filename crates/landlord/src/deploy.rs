//! `landlord deploy DIR --site NAME`: what a tenant runs to publish a folder. Packs the
//! folder into a gzip-compressed tar (regular files; links and `.git` are left out),
//! creates the site when the account has none of that name, uploads with progress on
//! stderr, waits while the deploy's compressed bodies are computed, and prints where it is
//! served.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::Fatal;

/// Upload chunk size (the progress line moves once per chunk).
const CHUNK: usize = 64 * 1024;
/// The longest `deploy` waits for a deploy to go live after its upload.
const LIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// `landlord deploy`'s arguments.
#[derive(clap::Args)]
pub struct Deploy {
    /// The folder: its files, with their paths below it, become the site.
    dir: PathBuf,
    /// The site's name.
    #[arg(long)]
    site: String,
    /// Upload without making it live (activate it later).
    #[arg(long)]
    stage: bool,
    /// The API's base URL.
    #[arg(
        long,
        env = "LANDLORD_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    api_url: String,
    /// Your API key.
    #[arg(long, env = "LANDLORD_API_KEY", hide_env_values = true)]
    api_key: SecretString,
}

pub async fn run(d: Deploy) -> Result<(), Fatal> {
    if !d.dir.is_dir() {
        return Err(Fatal::Config(format!(
            "{} is not a directory",
            d.dir.display()
        )));
    }
    let (archive, files) = pack(&d.dir).with_context(|| format!("packing {}", d.dir.display()))?;
    if files == 0 {
        return Err(Fatal::Config(format!(
            "{} holds no file to deploy",
            d.dir.display()
        )));
    }
    eprintln!(
        "packed {files} files from {} ({} bytes compressed)",
        d.dir.display(),
        archive.len()
    );
    let api = Api {
        client: reqwest::Client::new(),
        base: d.api_url.trim_end_matches('/').to_owned(),
        key: d.api_key,
    };
    let site = api.site(&d.site).await?;
    let site_id = site["id"]
        .as_str()
        .context("the site has no id")?
        .to_owned();
    let mut deployment = api.upload(&site_id, archive, !d.stage).await?;
    if deployment["activating"] == true {
        deployment = api.wait_live(&site_id, deployment).await?;
    }
    let state = match (d.stage, deployment["live"] == true) {
        (true, _) => "staged (not live)",
        (false, true) => "live",
        (false, false) => "not live yet (it goes live once its compressed bodies exist)",
    };
    println!(
        "deploy {} of site {}: {} files, {} bytes, {state}",
        deployment["id"].as_str().unwrap_or("?"),
        d.site,
        deployment["file_count"],
        deployment["bytes"],
    );
    for (hostname, status) in api.hostnames(&site_id).await? {
        match status.as_str() {
            "active" => println!("  https://{hostname}/"),
            other => println!("  https://{hostname}/ (not served yet: {other})"),
        }
    }
    Ok(())
}

/// A gzip-compressed tar of the regular files below `dir`, paths relative to it; the
/// number of files.
fn pack(dir: &Path) -> anyhow::Result<(Vec<u8>, usize)> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let mut files = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&current)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let kind = entry.file_type()?;
            let relative = path.strip_prefix(dir)?;
            if kind.is_dir() {
                if entry.file_name() != ".git" {
                    pending.push(path);
                }
            } else if kind.is_file() {
                tar.append_path_with_name(&path, relative)?;
                files += 1;
            } else {
                eprintln!("skipping {} (not a regular file)", relative.display());
            }
        }
    }
    let gz = tar.into_inner()?;
    Ok((gz.finish()?, files))
}

struct Api {
    client: reqwest::Client,
    base: String,
    key: SecretString,
}

impl Api {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.key.expose_secret())
    }

    /// The account's site named `name`, created when there is none.
    async fn site(&self, name: &str) -> anyhow::Result<Value> {
        let list = answer(
            self.request(reqwest::Method::GET, "/v1/sites")
                .send()
                .await?,
        )
        .await?;
        if let Some(site) = list["sites"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
        {
            return Ok(site.clone());
        }
        eprintln!("creating site {name}");
        answer(
            self.request(reqwest::Method::POST, "/v1/sites")
                .json(&json!({ "name": name }))
                .send()
                .await?,
        )
        .await
    }

    /// Upload `archive` as a deploy of `site`, showing progress on stderr.
    async fn upload(&self, site: &str, archive: Vec<u8>, activate: bool) -> anyhow::Result<Value> {
        let total = archive.len();
        let chunks: Vec<Vec<u8>> = archive.chunks(CHUNK).map(<[u8]>::to_vec).collect();
        let mut sent = 0usize;
        let stream = futures::stream::iter(chunks.into_iter().map(move |chunk| {
            sent += chunk.len();
            eprint!(
                "\ruploading {:>3} % ({sent} of {total} bytes)",
                sent * 100 / total.max(1)
            );
            let _ = std::io::stderr().flush();
            Ok::<_, std::io::Error>(chunk)
        }));
        let res = self
            .request(
                reqwest::Method::POST,
                &format!("/v1/sites/{site}/deployments?activate={activate}"),
            )
            .header("content-type", "application/gzip")
            .header("content-length", total)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await;
        eprintln!();
        answer(res?).await
    }

    /// `deployment` once it is live: it waits for its compressed bodies, computed by a
    /// worker (given up after [`LIVE_WAIT`], or when another deploy was activated since).
    async fn wait_live(&self, site: &str, mut deployment: Value) -> anyhow::Result<Value> {
        let started = std::time::Instant::now();
        while deployment["activating"] == true && started.elapsed() < LIVE_WAIT {
            eprint!(
                "\rcompressing: {} files to go  ",
                deployment["compressing"].as_i64().unwrap_or(0)
            );
            let _ = std::io::stderr().flush();
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let path = format!("/v1/sites/{site}/deployments");
            let list = answer(self.request(reqwest::Method::GET, &path).send().await?).await?;
            let Some(now) = list["deployments"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|d| d["id"] == deployment["id"])
            else {
                bail!("the deploy is gone (deleted, or more deploys were made since)");
            };
            deployment = now.clone();
        }
        eprintln!();
        Ok(deployment)
    }

    /// The site's hostnames and their status.
    async fn hostnames(&self, site: &str) -> anyhow::Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/domains?limit=1000&cursor={c}"),
                None => "/v1/domains?limit=1000".to_owned(),
            };
            let page = answer(self.request(reqwest::Method::GET, &path).send().await?).await?;
            for d in page["domains"].as_array().into_iter().flatten() {
                if d["site_id"] == site {
                    let field = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
                    found.push((field("hostname"), field("status")));
                }
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(found),
            }
        }
    }
}

/// The JSON of a 2xx answer, or the problem's detail as the error.
async fn answer(res: reqwest::Response) -> anyhow::Result<Value> {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let detail = body["detail"].as_str().unwrap_or("no detail");
        bail!("the API answered {status}: {detail}");
    }
    Ok(body)
}
