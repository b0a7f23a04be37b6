//! Loading and validating the configuration.
//!
//! Two layers, as in TensorZero: [`raw`] is the TOML as written (`deny_unknown_fields`
//! everywhere), and [`Config`] is the checked result the gateway runs on. Every validation error
//! names the path of the offending setting, e.g. `tenants.acme.models[1]`.

pub mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use sha2::{Digest, Sha256};
use switchyard_policy::SandboxLimits;

use switchyard_upstream::{BreakerSettings, RetryBudgetSettings, Usage};

use crate::accounts::TenantQuota;
use crate::cache::CacheSettings;
use crate::sandbox::{QuarantineSettings, SchedulerSettings};

pub use switchyard_upstream::Secret;

use raw::{RawConfig, RawFailureOutcome, RawModel, RawSandbox, RawUpstream};

/// The configuration the binary runs when given none: a simulated upstream and a demo tenant.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../assets/default.toml");

/// A config file that could not be used, with the path of the setting at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Dotted path of the setting, e.g. `tenants.acme.policy`; the file name for I/O and syntax errors.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

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
    /// Whether the access log carries the start of the last user message.
    pub log_prompts: bool,
    /// Where compiled policies are cached, if anywhere.
    pub artifact_cache_dir: Option<PathBuf>,
    /// Whether config and policy files are watched for changes.
    pub watch: bool,
    /// Quiet time after the last file event before a reload.
    pub watch_debounce: Duration,
}

/// How a model that several upstreams serve is spread over them. Whichever comes first, the
/// others follow as same-model fallbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamChoice {
    /// Conversations with the same opening (tenant, system prompt, first turn) go to the same
    /// upstream (rendezvous hashing), so the provider's prompt cache stays warm.
    PrefixAffinity,
    /// Rotate through the upstreams.
    RoundRobin,
    /// Always the first in name order.
    First,
}

/// Circuit breaking and retry budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resilience {
    pub breaker: BreakerSettings,
    pub retry_budget: RetryBudgetSettings,
}

fn resilience(r: &raw::RawResilience) -> Result<Resilience, ConfigError> {
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
    let max_open = ms(r.breaker_open_ms, 5_000, "resilience.breaker_open_ms")?;
    let probe_after = ms(
        r.breaker_probe_after_ms,
        1_000,
        "resilience.breaker_probe_after_ms",
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

fn cache_settings(c: &raw::RawCache) -> Result<CacheSettings, ConfigError> {
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
        redis_timeout: ms(
            c.redis_timeout_ms,
            d.redis_timeout.as_millis() as u64,
            "cache.redis_timeout_ms",
        )?,
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

/// Where an upstream's traffic goes.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamEndpoint {
    /// A real OpenAI-compatible API at this base URL (`.../v1`).
    Url(String),
    /// The built-in simulated provider, with this delay between streamed tokens.
    Simulated { token_delay: Duration },
}

/// One upstream provider account.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub name: String,
    pub endpoint: UpstreamEndpoint,
    pub api_key: Option<Secret>,
    /// Catalog model name -> the name this provider uses for it.
    pub models: BTreeMap<String, String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
}

/// A catalog entry: what a model costs and can do.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    /// USD per 1M input tokens, provider cache miss.
    pub input_usd_per_mtok: f64,
    /// USD per 1M input tokens, provider cache hit.
    pub cached_input_usd_per_mtok: f64,
    /// USD per 1M output tokens.
    pub output_usd_per_mtok: f64,
    pub context_window: u64,
    pub max_output_tokens: u64,
    pub supports_images: bool,
    /// Other names clients may use for it.
    pub aliases: Vec<String>,
    /// Time-of-day price windows (UTC), first match wins.
    pub price_windows: Vec<PriceWindow>,
}

/// Per-1M-token prices in force at some moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub input_usd_per_mtok: f64,
    pub cached_input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
}

/// Prices that apply between two times of day (UTC), e.g. an off-peak discount.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceWindow {
    /// Minutes after midnight UTC, inclusive.
    pub start_minute: u32,
    /// Minutes after midnight UTC, exclusive; may be before `start_minute` (wraps midnight).
    pub end_minute: u32,
    pub prices: Prices,
}

