//! The composer: builds the long-lived [`Services`] and starts the listeners, the watcher and
//! the admin API. Nothing imports this module: the leaves import [`Services`] from
//! `services.rs`, which imports only leaves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use switchyard_policy::{ArtifactCache, EngineSettings, PolicyEngine};
use switchyard_upstream::{Breakers, RetryBudget, UpstreamStats};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::accounts::Accounts;
use crate::cache::ResponseCache;
use crate::config::Config;
use crate::learning::Learning;
use crate::live::Live;
use crate::live::reload::{self, PolicyStatus, ReloadReport, ReloadState, Trigger};
use crate::live::snapshot::{Simulators, Snapshot, SnapshotError};
use crate::observe::metrics::Metrics;
use crate::sandbox::Sandbox;
use crate::services::Services;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("policy engine: {0}")]
    Engine(String),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{0}")]
    Cache(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct Gateway {
    shared: Arc<Services>,
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

fn engine_for(config: &Config) -> Result<PolicyEngine, StartError> {
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
    let cache = config.server.artifact_cache_dir.as_deref().and_then(|dir| match ArtifactCache::open(dir) {
        Ok(cache) => Some(cache),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "artifact cache unavailable; policies are compiled at every start");
            None
        }
    });
    PolicyEngine::with_cache(settings, cache).map_err(|e| StartError::Engine(e.to_string()))
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok((listener, local))
}

impl Gateway {
    /// Loads `config` (compiling its policies) and starts serving on `config.server.listen`, plus
    /// the admin listener if configured. `config_path` is the file the config came from: watched
    /// and re-read on reload. Without one (the embedded default) only policy files are watched.
    pub async fn start(
        config: Config,
        config_path: Option<PathBuf>,
    ) -> Result<Gateway, StartError> {
        let engine = engine_for(&config)?;
        let simulators = Simulators::default();
        let (listen, watch_files, debounce) = (
            config.server.listen,
            config.server.watch,
            config.server.watch_debounce,
        );
        let admin = config.admin.clone();
        let resilience = config.resilience;
        let cache = ResponseCache::new(config.cache.clone()).map_err(StartError::Cache)?;
        let accounts = match &config.shared_state {
            None => Accounts::local(),
            Some((url, timeout)) => Accounts::shared(url, *timeout, config.server.request_deadline)
                .map_err(StartError::Cache)?,
        };
        // Policy stores are shared through the same Redis as budgets, when there is one.
        let learning_redis = config.shared_state.as_ref().map(|(url, _)| url.clone());
        let learning_limits = config.learning;
        let (snapshot, _) = Snapshot::build(config, &engine, &simulators, None).await?;
        let (listener, addr) = bind(listen).await?;
        let now = SystemTime::now();
        let loaded = || PolicyStatus {
            last_outcome: "loaded".into(),
            last_error: None,
            last_attempt_at: Some(now),
        };
        let state = ReloadState {
            config_loaded_at: Some(now),
            policies: snapshot
                .policies
                .keys()
                .map(|name| (name.clone(), loaded()))
                .collect(),
            ..ReloadState::default()
        };
        let metrics = Arc::new(Metrics::default());
        let breakers = Breakers::new(resilience.breaker);
        let retry_budget = Arc::new(RetryBudget::new(resilience.retry_budget));
        let live = Arc::new(Live {
            snapshot: ArcSwap::from_pointee(snapshot),
            engine,
            simulators,
            config_path,
            reload_lock: tokio::sync::Mutex::new(()),
            reload_state: parking_lot::Mutex::new(state),
            breakers: breakers.clone(),
            retry_budget: retry_budget.clone(),
            metrics: metrics.clone(),
        });
        let learning = Learning::start(learning_limits, learning_redis.as_deref())
            .map_err(StartError::Cache)?;
        let shared = Arc::new(Services {
            live,
            breakers,
            stats: UpstreamStats::default(),
            conversations: Arc::default(),
            learning: learning.clone(),
            rollouts: Arc::default(),
            retry_budget,
            cache,
            accounts,
            round_robin: std::sync::atomic::AtomicU64::new(0),
            sandbox: Sandbox::new(metrics.clone(), learning),
            metrics,
            draining: std::sync::atomic::AtomicBool::new(false),
            drain_expired: watch::channel(false).0,
            console: crate::console::state::Console::default(),
            bodies: Arc::default(),
        });
        let (shutdown, signal) = watch::channel(false);
        // The admin listener outlives the main one's drain (readiness and metrics stay up).
        let (admin_stop, admin_signal) = watch::channel(false);
        let admin_addr = match admin {
            Some(settings) => {
                let (listener, addr) = bind(settings.listen).await?;
                tokio::spawn(crate::http::admin::serve(
                    listener,
                    shared.clone(),
                    admin_signal,
                ));
                Some(addr)
            }
            None => None,
        };
        if watch_files {
            crate::live::watch::spawn(shared.live.clone(), debounce);
        }
        let main = crate::http::server::serve(listener, shared.clone(), signal);
        let task = tokio::spawn(async move {
            main.await;
            let _ = admin_stop.send(true);
        });
        Ok(Gateway {
            shared,
            addr,
            admin_addr,
            shutdown,
            task,
        })
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, when one is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Installs what runs `policy simulate` for the console's Playground (the binary installs
    /// `switchyard_tools::playground`; without it the Playground says it is unavailable).
    pub fn set_playground(&self, simulator: Arc<dyn crate::console::Simulate>) {
        self.shared.console.set_simulator(simulator);
    }

    /// Reloads the config and policies now (what `SIGHUP` and `POST /admin/reload` do).
    pub async fn reload(&self, trigger: Trigger) -> ReloadReport {
        reload::reload(&self.shared.live, trigger).await
    }

    /// A handle that reloads this gateway, for a signal handler's task.
    pub fn reloader(&self) -> Reloader {
        Reloader(self.shared.clone())
    }

    /// A handle that stops the gateway when `true` is sent.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Stops accepting, lets open connections finish (up to the drain timeout), and returns when
    /// the listener task is done.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the listener task ends (after a shutdown signal).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Reloads a running gateway (see [`Gateway::reloader`]).
#[derive(Clone)]
pub struct Reloader(Arc<Services>);

impl Reloader {
    /// Reloads the config and policies now.
    pub async fn reload(&self, trigger: Trigger) -> ReloadReport {
        reload::reload(&self.0.live, trigger).await
    }
}
