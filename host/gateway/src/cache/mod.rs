//! The exact response cache, applied by the host according to the decision's cache mode.
//!
//! The key is the SHA-256 of the tenant, the model that served the response, and the request as
//! it is sent upstream (overrides applied), canonicalised, with only the transport fields
//! removed (`stream`, `stream_options`): every other field, including any field a future client
//! sends, is part of the key, so nothing semantic can be forgotten. Entries never cross tenants.
//!
//! Entries are complete chat completions. A streamed response is assembled as it is relayed and
//! stored only if the stream finished; a hit is replayed as JSON or as a well-formed SSE stream,
//! whichever the client asked for. The store is in memory (`moka`, bounded in bytes, TTL per
//! entry), or Redis so replicas share one cache; when Redis fails the cache is bypassed with a
//! warning and the request goes upstream.

pub mod assemble;
pub mod replay;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::openai::request::ChatRequest;
use crate::openai::rewrite::Overrides;

/// Request fields that only say how to deliver the response, not what it is.
const TRANSPORT_FIELDS: &[&str] = &["stream", "stream_options"];

/// A cache key: SHA-256 over tenant, model and the canonical request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key for `chat` served by `model` for `tenant`, with `overrides` applied as they are
    /// applied upstream.
    pub fn new(
        tenant: &str,
        model: &str,
        chat: &ChatRequest,
        overrides: &Overrides,
    ) -> Option<CacheKey> {
        let mut body: Value = serde_json::from_slice(&chat.body).ok()?;
        let obj = body.as_object_mut()?;
        for field in TRANSPORT_FIELDS {
            obj.remove(*field);
        }
        obj.insert("model".into(), Value::String(model.to_owned()));
        if let Some(effort) = &overrides.reasoning_effort {
            obj.insert("reasoning_effort".into(), Value::String(effort.clone()));
        }
        if let Some(cap) = overrides.max_output_tokens {
            let field = if obj.contains_key("max_completion_tokens") {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            let current = obj.get(field).and_then(Value::as_u64);
            obj.insert(
                field.into(),
                Value::from(current.map_or(cap, |c| c.min(cap))),
            );
        }
        // serde_json's map is ordered by key, so this serialisation is canonical.
        let canonical = serde_json::to_vec(&body).ok()?;
        let mut h = Sha256::new();
        h.update(tenant.as_bytes());
        h.update([0]);
        h.update(model.as_bytes());
        h.update([0]);
        h.update(&canonical);
        Some(CacheKey(h.finalize().into()))
    }

    fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A stored response: a complete chat completion and the model that produced it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CachedResponse {
    pub model: String,
    /// The `chat.completion` JSON.
    pub body: String,
}

/// Cache settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// Memory store capacity, bytes.
    pub max_bytes: u64,
    /// TTL when the decision gives none.
    pub default_ttl: Duration,
    /// Longest TTL a decision may ask for.
    pub max_ttl: Duration,
    /// Share the cache through Redis at this URL instead of memory.
    pub redis_url: Option<String>,
    /// Time allowed for one Redis operation before the cache is bypassed.
    pub redis_timeout: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_bytes: 256 << 20,
            default_ttl: Duration::from_secs(300),
            max_ttl: Duration::from_secs(86_400),
            redis_url: None,
            redis_timeout: Duration::from_millis(250),
        }
    }
}

/// The outcome shown in `x-switchyard-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Miss,
    /// The cache was not consulted (mode off or write-only, or the store is unavailable).
    Bypass,
}

impl CacheOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Bypass => "bypass",
        }
    }
}

#[derive(Clone)]
struct Entry {
    value: Arc<CachedResponse>,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<CacheKey, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &CacheKey, value: &Entry, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _: &CacheKey,
        value: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

enum Store {
    Memory(moka::future::Cache<CacheKey, Entry>),
    Redis(redis::aio::ConnectionManager),
}

/// The response cache.
pub struct ResponseCache {
    store: Store,
    settings: CacheSettings,
    /// Redis failures seen, to rate-limit the warnings.
    redis_failures: AtomicU64,
}

impl ResponseCache {
    /// Builds the cache. A Redis URL that does not parse is an error; a Redis that is down is not
    /// (it connects lazily, and until it answers the cache is bypassed).
    pub fn new(settings: CacheSettings) -> Result<ResponseCache, String> {
        let store = match &settings.redis_url {
            None => Store::Memory(
                moka::future::Cache::builder()
                    .max_capacity(settings.max_bytes)
                    .weigher(|_, e: &Entry| {
                        (e.value.body.len() + e.value.model.len() + 64).min(u32::MAX as usize)
                            as u32
                    })
                    .expire_after(PerEntryTtl)
                    .build(),
            ),
            Some(url) => {
                let client = redis::Client::open(url.as_str())
                    .map_err(|e| format!("cache.redis_url: {e}"))?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(settings.redis_timeout))
                    .set_response_timeout(Some(settings.redis_timeout))
                    .set_number_of_retries(1);
                Store::Redis(
                    redis::aio::ConnectionManager::new_lazy_with_config(client, config)
                        .map_err(|e| format!("cache.redis_url: {e}"))?,
                )
            }
        };
        Ok(ResponseCache {
            store,
            settings,
            redis_failures: AtomicU64::new(0),
        })
    }

