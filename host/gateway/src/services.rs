//! The long-lived services every request uses, in one place. Leaves of the crate never import
//! this file, and nothing imports the composer (`app`) that builds it and starts the listeners;
//! only the request path (`pipeline`) and the listeners (`http`) use it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};

use switchyard_upstream::{Breakers, RetryBudget, UpstreamStats};
use tokio::sync::watch;

use crate::accounts::Accounts;
use crate::cache::ResponseCache;
use crate::console::state::Console;
use crate::conversations::Conversations;
use crate::learning::Learning;
use crate::live::Live;
use crate::observe::metrics::Metrics;
use crate::rollout::Rollouts;
use crate::sandbox::Sandbox;

/// State shared by every request.
pub(crate) struct Services {
    /// The snapshot in service, and reloads.
    pub live: Arc<Live>,
    /// Circuit breakers per upstream and model (they outlive reloads).
    pub breakers: Breakers,
    /// What the host has seen of each model on each upstream lately (policies read it).
    pub stats: UpstreamStats,
    /// Each conversation's last turn (policies read it; finished requests write it).
    pub conversations: Arc<Conversations>,
    /// The tenants' policy stores and the `on-outcome` worker.
    pub learning: Arc<Learning>,
    /// Candidate policies in shadow or canary.
    pub rollouts: Arc<Rollouts>,
    /// The process-wide retry budget.
    pub retry_budget: Arc<RetryBudget>,
    /// The response cache (its settings are read at start-up).
    pub cache: ResponseCache,
    /// Spend, budgets and rate limits per tenant (shared through Redis when configured).
    pub accounts: Accounts,
    /// Rotation counter for round-robin upstream choice.
    pub round_robin: AtomicU64,
    /// Where decisions run: scheduling, the slow-decision pool, quarantine.
    pub sandbox: Sandbox,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// True from the start of a shutdown: `/readyz` answers 503.
    pub draining: AtomicBool,
    /// Turns true when the drain deadline passes: open streams end with an error event.
    pub drain_expired: watch::Sender<bool>,
    /// The web console's sessions, time series, policy versions and Playground.
    pub console: Console,
    /// Bytes of request bodies held by requests in flight (bounded by
    /// `server.max_inflight_body_bytes`).
    pub bodies: Arc<AtomicUsize>,
}

impl Services {
    /// Whether a shutdown's drain has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }
}
