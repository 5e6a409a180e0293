//! A private PostgreSQL cluster for `landlord dev`, under a directory of the project.
//!
//! Uses the machine's `initdb`/`pg_ctl` (found on PATH or under
//! `/usr/lib/postgresql/*/bin`). PostgreSQL refuses to run as root, so when we are root
//! the cluster is owned by and run as the `postgres` user. The server listens on
//! 127.0.0.1 only, on a free port, with trust authentication: it is a developer's
//! throwaway database, not a deployment.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub struct Cluster {
    data_dir: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<String>,
    pub port: u16,
}

const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, pg_ctl) not found; install them \
     with `sudo apt-get install -y postgresql` or set DATABASE_URL to an existing server";

impl Cluster {
    /// Start the cluster in `dir` (creating it on first use), or attach to it when a
    /// previous `landlord dev` left it running.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let bin_dir = find_bin_dir().context(INSTALL_HINT)?;
        let run_as = if is_root() {
            Some("postgres".to_owned())
        } else {
            None
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let data_dir = dir.join("data");
        let mut cluster = Cluster {
            data_dir,
            bin_dir,
            run_as,
            port: 0,
        };

        if !cluster.data_dir.join("PG_VERSION").exists() {
            tracing::info!(dir = %cluster.data_dir.display(), "creating a private PostgreSQL cluster");
            std::fs::create_dir_all(&cluster.data_dir)?;
            cluster.chown(&dir)?;
            cluster.run(
                "initdb",
                &[
                    "-D",
                    path_str(&cluster.data_dir)?,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-instructions",
                ],
            )?;
        }
        if let Some(port) = cluster.running_port() {
            tracing::info!(port, "reusing the running private PostgreSQL");
            cluster.port = port;
            return Ok(cluster);
        }
        cluster.port = free_port()?;
        let log = dir.join("postgres.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories=''",
            cluster.port
        );
        cluster
            .run(
                "pg_ctl",
                &[
                    "-D",
                    path_str(&cluster.data_dir)?,
                    "-l",
                    path_str(&log)?,
                    "-o",
                    &options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            )
            .with_context(|| format!("starting PostgreSQL (see {})", log.display()))?;
        tracing::info!(port = cluster.port, "private PostgreSQL started");
        Ok(cluster)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn stop(&self) {
        let data = self.data_dir.to_string_lossy().into_owned();
        match self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]) {
            Ok(()) => tracing::info!("private PostgreSQL stopped"),
            Err(e) => tracing::warn!(error = %e, "stopping the private PostgreSQL failed"),
        }
    }

    /// The port of a server already running on this data directory (line 4 of
    /// postmaster.pid), if `pg_ctl status` says one runs.
    fn running_port(&self) -> Option<u16> {
        let data = self.data_dir.to_str()?;
        self.run("pg_ctl", &["-D", data, "status"]).ok()?;
        let pid_file = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let exe = self.bin_dir.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let output = cmd
            .args(args)
            .output()
            .with_context(|| format!("running {}", exe.display()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!("{program} failed: {}", stderr.trim());
        }
        Ok(())
    }

    fn chown(&self, dir: &Path) -> anyhow::Result<()> {
        if let Some(user) = &self.run_as {
            let status = Command::new("chown")
                .args(["-R", &format!("{user}:"), path_str(dir)?])
                .status()
                .context("running chown")?;
            if !status.success() {
                bail!(
                    "cannot give {} to the `{user}` user (PostgreSQL will not run as root)",
                    dir.display()
                );
            }
        }
        Ok(())
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not valid UTF-8", p.display()))
}
