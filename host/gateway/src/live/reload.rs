//! Live reload of the configuration and the policies, with no dropped or mixed requests.
//!
//! A reload reads the config file and every policy file, and does nothing at all when none of
//! their content hashes changed (so the bursts of events one edit produces cause one effective
//! reload). Otherwise it builds a complete new [`Snapshot`] off the request path (compiling in
//! `spawn_blocking`, checking each tenant's config and a smoke decision) and swaps it in with one
//! atomic store. A broken policy file never replaces the version in service, and an invalid config
//! never replaces the config in service: the reasons are logged at error level and shown in the
//! admin API. Reloads are serialised.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use super::Live;
use super::snapshot::{PolicyOutcome, Snapshot, SnapshotError, read_policies};
use crate::config::{Config, PolicySource};

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// A watched file changed.
    FileChange,
    /// `SIGHUP`.
    Signal,
    /// `POST /admin/reload`.
    Admin,
}

/// The result of one reload attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A new snapshot is in service.
    Applied,
    /// Nothing changed on disk.
    Unchanged,
    /// Something changed but could not be applied (see the errors); the old version serves.
    Failed,
}

/// What one reload did, as returned by `POST /admin/reload`.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    pub trigger: Trigger,
    pub outcome: Outcome,
    /// Snapshot generation in service after the attempt (counts effective reloads).
    pub generation: u64,
    /// Why the config was refused, naming the setting at fault.
    pub config_error: Option<String>,
    /// Policies whose new version was refused, with the reason.
    pub policy_errors: BTreeMap<String, String>,
    /// Policies whose new version went into service.
    pub policies_loaded: Vec<String>,
}

/// The last reload result for one policy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyStatus {
    pub last_outcome: String,
    pub last_error: Option<String>,
    #[serde(with = "unix_seconds")]
    pub last_attempt_at: Option<SystemTime>,
}

/// Reload bookkeeping, shown by the admin API.
#[derive(Debug, Default)]
pub struct ReloadState {
    pub generation: u64,
    pub config_loaded_at: Option<SystemTime>,
    pub last_attempt: Option<(SystemTime, ReloadReport)>,
    pub config_error: Option<String>,
    pub policies: BTreeMap<String, PolicyStatus>,
}