impl PriceWindow {
    fn contains(&self, minute: u32) -> bool {
        match self.start_minute.cmp(&self.end_minute) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => (self.start_minute..self.end_minute).contains(&minute),
            std::cmp::Ordering::Greater => minute >= self.start_minute || minute < self.end_minute,
        }
    }
}

impl ModelInfo {
    /// The prices in force at `t`.
    pub fn prices_at(&self, t: std::time::SystemTime) -> Prices {
        let secs = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let minute = ((secs % 86_400) / 60) as u32;
        let base = Prices {
            input_usd_per_mtok: self.input_usd_per_mtok,
            cached_input_usd_per_mtok: self.cached_input_usd_per_mtok,
            output_usd_per_mtok: self.output_usd_per_mtok,
        };
        self.price_windows
            .iter()
            .find(|w| w.contains(minute))
            .map_or(base, |w| w.prices)
    }

    /// The prices in force now.
    pub fn prices_now(&self) -> Prices {
        self.prices_at(std::time::SystemTime::now())
    }

    /// USD for `usage` at the prices in force now (time-of-day windows included): cache-hit input
    /// at the cache-hit price, the rest of the input at the miss price.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let price = self.prices_now();
        (usage.uncached_prompt_tokens() as f64 * price.input_usd_per_mtok
            + usage.cached_prompt_tokens as f64 * price.cached_input_usd_per_mtok
            + usage.completion_tokens as f64 * price.output_usd_per_mtok)
            / 1_000_000.0
    }

    /// The worst case for `input` and `output` tokens now: every input token a cache miss.
    pub fn estimate(&self, input: u64, output: u64) -> f64 {
        self.cost(&Usage {
            prompt_tokens: input,
            cached_prompt_tokens: 0,
            completion_tokens: output,
        })
    }
}

fn minute_of_day(hhmm: &str, path: &str) -> Result<u32, ConfigError> {
    let parsed = hhmm
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
        .filter(|(h, m)| *h < 24 && *m < 60);
    parsed
        .map(|(h, m)| h * 60 + m)
        .ok_or_else(|| ConfigError::new(path, format!("`{hhmm}` is not a time like 16:30")))
}

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
}

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
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    pub models: BTreeMap<String, ModelInfo>,
    pub policies: BTreeMap<String, PolicySource>,
    pub tenants: BTreeMap<String, TenantConfig>,
}

/// The components compiled into the binary.
pub const BUILTIN_POLICIES: &[(&str, &[u8])] = &[(
    "flash-first",
    include_bytes!("../../assets/flash-first.wasm"),
)];

