//! Tenants: their keys, policy, allowed models, what happens when the policy fails, sandbox
//! limits and quotas; and where each policy's component comes from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_policy::{InstanceReuse, SandboxLimits};

use super::catalog::{ModelInfo, unknown_model};
use super::error::{ConfigError, either, opt_duration};
use super::raw::{self, InstanceSetting, RawFailureOutcome, RawSandbox};
use super::upstreams::UpstreamConfig;
use crate::accounts::TenantQuota;
use crate::sandbox::quarantine::QuarantineSettings;
use crate::sandbox::scheduler::SchedulerSettings;

/// Where a policy's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// Compiled into the binary (rebuilt from source and compared byte for byte in CI).
    Builtin(&'static str),
    /// A component file on disk.
    File(PathBuf),
}

/// What a tenant's request gets when its policy fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureOutcome {
    /// A 503 `policy_failed` error.
    Reject,
    /// Route to these models in order, cache off.
    Route(Vec<String>),
}

/// Sandbox limits plus the host-side caps on what a decision may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantLimits {
    pub sandbox: SandboxLimits,
    pub max_fallbacks: usize,
    pub quarantine: QuarantineSettings,
    pub scheduler: SchedulerSettings,
}

/// A tenant, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantConfig {
    pub name: String,
    /// SHA-256 digests of the tenant's API keys.
    pub key_hashes: Vec<[u8; 32]>,
    pub policy: String,
    /// The policy config as JSON, exactly what the policy receives.
    pub policy_config: String,
    /// Allowed models, in configured order.
    pub models: Vec<String>,
    pub model_aliases: Vec<String>,
    pub on_policy_failure: FailureOutcome,
    pub limits: TenantLimits,
    /// Budgets and rate limits.
    pub quota: TenantQuota,
    /// A candidate policy rolled out beside the live one.
    pub candidate: Option<CandidateConfig>,
    /// Continue a stream cut after it started on a later target of its route that can.
    pub resume_streams: bool,
}

/// `budget_mode` of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetMode {
    /// A request reserves its estimated cost; what it really costs is charged when it ends.
    #[default]
    Soft,
    /// A request's output is held to what it reserved.
    Hard,
}

impl TenantConfig {
    /// Whether `model` is one of the names that let the policy choose: an alias, or matches one
    /// ending in `*` (`claude-*` takes every name Claude Code may send).
    pub fn is_alias(&self, model: &str) -> bool {
        self.model_aliases
            .iter()
            .any(|a| match a.strip_suffix('*') {
                Some(prefix) => model.starts_with(prefix),
                None => a == model,
            })
    }

    /// Whether the tenant uses policy `name`, live or as its candidate.
    pub fn uses(&self, name: &str) -> bool {
        self.policy == name || self.candidate.as_ref().is_some_and(|c| c.policy == name)
    }

    /// The policy config policy `name` runs with for this tenant: the candidate's own when `name`
    /// is the candidate.
    pub fn config_for(&self, name: &str) -> &str {
        match &self.candidate {
            Some(c) if c.policy == name && self.policy != name => &c.policy_config,
            _ => &self.policy_config,
        }
    }
}

/// How a candidate policy is rolled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutMode {
    /// Decides on the same summaries off the request path; only compared with the live policy.
    Shadow,
    /// Serves a share of the tenant's requests; rolled back when it fails too often.
    Canary,
}

/// A candidate policy version for a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateConfig {
    pub policy: String,
    pub mode: RolloutMode,
    pub share: f64,
    pub max_error_rate: f64,
    pub min_requests: u32,
    /// The config the candidate decides with, as JSON (the tenant's unless it has its own).
    pub policy_config: String,
}

/// The components compiled into the binary.
pub const BUILTIN_POLICIES: &[(&str, &[u8])] = &[(
    "flash-first",
    include_bytes!("../../assets/flash-first.wasm"),
)];

fn usd(v: Option<f64>, path: &str) -> Result<Option<f64>, ConfigError> {
    match v {
        Some(x) if !x.is_finite() || x < 0.0 => {
            Err(ConfigError::new(path, "must be a non-negative amount"))
        }
        other => Ok(other),
    }
}

fn positive(v: Option<u32>, path: &str) -> Result<Option<u32>, ConfigError> {
    match v {
        Some(0) => Err(ConfigError::new(
            path,
            "must be at least 1 (leave it out for no limit)",
        )),
        other => Ok(other),
    }
}

pub(super) fn policy_source(
    name: &str,
    path: &str,
    base: &Path,
) -> Result<PolicySource, ConfigError> {
    if let Some(builtin) = path.strip_prefix("builtin:") {
        return BUILTIN_POLICIES
            .iter()
            .find(|(n, _)| *n == builtin)
            .map(|(n, _)| PolicySource::Builtin(n))
            .ok_or_else(|| {
                ConfigError::new(
                    format!("policies.{name}.path"),
                    format!("no built-in policy `{builtin}`"),
                )
            });
    }
    let p = Path::new(path);
    Ok(PolicySource::File(if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }))
}

