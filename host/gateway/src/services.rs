//! The long-lived services every request uses, in one place. Leaves of the crate import this
//! file; nothing imports the composer (`app`) that builds it and starts the listeners.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use arc_swap::ArcSwap;
use switchyard_policy::PolicyEngine;
use switchyard_upstream::{Breakers, RetryBudget};
use tokio::sync::watch;

use crate::accounts::Accounts;
use crate::cache::ResponseCache;
use crate::live::reload::ReloadState;
use crate::live::snapshot::{Simulators, Snapshot};
use crate::observe::metrics::Metrics;
use crate::sandbox::{DecisionScheduler, Quarantine};

/// State shared by every request.
pub(crate) struct Services {
    /// The configuration snapshot in service; requests load it once and keep it.
    pub snapshot: ArcSwap<Snapshot>,
    pub engine: PolicyEngine,
    pub simulators: Simulators,
    /// The config file, when not running on the embedded default.
    pub config_path: Option<PathBuf>,
    /// Serialises reloads.
    pub reload_lock: tokio::sync::Mutex<()>,
    /// Reload results for the admin API.
    pub reload_state: parking_lot::Mutex<ReloadState>,
    /// Circuit breakers per upstream and model (they outlive reloads).
    pub breakers: Breakers,
    /// The process-wide retry budget.
    pub retry_budget: RetryBudget,
    /// The response cache (its settings are read at start-up).
    pub cache: ResponseCache,
    /// Spend, budgets and rate limits per tenant (shared through Redis when configured).
    pub accounts: Accounts,
    /// Rotation counter for round-robin upstream choice.
    pub round_robin: AtomicU64,
    /// Policy failures per tenant, and quarantines.
    pub quarantine: Quarantine,
    /// Fair scheduling of policy decisions between tenants.
    pub scheduler: Arc<DecisionScheduler>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// True from the start of a shutdown: `/readyz` answers 503.
    pub draining: AtomicBool,
    /// Turns true when the drain deadline passes: open streams end with an error event.
    pub drain_expired: watch::Sender<bool>,
}

impl Services {
    /// Whether a shutdown's drain has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }
}
