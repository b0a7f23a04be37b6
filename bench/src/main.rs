//! `switchyard-bench`: the benchmark harness. `scripts/bench.sh` is the one command that installs
//! the load generator, builds everything and runs `switchyard-bench run`.

mod bodies;
mod floor;
mod load;
mod mock;
mod procs;
mod run;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "switchyard-bench", about = "Switchyard's benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every measurement: mock upstream, Switchyard, nginx (when installed) and a bare hyper
    /// proxy side by side under oha, then the body-size, stream and tenant curves.
    Run {
        /// The Switchyard binary to measure (a release build).
        #[arg(long, default_value = "target/release/switchyard")]
        switchyard: PathBuf,
        /// The policy every tenant runs (the Rust reference policy).
        #[arg(long, default_value = "target/policies/flash-first.wasm")]
        policy: PathBuf,
        /// Where results, bodies, configs and logs go.
        #[arg(long, default_value = "target/bench/latest")]
        out: PathBuf,
        /// Compiled-policy cache kept between runs (the warm start uses it).
        #[arg(long, default_value = "target/bench/artifact-cache")]
        cache: PathBuf,
        /// Short runs and small curves: checks the harness works, figures not for quoting.
        #[arg(long)]
        quick: bool,
        /// Only these parts (comma-separated): side-by-side, sizes, streams, dialects, tenants.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Runs the mock upstream.
    Mock {
        #[arg(long, default_value = "127.0.0.1:18080")]
        listen: SocketAddr,
        /// Delay between SSE events, milliseconds.
        #[arg(long, default_value_t = 0)]
        chunk_delay_ms: u64,
    },
    /// Runs the floor: the thinnest hyper proxy, for comparison.
    Floor {
        #[arg(long, default_value = "127.0.0.1:18085")]
        listen: SocketAddr,
        #[arg(long, default_value = "http://127.0.0.1:18080/")]
        upstream: http::Uri,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Mock {
            listen,
            chunk_delay_ms,
        } => {
            mock::serve(
                listen,
                mock::MockOptions {
                    chunk_delay: Duration::from_millis(chunk_delay_ms),
                },
            )
            .await
        }
        Command::Floor { listen, upstream } => floor::serve(listen, upstream).await,
        Command::Run {
            switchyard,
            policy,
            out,
            cache,
            quick,
            only,
        } => {
            run::run(run::Options {
                switchyard,
                policy,
                out,
                cache,
                quick,
                only,
            })
            .await
        }
    }
}
