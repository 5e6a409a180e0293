//! `landlord`: one binary for every role. Parses the command line and environment,
//! sets up logging, and hands off to the role crates.

mod config;
mod deploy;
mod dev;
mod postgres;
mod run;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use config::Settings;
use run::Roles;

#[derive(Parser)]
#[command(
    name = "landlord",
    version,
    about = "Custom domains with automatic HTTPS for your tenants"
)]
struct Cli {
    /// Do not apply database migrations on start.
    #[arg(long, global = true)]
    no_migrate: bool,
    /// A TOML file of settings, keyed by the variable names (`LANDLORD_API_ADDR = "…"`);
    /// flags and environment variables win over it.
    #[arg(long, env = "LANDLORD_CONFIG", global = true)]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the SQL migrations to DATABASE_URL, then exit.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Serve the REST API and the dashboard on LANDLORD_API_ADDR.
    Api,
    /// DNS verification, certificate issuance and renewal.
    Worker,
    /// The public listeners (plain HTTP: ACME HTTP-01 and redirects).
    Edge,
    /// api + worker + edge in one process.
    All,
    /// The master key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The local CA (LANDLORD_ISSUER=local).
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// Everything on one machine for local use: a private PostgreSQL when DATABASE_URL
    /// is unset, unprivileged ports, and a demo tenant.
    Dev,
    /// Publish a folder as a deploy of one of your sites (created when missing), through
    /// the REST API, and print where it is served.
    Deploy(deploy::Deploy),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Seal every private key and credential again under LANDLORD_MASTER_KEY, reading
    /// those still under the old key with LANDLORD_MASTER_KEY_PREVIOUS. Resumable: run it
    /// again after an interruption. Afterwards no value needs the previous key.
    Rotate {
        /// Values per transaction.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch: i64,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Print the local CA's certificate (PEM), to add to a trust store or pass to
    /// `curl --cacert`.
    Export,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print {"id","name","api_key"} as JSON.
    Create { name: String },
    /// Print every tenant with its domain count and suspension, one JSON object per line.
    List,
    /// Suspend a tenant: its API keys answer 403 and its hostnames stop being served.
    Suspend {
        id: uuid::Uuid,
        /// Why (for the audit log).
        #[arg(long, default_value = "suspended from the command line")]
        reason: String,
        /// Who (for the audit log).
        #[arg(long)]
        operator: Option<String>,
    },
    /// Lift a suspension.
    Unsuspend {
        id: uuid::Uuid,
        #[arg(long, default_value = "unsuspended from the command line")]
        reason: String,
        #[arg(long)]
        operator: Option<String>,
    },
}

/// A failure that ends the process: printed as one line, exit code by kind.
#[derive(Debug)]
pub enum Fatal {
    /// Bad configuration or usage: exit 2.
    Config(String),
    /// Anything else: exit 1.
    Runtime(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal::Runtime(e.into())
    }
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(message) => {
            eprintln!("landlord: error: {message}");
            return ExitCode::from(2);
        }
    };
    if let Err(message) = config::init_tracing() {
        eprintln!("landlord: error: {message}");
        return ExitCode::from(2);
    }
    // Several dependencies enable different rustls crypto back-ends; choose one.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("landlord: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal::Config(message)) => {
            eprintln!("landlord: error: {message}");
            ExitCode::from(2)
        }
        Err(Fatal::Runtime(e)) => {
            eprintln!("landlord: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Run the command.
async fn dispatch(cli: Cli) -> Result<(), Fatal> {
    let migrate = !cli.no_migrate;
    let settings = &cli.settings;
    let serve = |roles: Roles| async move {
        let config = config::Config::build(settings, roles, false)?;
        run::roles(config, migrate, roles, |_| {}).await
    };
    match cli.command {
        Command::Migrate => run::migrate(settings).await,
        Command::Tenant {
            command: TenantCommand::Create { name },
        } => run::create_tenant(settings, migrate, &name).await,
        Command::Tenant {
            command: TenantCommand::List,
        } => run::list_tenants(settings, migrate).await,
        Command::Tenant {
            command:
                TenantCommand::Suspend {
                    id,
                    reason,
                    operator,
                },
        } => run::suspend_tenant(settings, migrate, id, true, &reason, operator).await,
        Command::Tenant {
            command:
                TenantCommand::Unsuspend {
                    id,
                    reason,
                    operator,
                },
        } => run::suspend_tenant(settings, migrate, id, false, &reason, operator).await,
        Command::Keys {
            command: KeysCommand::Rotate { batch },
        } => run::rotate_keys(settings, migrate, batch).await,
        Command::Api => {
            serve(Roles {
                api: true,
                worker: false,
                edge: false,
            })
            .await
        }
        Command::Worker => {
            serve(Roles {
                api: false,
                worker: true,
                edge: false,
            })
            .await
        }
        Command::Edge => {
            serve(Roles {
                api: false,
                worker: false,
                edge: true,
            })
            .await
        }
        Command::All => {
            serve(Roles {
                api: true,
                worker: true,
                edge: true,
            })
            .await
        }
        Command::Ca {
            command: CaCommand::Export,
        } => run::export_ca(settings, migrate).await,
        Command::Dev => dev::run(settings.clone(), migrate).await,
        Command::Deploy(args) => deploy::run(args).await,
    }
}

/// The command line; with `--config FILE`, the file's settings fill in what the
/// environment does not set, and the command line is read again.
fn parse() -> Result<Cli, String> {
    let cli = Cli::parse();
    let Some(path) = &cli.config else {
        return Ok(cli);
    };
    let known: std::collections::BTreeSet<String> = Cli::command()
        .get_subcommands()
        .flat_map(|c| c.get_arguments())
        .chain(Cli::command().get_arguments())
        .filter_map(|a| a.get_env())
        .filter_map(|e| e.to_str().map(str::to_owned))
        .chain(["RUST_LOG", "LANDLORD_LOG_FORMAT"].map(String::from))
        .collect();
    config::apply_file(path, &known)?;
    Ok(Cli::parse())
}

/// The error and its causes on one line: "connecting to the database: connection refused".
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}
