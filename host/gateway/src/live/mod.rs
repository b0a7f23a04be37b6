//! The live configuration: one immutable snapshot of config, tenants, policies and upstream
//! clients, rebuilt off the request path and swapped atomically when files change, and what a
//! reload needs to do that.

pub(crate) mod loader;
pub(crate) mod reload;
pub(crate) mod snapshot;
pub(crate) mod tenant;
pub(crate) mod watch;

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use switchyard_policy::PolicyEngine;
use switchyard_upstream::{Breakers, RetryBudget};

use crate::observe::metrics::Metrics;
use reload::ReloadState;
use snapshot::{Simulators, Snapshot};

/// The snapshot in service and everything that replaces it.
pub(crate) struct Live {
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
    /// Reconfigured by a reload (they outlive it: health is about the provider).
    pub breakers: Breakers,
    pub retry_budget: Arc<RetryBudget>,
    pub metrics: Arc<Metrics>,
}
