//! Build helpers for the workspace, run through `cargo run -p xtask -- ...` by the scripts in
//! `scripts/`. Today it has one job: turning a guest's core wasm module into a component.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Switchyard build helpers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Wraps a core module built by wit-bindgen (which embeds the world's type information) into a
    /// WebAssembly component, validating the result.
    Componentize {
        /// The core module (`.wasm`) produced by `cargo build --target wasm32-unknown-unknown`.
        input: PathBuf,
        /// Where to write the component.
        output: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Componentize { input, output } => {
            let module =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let component = wit_component::ComponentEncoder::default()
                .module(&module)
                .with_context(|| {
                    format!(
                        "{} is not a module with component type information",
                        input.display()
                    )
                })?
                .validate(true)
                .encode()
                .context("encoding the component")?;
            if let Some(dir) = output.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&output, &component)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "componentized {} -> {} ({} bytes)",
                input.display(),
                output.display(),
                component.len()
            );
            Ok(())
        }
    }
}