pub(super) fn sandbox(
    base: &RawSandbox,
    over: &RawSandbox,
    path: &str,
) -> Result<TenantLimits, ConfigError> {
    let d = SandboxLimits::default();
    let memory_mib = over
        .memory_mib
        .or(base.memory_mib)
        .unwrap_or(d.memory_bytes >> 20);
    if memory_mib == 0 || memory_mib > 4096 {
        return Err(ConfigError::new(
            format!("{path}.memory_mib"),
            "must be between 1 and 4096",
        ));
    }
    let (deadline, at) = either(over.deadline, over.deadline_ms, &format!("{path}.deadline"))?
        .or(either(base.deadline, base.deadline_ms, "sandbox.deadline")?)
        .unwrap_or((d.deadline, format!("{path}.deadline")));
    if deadline.is_zero() || deadline > Duration::from_secs(10) {
        return Err(ConfigError::new(
            at,
            "must be between 1 ms and 10 s (between 1 and 10000 as `deadline_ms`)",
        ));
    }
    Ok(TenantLimits {
        sandbox: SandboxLimits {
            memory_bytes: memory_mib << 20,
            deadline,
            max_log_calls: over
                .max_log_calls
                .or(base.max_log_calls)
                .unwrap_or(d.max_log_calls),
            max_decision_bytes: over
                .max_decision_bytes
                .or(base.max_decision_bytes)
                .unwrap_or(d.max_decision_bytes),
            instance: match over.instance.or(base.instance) {
                None | Some(InstanceSetting::Fresh) => InstanceReuse::Fresh,
                Some(InstanceSetting::Warm) => InstanceReuse::Warm,
            },
            ..d
        },
        max_fallbacks: over.max_fallbacks.or(base.max_fallbacks).unwrap_or(8),
        scheduler: {
            let d = SchedulerSettings::default();
            let concurrent = over
                .max_concurrent_decisions
                .or(base.max_concurrent_decisions)
                .unwrap_or(d.max_concurrent);
            if concurrent == 0 {
                return Err(ConfigError::new(
                    format!("{path}.max_concurrent_decisions"),
                    "must be at least 1",
                ));
            }
            SchedulerSettings {
                max_concurrent: concurrent,
                cpu_per_second: Duration::from_millis(
                    over.decision_cpu_ms_per_second
                        .or(base.decision_cpu_ms_per_second)
                        .unwrap_or(d.cpu_per_second.as_millis() as u64),
                ),
                max_wait: opt_duration(
                    over.decision_max_wait,
                    over.decision_max_wait_ms,
                    &format!("{path}.decision_max_wait"),
                )?
                .or(opt_duration(
                    base.decision_max_wait,
                    base.decision_max_wait_ms,
                    "sandbox.decision_max_wait",
                )?)
                .unwrap_or(d.max_wait),
                offload_above: d.offload_above,
            }
        },
        quarantine: {
            let q = QuarantineSettings::default();
            let failures = over
                .quarantine_failures
                .or(base.quarantine_failures)
                .unwrap_or(q.failures);
            if failures == 0 {
                return Err(ConfigError::new(
                    format!("{path}.quarantine_failures"),
                    "must be at least 1",
                ));
            }
            let level = |human, ms, base_human, base_ms, field: &str| {
                let own = opt_duration(human, ms, &format!("{path}.{field}"))?;
                let inherited = opt_duration(base_human, base_ms, &format!("sandbox.{field}"))?;
                Ok::<_, ConfigError>(own.or(inherited))
            };
            QuarantineSettings {
                failures,
                window: level(
                    over.quarantine_window,
                    over.quarantine_window_ms,
                    base.quarantine_window,
                    base.quarantine_window_ms,
                    "quarantine_window",
                )?
                .unwrap_or(q.window),
                cool_down: level(
                    over.quarantine_cool_down,
                    over.quarantine_cool_down_ms,
                    base.quarantine_cool_down,
                    base.quarantine_cool_down_ms,
                    "quarantine_cool_down",
                )?
                .unwrap_or(q.cool_down),
            }
        },
    })
}

