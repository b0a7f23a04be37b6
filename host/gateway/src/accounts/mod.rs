//! Spend, budgets and rate limits per tenant: this replica's own ([`ledger`]), or shared by every
//! replica through Redis.
//!
//! Each operation is one Lua script, so it is atomic across replicas: a reservation checks
//! settled spend plus every replica's in-flight reservations plus its own estimate against the
//! budget, and adds itself, in one step. Reservations carry an expiry (the request deadline), so
//! a replica that dies mid-request cannot hold budget forever. Rate limits are GCRA over Redis
//! time. When Redis is unreachable or slow, every operation falls back to this replica's local
//! state with a warning: requests are never refused because Redis is down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;

mod ledger;

pub(crate) use ledger::{Refusal, Spend, TenantQuota};

use ledger::{Ledger, RateLimits};

const RESERVE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do redis.call('HDEL', KEYS[2], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local reserved = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do reserved = reserved + tonumber(v) end
local day = tonumber(redis.call('GET', KEYS[3]) or '0')
local month = tonumber(redis.call('GET', KEYS[4]) or '0')
local amount = tonumber(ARGV[2])
if ARGV[5] == '1' then
  local dl = tonumber(ARGV[3]); local ml = tonumber(ARGV[4])
  if dl >= 0 and day + reserved + amount > dl then return {'daily', tostring(day + reserved)} end
  if ml >= 0 and month + reserved + amount > ml then return {'monthly', tostring(month + reserved)} end
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[6]), ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[1], 86400000)
  redis.call('PEXPIRE', KEYS[2], 86400000)
end
return {'ok', tostring(day + reserved), tostring(month + reserved)}
"#;

const SETTLE: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local a = tonumber(ARGV[2])
if a > 0 then
  redis.call('INCRBYFLOAT', KEYS[3], a)
  redis.call('EXPIRE', KEYS[3], 172800)
  redis.call('INCRBYFLOAT', KEYS[4], a)
  redis.call('EXPIRE', KEYS[4], 3024000)
end
return 1
"#;

/// GCRA: returns {0, units left} when `n` units fit the per-minute `limit`, else {milliseconds to
/// wait, 0}.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1]); local n = tonumber(ARGV[2])
if n > limit then return {60000, 0} end
local interval = 60000 / limit
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + n * interval
local allow_at = new_tat - 60000
if allow_at > now then return {math.ceil(allow_at - now), 0} end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {0, math.floor((60000 - (new_tat - now)) / interval)}
"#;

struct Redis {
    conn: redis::aio::ConnectionManager,
    timeout: Duration,
    failures: AtomicU64,
    reserve: Script,
    settle: Script,
    gcra: Script,
}

impl Redis {
    fn failed(&self, op: &str, error: &str) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed);
        if n.is_power_of_two() || n == 0 {
            tracing::warn!(
                op,
                error,
                failures = n + 1,
                "shared state (redis) unavailable; using this replica's local state"
            );
        }
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        op: &str,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Option<T> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, invocation.invoke_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.failed(op, &e.to_string());
                None
            }
            Err(_) => {
                self.failed(op, "timed out");
                None
            }
        }
    }
}

fn periods() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs / 86_400;
    let (y, m) = ledger::year_month(secs);
    (day.to_string(), format!("{y}{m:02}"))
}

/// The four keys of a tenant's spend, hash-tagged by tenant for Redis Cluster.
fn spend_keys(tenant: &str) -> [String; 4] {
    let (day, month) = periods();
    [
        format!("switchyard:{{{tenant}}}:reservations"),
        format!("switchyard:{{{tenant}}}:reserved"),
        format!("switchyard:{{{tenant}}}:spent:day:{day}"),
        format!("switchyard:{{{tenant}}}:spent:month:{month}"),
    ]
}

/// Spend, budgets and rate limits: shared through Redis when configured, local otherwise.
pub(crate) struct Accounts {
    local: Arc<Ledger>,
    local_limits: RateLimits,
    redis: Option<Arc<Redis>>,
    /// How long a shared reservation lives if its replica never settles it.
    reservation_ttl: Duration,
}

impl Accounts {
    /// Local-only accounts.
    pub fn local() -> Self {
        Accounts {
            local: Arc::new(Ledger::default()),
            local_limits: RateLimits::default(),
            redis: None,
            reservation_ttl: Duration::ZERO,
        }
    }

    /// Accounts shared through the Redis at `url`.
    pub fn shared(url: &str, timeout: Duration, reservation_ttl: Duration) -> Result<Self, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("shared_state.redis_url: {e}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("shared_state.redis_url: {e}"))?;
        Ok(Accounts {
            redis: Some(Arc::new(Redis {
                conn,
                timeout,
                failures: AtomicU64::new(0),
                reserve: Script::new(RESERVE),
                settle: Script::new(SETTLE),
                gcra: Script::new(GCRA),
            })),
            ..Accounts::local()
        }
        .with_reservation_ttl(reservation_ttl))
    }

    fn with_reservation_ttl(mut self, ttl: Duration) -> Self {
        self.reservation_ttl = ttl;
        self
    }

    async fn shared_rate(
        &self,
        key: String,
        limit: u32,
        n: u64,
        what: &'static str,
    ) -> Option<Result<Option<u32>, Refusal>> {
        let redis = self.redis.as_ref()?;
        let mut invocation = redis.gcra.prepare_invoke();
        invocation.key(key).arg(limit).arg(n);
        let (wait_ms, left): (u64, u64) = redis.run("rate-limit", invocation).await?;
        Some(if wait_ms == 0 {
            Ok(Some(u32::try_from(left).unwrap_or(u32::MAX)))
        } else {
            Err(Refusal::Rate {
                what,
                limit,
                retry_after: Duration::from_millis(wait_ms),
            })
        })
    }