/// The catalog entries every config starts from; `[models.<name>]` overrides any field.
pub fn builtin_models() -> Vec<ModelInfo> {
    let m = |name: &str, input, cached, output, context, max_output, images| ModelInfo {
        name: name.into(),
        input_usd_per_mtok: input,
        cached_input_usd_per_mtok: cached,
        output_usd_per_mtok: output,
        context_window: context,
        max_output_tokens: max_output,
        supports_images: images,
        aliases: Vec::new(),
        price_windows: Vec::new(),
    };
    vec![
        // DeepSeek renamed this model `deepseek-flash` and still accepts the old name.
        ModelInfo {
            aliases: vec!["deepseek-flash".into()],
            ..m(
                "deepseek-v4-flash",
                0.14,
                0.0028,
                0.28,
                1_000_000,
                384_000,
                false,
            )
        },
        m(
            "deepseek-v4-pro",
            0.435,
            0.003625,
            0.87,
            1_000_000,
            384_000,
            false,
        ),
        // A frontier multimodal fallback. Placeholder prices: set the real ones in [models].
        m("gpt-5.5", 5.0, 0.5, 30.0, 400_000, 128_000, true),
    ]
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
            toml::from_str(text).map_err(|e| ConfigError::new(origin, e.to_string().trim_end()))?;
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        let server = server_settings(&raw, base)?;
        let admin = raw.admin.as_ref().map(admin_settings).transpose()?;
        let resilience = resilience(&raw.resilience)?;
        let cache = cache_settings(&raw.cache)?;
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
                    ms(s.timeout_ms, 250, "shared_state.timeout_ms")?,
                ))
            }
        };
        let upstream_choice = match raw.routing.upstream_choice.as_deref() {
            None | Some("prefix-affinity") => UpstreamChoice::PrefixAffinity,
            Some("round-robin") => UpstreamChoice::RoundRobin,
            Some("first") => UpstreamChoice::First,
            Some(other) => {
                return Err(ConfigError::new(
                    "routing.upstream_choice",
                    format!("`{other}`: expected prefix-affinity, round-robin or first"),
                ));
            }
        };
        let models = catalog(&raw.models)?;
        check_aliases(&models)?;
        let mut upstreams = BTreeMap::new();
        for (name, up) in &raw.upstreams {
            upstreams.insert(name.clone(), upstream(name, up, &models)?);
        }
        let mut policies = BTreeMap::new();
        for (name, p) in &raw.policies {
            policies.insert(name.clone(), policy_source(name, &p.path, base)?);
        }
        sandbox(&RawSandbox::default(), &raw.sandbox, "sandbox")?;
        let mut tenants = BTreeMap::new();
        let mut seen_keys: BTreeMap<[u8; 32], String> = BTreeMap::new();
        for (name, t) in &raw.tenants {
            let path = format!("tenants.{name}");
            let tenant = tenant(name, t, &path, &raw.sandbox, &policies, &upstreams, &models)?;
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

fn ms(value: Option<u64>, default: u64, path: &str) -> Result<Duration, ConfigError> {
    match value.unwrap_or(default) {
        0 => Err(ConfigError::new(path, "must be greater than zero")),
        v => Ok(Duration::from_millis(v)),
    }
}

fn admin_settings(a: &raw::RawAdmin) -> Result<AdminSettings, ConfigError> {
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

fn server_settings(raw: &RawConfig, base: &Path) -> Result<ServerSettings, ConfigError> {
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
    Ok(ServerSettings {
        listen,
        max_body_bytes,
        max_header_bytes: s.max_header_bytes.unwrap_or(64 << 10).max(8192),
        max_messages: s.max_messages.unwrap_or(50_000),
        request_deadline: ms(s.request_deadline_ms, 900_000, "server.request_deadline_ms")?,
        drain_timeout: ms(s.drain_timeout_ms, 30_000, "server.drain_timeout_ms")?,
        reserve_output_tokens: s.reserve_output_tokens.unwrap_or(4096),
        log_prompts: s.log_prompts.unwrap_or(false),
        artifact_cache_dir: match s.artifact_cache_dir.as_deref() {
            None => default_cache_dir(),
            Some("") => None,
            Some(dir) => Some(base.join(dir)),
        },
        watch: s.watch.unwrap_or(true),
        watch_debounce: ms(s.watch_debounce_ms, 200, "server.watch_debounce_ms")?,
    })
}

fn catalog(raw: &BTreeMap<String, RawModel>) -> Result<BTreeMap<String, ModelInfo>, ConfigError> {
    let mut models: BTreeMap<String, ModelInfo> = builtin_models()
        .into_iter()
        .map(|m| (m.name.clone(), m))
        .collect();
    for (name, m) in raw {
        let path = format!("models.\"{name}\"");
        let base = models.get(name).cloned();
        let need =
            |v: Option<f64>, field: &str, fallback: Option<f64>| -> Result<f64, ConfigError> {
                let v = v.or(fallback).ok_or_else(|| {
                    ConfigError::new(
                        format!("{path}.{field}"),
                        "is required for a model that is not built in",
                    )
                })?;
                if !v.is_finite() || v < 0.0 {
                    return Err(ConfigError::new(
                        format!("{path}.{field}"),
                        "must be a non-negative number",
                    ));
                }
                Ok(v)
            };
        let info = ModelInfo {
            name: name.clone(),
            input_usd_per_mtok: need(
                m.input_usd_per_mtok,
                "input_usd_per_mtok",
                base.as_ref().map(|b| b.input_usd_per_mtok),
            )?,
            cached_input_usd_per_mtok: need(
                m.cached_input_usd_per_mtok,
                "cached_input_usd_per_mtok",
                base.as_ref()
                    .map(|b| b.cached_input_usd_per_mtok)
                    .or(m.input_usd_per_mtok),
            )?,
            output_usd_per_mtok: need(
                m.output_usd_per_mtok,
                "output_usd_per_mtok",
                base.as_ref().map(|b| b.output_usd_per_mtok),
            )?,
            context_window: m
                .context_window
                .or(base.as_ref().map(|b| b.context_window))
                .unwrap_or(128_000),
            max_output_tokens: m
                .max_output_tokens
                .or(base.as_ref().map(|b| b.max_output_tokens))
                .unwrap_or(16_384),
            supports_images: m
                .supports_images
                .or(base.as_ref().map(|b| b.supports_images))
                .unwrap_or(false),
            aliases: m
                .aliases
                .clone()
                .or(base.as_ref().map(|b| b.aliases.clone()))
                .unwrap_or_default(),
            price_windows: match &m.price_windows {
                None => base
                    .as_ref()
                    .map(|b| b.price_windows.clone())
                    .unwrap_or_default(),
                Some(windows) => windows
                    .iter()
                    .enumerate()
                    .map(|(i, w)| price_window(w, &format!("{path}.price_windows[{i}]")))
                    .collect::<Result<_, ConfigError>>()?,
            },
        };
        if info.context_window == 0 {
            return Err(ConfigError::new(
                format!("{path}.context_window"),
                "must be greater than zero",
            ));
        }
        models.insert(name.clone(), info);
    }
    Ok(models)
}

fn unknown_model(models: &BTreeMap<String, ModelInfo>, name: &str) -> String {
    match models
        .values()
        .find(|m| m.aliases.iter().any(|a| a == name))
    {
        Some(m) => format!(
            "`{name}` is an alias of `{}`: use the catalog name here",
            m.name
        ),
        None => format!("unknown model `{name}`: add it to [models] with its prices"),
    }
}

/// Aliases must not name a model or another model's alias.
fn check_aliases(models: &BTreeMap<String, ModelInfo>) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for m in models.values() {
        for (i, alias) in m.aliases.iter().enumerate() {
            let path = format!("models.\"{}\".aliases[{i}]", m.name);
            if models.contains_key(alias) {
                return Err(ConfigError::new(
                    path,
                    format!("`{alias}` is itself a model in the catalog"),
                ));
            }
            if let Some(other) = seen.insert(alias, &m.name) {
                return Err(ConfigError::new(
                    path,
                    format!("`{alias}` is already an alias of `{other}`"),
                ));
            }
        }
    }
    Ok(())
}

fn price_window(w: &raw::RawPriceWindow, path: &str) -> Result<PriceWindow, ConfigError> {
    let price = |v: f64, field: &str| {
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(ConfigError::new(
                format!("{path}.{field}"),
                "must be a non-negative number",
            ))
        }
    };
    Ok(PriceWindow {
        start_minute: minute_of_day(&w.start_utc, &format!("{path}.start_utc"))?,
        end_minute: minute_of_day(&w.end_utc, &format!("{path}.end_utc"))?,
        prices: Prices {
            input_usd_per_mtok: price(w.input_usd_per_mtok, "input_usd_per_mtok")?,
            cached_input_usd_per_mtok: price(
                w.cached_input_usd_per_mtok,
                "cached_input_usd_per_mtok",
            )?,
            output_usd_per_mtok: price(w.output_usd_per_mtok, "output_usd_per_mtok")?,
        },
    })
}

