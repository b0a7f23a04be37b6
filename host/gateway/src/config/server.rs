//! The listener, the admin listener, resilience and the response cache: the gateway's own
//! settings, as opposed to the catalog, upstreams and tenants.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use switchyard_upstream::{BreakerSettings, RetryBudgetSettings};

use super::error::{ConfigError, duration};
use super::raw::{self, RawConfig};
use crate::cache::CacheSettings;

/// Listener and request-handling settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub max_messages: usize,
    pub request_deadline: Duration,
    pub drain_timeout: Duration,
    /// Output tokens reserved for a request without `max_tokens` when checking budgets.
    pub reserve_output_tokens: u64,
    /// Request bodies all requests in flight may hold together.
    pub max_inflight_body_bytes: usize,
    /// Whether the access log carries the start of the last user message.
    pub log_prompts: bool,
    /// Where compiled policies are cached, if anywhere.
    pub artifact_cache_dir: Option<PathBuf>,
    /// Whether config and policy files are watched for changes.
    pub watch: bool,
    /// Quiet time after the last file event before a reload.
    pub watch_debounce: Duration,
}

/// Circuit breaking and retry budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resilience {
    pub breaker: BreakerSettings,
    pub retry_budget: RetryBudgetSettings,
}

pub(super) fn resilience(r: &raw::RawResilience) -> Result<Resilience, ConfigError> {
    let ratio = r.retry_budget_ratio.unwrap_or(0.2);
    if !(0.0..=10.0).contains(&ratio) {
        return Err(ConfigError::new(
            "resilience.retry_budget_ratio",
            "must be between 0 and 10",
        ));
    }
    let min = r.retry_budget_min_per_second.unwrap_or(10.0);
    if !(0.0..=1e6).contains(&min) {
        return Err(ConfigError::new(
            "resilience.retry_budget_min_per_second",
            "must be non-negative",
        ));
    }
    let failures = r.breaker_failures.unwrap_or(5);
    if failures == 0 {
        return Err(ConfigError::new(
            "resilience.breaker_failures",
            "must be at least 1",
        ));
    }
    let max_open = duration(
        r.breaker_open,
        r.breaker_open_ms,
        Duration::from_secs(5),
        "resilience.breaker_open",
    )?;
    let probe_after = duration(
        r.breaker_probe_after,
        r.breaker_probe_after_ms,
        Duration::from_secs(1),
        "resilience.breaker_probe_after",
    )?
    .min(max_open);
    Ok(Resilience {
        breaker: BreakerSettings {
            failures,
            probe_after,
            max_open,
        },
        retry_budget: RetryBudgetSettings {
            ratio,
            min_per_second: min,
        },
    })
}

pub(super) fn cache_settings(c: &raw::RawCache) -> Result<CacheSettings, ConfigError> {
    let d = CacheSettings::default();
    if let Some(url) = &c.redis_url
        && !(url.starts_with("redis://")
            || url.starts_with("rediss://")
            || url.starts_with("unix://"))
    {
        return Err(ConfigError::new(
            "cache.redis_url",
            format!("`{url}` must start with redis://, rediss:// or unix://"),
        ));
    }
    let secs = |v: Option<u64>, default: Duration, path: &str| match v {
        Some(0) => Err(ConfigError::new(path, "must be greater than zero")),
        Some(s) => Ok(Duration::from_secs(s)),
        None => Ok(default),
    };
    Ok(CacheSettings {
        max_bytes: c.max_mib.map_or(d.max_bytes, |m| m << 20),
        default_ttl: secs(
            c.default_ttl_seconds,
            d.default_ttl,
            "cache.default_ttl_seconds",
        )?,
        max_ttl: secs(c.max_ttl_seconds, d.max_ttl, "cache.max_ttl_seconds")?,
        redis_url: c.redis_url.clone(),
        redis_timeout: duration(
            c.redis_timeout,
            c.redis_timeout_ms,
            d.redis_timeout,
            "cache.redis_timeout",
        )?,
    })
}

/// Limits of one tenant's policy store (contract 0.2's `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    pub max_keys: usize,
    /// Keys and values together.
    pub max_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_keys: 1024,
            max_bytes: 256 << 10,
        }
    }
}

