//! Loading and validating the configuration.
//!
//! Two layers, as in TensorZero: [`raw`] is the TOML as written (`deny_unknown_fields`
//! everywhere), and [`Config`] is the checked result the gateway runs on. Every validation error
//! names the path of the offending setting, e.g. `tenants.acme.models[1]`.

mod catalog;
mod error;
pub mod raw;
mod server;
mod tenants;
mod upstreams;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use catalog::{ModelInfo, builtin_models};
use raw::{RawConfig, RawSandbox};
pub use server::{AdminSettings, Resilience, ServerSettings, StoreLimits};
pub use switchyard_upstream::Secret;
pub use tenants::{
    BUILTIN_POLICIES, BudgetMode, CandidateConfig, FailureOutcome, PolicySource, RolloutMode,
    TenantConfig,
};
pub(crate) use upstreams::MAX_RETRIES;
pub use upstreams::{UpstreamChoice, UpstreamConfig, UpstreamEndpoint};

use crate::cache::CacheSettings;
pub use error::ConfigError;
use error::duration;

/// The configuration the binary runs when given none: a simulated upstream and a demo tenant.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../assets/default.toml");

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from (a file, or the embedded default).
    pub origin: String,
    /// SHA-256 of the file's text.
    pub hash: String,
    pub server: ServerSettings,
    pub admin: Option<AdminSettings>,
    pub resilience: Resilience,
    pub cache: CacheSettings,
    pub upstream_choice: UpstreamChoice,
    /// Redis URL and timeout for budgets and rate limits shared by replicas.
    pub shared_state: Option<(String, Duration)>,
    /// The bounds of each tenant's policy store.
    pub learning: StoreLimits,
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    pub models: BTreeMap<String, ModelInfo>,
    pub policies: BTreeMap<String, PolicySource>,
    pub tenants: BTreeMap<String, TenantConfig>,
}

impl Config {
    /// Reads and validates a config file. Relative policy paths resolve against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &path.display().to_string(), &base)
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Self::parse(EMBEDDED_DEFAULT, "<embedded default>", Path::new("."))
    }

    /// Validates config text. `origin` names it in errors; `base` resolves relative paths.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            parse_raw(text).map_err(|message| ConfigError::new(origin, message))?;
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        let server = server::server_settings(&raw, base)?;
        let admin = raw.admin.as_ref().map(server::admin_settings).transpose()?;
        let resilience = server::resilience(&raw.resilience)?;
        let cache = server::cache_settings(&raw.cache)?;
        let shared_state = match &raw.shared_state {
            None => None,
            Some(s) => {
                if !(s.redis_url.starts_with("redis://")
                    || s.redis_url.starts_with("rediss://")
                    || s.redis_url.starts_with("unix://"))
                {
                    return Err(ConfigError::new(
                        "shared_state.redis_url",
                        "must start with redis://, rediss:// or unix://",
                    ));
                }
                Some((
                    s.redis_url.clone(),
                    duration(
                        s.timeout,
                        s.timeout_ms,
                        Duration::from_millis(250),
                        "shared_state.timeout",
                    )?,
                ))
            }
        };
        let upstream_choice = raw.routing.upstream_choice.unwrap_or_default();
        let models = catalog::catalog(&raw.models)?;
        catalog::check_aliases(&models)?;
        let mut upstreams = BTreeMap::new();
        for (name, up) in &raw.upstreams {
            upstreams.insert(name.clone(), upstreams::upstream(name, up, &models)?);
        }
        let mut policies = BTreeMap::new();
        for (name, p) in &raw.policies {
            policies.insert(name.clone(), tenants::policy_source(name, &p.path, base)?);
        }
        tenants::sandbox(&RawSandbox::default(), &raw.sandbox, "sandbox")?;
        let mut tenants = BTreeMap::new();
        let mut seen_keys: BTreeMap<[u8; 32], String> = BTreeMap::new();
        for (name, t) in &raw.tenants {
            let path = format!("tenants.{name}");
            let tenant =
                tenants::tenant(name, t, &path, &raw.sandbox, &policies, &upstreams, &models)?;
            for (i, key) in tenant.key_hashes.iter().enumerate() {
                if let Some(other) = seen_keys.insert(*key, name.clone()) {
                    return Err(ConfigError::new(
                        format!("{path}.api_keys_sha256[{i}]"),
                        format!("the same key is already used by tenant `{other}`"),
                    ));
                }
            }
            tenants.insert(name.clone(), tenant);
        }
        Ok(Config {
            origin: origin.into(),
            hash,
            server,
            admin,
            resilience,
            cache,
            upstream_choice,
            shared_state,
            learning: server::store_limits(&raw.learning)?,
            upstreams,
            models,
            policies,
            tenants,
        })
    }

    /// The upstreams that serve `model`, in config order.
    pub fn upstreams_for<'a>(
        &'a self,
        model: &'a str,
    ) -> impl Iterator<Item = &'a UpstreamConfig> + 'a {
        self.upstreams
            .values()
            .filter(move |u| u.models.contains_key(model))
    }

    /// The catalog name for `name`: itself, or the model it is an alias of.
    pub fn canonical<'a>(&'a self, name: &'a str) -> &'a str {
        if self.models.contains_key(name) {
            return name;
        }
        self.models
            .values()
            .find(|m| m.aliases.iter().any(|a| a == name))
            .map_or(name, |m| m.name.as_str())
    }

    /// Every upstream API key, for redaction.
    pub fn secrets(&self) -> Vec<Secret> {
        self.upstreams
            .values()
            .filter_map(|u| u.api_key.clone())
            .collect()
    }
}

/// Reads the TOML into the raw layer. A type error names the setting (`routing.upstream_choice:
/// unknown variant ...`) after toml's own message with the line and column.
fn parse_raw(text: &str) -> Result<RawConfig, String> {
    let de = toml::Deserializer::parse(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path.is_empty() || path == "." {
            inner.trim_end().to_owned()
        } else {
            format!("at `{path}`: {}", inner.trim_end())
        }
    })
}

#[cfg(test)]
mod tests;