fn upstream(
    name: &str,
    up: &RawUpstream,
    models: &BTreeMap<String, ModelInfo>,
) -> Result<UpstreamConfig, ConfigError> {
    let path = format!("upstreams.{name}");
    let endpoint = match (&up.base_url, up.simulated) {
        (Some(_), true) => {
            return Err(ConfigError::new(
                &path,
                "set either `base_url` or `simulated = true`, not both",
            ));
        }
        (None, false) => {
            return Err(ConfigError::new(
                &path,
                "needs `base_url` (or `simulated = true`)",
            ));
        }
        (None, true) => UpstreamEndpoint::Simulated {
            token_delay: Duration::from_millis(up.simulated_token_delay_ms.unwrap_or(0)),
        },
        (Some(url), false) => {
            let url = url.trim_end_matches('/');
            let uri: http::Uri = url.parse().map_err(|e| {
                ConfigError::new(
                    format!("{path}.base_url"),
                    format!("`{url}` is not a URL: {e}"),
                )
            })?;
            match uri.scheme_str() {
                Some("http" | "https") if uri.host().is_some() => {}
                _ => {
                    return Err(ConfigError::new(
                        format!("{path}.base_url"),
                        format!("`{url}` must be an http:// or https:// URL"),
                    ));
                }
            }
            UpstreamEndpoint::Url(url.to_owned())
        }
    };
    let api_key = match &up.api_key_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim())),
            _ => {
                return Err(ConfigError::new(
                    format!("{path}.api_key_env"),
                    format!("environment variable `{var}` is not set"),
                ));
            }
        },
    };
    if up.models.is_empty() {
        return Err(ConfigError::new(
            format!("{path}.models"),
            "must list at least one model",
        ));
    }
    let mut served = BTreeMap::new();
    for (i, entry) in up.models.iter().enumerate() {
        let (model, provider_name) = entry.split_once('=').unwrap_or((entry, entry));
        let (model, provider_name) = (model.trim(), provider_name.trim());
        if !models.contains_key(model) {
            return Err(ConfigError::new(
                format!("{path}.models[{i}]"),
                unknown_model(models, model),
            ));
        }
        served.insert(model.to_owned(), provider_name.to_owned());
    }
    Ok(UpstreamConfig {
        name: name.to_owned(),
        endpoint,
        api_key,
        models: served,
        connect_timeout: ms(
            up.connect_timeout_ms,
            5_000,
            &format!("{path}.connect_timeout_ms"),
        )?,
        request_timeout: ms(
            up.request_timeout_ms,
            600_000,
            &format!("{path}.request_timeout_ms"),
        )?,
        first_byte_timeout: ms(
            up.first_byte_timeout_ms,
            300_000,
            &format!("{path}.first_byte_timeout_ms"),
        )?,
        idle_timeout: ms(
            up.idle_timeout_ms,
            120_000,
            &format!("{path}.idle_timeout_ms"),
        )?,
    })
}

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