pub(super) fn tenant(
    name: &str,
    t: &raw::RawTenant,
    path: &str,
    raw_sandbox: &RawSandbox,
    policies: &BTreeMap<String, PolicySource>,
    upstreams: &BTreeMap<String, UpstreamConfig>,
    models: &BTreeMap<String, ModelInfo>,
) -> Result<TenantConfig, ConfigError> {
    if t.api_keys_sha256.is_empty() {
        return Err(ConfigError::new(
            format!("{path}.api_keys_sha256"),
            "needs at least one key hash",
        ));
    }
    let mut key_hashes = Vec::new();
    for (i, h) in t.api_keys_sha256.iter().enumerate() {
        let bytes = hex::decode(h.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| {
            ConfigError::new(
                format!("{path}.api_keys_sha256[{i}]"),
                "must be 64 hex digits: the SHA-256 of the key (`switchyard hash-key KEY` prints it)",
            )
        })?;
        key_hashes.push(bytes);
    }
    if !policies.contains_key(&t.policy) {
        return Err(ConfigError::new(
            format!("{path}.policy"),
            format!("no policy named `{}` in [policies]", t.policy),
        ));
    }
    if t.models.is_empty() {
        return Err(ConfigError::new(
            format!("{path}.models"),
            "must allow at least one model",
        ));
    }
    for (i, m) in t.models.iter().enumerate() {
        if !models.contains_key(m) {
            return Err(ConfigError::new(
                format!("{path}.models[{i}]"),
                unknown_model(models, m),
            ));
        }
        if !upstreams.values().any(|u| u.models.contains_key(m)) {
            return Err(ConfigError::new(
                format!("{path}.models[{i}]"),
                format!("no upstream serves `{m}`"),
            ));
        }
    }
    let check_route = |route: &[String], field: &str| -> Result<(), ConfigError> {
        if route.is_empty() {
            return Err(ConfigError::new(
                format!("{path}.{field}"),
                "must name at least one model",
            ));
        }
        for (i, m) in route.iter().enumerate() {
            if !t.models.contains(m) {
                return Err(ConfigError::new(
                    format!("{path}.{field}[{i}]"),
                    format!("`{m}` is not in this tenant's models"),
                ));
            }
        }
        Ok(())
    };
    let on_policy_failure = match &t.on_policy_failure {
        None => FailureOutcome::Reject,
        Some(RawFailureOutcome::Named(s)) if s == "reject" => FailureOutcome::Reject,
        Some(RawFailureOutcome::Named(other)) => {
            return Err(ConfigError::new(
                format!("{path}.on_policy_failure"),
                format!("`{other}`: expected \"reject\" or {{ route = [\"model\", ...] }}"),
            ));
        }
        Some(RawFailureOutcome::Route { route }) => {
            check_route(route, "on_policy_failure.route")?;
            FailureOutcome::Route(route.clone())
        }
    };
    let policy_config = match &t.policy_config {
        None => "{}".to_owned(),
        Some(table) => serde_json::to_string(table).map_err(|e| {
            ConfigError::new(
                format!("{path}.policy_config"),
                format!("cannot be expressed as JSON: {e}"),
            )
        })?,
    };
    let candidate = match &t.candidate {
        None => None,
        Some(c) => {
            let at = format!("{path}.candidate");
            if !policies.contains_key(&c.policy) {
                return Err(ConfigError::new(
                    format!("{at}.policy"),
                    format!("no policy named `{}` in [policies]", c.policy),
                ));
            }
            if c.policy == t.policy {
                return Err(ConfigError::new(
                    format!("{at}.policy"),
                    "the candidate must be another policy than the live one",
                ));
            }
            let share = c.share.unwrap_or(0.1);
            if !(share > 0.0 && share <= 1.0) {
                return Err(ConfigError::new(format!("{at}.share"), "must be in (0, 1]"));
            }
            let max_error_rate = c.max_error_rate.unwrap_or(0.2);
            if !(0.0..=1.0).contains(&max_error_rate) {
                return Err(ConfigError::new(
                    format!("{at}.max_error_rate"),
                    "must be between 0 and 1",
                ));
            }
            let policy_config = match &c.policy_config {
                None => policy_config.clone(),
                Some(table) => serde_json::to_string(table).map_err(|e| {
                    ConfigError::new(
                        format!("{at}.policy_config"),
                        format!("cannot be expressed as JSON: {e}"),
                    )
                })?,
            };
            Some(CandidateConfig {
                policy_config,
                policy: c.policy.clone(),
                mode: c.mode,
                share,
                max_error_rate,
                min_requests: c.min_requests.unwrap_or(20).max(1),
            })
        }
    };
    Ok(TenantConfig {
        candidate,
        name: name.to_owned(),
        key_hashes,
        policy: t.policy.clone(),
        policy_config,
        models: t.models.clone(),
        model_aliases: t
            .model_aliases
            .clone()
            .unwrap_or_else(|| vec!["auto".into()]),
        on_policy_failure,
        limits: sandbox(raw_sandbox, &t.sandbox, &format!("{path}.sandbox"))?,
        quota: TenantQuota {
            daily_budget_usd: usd(t.daily_budget_usd, &format!("{path}.daily_budget_usd"))?,
            monthly_budget_usd: usd(t.monthly_budget_usd, &format!("{path}.monthly_budget_usd"))?,
            requests_per_minute: positive(
                t.requests_per_minute,
                &format!("{path}.requests_per_minute"),
            )?,
            tokens_per_minute: positive(t.tokens_per_minute, &format!("{path}.tokens_per_minute"))?,
            hard_budget: t.budget_mode == Some(BudgetMode::Hard),
        },
        resume_streams: t.resume_streams.unwrap_or(false),
    })
}