/// Runs one reload. Concurrent calls wait their turn.
pub async fn reload(shared: &Arc<Live>, trigger: Trigger) -> ReloadReport {
    let _turn = shared.reload_lock.lock().await;
    let current = shared.snapshot.load_full();
    let now = SystemTime::now();

    let (loaded, config_error) = match &shared.config_path {
        None => (None, None),
        Some(path) => match Config::load(path) {
            Ok(config) => (Some(config), None),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    let config_changed = loaded
        .as_ref()
        .is_some_and(|c| c.hash != current.config.hash);
    // An invalid config keeps the one in service, but changed policy files still apply.
    let config = match loaded {
        Some(c) if config_changed => c,
        _ => (*current.config).clone(),
    };
    let reads = read_policies(&config);
    let policies_changed = reads.iter().any(|(name, read)| match read {
        Ok(bytes) => current.policies.get(name).map(|p| p.compiled.hash()) != Some(bytes.hash),
        Err(_) => true,
    });

    let mut report = ReloadReport {
        trigger,
        outcome: Outcome::Unchanged,
        generation: 0,
        config_error: config_error.clone(),
        policy_errors: BTreeMap::new(),
        policies_loaded: Vec::new(),
    };
    if config_error.is_some() {
        report.outcome = Outcome::Failed;
        tracing::error!(
            ?trigger,
            error = config_error.as_deref().unwrap_or_default(),
            "config reload refused; the config in service stays"
        );
    }

    if config_changed || policies_changed {
        match Snapshot::build_from(
            config,
            reads,
            &shared.engine,
            &shared.simulators,
            Some(&current),
        )
        .await
        {
            Ok((snapshot, outcomes)) => {
                for (name, outcome) in &outcomes {
                    match outcome {
                        PolicyOutcome::Loaded => report.policies_loaded.push(name.clone()),
                        PolicyOutcome::KeptPrevious { error } => {
                            report.policy_errors.insert(name.clone(), error.clone());
                        }
                        PolicyOutcome::Unchanged => {}
                    }
                }
                if config_changed || !report.policies_loaded.is_empty() {
                    shared
                        .breakers
                        .configure(snapshot.config.resilience.breaker);
                    shared
                        .retry_budget
                        .configure(snapshot.config.resilience.retry_budget);
                    shared.snapshot.store(Arc::new(snapshot));
                    report.outcome = if report.policy_errors.is_empty() && config_error.is_none() {
                        Outcome::Applied
                    } else {
                        Outcome::Failed
                    };
                    let mut state = shared.reload_state.lock();
                    state.generation += 1;
                    if config_changed {
                        state.config_loaded_at = Some(now);
                    }
                    tracing::info!(?trigger, config_changed, policies_loaded = ?report.policies_loaded, generation = state.generation, "reload applied");
                } else {
                    report.outcome = Outcome::Failed;
                }
            }
            Err(e) => {
                report.outcome = Outcome::Failed;
                let message = e.to_string();
                match &e {
                    SnapshotError::Policy(p) => {
                        report
                            .policy_errors
                            .insert(p.policy_name().to_owned(), message.clone());
                    }
                    SnapshotError::Upstream { .. } => {}
                }
                if config_changed {
                    report.config_error = Some(message.clone());
                }
            }
        }
        for (name, error) in &report.policy_errors {
            tracing::error!(?trigger, policy = %name, %error, "policy reload refused; the version in service stays");
        }
        if let Some(error) = report
            .config_error
            .as_deref()
            .filter(|_| config_error.is_none())
        {
            tracing::error!(?trigger, %error, "config reload refused; the config in service stays");
        }
    }

    let mut state = shared.reload_state.lock();
    report.generation = state.generation;
    state.config_error = report.config_error.clone();
    let snapshot = shared.snapshot.load();
    for name in snapshot.policies.keys() {
        let status = state.policies.entry(name.clone()).or_default();
        if let Some(error) = report.policy_errors.get(name) {
            *status = PolicyStatus {
                last_outcome: "failed".into(),
                last_error: Some(error.clone()),
                last_attempt_at: Some(now),
            };
        } else if report.policies_loaded.contains(name) {
            *status = PolicyStatus {
                last_outcome: "loaded".into(),
                last_error: None,
                last_attempt_at: Some(now),
            };
        }
    }
    for (name, error) in &report.policy_errors {
        if !snapshot.policies.contains_key(name) {
            state.policies.insert(
                name.clone(),
                PolicyStatus {
                    last_outcome: "failed".into(),
                    last_error: Some(error.clone()),
                    last_attempt_at: Some(now),
                },
            );
        }
    }
    state.last_attempt = Some((now, report.clone()));
    let result = match report.outcome {
        Outcome::Applied => "applied",
        Outcome::Unchanged => "unchanged",
        Outcome::Failed => "failed",
    };
    shared
        .metrics
        .policy_reloads
        .get_or_create(&crate::observe::metrics::ReloadLabels { result })
        .inc();
    report
}

/// The policy files and the config file, for the watcher.
pub fn watched_files(shared: &Live) -> Vec<std::path::PathBuf> {
    let snapshot = shared.snapshot.load();
    let mut files: Vec<_> = snapshot
        .config
        .policies
        .values()
        .filter_map(|s| match s {
            PolicySource::File(p) => Some(p.clone()),
            PolicySource::Builtin(_) => None,
        })
        .collect();
    files.extend(shared.config_path.clone());
    files
}

/// Serialises `Option<SystemTime>` as seconds since the Unix epoch.
pub mod unix_seconds {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}
