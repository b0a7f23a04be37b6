//! Tenant spend, budgets and rate limits.
//!
//! Spend is reserved before a request goes upstream (its estimated cost at the most expensive
//! target's prices) and settled with the real cost when the response, or the stream, ends. A
//! request is refused when the spend already settled plus everything reserved by requests in flight
//! plus its own estimate would pass the budget, and reservation happens under one lock, so a
//! burst of concurrent requests cannot overshoot a budget by more than the in-flight requests'
//! underestimates. Budgets reset at midnight UTC (daily) and on the first of the month (monthly).
//!
//! Rate limits (requests and tokens per minute) use `governor`'s GCRA per tenant.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;

/// A tenant's limits.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TenantQuota {
    pub daily_budget_usd: Option<f64>,
    pub monthly_budget_usd: Option<f64>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    /// A request's output is held to what it reserved (`budget_mode = "hard"`).
    pub hard_budget: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    /// Over a budget; `period` is `daily` or `monthly`.
    Budget {
        period: &'static str,
        limit: f64,
        spent: f64,
        retry_after: Duration,
    },
    /// Over a rate limit; `what` is `requests` or `tokens`.
    Rate {
        what: &'static str,
        limit: u32,
        retry_after: Duration,
    },
}

const SECONDS_PER_DAY: u64 = 86_400;

/// The UTC (year, month) of `secs` since the Unix epoch.
pub fn year_month(secs: u64) -> (i16, i8) {
    let date = utc(secs).date();
    (date.year(), date.month())
}

fn utc(secs: u64) -> jiff::civil::DateTime {
    let t = jiff::Timestamp::from_second(secs.min(i64::MAX as u64) as i64)
        .unwrap_or(jiff::Timestamp::MAX);
    jiff::tz::Offset::UTC.to_datetime(t)
}

/// Seconds from `now` until the next first-of-the-month, midnight UTC.
fn seconds_to_next_month(now: u64) -> u64 {
    let first = utc(now).date().first_of_month();
    let next = first
        .checked_add(jiff::Span::new().months(1))
        .unwrap_or(jiff::civil::Date::MAX)
        .to_datetime(jiff::civil::Time::midnight());
    let next = jiff::tz::Offset::UTC
        .to_timestamp(next)
        .map_or(i64::MAX, |t| t.as_second());
    (next as u64).saturating_sub(now)
}

/// Time until midnight UTC.
pub fn until_next_day() -> Duration {
    Duration::from_secs(SECONDS_PER_DAY - now_secs() % SECONDS_PER_DAY)
}

/// Time until the first of next month, midnight UTC.
pub fn until_next_month() -> Duration {
    Duration::from_secs(seconds_to_next_month(now_secs()))
}

#[derive(Debug, Default, Clone, Copy)]
struct Account {
    day: u64,
    month: (i16, i8),
    spent_day: f64,
    spent_month: f64,
    reserved: f64,
}

impl Account {
    /// Rolls the periods over when the calendar moved on.
    fn roll(&mut self, now: u64) {
        let day = now / SECONDS_PER_DAY;
        if day != self.day {
            self.day = day;
            self.spent_day = 0.0;
        }
        let month = year_month(now);
        if month != self.month {
            self.month = month;
            self.spent_month = 0.0;
        }
    }
}

/// Spend per tenant, with reservations for requests in flight.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    accounts: Mutex<HashMap<Arc<str>, Account>>,
}

