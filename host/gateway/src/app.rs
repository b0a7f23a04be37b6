//! The running gateway: long-lived parts (policy engine, simulators, the current snapshot, reload
//! bookkeeping) and the listener tasks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use switchyard_policy::{ArtifactCache, EngineSettings, PolicyEngine};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cache::ResponseCache;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::quarantine::Quarantine;
use crate::reload::{PolicyStatus, ReloadReport, ReloadState, Trigger};
use crate::scheduler::DecisionScheduler;
use crate::server;
use crate::shared_state::Accounts;
use crate::state::{Simulators, Snapshot, SnapshotError};
use crate::upstream::health::{Breakers, RetryBudget};

/// State shared by every request.
pub struct Shared {
    /// The configuration snapshot in service; requests load it once and keep it.
    pub snapshot: ArcSwap<Snapshot>,
    pub engine: PolicyEngine,
    pub simulators: Simulators,
    /// The config file, when not running on the embedded default.
    pub config_path: Option<PathBuf>,
    /// Serialises reloads.
    pub reload_lock: tokio::sync::Mutex<()>,
    /// Reload results for the admin API.
    pub reload_state: std::sync::Mutex<ReloadState>,
    /// Circuit breakers per upstream and model (they outlive reloads).
    pub breakers: Breakers,
    /// The process-wide retry budget.
    pub retry_budget: RetryBudget,
    /// The response cache (its settings are read at start-up).
    pub cache: ResponseCache,
    /// Spend, budgets and rate limits per tenant (shared through Redis when configured).
    pub accounts: Accounts,
    /// Rotation counter for round-robin upstream choice.
    pub round_robin: std::sync::atomic::AtomicU64,
    /// Policy failures per tenant, and quarantines.
    pub quarantine: Quarantine,
    /// Fair scheduling of policy decisions between tenants.
    pub scheduler: Arc<DecisionScheduler>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// True from the start of a shutdown: `/readyz` answers 503.
    pub draining: std::sync::atomic::AtomicBool,
    /// Turns true when the drain deadline passes: open streams end with an error event.
    pub drain_expired: watch::Sender<bool>,
}

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
    shared: Arc<Shared>,
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
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            engine,
            simulators,
            config_path,
            reload_lock: tokio::sync::Mutex::new(()),
            reload_state: std::sync::Mutex::new(state),
            breakers: Breakers::new(resilience.breaker),
            retry_budget: RetryBudget::new(resilience.retry_budget),
            cache,
            accounts,
            round_robin: std::sync::atomic::AtomicU64::new(0),
            quarantine: Quarantine::default(),
            scheduler: Arc::default(),
            metrics: Arc::new(Metrics::default()),
            draining: std::sync::atomic::AtomicBool::new(false),
            drain_expired: watch::channel(false).0,
        });
        let (shutdown, signal) = watch::channel(false);
        // The admin listener outlives the main one's drain (readiness and metrics stay up).
        let (admin_stop, admin_signal) = watch::channel(false);
        let admin_addr = match admin {
            Some(settings) => {
                let (listener, addr) = bind(settings.listen).await?;
                tokio::spawn(crate::admin::serve(listener, shared.clone(), admin_signal));
                Some(addr)
            }
            None => None,
        };
        if watch_files {
            crate::watch::spawn(shared.clone(), debounce);
        }
        let main = server::serve(listener, shared.clone(), signal);
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

    /// The state requests see.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Reloads the config and policies now (what `SIGHUP` and `POST /admin/reload` do).
    pub async fn reload(&self, trigger: Trigger) -> ReloadReport {
        crate::reload::reload(&self.shared, trigger).await
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
