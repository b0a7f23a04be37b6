//! The running gateway: long-lived parts (policy engine, simulators, the current snapshot) and
//! the listener task.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use switchyard_policy::{EngineSettings, PolicyEngine};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::server;
use crate::state::{Simulators, Snapshot, SnapshotError};

/// State shared by every request.
pub struct Shared {
    /// The configuration snapshot in service; requests load it once and keep it.
    pub snapshot: ArcSwap<Snapshot>,
    pub engine: PolicyEngine,
    pub simulators: Simulators,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("policy engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Gateway {
    /// Loads `config` (compiling its policies) and starts serving on `config.server.listen`.
    pub async fn start(config: Config) -> Result<Gateway, StartError> {
        let max_memory = config
            .tenants
            .values()
            .map(|t| t.limits.sandbox.memory_bytes)
            .max()
            .unwrap_or(0);
        let settings = EngineSettings {
            max_memory_bytes: max_memory.max(EngineSettings::default().max_memory_bytes),
            ..EngineSettings::default()
        };
        let engine = PolicyEngine::new(settings).map_err(|e| StartError::Engine(e.to_string()))?;
        let simulators = Simulators::default();
        let listen = config.server.listen;
        let snapshot = Snapshot::build(config, &engine, &simulators, None).await?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: listen,
            source,
        })?;
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            engine,
            simulators,
        });
        let (shutdown, signal) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, shared.clone(), signal));
        Ok(Gateway {
            shared,
            addr,
            shutdown,
            task,
        })
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state requests see.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops accepting, lets open connections finish (up to the configured drain timeout), and
    /// returns when the listener task is done.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the listener task ends (it ends only after [`Gateway::shutdown`] is signalled
    /// from elsewhere, or on a fatal accept error).
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Waits for the server task to finish.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}