/// A tenant's spend as policies see it (reservations included).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Spend {
    pub today_usd: f64,
    pub month_usd: f64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Ledger {
    /// Settled spend plus reservations, for the current day and month.
    pub fn spend(&self, tenant: &str) -> Spend {
        let mut accounts = self.accounts.lock();
        match accounts.get_mut(tenant) {
            None => Spend::default(),
            Some(a) => {
                a.roll(now_secs());
                Spend {
                    today_usd: a.spent_day + a.reserved,
                    month_usd: a.spent_month + a.reserved,
                }
            }
        }
    }

    /// Reserves `estimate` USD for a request, or refuses it if a budget would be passed.
    pub fn reserve(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        quota: &TenantQuota,
        estimate: f64,
    ) -> Result<Reservation, Refusal> {
        let now = now_secs();
        let mut accounts = self.accounts.lock();
        let a = accounts.entry(tenant.clone()).or_default();
        a.roll(now);
        if let Some(limit) = quota.daily_budget_usd {
            let spent = a.spent_day + a.reserved;
            if spent + estimate > limit {
                let retry_after = Duration::from_secs(SECONDS_PER_DAY - now % SECONDS_PER_DAY);
                return Err(Refusal::Budget {
                    period: "daily",
                    limit,
                    spent,
                    retry_after,
                });
            }
        }
        if let Some(limit) = quota.monthly_budget_usd {
            let spent = a.spent_month + a.reserved;
            if spent + estimate > limit {
                let retry_after = Duration::from_secs(seconds_to_next_month(now));
                return Err(Refusal::Budget {
                    period: "monthly",
                    limit,
                    spent,
                    retry_after,
                });
            }
        }
        a.reserved += estimate;
        Ok(Reservation {
            ledger: self.clone(),
            tenant: tenant.clone(),
            amount: estimate,
            settled: false,
        })
    }

    fn settle(&self, tenant: &str, reserved: f64, actual: f64) {
        let mut accounts = self.accounts.lock();
        if let Some(a) = accounts.get_mut(tenant) {
            a.roll(now_secs());
            a.reserved = (a.reserved - reserved).max(0.0);
            a.spent_day += actual;
            a.spent_month += actual;
        }
    }
}

/// Money held for one request. Settle it with the real cost; dropping it unsettled releases it
/// (the request failed before costing anything).
#[derive(Debug)]
pub(crate) struct Reservation {
    ledger: Arc<Ledger>,
    tenant: Arc<str>,
    amount: f64,
    settled: bool,
}

impl Reservation {
    /// Replaces the reservation with the real cost.
    pub fn settle(mut self, actual_usd: f64) {
        self.settled = true;
        self.ledger.settle(&self.tenant, self.amount, actual_usd);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.ledger.settle(&self.tenant, self.amount, 0.0);
        }
    }
}

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    DefaultClock,
    governor::middleware::StateInformationMiddleware,
>;

/// One tenant's rate limiters.
struct Limiters {
    quota: TenantQuota,
    requests: Option<Limiter>,
    tokens: Option<Limiter>,
}

/// Rate limiters per tenant, kept across reloads while a tenant's limits do not change.
#[derive(Default)]
pub(crate) struct RateLimits {
    tenants: Mutex<HashMap<String, Arc<Limiters>>>,
}

fn per_minute(n: u32) -> Option<Limiter> {
    NonZeroU32::new(n).map(|n| {
        RateLimiter::direct(Quota::per_minute(n))
            .with_middleware::<governor::middleware::StateInformationMiddleware>()
    })
}

impl RateLimits {
    fn limiters(&self, tenant: &str, quota: &TenantQuota) -> Arc<Limiters> {
        let mut tenants = self.tenants.lock();
        match tenants.get(tenant) {
            Some(l) if l.quota == *quota => l.clone(),
            _ => {
                let l = Arc::new(Limiters {
                    quota: *quota,
                    requests: quota.requests_per_minute.and_then(per_minute),
                    tokens: quota.tokens_per_minute.and_then(per_minute),
                });
                tenants.insert(tenant.to_owned(), l.clone());
                l
            }
        }
    }

