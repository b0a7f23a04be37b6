//! The console's state, one per gateway, held by the gateway's services: sessions, time series,
//! kept policy versions, the Playground and the reload log.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::playground::{self, Simulate};
use super::{series, session, versions};

/// Reload attempts kept for the Policies page.
const RELOADS_KEPT: usize = 50;

/// The console's state, one per gateway.
pub(crate) struct Console {
    pub(super) sessions: session::Sessions,
    pub(super) series: Mutex<series::Series>,
    pub(super) versions: versions::Versions,
    pub(crate) playground: playground::Playground,
    pub(super) reloads: Mutex<ReloadLog>,
    /// Bumped once a second while anyone watches; each event stream sends on a change.
    pub(super) ticks: watch::Sender<u64>,
}

#[derive(Default)]
pub(super) struct ReloadLog {
    last_seen: Option<SystemTime>,
    pub(super) entries: VecDeque<Value>,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            sessions: session::Sessions::default(),
            series: Mutex::new(series::Series::default()),
            versions: versions::Versions::default(),
            playground: playground::Playground::default(),
            reloads: Mutex::new(ReloadLog::default()),
            ticks: watch::channel(0).0,
        }
    }
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

impl Console {
    /// Installs what runs `policy simulate` for the Playground.
    pub fn set_simulator(&self, simulator: Arc<dyn Simulate>) {
        *self.playground.simulator.lock() = Some(simulator);
    }

    /// Notes a reload attempt the admin API has not shown here yet.
    pub(super) fn note_reloads(&self, live: &crate::live::Live) {
        let state = live.reload_state.lock();
        let mut log = self.reloads.lock();
        if log.entries.is_empty()
            && let Some(at) = state.config_loaded_at
        {
            log.entries.push_back(json!({
                "at_ms": crate::observe::recent::unix_ms(at), "trigger": "start", "outcome": "applied",
                "generation": 0, "policies_loaded": [], "policy_errors": {}, "config_error": null,
            }));
        }
        if let Some((at, report)) = &state.last_attempt
            && log.last_seen != Some(*at)
        {
            log.last_seen = Some(*at);
            let mut entry = serde_json::to_value(report).unwrap_or_default();
            entry["at_ms"] = json!(crate::observe::recent::unix_ms(*at));
            log.entries.push_back(entry);
            while log.entries.len() > RELOADS_KEPT {
                log.entries.pop_front();
            }
        }
    }
}