    /// Counts one request against the tenant's requests-per-minute limit; returns how many more
    /// the tenant may send this minute (`None`: no limit).
    pub async fn check_request(
        &self,
        tenant: &str,
        quota: &TenantQuota,
    ) -> Result<Option<u32>, Refusal> {
        let Some(limit) = quota.requests_per_minute else {
            return Ok(None);
        };
        if let Some(result) = self
            .shared_rate(format!("switchyard:{{{tenant}}}:rpm"), limit, 1, "requests")
            .await
        {
            return result;
        }
        self.local_limits.check_request(tenant, quota)
    }

    /// Counts `tokens` against the tenant's tokens-per-minute limit; returns how many are left.
    pub async fn check_tokens(
        &self,
        tenant: &str,
        quota: &TenantQuota,
        tokens: u64,
    ) -> Result<Option<u32>, Refusal> {
        let Some(limit) = quota.tokens_per_minute else {
            return Ok(None);
        };
        if let Some(result) = self
            .shared_rate(
                format!("switchyard:{{{tenant}}}:tpm"),
                limit,
                tokens.max(1),
                "tokens",
            )
            .await
        {
            return result;
        }
        self.local_limits.check_tokens(tenant, quota, tokens)
    }

    /// Settled spend plus reservations, today and this month.
    pub async fn spend(&self, tenant: &str) -> Spend {
        if let Some(redis) = &self.redis {
            let mut invocation = redis.reserve.prepare_invoke();
            for k in spend_keys(tenant) {
                invocation.key(k);
            }
            invocation.arg("").arg(0).arg(-1).arg(-1).arg("0").arg(0);
            if let Some(reply) = redis.run::<Vec<String>>("spend", invocation).await
                && let [_, day, month] = reply.as_slice()
            {
                return Spend {
                    today_usd: day.parse().unwrap_or(0.0),
                    month_usd: month.parse().unwrap_or(0.0),
                };
            }
        }
        self.local.spend(tenant)
    }

    /// Reserves `estimate` USD against the tenant's budgets, or refuses.
    pub async fn reserve(
        &self,
        tenant: &Arc<str>,
        quota: &TenantQuota,
        estimate: f64,
    ) -> Result<Reservation, Refusal> {
        // Without budgets there is nothing to reserve against (spend is still settled locally).
        if let Some(redis) = self
            .redis
            .as_ref()
            .filter(|_| quota.daily_budget_usd.is_some() || quota.monthly_budget_usd.is_some())
        {
            let id = format!("{:016x}", fastrand::u64(..));
            let mut invocation = redis.reserve.prepare_invoke();
            for k in spend_keys(tenant) {
                invocation.key(k);
            }
            invocation
                .arg(&id)
                .arg(estimate)
                .arg(quota.daily_budget_usd.unwrap_or(-1.0))
                .arg(quota.monthly_budget_usd.unwrap_or(-1.0))
                .arg("1")
                .arg(self.reservation_ttl.as_millis() as u64);
            if let Some(reply) = redis.run::<Vec<String>>("reserve", invocation).await {
                return match reply.first().map(String::as_str) {
                    Some("ok") => Ok(Reservation::Shared(SharedReservation {
                        redis: redis.clone(),
                        tenant: tenant.clone(),
                        id,
                        settled: false,
                    })),
                    Some(period @ ("daily" | "monthly")) => {
                        let spent = reply.get(1).and_then(|s| s.parse().ok()).unwrap_or(0.0);
                        let (period, limit, retry_after) = if period == "daily" {
                            (
                                "daily",
                                quota.daily_budget_usd.unwrap_or(0.0),
                                ledger::until_next_day(),
                            )
                        } else {
                            (
                                "monthly",
                                quota.monthly_budget_usd.unwrap_or(0.0),
                                ledger::until_next_month(),
                            )
                        };
                        Err(Refusal::Budget {
                            period,
                            limit,
                            spent,
                            retry_after,
                        })
                    }
                    _ => self
                        .local
                        .reserve(tenant, quota, estimate)
                        .map(Reservation::Local),
                };
            }
        }
        self.local
            .reserve(tenant, quota, estimate)
            .map(Reservation::Local)
    }
}

/// Money held for one request, locally or in Redis. Settle it with the real cost; dropping it
/// unsettled releases it.
#[derive(Debug)]
pub(crate) enum Reservation {
    Local(ledger::Reservation),
    Shared(SharedReservation),
}

impl std::fmt::Debug for SharedReservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReservation")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .finish()
    }
}

/// A reservation held in Redis.
pub(crate) struct SharedReservation {
    redis: Arc<Redis>,
    tenant: Arc<str>,
    id: String,
    settled: bool,
}

impl SharedReservation {
    fn settle(&mut self, actual: f64) {
        self.settled = true;
        let (redis, tenant, id) = (self.redis.clone(), self.tenant.to_string(), self.id.clone());
        // Settling happens when a response or stream ends, outside any request future: spawn it.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let mut invocation = redis.settle.prepare_invoke();
                for k in spend_keys(&tenant) {
                    invocation.key(k);
                }
                invocation.arg(&id).arg(actual);
                let _: Option<i64> = redis.run("settle", invocation).await;
            });
        }
    }
}

impl Drop for SharedReservation {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(0.0);
        }
    }
}

impl Reservation {
    /// Replaces the reservation with the real cost.
    pub fn settle(self, actual_usd: f64) {
        match self {
            Reservation::Local(r) => r.settle(actual_usd),
            Reservation::Shared(mut r) => r.settle(actual_usd),
        }
    }
}
