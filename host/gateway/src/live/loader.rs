//! Loading policy components: read, compile (off the async runtime), type-check against the
//! contract, and check each tenant's config with the policy before anything serves with it.

use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderValue;
use switchyard_policy::defaults;
use switchyard_policy::types::{Candidate, RequestSummary};
use switchyard_policy::{CallContext, CompiledPolicy, InstanceReuse, PolicyEngine, SandboxLimits};

use crate::config::{BUILTIN_POLICIES, PolicySource, TenantConfig};

/// The request id of the synthetic decision every policy must answer at load time.
pub const SMOKE_REQUEST_ID: &str = "switchyard-smoke";

/// A policy in service.
pub struct LoadedPolicy {
    pub name: String,
    pub source: PolicySource,
    pub compiled: CompiledPolicy,
    pub loaded_at: SystemTime,
    /// `name@<first 12 hex digits of the SHA-256>`, the `x-switchyard-policy` header.
    pub header: HeaderValue,
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("name", &self.name)
            .field("hash", &self.compiled.hash())
            .finish()
    }
}

/// Why a policy could not be put in service.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyLoadError {
    #[error("policy `{name}`: cannot read {path}: {message}")]
    Read {
        name: String,
        path: String,
        message: String,
    },
    #[error("policy `{name}`: {message}")]
    Invalid { name: String, message: String },
    #[error("tenants.{tenant}.policy_config: policy `{name}` refused it: {message}")]
    ConfigRefused {
        tenant: String,
        name: String,
        message: String,
    },
    #[error("policy `{name}` failed its load-time check for tenant `{tenant}`: {message}")]
    Unhealthy {
        tenant: String,
        name: String,
        message: String,
    },
}

impl PolicyLoadError {
    /// The policy the error is about.
    pub fn policy_name(&self) -> &str {
        match self {
            PolicyLoadError::Read { name, .. }
            | PolicyLoadError::Invalid { name, .. }
            | PolicyLoadError::ConfigRefused { name, .. }
            | PolicyLoadError::Unhealthy { name, .. } => name,
        }
    }
}

/// Reads a policy's bytes.
pub fn read_source(name: &str, source: &PolicySource) -> Result<Arc<[u8]>, PolicyLoadError> {
    match source {
        PolicySource::Builtin(builtin) => BUILTIN_POLICIES
            .iter()
            .find(|(n, _)| n == builtin)
            .map(|(_, bytes)| Arc::from(*bytes))
            .ok_or_else(|| PolicyLoadError::Invalid {
                name: name.into(),
                message: format!("no built-in policy {builtin}"),
            }),
        PolicySource::File(path) => {
            std::fs::read(path)
                .map(Arc::from)
                .map_err(|e| PolicyLoadError::Read {
                    name: name.into(),
                    path: path.display().to_string(),
                    message: e.to_string(),
                })
        }
    }
}

/// Compiles `bytes` as policy `name`. CPU-heavy: run it in `spawn_blocking` when serving.
pub fn compile(
    engine: &PolicyEngine,
    name: &str,
    source: PolicySource,
    bytes: &[u8],
) -> Result<LoadedPolicy, PolicyLoadError> {
    let compiled = engine
        .compile(name, bytes)
        .map_err(|e| PolicyLoadError::Invalid {
            name: name.into(),
            message: e.to_string(),
        })?;
    let header =
        HeaderValue::from_str(&format!("{name}@{}", compiled.hash().short())).map_err(|_| {
            PolicyLoadError::Invalid {
                name: name.into(),
                message: "policy names must be printable ASCII".into(),
            }
        })?;
    Ok(LoadedPolicy {
        name: name.into(),
        source,
        compiled,
        loaded_at: SystemTime::now(),
        header,
    })
}

/// Runs the tenant's config through the policy's `validate-config`, then one synthetic decision,
/// both under the tenant's sandbox limits.
pub fn check_for_tenant(
    policy: &LoadedPolicy,
    tenant: &TenantConfig,
    candidates: Vec<Candidate>,
) -> Result<(), PolicyLoadError> {
    let ctx = CallContext {
        tenant: tenant.name.as_str().into(),
        request_id: SMOKE_REQUEST_ID.into(),
        // A fresh instance even for a tenant on a warm one: the instance its requests share
        // sees their decisions only.
        limits: SandboxLimits {
            instance: InstanceReuse::Fresh,
            ..tenant.limits.sandbox.clone()
        },
        capture_logs: false,
        yield_each_tick: false,
        store: None,
    };
    let unhealthy = |message: String| PolicyLoadError::Unhealthy {
        tenant: tenant.name.clone(),
        name: policy.name.clone(),
        message,
    };
    match policy.compiled.validate_config(&ctx, &tenant.policy_config) {
        Err(failure) => return Err(unhealthy(format!("validate-config failed: {failure}"))),
        Ok(outcome) => {
            if let Err(message) = outcome.value {
                return Err(PolicyLoadError::ConfigRefused {
                    tenant: tenant.name.clone(),
                    name: policy.name.clone(),
                    message,
                });
            }
        }
    }
    let summary = smoke_summary(tenant, candidates);
    policy
        .compiled
        .decide(&ctx, &summary)
        .map_err(|f| unhealthy(format!("smoke decision failed: {f}")))?;
    Ok(())
}

/// A small, ordinary request: what every policy must be able to decide.
fn smoke_summary(tenant: &TenantConfig, candidates: Vec<Candidate>) -> RequestSummary {
    RequestSummary {
        requested_model: tenant
            .model_aliases
            .first()
            .cloned()
            .unwrap_or_else(|| tenant.models[0].clone()),
        last_user_excerpt: "Say hello.".into(),
        candidates,
        ..defaults::summary(SMOKE_REQUEST_ID, &tenant.name, &tenant.policy_config)
    }
}
