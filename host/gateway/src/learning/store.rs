//! A tenant's policy store: bounded in keys and bytes, local to this replica, and shared through
//! Redis when one is configured (every write goes to Redis; each replica refreshes its copy from
//! Redis at most every [`REFRESH`], on the next read after that; the last write to a key wins).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchyard_policy::PolicyStore;

use crate::config::StoreLimits;

/// How stale a shared store's copy may be before a read refreshes it.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Map {
    values: HashMap<String, Vec<u8>>,
    bytes: usize,
    refreshed: Option<Instant>,
    refreshing: bool,
}

/// One tenant's store.
pub(crate) struct TenantStore {
    tenant: Arc<str>,
    limits: StoreLimits,
    map: Arc<Mutex<Map>>,
    redis: Option<RedisStore>,
}

impl TenantStore {
    pub fn new(tenant: Arc<str>, limits: StoreLimits, redis: Option<RedisStore>) -> Arc<Self> {
        Arc::new(TenantStore {
            tenant,
            limits,
            map: Arc::default(),
            redis,
        })
    }

    /// Every key and value, for `policy simulate` snapshots and the admin API.
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        let map = self.map.lock();
        let mut out: Vec<_> = map
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.sort();
        out
    }

    /// Starts a refresh from Redis when the copy is older than [`REFRESH`] (reads never wait).
    fn maybe_refresh(&self) {
        let Some(redis) = &self.redis else { return };
        {
            let mut map = self.map.lock();
            if map.refreshing || map.refreshed.is_some_and(|at| at.elapsed() < REFRESH) {
                return;
            }
            map.refreshing = true;
        }
        let (redis, map, tenant, limits) = (
            redis.clone(),
            self.map.clone(),
            self.tenant.clone(),
            self.limits,
        );
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let fetched = redis.all(&tenant).await;
                let mut map = map.lock();
                map.refreshing = false;
                map.refreshed = Some(Instant::now());
                if let Some(entries) = fetched {
                    map.values.clear();
                    map.bytes = 0;
                    for (k, v) in entries {
                        let size = k.len() + v.len();
                        if map.values.len() >= limits.max_keys
                            || map.bytes + size > limits.max_bytes
                        {
                            break;
                        }
                        map.bytes += size;
                        map.values.insert(k, v);
                    }
                }
            });
        }
    }
}

impl PolicyStore for TenantStore {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.maybe_refresh();
        self.map.lock().values.get(key).cloned()
    }

    fn set(&self, key: &str, value: Vec<u8>) -> Result<(), String> {
        {
            let mut map = self.map.lock();
            let old = map.values.get(key).map_or(0, |v| key.len() + v.len());
            let new = key.len() + value.len();
            if old == 0 && map.values.len() >= self.limits.max_keys {
                return Err(format!(
                    "the store holds its limit of {} keys",
                    self.limits.max_keys
                ));
            }
            if map.bytes - old + new > self.limits.max_bytes {
                return Err(format!(
                    "the store would exceed its limit of {} bytes",
                    self.limits.max_bytes
                ));
            }
            map.bytes = map.bytes - old + new;
            map.values.insert(key.to_owned(), value.clone());
        }
        if let Some(redis) = &self.redis {
            redis.set(&self.tenant, key, value);
        }
        Ok(())
    }

    fn remove(&self, key: &str) {
        {
            let mut map = self.map.lock();
            if let Some(v) = map.values.remove(key) {
                map.bytes -= key.len() + v.len();
            }
        }
        if let Some(redis) = &self.redis {
            redis.remove(&self.tenant, key);
        }
    }
}

/// The Redis hash `switchyard:{tenant}:policy-state` per tenant.
#[derive(Clone)]
pub(crate) struct RedisStore {
    conn: redis::aio::ConnectionManager,
}

const TIMEOUT: Duration = Duration::from_millis(500);

fn hash_key(tenant: &str) -> String {
    format!("switchyard:{{{tenant}}}:policy-state")
}

impl RedisStore {
    pub fn connect(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("policy state redis: {e}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("policy state redis: {e}"))?;
        Ok(RedisStore { conn })
    }

    async fn all(&self, tenant: &str) -> Option<Vec<(String, Vec<u8>)>> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(hash_key(tenant));
        match tokio::time::timeout(
            TIMEOUT,
            cmd.query_async::<Vec<(String, Vec<u8>)>>(&mut conn),
        )
        .await
        {
            Ok(Ok(v)) => Some(v),
            _ => None,
        }
    }

    fn set(&self, tenant: &str, key: &str, value: Vec<u8>) {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(hash_key(tenant)).arg(key).arg(value);
        self.spawn(cmd);
    }

    fn remove(&self, tenant: &str, key: &str) {
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(hash_key(tenant)).arg(key);
        self.spawn(cmd);
    }

    fn spawn(&self, cmd: redis::Cmd) {
        let mut conn = self.conn.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = tokio::time::timeout(TIMEOUT, cmd.query_async::<()>(&mut conn)).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_bounded_in_keys_and_bytes() {
        let s = TenantStore::new(
            "t".into(),
            StoreLimits {
                max_keys: 2,
                max_bytes: 20,
            },
            None,
        );
        s.set("a", b"1234".to_vec()).unwrap();
        s.set("b", b"5678".to_vec()).unwrap();
        assert!(s.set("c", b"x".to_vec()).is_err(), "a third key");
        s.set("a", b"12345678".to_vec()).unwrap(); // replacing is not a new key
        assert!(s.set("a", vec![0; 30]).is_err(), "too many bytes");
        assert_eq!(s.get("a").as_deref(), Some(&b"12345678"[..]));
        s.remove("b");
        s.set("c", b"x".to_vec()).unwrap();
        assert_eq!(s.entries().len(), 2);
    }
}
