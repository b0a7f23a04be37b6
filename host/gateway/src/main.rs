//! The `switchyard` binary: `serve`, plus small tools for operators.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use switchyard::{Config, Gateway};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "An OpenAI-compatible LLM gateway with WebAssembly routing policies"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SWITCHYARD_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the gateway.
    Serve {
        /// Config file (TOML). Without one, the embedded default runs: a simulated upstream and a
        /// demo tenant, routed by the built-in flash-first policy.
        #[arg(long, short, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
        /// Overrides `server.listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Prints the SHA-256 of an API key, the form `api_keys_sha256` stores.
    HashKey {
        /// The key.
        key: String,
    },
    /// Validates a config file (and compiles its policies) without serving.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("SWITCHYARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::HashKey { key } => {
            println!("{}", switchyard::auth::hash_key(&key));
            Ok(())
        }
        Command::CheckConfig { config } => {
            let mut loaded = Config::load(&config).map_err(anyhow::Error::msg)?;
            loaded.server.listen = "127.0.0.1:0".parse()?;
            loaded.server.watch = false;
            loaded.admin = None;
            let gateway = Gateway::start(loaded, None)
                .await
                .context("loading policies")?;
            println!("{}: ok", config.display());
            gateway.shutdown().await;
            Ok(())
        }
        Command::Serve { config, listen } => {
            let mut loaded = match &config {
                Some(path) => Config::load(path).map_err(anyhow::Error::msg)?,
                None => Config::embedded_default().map_err(anyhow::Error::msg)?,
            };
            if let Some(addr) = listen {
                loaded.server.listen = addr;
            }
            let demo = config.is_none();
            let gateway = Gateway::start(loaded, config.clone())
                .await
                .context("starting the gateway")?;
            let addr = gateway.local_addr();
            tracing::info!(%addr, config = %config.as_ref().map_or("<embedded default>".into(), |p| p.display().to_string()), "switchyard listening");
            if demo {
                eprintln!(
                    "\nSwitchyard is running on the embedded default (a simulated upstream; nothing leaves this machine).\n\
                     Try it:\n\n  curl -s http://{addr}/v1/chat/completions -H 'Authorization: Bearer sk-switchyard-demo' \\\n    \
                     -H 'Content-Type: application/json' -D - \\\n    \
                     -d '{{\"model\":\"auto\",\"messages\":[{{\"role\":\"user\",\"content\":\"Do a multi-file refactor of the auth module\"}}]}}'\n\n\
                     The x-switchyard-model header shows the model the flash-first policy chose.\n"
                );
            }
            if let Some(admin) = gateway.admin_addr() {
                tracing::info!(%admin, "admin listener");
            }
            let stop = gateway.shutdown_handle();
            tokio::spawn(async move {
                wait_for_signal().await;
                let _ = stop.send(true);
            });
            let shared = gateway.shared().clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    return;
                };
                while hup.recv().await.is_some() {
                    let report =
                        switchyard::reload::reload(&shared, switchyard::reload::Trigger::Signal)
                            .await;
                    tracing::info!(outcome = ?report.outcome, generation = report.generation, "SIGHUP reload");
                }
            });
            gateway.wait().await;
            Ok(())
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