    /// The settings the cache was built with.
    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// The TTL for a decision's request (`None`: the default), capped.
    pub fn ttl(&self, requested_seconds: Option<u32>) -> Duration {
        requested_seconds
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or(self.settings.default_ttl)
            .min(self.settings.max_ttl)
    }

    fn redis_failed(&self, op: &str, error: &str) {
        let n = self.redis_failures.fetch_add(1, Ordering::Relaxed);
        if n.is_power_of_two() || n == 0 {
            tracing::warn!(
                op,
                error,
                failures = n + 1,
                "redis cache unavailable; bypassing the cache"
            );
        }
    }

    /// Looks `key` up. `Err(())` means the store is unavailable: treat as a bypass.
    pub async fn get(&self, key: &CacheKey) -> Result<Option<Arc<CachedResponse>>, ()> {
        match &self.store {
            Store::Memory(m) => Ok(m.get(key).await.map(|e| e.value)),
            Store::Redis(conn) => {
                let mut conn = conn.clone();
                let name = format!("switchyard:cache:{}", key.hex());
                let mut cmd = redis::cmd("GET");
                cmd.arg(&name);
                let op = cmd.query_async::<Option<Vec<u8>>>(&mut conn);
                match tokio::time::timeout(self.settings.redis_timeout, op).await {
                    Ok(Ok(None)) => Ok(None),
                    Ok(Ok(Some(bytes))) => Ok(serde_json::from_slice::<CachedResponse>(&bytes)
                        .ok()
                        .map(Arc::new)),
                    Ok(Err(e)) => {
                        self.redis_failed("get", &e.to_string());
                        Err(())
                    }
                    Err(_) => {
                        self.redis_failed("get", "timed out");
                        Err(())
                    }
                }
            }
        }
    }

    /// Stores `value` under `key` for `ttl`. Failures are logged, never surfaced.
    pub async fn put(&self, key: CacheKey, value: CachedResponse, ttl: Duration) {
        match &self.store {
            Store::Memory(m) => {
                m.insert(
                    key,
                    Entry {
                        value: Arc::new(value),
                        ttl,
                    },
                )
                .await
            }
            Store::Redis(conn) => {
                let Ok(bytes) = serde_json::to_vec(&value) else {
                    return;
                };
                let mut conn = conn.clone();
                let name = format!("switchyard:cache:{}", key.hex());
                let mut cmd = redis::cmd("SET");
                cmd.arg(&name)
                    .arg(bytes)
                    .arg("PX")
                    .arg(ttl.as_millis() as u64);
                let op = cmd.query_async::<()>(&mut conn);
                match tokio::time::timeout(self.settings.redis_timeout, op).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => self.redis_failed("set", &e.to_string()),
                    Err(_) => self.redis_failed("set", "timed out"),
                }
            }
        }
    }
}

/// The body of a cached response as `Bytes`, for the JSON path.
pub fn body_bytes(r: &CachedResponse) -> Bytes {
    Bytes::copy_from_slice(r.body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> ChatRequest {
        ChatRequest::parse(Bytes::from(body.to_owned()), 100).unwrap()
    }

    #[test]
    fn the_key_ignores_transport_fields_and_key_order_but_not_content() {
        let o = Overrides::default();
        let a = CacheKey::new(
            "t",
            "m",
            &chat(
                r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
            ),
            &o,
        );
        let b = CacheKey::new(
            "t",
            "m",
            &chat(
                r#"{"temperature":0,"stream":true,"stream_options":{"include_usage":true},"messages":[{"content":"hi","role":"user"}],"model":"other"}"#,
            ),
            &o,
        );
        assert_eq!(
            a, b,
            "stream flags, key order and the requested alias do not matter"
        );
        let c = CacheKey::new(
            "t",
            "m",
            &chat(
                r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":1}"#,
            ),
            &o,
        );
        assert_ne!(a, c, "every other field matters");
        let d = CacheKey::new(
            "t",
            "m",
            &chat(
                r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":0,"some_new_field":1}"#,
            ),
            &o,
        );
        assert_ne!(a, d, "including fields the gateway has never heard of");
        let body =
            r#"{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":0}"#;
        assert_ne!(
            a,
            CacheKey::new("other-tenant", "m", &chat(body), &o),
            "tenants never share entries"
        );
        assert_ne!(a, CacheKey::new("t", "m2", &chat(body), &o), "nor models");
        let capped = Overrides {
            max_output_tokens: Some(10),
            ..Overrides::default()
        };
        assert_ne!(
            a,
            CacheKey::new("t", "m", &chat(body), &capped),
            "overrides change what is asked upstream"
        );
    }

    #[tokio::test]
    async fn memory_entries_expire_after_their_ttl() {
        let cache = ResponseCache::new(CacheSettings::default()).unwrap();
        let key = CacheKey([7; 32]);
        let value = CachedResponse {
            model: "m".into(),
            body: "{}".into(),
        };
        cache
            .put(key, value.clone(), Duration::from_millis(100))
            .await;
        assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&value));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cache.get(&key).await.unwrap(), None);
    }

    #[test]
    fn ttls_default_and_are_capped() {
        let cache = ResponseCache::new(CacheSettings::default()).unwrap();
        assert_eq!(cache.ttl(None), Duration::from_secs(300));
        assert_eq!(cache.ttl(Some(10)), Duration::from_secs(10));
        assert_eq!(cache.ttl(Some(u32::MAX)), Duration::from_secs(86_400));
    }
}