pub(super) fn store_limits(l: &raw::RawLearning) -> Result<StoreLimits, ConfigError> {
    let d = StoreLimits::default();
    let max_keys = l.max_state_keys.unwrap_or(d.max_keys);
    let max_bytes = l.max_state_bytes.unwrap_or(d.max_bytes);
    if max_keys == 0 || max_keys > 1_000_000 {
        return Err(ConfigError::new(
            "learning.max_state_keys",
            "must be between 1 and 1000000",
        ));
    }
    if max_bytes == 0 || max_bytes > 64 << 20 {
        return Err(ConfigError::new(
            "learning.max_state_bytes",
            "must be between 1 and 67108864",
        ));
    }
    Ok(StoreLimits {
        max_keys,
        max_bytes,
    })
}

/// The admin listener.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    /// SHA-256 of the admin bearer token (the token itself comes from the environment).
    pub token_sha256: [u8; 32],
}

impl fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminSettings")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

pub(super) fn admin_settings(a: &raw::RawAdmin) -> Result<AdminSettings, ConfigError> {
    let listen = a.listen.as_deref().unwrap_or("127.0.0.1:9090");
    let listen = listen.parse().map_err(|e| {
        ConfigError::new(
            "admin.listen",
            format!("`{listen}` is not an address like 127.0.0.1:9090: {e}"),
        )
    })?;
    let token_sha256 = match (&a.token_env, &a.token_sha256) {
        (Some(var), None) => {
            let token = std::env::var(var).ok().filter(|t| t.trim().len() >= 16).ok_or_else(|| {
                ConfigError::new(
                    "admin.token_env",
                    format!("environment variable `{var}` must hold the admin token (16 characters or more)"),
                )
            })?;
            Sha256::digest(token.trim().as_bytes()).into()
        }
        (None, Some(hash)) => hex::decode(hash.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                ConfigError::new(
                    "admin.token_sha256",
                    "must be 64 hex digits: the SHA-256 of the token",
                )
            })?,
        _ => {
            return Err(ConfigError::new(
                "admin",
                "set exactly one of `token_env` or `token_sha256`",
            ));
        }
    };
    Ok(AdminSettings {
        listen,
        token_sha256,
    })
}

/// The default artifact cache: `$XDG_CACHE_HOME/switchyard/artifacts`, else `~/.cache/...`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("switchyard").join("artifacts"))
}

pub(super) fn server_settings(raw: &RawConfig, base: &Path) -> Result<ServerSettings, ConfigError> {
    let s = &raw.server;
    let listen = s.listen.as_deref().unwrap_or("127.0.0.1:8080");
    let listen = listen.parse().map_err(|e| {
        ConfigError::new(
            "server.listen",
            format!("`{listen}` is not an address like 127.0.0.1:8080: {e}"),
        )
    })?;
    let max_body_bytes = s.max_body_bytes.unwrap_or(32 << 20);
    if max_body_bytes < 1024 {
        return Err(ConfigError::new(
            "server.max_body_bytes",
            "must be at least 1024",
        ));
    }
    let max_inflight_body_bytes = s
        .max_inflight_body_bytes
        .unwrap_or(max_body_bytes.saturating_mul(16));
    if max_inflight_body_bytes < max_body_bytes {
        return Err(ConfigError::new(
            "server.max_inflight_body_bytes",
            "must be at least max_body_bytes (one largest body must fit)",
        ));
    }
    Ok(ServerSettings {
        listen,
        max_body_bytes,
        max_inflight_body_bytes,
        max_header_bytes: s.max_header_bytes.unwrap_or(64 << 10).max(8192),
        max_messages: s.max_messages.unwrap_or(50_000),
        request_deadline: duration(
            s.request_deadline,
            s.request_deadline_ms,
            Duration::from_secs(900),
            "server.request_deadline",
        )?,
        drain_timeout: duration(
            s.drain_timeout,
            s.drain_timeout_ms,
            Duration::from_secs(30),
            "server.drain_timeout",
        )?,
        reserve_output_tokens: s.reserve_output_tokens.unwrap_or(4096),
        log_prompts: s.log_prompts.unwrap_or(false),
        artifact_cache_dir: match s.artifact_cache_dir.as_deref() {
            None => default_cache_dir(),
            Some("") => None,
            Some(dir) => Some(base.join(dir)),
        },
        watch: s.watch.unwrap_or(true),
        watch_debounce: duration(
            s.watch_debounce,
            s.watch_debounce_ms,
            Duration::from_millis(200),
            "server.watch_debounce",
        )?,
    })
}
