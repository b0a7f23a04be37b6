//! A minimal policy for host tests: route to `model` (on `upstream`, when set, with a
//! `first_token_deadline_ms` and `retries`) with `fallbacks`, cache as `cache` says (or as the
//! request's `cache-mode` hint says), keep the conversation where it is when
//! `keep_conversation`, and tag every decision `policy=static-route`. With `count_calls`, it also
//! tags `calls=N`, the decisions this instance has made (1 in a fresh instance), logs a line, and
//! panics on a `trap` hint: for tests of warm instances.

use serde::Deserialize;
use switchyard_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    model: String,
    fallbacks: Vec<String>,
    cache: Option<String>,
    cache_ttl_seconds: Option<u32>,
    reasoning_effort: Option<String>,
    max_output_tokens: Option<u64>,
    upstream: Option<String>,
    first_token_deadline_ms: Option<u32>,
    retries: Option<u8>,
    keep_conversation: bool,
    count_calls: bool,
}

/// Decisions this instance has made (instances are single-threaded).
static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Default for Config {
    fn default() -> Self {
        Config {
            model: "deepseek-v4-flash".into(),
            fallbacks: Vec::new(),
            cache: None,
            cache_ttl_seconds: None,
            reasoning_effort: None,
            max_output_tokens: None,
            upstream: None,
            first_token_deadline_ms: None,
            retries: None,
            keep_conversation: false,
            count_calls: false,
        }
    }
}

struct StaticRoute;

impl Policy for StaticRoute {
    type Config = Config;

    fn validate(config: &Config) -> Result<(), String> {
        match config.cache.as_deref() {
            None | Some("off" | "read-only" | "write-only" | "read-write") => Ok(()),
            Some(other) => Err(format!("unknown cache mode {other}")),
        }
    }

    fn decide(config: &Config, request: &Request) -> Decision {
        // Tests pick the cache mode per request with `x-switchyard-cache-mode`.
        let cache = match request.hint("cache-mode").or(config.cache.as_deref()) {
            Some("read-only") => CacheMode::ReadOnly,
            Some("write-only") => CacheMode::WriteOnly,
            Some("read-write") => CacheMode::ReadWrite,
            _ => CacheMode::Off,
        };
        let mut d = Decision::route(&config.model);
        if let Some(upstream) = &config.upstream {
            d = d.via(upstream);
        }
        if let Some(ms) = config.first_token_deadline_ms {
            d = d.first_token_deadline_ms(ms);
        }
        if let Some(n) = config.retries {
            d = d.retries(n);
        }
        if config.keep_conversation {
            d = d.keep_conversation();
        }
        let mut d = d.fallbacks(config.fallbacks.iter().cloned()).cache(cache);
        if let Some(ttl) = config.cache_ttl_seconds {
            d = d.cache_ttl(ttl);
        }
        if let Some(effort) = &config.reasoning_effort {
            d = d.reasoning_effort(effort);
        }
        if let Some(n) = config.max_output_tokens {
            d = d.max_output_tokens(n);
        }
        let d = d.tag("policy", "static-route");
        if !config.count_calls {
            return d;
        }
        let calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        // A line per decision: the `log` limit is per decision, not per instance.
        switchyard_sdk::log::write(Level::Debug, "counted");
        if request.hint("trap").is_some() {
            panic!("asked to trap");
        }
        d.tag("calls", calls.to_string())
    }
}

switchyard_sdk::export_policy!(StaticRoute);