fn policy_source(name: &str, path: &str, base: &Path) -> Result<PolicySource, ConfigError> {
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

fn sandbox(base: &RawSandbox, over: &RawSandbox, path: &str) -> Result<TenantLimits, ConfigError> {
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
    let deadline_ms = over
        .deadline_ms
        .or(base.deadline_ms)
        .unwrap_or(d.deadline.as_millis() as u64);
    if deadline_ms == 0 || deadline_ms > 10_000 {
        return Err(ConfigError::new(
            format!("{path}.deadline_ms"),
            "must be between 1 and 10000",
        ));
    }
    Ok(TenantLimits {
        sandbox: SandboxLimits {
            memory_bytes: memory_mib << 20,
            deadline: Duration::from_millis(deadline_ms),
            max_log_calls: over
                .max_log_calls
                .or(base.max_log_calls)
                .unwrap_or(d.max_log_calls),
            max_decision_bytes: over
                .max_decision_bytes
                .or(base.max_decision_bytes)
                .unwrap_or(d.max_decision_bytes),
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
                max_wait: Duration::from_millis(
                    over.decision_max_wait_ms
                        .or(base.decision_max_wait_ms)
                        .unwrap_or(d.max_wait.as_millis() as u64),
                ),
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
            let ms_or = |v: Option<u64>, d: Duration, field: &str| {
                ms(v, d.as_millis() as u64, &format!("{path}.{field}"))
            };
            QuarantineSettings {
                failures,
                window: ms_or(
                    over.quarantine_window_ms.or(base.quarantine_window_ms),
                    q.window,
                    "quarantine_window_ms",
                )?,
                cool_down: ms_or(
                    over.quarantine_cool_down_ms
                        .or(base.quarantine_cool_down_ms),
                    q.cool_down,
                    "quarantine_cool_down_ms",
                )?,
            }
        },
    })
}

fn tenant(
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
    Ok(TenantConfig {
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
        },
    })
}

#[cfg(test)]
mod tests;
