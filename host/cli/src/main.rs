//! The `switchyard` binary: `serve`, plus small tools for operators.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use switchyard_gateway::observe::telemetry::{self, OtlpSettings, Telemetry};
use switchyard_gateway::{Config, Gateway, Trigger};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc malloc: a request allocates and frees many small buffers (headers,
/// JSON fields, the summary), and under load glibc's malloc/free (with its chunk consolidation)
/// took about 14% of the proxy's CPU; mimalloc's thread-local free lists make that a few percent.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Export traces over OTLP/HTTP (protobuf) to this collector base URL, e.g.
    /// `http://otel-collector:4318` (spans go to `/v1/traces`). Off when unset.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Share of new traces to sample (0 to 1); a caller's `traceparent` sampling flag is
    /// followed as sent.
    #[arg(
        long,
        global = true,
        default_value_t = 1.0,
        env = "SWITCHYARD_TRACE_SAMPLE_RATIO"
    )]
    trace_sample_ratio: f64,
    /// `service.name` on exported spans.
    #[arg(
        long,
        global = true,
        default_value = "switchyard",
        env = "OTEL_SERVICE_NAME"
    )]
    service_name: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start-up")]
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
        /// Overrides `admin.listen` (the admin API and the console), when there is an admin
        /// listener.
        #[arg(long)]
        admin_listen: Option<std::net::SocketAddr>,
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
    /// Tools for policy authors.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validates a component against the contract, runs its config validation and a set of sample
    /// requests, and prints the decisions and the time each took.
    Check {
        /// The component (.wasm).
        file: PathBuf,
        /// The policy config to validate and decide with (JSON).
        #[arg(long, default_value = "{}")]
        config: String,
        /// Linear memory cap, MiB (interpreted-language policies need more).
        #[arg(long, default_value_t = 64)]
        memory_mib: usize,
        /// CPU deadline per decision, milliseconds.
        #[arg(long, default_value_t = 50)]
        deadline_ms: u64,
        /// Decisions per sample; the median is printed.
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Replays a trace of OpenAI chat requests offline through a policy and prints the model mix,
    /// the projected cost, and the cost of sending everything to each single model.
    Simulate {
        /// The component (.wasm) to simulate (replaces the tenant's policy).
        #[arg(long)]
        policy: PathBuf,
        /// A Switchyard config (TOML): the catalog's prices and the tenant's models and policy
        /// config.
        #[arg(long)]
        config: PathBuf,
        /// The trace: one JSON chat request per line, or `{"request": {...}, "output_tokens": N}`.
        #[arg(long)]
        requests: PathBuf,
        /// The tenant to simulate (default: the config's first).
        #[arg(long)]
        tenant: Option<String>,
        /// A second policy to run on the same trace and report beside the first.
        #[arg(long)]
        compare: Option<PathBuf>,
        /// Upstream faults over time (JSON: `{"faults": [{"upstream", "from_ms", "to_ms", "kind":
        /// "down" | "slow", "ttft_ms"}]}`).
        #[arg(long)]
        faults: Option<PathBuf>,
        /// Assume this share of input tokens hits the provider's prompt cache (0 to 1) instead of
        /// modelling each upstream's cache.
        #[arg(long)]
        cache_hit_share: Option<f64>,
        /// Start the policy's store from this file.
        #[arg(long)]
        state_in: Option<PathBuf>,
        /// Write the policy's store here at the end.
        #[arg(long)]
        state_out: Option<PathBuf>,
        /// Output tokens assumed for requests that say nothing about them.
        #[arg(long, default_value_t = 500)]
        default_output_tokens: u64,
        /// Also write the result as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also write an SVG chart.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
}

fn init_telemetry(cli: &Cli) -> Result<Telemetry> {
    let filter =
        EnvFilter::try_from_env("SWITCHYARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    anyhow::ensure!(
        (0.0..=1.0).contains(&cli.trace_sample_ratio),
        "--trace-sample-ratio must be between 0 and 1"
    );
    let otlp = cli
        .otlp_endpoint
        .as_ref()
        .filter(|e| !e.is_empty())
        .map(|endpoint| OtlpSettings {
            endpoint: endpoint.clone(),
            sample_ratio: cli.trace_sample_ratio,
            service_name: cli.service_name.clone(),
            timeout: std::time::Duration::from_secs(10),
        });
    Ok(telemetry::init(
        matches!(cli.log_format, LogFormat::Json),
        filter,
        otlp.as_ref(),
    )?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let telemetry = init_telemetry(&cli)?;
    if let Some(endpoint) = cli.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) {
        // Scheme, host and port only: never credentials embedded in the URL.
        let shown = endpoint
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| {
                let port = u.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
                Some(format!("{}://{}{port}", u.scheme_str()?, u.host()?))
            })
            .unwrap_or_else(|| "<not a URL>".into());
        tracing::info!(
            endpoint = %shown,
            sample_ratio = cli.trace_sample_ratio,
            "exporting traces over OTLP"
        );
    }
    let result = run(cli).await;
    // Export what is buffered; the SDK blocks while it does, so not on an async worker.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    result
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Policy(PolicyCommand::Check {
            file,
            config,
            memory_mib,
            deadline_ms,
            runs,
        }) => {
            let limits = switchyard_policy::SandboxLimits {
                memory_bytes: memory_mib << 20,
                deadline: std::time::Duration::from_millis(deadline_ms),
                ..Default::default()
            };
            let ok = switchyard_tools::check::run(&switchyard_tools::check::CheckOptions {
                file: &file,
                config: &config,
                limits,
                runs,
            })?;
            if !ok {
                anyhow::bail!("policy check failed");
            }
            Ok(())
        }
        Command::Policy(PolicyCommand::Simulate {
            policy,
            config,
            requests,
            tenant,
            compare,
            faults,
            cache_hit_share,
            state_in,
            state_out,
            default_output_tokens,
            json,
            svg,
        }) => {
            anyhow::ensure!(
                cache_hit_share.is_none_or(|s| (0.0..=1.0).contains(&s)),
                "--cache-hit-share must be between 0 and 1"
            );
            let options = switchyard_tools::simulate::SimulateOptions {
                policy,
                config,
                requests,
                tenant,
                compare,
                faults,
                default_output_tokens,
                cache_hit_share,
                state_in,
                state_out,
                json,
                svg,
                quiet: false,
            };
            switchyard_tools::simulate::run(&options).await?;
            Ok(())
        }
        Command::HashKey { key } => {
            println!("{}", switchyard_gateway::hash_key(&key));
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
        Command::Serve {
            config,
            listen,
            admin_listen,
        } => {
            let mut loaded = match &config {
                Some(path) => Config::load(path).map_err(anyhow::Error::msg)?,
                None => Config::embedded_default().map_err(anyhow::Error::msg)?,
            };
            if let Some(addr) = listen {
                loaded.server.listen = addr;
            }
            if let (Some(addr), Some(admin)) = (admin_listen, loaded.admin.as_mut()) {
                admin.listen = addr;
            }
            let demo = config.is_none();
            // The embedded default's admin listener opens with a demo token made now and printed
            // below (its file holds a digest no token has); a real config needs its own.
            let demo_admin_token = match loaded.admin.as_mut().filter(|_| demo) {
                Some(admin) => {
                    let token = demo_admin_token()?;
                    admin.token_sha256 = sha256(&token);
                    Some(token)
                }
                None => None,
            };
            let gateway = Gateway::start(loaded, config.clone())
                .await
                .context("starting the gateway")?;
            gateway.set_playground(std::sync::Arc::new(
                switchyard_tools::playground::Playground,
            ));
            let addr = gateway.local_addr();
            // Before "switchyard listening": whoever waits for that line finds the admin address
            // already logged.
            if let Some(admin) = gateway.admin_addr() {
                tracing::info!(%admin, "admin listener");
            }
            tracing::info!(%addr, config = %config.as_ref().map_or("<embedded default>".into(), |p| p.display().to_string()), "switchyard listening");
            if demo {
                eprintln!(
                    "\nSwitchyard is running on the embedded default (a simulated upstream; nothing leaves this machine).\n\
                     Try it:\n\n  curl -s http://{addr}/v1/chat/completions -H 'Authorization: Bearer sk-switchyard-demo' \\\n    \
                     -H 'Content-Type: application/json' -D - \\\n    \
                     -d '{{\"model\":\"auto\",\"messages\":[{{\"role\":\"user\",\"content\":\"Do a multi-file refactor of the auth module\"}}]}}'\n\n\
                     The x-switchyard-model header shows the model the flash-first policy chose.\n"
                );
                if let (Some(admin), Some(token)) = (gateway.admin_addr(), &demo_admin_token) {
                    eprintln!(
                        "The console: http://{admin}/console\n  demo admin token: {token}\n  \
                         (made at this start and good until it ends; a config file sets its own in [admin])\n"
                    );
                }
            }
            let stop = gateway.shutdown_handle();
            tokio::spawn(async move {
                wait_for_signal().await;
                let _ = stop.send(true);
            });
            let reloader = gateway.reloader();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    return;
                };
                while hup.recv().await.is_some() {
                    let report = reloader.reload(Trigger::Signal).await;
                    tracing::info!(outcome = ?report.outcome, generation = report.generation, "SIGHUP reload");
                }
            });
            gateway.wait().await;
            Ok(())
        }
    }
}

/// A fresh admin token for the embedded default: 24 random bytes from the kernel, hex.
fn demo_admin_token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the demo admin token")?;
    Ok(format!(
        "sy-demo-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// The SHA-256 of `token`, as `[admin] token_sha256` holds it.
fn sha256(token: &str) -> [u8; 32] {
    let hex = switchyard_gateway::hash_key(token);
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    out
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
