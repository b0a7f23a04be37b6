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

mod key;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub(crate) use key::{CacheKey, CacheKeys};

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

    /// Looks `key` up.
    pub async fn get(&self, key: &CacheKey) -> Lookup {
        match &self.store {
            Store::Memory(m) => m
                .get(key)
                .await
                .map_or(Lookup::Miss, |e| Lookup::Hit(e.value)),
            Store::Redis(conn) => {
                let mut conn = conn.clone();
                let name = format!("switchyard:cache:{}", key.hex());
                let mut cmd = redis::cmd("GET");
                cmd.arg(&name);
                let op = cmd.query_async::<Option<Vec<u8>>>(&mut conn);
                match tokio::time::timeout(self.settings.redis_timeout, op).await {
                    Ok(Ok(None)) => Lookup::Miss,
                    Ok(Ok(Some(bytes))) => serde_json::from_slice::<CachedResponse>(&bytes)
                        .map_or(Lookup::Miss, |r| Lookup::Hit(Arc::new(r))),
                    Ok(Err(e)) => {
                        self.redis_failed("get", &e.to_string());
                        Lookup::Unavailable
                    }
                    Err(_) => {
                        self.redis_failed("get", "timed out");
                        Lookup::Unavailable
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

/// What a look-up found.
pub(crate) enum Lookup {
    Hit(Arc<CachedResponse>),
    Miss,
    /// The store did not answer (Redis down or slow): the cache is bypassed.
    Unavailable,
}

impl Lookup {
    /// For the `cache.lookup` span.
    pub fn label(&self) -> &'static str {
        match self {
            Lookup::Hit(_) => "hit",
            Lookup::Miss => "miss",
            Lookup::Unavailable => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_entries_expire_after_their_ttl() {
        let cache = ResponseCache::new(CacheSettings::default()).unwrap();
        let key = CacheKey::from_bytes([7; 32]);
        let value = CachedResponse {
            model: "m".into(),
            body: "{}".into(),
        };
        cache
            .put(key, value.clone(), Duration::from_millis(100))
            .await;
        assert!(matches!(cache.get(&key).await, Lookup::Hit(v) if *v == value));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(matches!(cache.get(&key).await, Lookup::Miss));
    }

    #[test]
    fn ttls_default_and_are_capped() {
        let cache = ResponseCache::new(CacheSettings::default()).unwrap();
        assert_eq!(cache.ttl(None), Duration::from_secs(300));
        assert_eq!(cache.ttl(Some(10)), Duration::from_secs(10));
        assert_eq!(cache.ttl(Some(u32::MAX)), Duration::from_secs(86_400));
    }
}
