//! The configuration file as written: TOML, every table `deny_unknown_fields`, so a typo is an
//! error that names its path instead of a setting silently ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    /// The admin listener; off when absent.
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub resilience: RawResilience,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub routing: RawRouting,
    /// Budgets, spend and rate limits shared by replicas through Redis.
    pub shared_state: Option<RawSharedState>,
    #[serde(default)]
    pub sandbox: RawSandbox,
    /// Policies that learn: the bounds of each tenant's policy store.
    #[serde(default)]
    pub learning: RawLearning,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    /// Model catalog entries; merged over the built-in DeepSeek V4 and frontier defaults.
    #[serde(default)]
    pub models: BTreeMap<String, RawModel>,
    #[serde(default)]
    pub policies: BTreeMap<String, RawPolicy>,
    #[serde(default)]
    pub tenants: BTreeMap<String, RawTenant>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address of the OpenAI-compatible listener, e.g. `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: Option<usize>,
    /// Largest request head (request line plus headers) accepted, in bytes.
    pub max_header_bytes: Option<usize>,
    /// Most entries accepted in `messages`.
    pub max_messages: Option<usize>,
    /// Deadline for a whole request, all attempts included, in milliseconds.
    pub request_deadline_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub request_deadline: Option<std::time::Duration>,
    /// Time allowed for open connections to finish after a shutdown signal, in milliseconds.
    pub drain_timeout_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub drain_timeout: Option<std::time::Duration>,
    /// Output tokens reserved for a request that sets no `max_tokens`, when estimating its cost
    /// against a budget.
    pub reserve_output_tokens: Option<u64>,
    /// Request bodies all requests in flight may hold together, in bytes (default: 16 times
    /// `max_body_bytes`); a request whose body does not fit is refused with a 503.
    pub max_inflight_body_bytes: Option<usize>,
    /// Put the start of the last user message in the access log (off: prompts are never logged).
    pub log_prompts: Option<bool>,
    /// Where compiled policies are cached; `""` turns the cache off.
    pub artifact_cache_dir: Option<String>,
    /// Watch the config and policy files and reload on change (default true).
    pub watch: Option<bool>,
    /// Quiet time after the last file event before a reload, milliseconds.
    pub watch_debounce_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub watch_debounce: Option<std::time::Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSharedState {
    /// `redis://host:port/db`.
    pub redis_url: String,
    /// Time allowed for one Redis operation before falling back to local state, milliseconds.
    pub timeout_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouting {
    /// How a model served by several upstreams picks one: `prefix-affinity` (default),
    /// `round-robin` or `first`.
    pub upstream_choice: Option<super::UpstreamChoice>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// Capacity of the in-memory store, MiB.
    pub max_mib: Option<u64>,
    /// TTL of an entry when the decision names none, seconds.
    pub default_ttl_seconds: Option<u64>,
    /// Longest TTL a decision may ask for, seconds.
    pub max_ttl_seconds: Option<u64>,
    /// Share the cache between replicas through Redis (`redis://host:port/db`).
    pub redis_url: Option<String>,
    /// Time allowed for one Redis operation before the cache is bypassed, milliseconds.
    pub redis_timeout_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub redis_timeout: Option<std::time::Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResilience {
    /// Consecutive failures of a model on an upstream that open its circuit.
    pub breaker_failures: Option<u32>,
    /// The longest an open circuit stays open before a probe, milliseconds (each failed probe
    /// doubles the open period up to this).
    pub breaker_open_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub breaker_open: Option<std::time::Duration>,
    /// How long a circuit that just opened waits before its first probe, milliseconds.
    pub breaker_probe_after_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub breaker_probe_after: Option<std::time::Duration>,
    /// Extra attempts allowed as a share of recent requests (0.2 = 20%).
    pub retry_budget_ratio: Option<f64>,
    /// Extra attempts always allowed per second.
    pub retry_budget_min_per_second: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLearning {
    /// Most keys one tenant's policy may store (1024).
    pub max_state_keys: Option<usize>,
    /// Most bytes (keys and values) one tenant's policy may store (262144).
    pub max_state_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address of the admin listener, e.g. `127.0.0.1:9090`.
    pub listen: Option<String>,
    /// Environment variable holding the admin bearer token.
    pub token_env: Option<String>,
    /// Or: the SHA-256 (hex) of the admin bearer token.
    pub token_sha256: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSandbox {
    /// Linear memory cap per decision, MiB.
    pub memory_mib: Option<usize>,
    /// CPU deadline per decision, milliseconds.
    pub deadline_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub deadline: Option<std::time::Duration>,
    /// Most fallbacks a decision may list.
    pub max_fallbacks: Option<usize>,
    /// Most `log` calls per decision.
    pub max_log_calls: Option<u32>,
    /// `"fresh"` (the default): a fresh instance per decision; `"warm"`: one warm instance per
    /// tenant, reused by its decisions and replaced after any failure (docs/security-model.md).
    pub instance: Option<InstanceSetting>,
    /// Largest decision accepted, bytes.
    pub max_decision_bytes: Option<usize>,
    /// Failures within `quarantine_window_ms` that quarantine a tenant's policy.
    pub quarantine_failures: Option<u32>,
    pub quarantine_window_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub quarantine_window: Option<std::time::Duration>,
    /// How long a quarantined policy is not called.
    pub quarantine_cool_down_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub quarantine_cool_down: Option<std::time::Duration>,
    /// Decisions one tenant may run at once.
    pub max_concurrent_decisions: Option<u32>,
    /// Policy time one tenant may use per second, milliseconds (decisions run synchronously, so
    /// their wall time is their CPU time unless the OS preempts them).
    pub decision_cpu_ms_per_second: Option<u64>,
    /// Longest a decision waits for a slot or CPU budget before it is refused, milliseconds.
    pub decision_max_wait_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub decision_max_wait: Option<std::time::Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Base URL of an OpenAI-compatible API, e.g. `https://api.deepseek.com/v1`.
    pub base_url: Option<String>,
    /// `openai` (Bearer key; the default) or `anthropic` (Anthropic's own API: `x-api-key`,
    /// `anthropic-version`).
    pub kind: Option<ProviderKindSetting>,
    /// The wire APIs it speaks: any of `chat`, `messages`, `responses`. Default: `["chat"]`
    /// (`["messages"]` for `kind = "anthropic"`; all three for the simulated provider).
    pub apis: Option<Vec<switchyard_upstream::dialect::Api>>,
    /// Full URL of its chat-completions endpoint, when not `base_url` + `/chat/completions`.
    pub chat_url: Option<String>,
    /// Full URL of its Messages endpoint, when not `base_url` + `/messages` (DeepSeek's is
    /// `https://api.deepseek.com/anthropic/v1/messages`).
    pub messages_url: Option<String>,
    /// Full URL of its Responses endpoint, when not `base_url` + `/responses`.
    pub responses_url: Option<String>,
    /// Serve this upstream from the built-in simulated provider instead of a URL.
    #[serde(default)]
    pub simulated: bool,
    /// Delay between streamed tokens of the simulated provider, milliseconds.
    pub simulated_token_delay_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub simulated_token_delay: Option<std::time::Duration>,
    /// Environment variable holding the upstream API key (never the key itself).
    pub api_key_env: Option<String>,
    /// Models this upstream serves. `name` or `name=provider-name` when the provider calls it
    /// something else.
    pub models: Vec<String>,
    pub connect_timeout_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<std::time::Duration>,
    /// Per-attempt deadline, from sending the request to the last byte of the response.
    pub request_timeout_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub request_timeout: Option<std::time::Duration>,
    /// Per-attempt deadline until the response starts: headers, plus the first real event of a
    /// stream (keep-alive comments do not count).
    pub first_byte_timeout_ms: Option<u64>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub first_byte_timeout: Option<std::time::Duration>,
    /// Longest silence between stream events (keep-alive comments do not count).
    pub idle_timeout_ms: Option<u64>,
    /// Move on to the next target when no substantive event (a whole response, when not
    /// streaming) has come this long after sending; off unless set (a decision may set its own).
    pub first_token_timeout_ms: Option<u64>,
    /// The same, as a duration.
    #[serde(default, with = "humantime_serde")]
    pub first_token_timeout: Option<std::time::Duration>,
    /// The same, as a duration (`"30s"`, `"250ms"`); set one or the other.
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<std::time::Duration>,
    /// Times a target on this upstream is tried again after a transient failure (a 429 whose
    /// `Retry-After` fits, a 5xx, a broken connection) when the decision does not say (default 1).
    pub retries: Option<u8>,
    /// How this upstream continues an answer cut on another target, for tenants with
    /// `resume_streams`: `chat-prefix` (DeepSeek's chat prefix completion) or `messages-prefill`
    /// (Anthropic's assistant prefill). Off when absent.
    pub resume: Option<ResumeSetting>,
    /// Where `chat-prefix` resumptions are sent (DeepSeek: `https://api.deepseek.com/beta/chat/completions`);
    /// default: the chat URL.
    pub resume_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub input_usd_per_mtok: Option<f64>,
    pub cached_input_usd_per_mtok: Option<f64>,
    pub output_usd_per_mtok: Option<f64>,
    pub context_window: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub supports_images: Option<bool>,
    /// Other names clients may use for this model (e.g. a provider's old name).
    pub aliases: Option<Vec<String>>,
    /// Time-of-day prices (UTC) that replace the base prices inside their window.
    pub price_windows: Option<Vec<RawPriceWindow>>,
    /// Labels policies read instead of matching model names, e.g. `{ tier = "strong" }`.
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPriceWindow {
    /// What policies see the window as (default `off-peak`).
    pub name: Option<String>,
    /// Start of the window, `HH:MM` UTC (inclusive).
    pub start_utc: String,
    /// End of the window, `HH:MM` UTC (exclusive; may be past midnight; equal to start = all day).
    pub end_utc: String,
    pub input_usd_per_mtok: f64,
    pub cached_input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// A component file (relative paths are relative to the config file), or `builtin:flash-first`.
    pub path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    /// SHA-256 (hex) of each API key the tenant may use; several allow rotation.
    pub api_keys_sha256: Vec<String>,
    /// Name of an entry in `[policies]`.
    pub policy: String,
    /// Handed to the policy as JSON.
    #[serde(default)]
    pub policy_config: Option<toml::Table>,
    /// Models this tenant may be routed to. Policies can never go beyond this list.
    pub models: Vec<String>,
    /// Names a client may send as `model` to let the policy choose (besides the allowed models);
    /// a trailing `*` matches any name with that prefix (`"claude-*"`).
    pub model_aliases: Option<Vec<String>>,
    /// What happens when the policy fails: `"reject"` (503) or `{ route = ["model", ...] }`.
    pub on_policy_failure: Option<RawFailureOutcome>,
    /// Sandbox limits for this tenant's decisions, over the `[sandbox]` defaults.
    #[serde(default)]
    pub sandbox: RawSandbox,
    /// Spend allowed per UTC day, USD.
    pub daily_budget_usd: Option<f64>,
    /// Spend allowed per calendar month (UTC), USD.
    pub monthly_budget_usd: Option<f64>,
    /// Requests allowed per minute.
    pub requests_per_minute: Option<u32>,
    /// Tokens (estimated input plus reserved output) allowed per minute.
    pub tokens_per_minute: Option<u32>,
    /// `soft` (default: each request reserves its estimated cost; a response may cost more than
    /// it reserved) or `hard` (a request's output is held to what it reserved: the upstream is
    /// asked for no more, and a stream that goes past it is ended with `budget_exceeded`).
    pub budget_mode: Option<super::BudgetMode>,
    /// Continue a stream cut or stalled after it started on the next target of its route that
    /// can (an upstream with `resume`), instead of ending it with an error event.
    pub resume_streams: Option<bool>,
    /// A candidate policy version rolled out beside the live one.
    pub candidate: Option<RawCandidate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCandidate {
    /// Name of an entry in `[policies]`.
    pub policy: String,
    /// `shadow` (decides beside the live policy, off the request path, and is only compared) or
    /// `canary` (serves `share` of the tenant's requests).
    pub mode: super::RolloutMode,
    /// Canary: the share of requests the candidate decides (0 to 1).
    pub share: Option<f64>,
    /// Canary: roll back when more than this share of its requests fail (0 to 1; 0.2).
    pub max_error_rate: Option<f64>,
    /// Canary: requests seen before the error rate counts (20).
    pub min_requests: Option<u32>,
    /// The candidate's own policy config (a new version may read new settings); default: the
    /// tenant's `policy_config`.
    pub policy_config: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawFailureOutcome {
    Named(String),
    Route { route: Vec<String> },
}

/// `kind` in an upstream's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKindSetting {
    Openai,
    Anthropic,
}

/// `resume` in an upstream's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResumeSetting {
    /// DeepSeek's chat prefix completion (`"prefix": true` on a last assistant message).
    ChatPrefix,
    /// Anthropic's assistant prefill (a trailing assistant message).
    MessagesPrefill,
}

/// `sandbox.instance`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceSetting {
    Fresh,
    Warm,
}