    /// Counts one request against the tenant's requests-per-minute limit; returns how many more
    /// it may send now.
    pub fn check_request(&self, tenant: &str, quota: &TenantQuota) -> Result<Option<u32>, Refusal> {
        let Some(limiter) = &self.limiters(tenant, quota).requests else {
            return Ok(None);
        };
        limiter
            .check()
            .map(|state| Some(state.remaining_burst_capacity()))
            .map_err(|not_until| Refusal::Rate {
                what: "requests",
                limit: quota.requests_per_minute.unwrap_or(0),
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }

    /// Counts `tokens` against the tenant's tokens-per-minute limit.
    pub fn check_tokens(
        &self,
        tenant: &str,
        quota: &TenantQuota,
        tokens: u64,
    ) -> Result<Option<u32>, Refusal> {
        let Some(limiter) = &self.limiters(tenant, quota).tokens else {
            return Ok(None);
        };
        let limit = quota.tokens_per_minute.unwrap_or(0);
        let n = NonZeroU32::new(tokens.clamp(1, u64::from(u32::MAX)) as u32)
            .expect("clamped to at least 1");
        match limiter.check_n(n) {
            Ok(Ok(state)) => Ok(Some(state.remaining_burst_capacity())),
            Ok(Err(not_until)) => Err(Refusal::Rate {
                what: "tokens",
                limit,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            }),
            // More tokens than a whole minute's allowance: it can never pass.
            Err(_) => Err(Refusal::Rate {
                what: "tokens",
                limit,
                retry_after: Duration::from_secs(60),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_arithmetic() {
        const DAY: u64 = 86_400;
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(20_788 * DAY), (2026, 12)); // 2026-12-01
        assert_eq!(year_month(20_787 * DAY), (2026, 11)); // 2026-11-30
        assert_eq!(year_month(11_016 * DAY), (2000, 2)); // 2000-02-29
        // 2026-12-31 23:59:59 UTC: one second to January.
        assert_eq!(seconds_to_next_month(20_818 * DAY + DAY - 1), 1);
        // 2026-11-30 12:00 UTC: 12 hours to December.
        assert_eq!(seconds_to_next_month(20_787 * 86_400 + 43_200), 43_200);
    }

    #[test]
    fn reservations_hold_budget_until_settled_or_released() {
        let ledger = Arc::new(Ledger::default());
        let t: Arc<str> = "t".into();
        let quota = TenantQuota {
            daily_budget_usd: Some(1.0),
            ..Default::default()
        };
        let a = ledger.reserve(&t, &quota, 0.4).unwrap();
        let b = ledger.reserve(&t, &quota, 0.4).unwrap();
        assert!(
            matches!(
                ledger.reserve(&t, &quota, 0.4),
                Err(Refusal::Budget {
                    period: "daily",
                    ..
                })
            ),
            "in-flight money counts"
        );
        assert!((ledger.spend("t").today_usd - 0.8).abs() < 1e-12);
        a.settle(0.1); // cheaper than estimated
        drop(b); // failed: nothing spent
        assert!((ledger.spend("t").today_usd - 0.1).abs() < 1e-12);
        assert!(ledger.reserve(&t, &quota, 0.8).is_ok());
    }

    #[test]
    fn rate_limits_refuse_with_a_retry_after() {
        let limits = RateLimits::default();
        let quota = TenantQuota {
            requests_per_minute: Some(2),
            tokens_per_minute: Some(1000),
            ..Default::default()
        };
        assert!(limits.check_request("t", &quota).is_ok());
        assert!(limits.check_request("t", &quota).is_ok());
        match limits.check_request("t", &quota) {
            Err(Refusal::Rate {
                what: "requests",
                retry_after,
                ..
            }) => assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(30)),
            other => panic!("{other:?}"),
        }
        assert!(limits.check_request("other", &quota).is_ok(), "per tenant");
        assert!(limits.check_tokens("t", &quota, 900).is_ok());
        assert!(matches!(
            limits.check_tokens("t", &quota, 900),
            Err(Refusal::Rate { what: "tokens", .. })
        ));
        assert!(matches!(
            limits.check_tokens("u", &quota, 5000),
            Err(Refusal::Rate { what: "tokens", .. })
        ));
    }
}
