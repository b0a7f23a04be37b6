//! The console's time series: a sampler reads the ring of recent requests ten times a second
//! (off the request path) and adds each request to per-second buckets (the last 15 minutes) and
//! per-minute buckets (the last 24 hours), per tenant. The pages' charts and figures are sums over
//! those buckets.
//!
//! The ring holds [`crate::observe::recent::RING`] requests, so the sampler sees every request up to about
//! 20,000 requests per second; past that, what it could not read is counted (`missed`) and shown.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use crate::cache::CacheOutcome;
use crate::config::ModelInfo;
use crate::live::snapshot::Snapshot;
use crate::observe::recent::Record;

/// Seconds kept at one-second resolution.
pub(crate) const SECONDS: usize = 900;
/// Minutes kept at one-minute resolution.
pub(crate) const MINUTES: usize = 1440;

/// Added-latency histogram: bucket `i` ends at 10 µs × 1.25^i (the last one is open).
const HIST: usize = 64;

#[derive(Clone)]
pub(crate) struct Hist([u32; HIST]);

impl Default for Hist {
    fn default() -> Self {
        Hist([0; HIST])
    }
}

fn edge_us(i: usize) -> f64 {
    10.0 * 1.25f64.powi(i as i32)
}

impl Hist {
    fn add(&mut self, d: Duration) {
        let us = d.as_secs_f64() * 1e6;
        let i = if us <= 10.0 {
            0
        } else {
            ((us / 10.0).ln() / 1.25f64.ln()).ceil() as usize
        };
        self.0[i.min(HIST - 1)] += 1;
    }

    fn merge(&mut self, other: &Hist) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }

    /// The `q` quantile in milliseconds (the upper edge of its bucket), `None` when empty.
    fn quantile_ms(&self, q: f64) -> Option<f64> {
        let n: u64 = self.0.iter().map(|&c| u64::from(c)).sum();
        if n == 0 {
            return None;
        }
        let rank = (q * n as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.0.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Some((edge_us(i) / 1000.0 * 1000.0).round() / 1000.0);
            }
        }
        None
    }
}

/// One tenant's requests in one bucket.
#[derive(Clone, Default)]
pub(crate) struct Agg {
    pub requests: u64,
    /// 5xx answers.
    pub errors: u64,
    /// 4xx answers (refusals, bad requests), 499 (client gone) included.
    pub refused: u64,
    pub cost: f64,
    /// What the same usage would have cost on the tenant's strongest model.
    pub baseline: f64,
    /// What response-cache hits saved.
    pub saved: f64,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub cache_hit: u64,
    pub cache_miss: u64,
    /// Requests served by a target after the first.
    pub fallbacks: u64,
    pub added: Hist,
    /// Requests by the model that served them.
    pub models: BTreeMap<String, u64>,
    /// Requests by the policy's `reason` tag.
    pub reasons: BTreeMap<String, u64>,
    /// Failed attempts by failure class.
    pub failures: BTreeMap<String, u64>,
}

impl Agg {
    fn add(&mut self, r: &Record, strong: Option<&ModelInfo>) {
        self.requests += 1;
        match r.status {
            500.. => self.errors += 1,
            400..=499 => self.refused += 1,
            _ => {}
        }
        let cost = r.cost_usd.unwrap_or(0.0);
        self.cost += cost;
        self.saved += r.saved_usd.unwrap_or(0.0);
        if let Some(u) = r.usage {
            self.baseline += strong.map_or(cost, |m| m.cost(&u));
            if r.cache != CacheOutcome::Hit {
                self.prompt_tokens += u.prompt_tokens;
                self.cached_tokens += u.cached_prompt_tokens;
            }
        } else {
            self.baseline += cost;
        }
        match r.cache {
            CacheOutcome::Hit => self.cache_hit += 1,
            CacheOutcome::Miss => self.cache_miss += 1,
            CacheOutcome::Bypass => {}
        }
        let failed: Vec<&str> = r
            .attempt_list
            .iter()
            .filter(|a| a.outcome != "ok")
            .map(|a| a.outcome.as_str())
            .collect();
        if r.model.is_some() && !failed.is_empty() {
            self.fallbacks += 1;
        }
        for f in failed {
            bump(&mut self.failures, f, 1);
        }
        self.added.add(r.added());
        if let Some(m) = &r.model {
            bump(&mut self.models, m, 1);
        }
        if let Some(reason) = r.tag("reason") {
            bump(&mut self.reasons, reason, 1);
        }
    }

    fn merge(&mut self, o: &Agg) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.refused += o.refused;
        self.cost += o.cost;
        self.baseline += o.baseline;
        self.saved += o.saved;
        self.prompt_tokens += o.prompt_tokens;
        self.cached_tokens += o.cached_tokens;
        self.cache_hit += o.cache_hit;
        self.cache_miss += o.cache_miss;
        self.fallbacks += o.fallbacks;
        self.added.merge(&o.added);
        for (maps, other) in [
            (&mut self.models, &o.models),
            (&mut self.reasons, &o.reasons),
            (&mut self.failures, &o.failures),
        ] {
            for (k, v) in other {
                bump(maps, k, *v);
            }
        }
    }
}

/// One (upstream, model)'s attempts in one bucket.
#[derive(Clone, Default)]
pub(crate) struct UpAgg {
    pub attempts: u64,
    pub failed: u64,
    /// Time to first byte of the requests it served (through the gateway), ms.
    pub ttfb_ms_sum: f64,
    pub served: u64,
    pub failures: BTreeMap<String, u64>,
}

/// Points per (upstream, model).
pub(crate) type UpstreamPoints = BTreeMap<(String, String), Vec<UpAgg>>;

#[derive(Clone, Default)]
struct Bucket {
    /// Unix seconds (of the bucket's start).
    t: u64,
    tenants: BTreeMap<Arc<str>, Agg>,
    upstreams: UpstreamMap,
}

/// Attempts per upstream, then model.
type UpstreamMap = BTreeMap<String, BTreeMap<String, UpAgg>>;

/// Every bucket, and where the sampler is in the ring.
#[derive(Default)]
pub(crate) struct Series {
    next_seq: u64,
    pub missed: u64,
    seconds: VecDeque<Bucket>,
    minutes: VecDeque<Bucket>,
    /// The tenants' strongest (most expensive) model, per snapshot.
    strong: BTreeMap<String, ModelInfo>,
    strong_of: usize,
}

fn bucket_mut(deque: &mut VecDeque<Bucket>, t: u64, keep: usize) -> Option<&mut Bucket> {
    match deque.back().map(|b| b.t) {
        Some(last) if t < last => deque.iter_mut().rev().find(|b| b.t == t),
        Some(last) if t == last => deque.back_mut(),
        _ => {
            deque.push_back(Bucket {
                t,
                ..Bucket::default()
            });
            while deque.len() > keep {
                deque.pop_front();
            }
            deque.back_mut()
        }
    }
}

/// The most expensive of the tenant's models (input plus output price): the all-strong-model
/// baseline's model.
pub(crate) fn strongest<'a>(snapshot: &'a Snapshot, tenant: &str) -> Option<&'a ModelInfo> {
    let t = snapshot.tenants.get(tenant)?;
    t.config
        .models
        .iter()
        .filter_map(|m| snapshot.config.models.get(m))
        .max_by(|a, b| {
            (a.input_usd_per_mtok + a.output_usd_per_mtok)
                .total_cmp(&(b.input_usd_per_mtok + b.output_usd_per_mtok))
        })
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Series {
    /// Reads what is new in the ring into the buckets.
    pub fn sample(&mut self, recent: &crate::observe::recent::Recent, snapshot: &Snapshot) {
        let key = std::ptr::from_ref(snapshot) as usize;
        if key != self.strong_of {
            self.strong = snapshot
                .tenants
                .keys()
                .filter_map(|t| Some((t.clone(), strongest(snapshot, t)?.clone())))
                .collect();
            self.strong_of = key;
        }
        let (seconds, minutes, strong) = (&mut self.seconds, &mut self.minutes, &self.strong);
        let (next, missed) = recent.read_from(self.next_seq, |r| {
            let t = secs(r.finished_at());
            let tenant: Arc<str> = r.tenant.clone().unwrap_or_else(|| "-".into());
            let strong = strong.get(&*tenant);
            for (deque, t, keep) in [
                (&mut *seconds, t, SECONDS),
                (&mut *minutes, t / 60 * 60, MINUTES),
            ] {
                let Some(b) = bucket_mut(deque, t, keep) else {
                    continue;
                };
                match b.tenants.get_mut(&*tenant) {
                    Some(agg) => agg.add(r, strong),
                    None => b.tenants.entry(tenant.clone()).or_default().add(r, strong),
                }
                for a in &r.attempt_list {
                    let u = up_mut(&mut b.upstreams, &a.upstream, &a.model);
                    u.attempts += 1;
                    if a.outcome != "ok" {
                        u.failed += 1;
                        bump(&mut u.failures, &a.outcome, 1);
                    }
                }
                if let (Some(m), Some(up), Some(fb)) = (&r.model, &r.upstream, r.first_byte) {
                    let u = up_mut(&mut b.upstreams, up, m);
                    u.served += 1;
                    u.ttfb_ms_sum += fb.as_secs_f64() * 1000.0;
                }
            }
        });
        self.next_seq = next;
        self.missed += missed;
    }

    /// The tenants seen in the last 15 minutes, and those of the snapshot.
    fn tenants(&self, snapshot: &Snapshot) -> Vec<String> {
        let mut names: std::collections::BTreeSet<String> =
            snapshot.tenants.keys().cloned().collect();
        for b in &self.seconds {
            names.extend(b.tenants.keys().map(|t| t.to_string()));
        }
        names.into_iter().collect()
    }

    /// Sums the per-second buckets from `from` (unix seconds) on, for `tenant` (`None`: all).
    fn sum_seconds(&self, from: u64, tenant: Option<&str>) -> Agg {
        let mut out = Agg::default();
        for b in self.seconds.iter().filter(|b| b.t >= from) {
            add_tenants(&mut out, b, tenant);
        }
        out
    }

    fn sum_minutes(&self, from: u64, tenant: Option<&str>) -> Agg {
        let mut out = Agg::default();
        for b in self.minutes.iter().filter(|b| b.t >= from) {
            add_tenants(&mut out, b, tenant);
        }
        out
    }

    /// Points of `step` seconds over the last `window` seconds, ending at `now`, for `tenant`.
    fn points(&self, now: u64, window: u64, step: u64, tenant: Option<&str>) -> Vec<(u64, Agg)> {
        let start = (now + 1).saturating_sub(window) / step * step;
        let n = (now + 1 - start).div_ceil(step) as usize;
        let mut points: Vec<(u64, Agg)> = (0..n)
            .map(|i| (start + i as u64 * step, Agg::default()))
            .collect();
        for b in self.seconds.iter().filter(|b| b.t >= start && b.t <= now) {
            let i = ((b.t - start) / step) as usize;
            if let Some((_, agg)) = points.get_mut(i) {
                add_tenants(agg, b, tenant);
            }
        }
        points
    }

    /// The Overview page: per tenant and for the whole gateway.
    pub fn overview(&self, snapshot: &Snapshot, now: SystemTime, window: u64, step: u64) -> Value {
        let now = secs(now);
        let tenants = self.tenants(snapshot);
        let mut summary = Map::new();
        let mut series = Map::new();
        let scopes: Vec<Option<&str>> = std::iter::once(None)
            .chain(tenants.iter().map(|t| Some(t.as_str())))
            .collect();
        for scope in scopes {
            let name = scope.unwrap_or("*").to_owned();
            let last10 = self.sum_seconds(now.saturating_sub(9), scope);
            let last5m = self.sum_seconds(now.saturating_sub(299), scope);
            let hour = self.sum_minutes(now.saturating_sub(3599) / 60 * 60, scope);
            let day = self.sum_minutes(0, scope);
            summary.insert(
                name.clone(),
                json!({
                    "rps": last10.requests as f64 / 10.0,
                    "requests_5m": last5m.requests,
                    "error_rate_5m": ratio(last5m.errors, last5m.requests),
                    "refused_5m": last5m.refused,
                    "added_p50_ms_5m": last5m.added.quantile_ms(0.5),
                    "added_p95_ms_5m": last5m.added.quantile_ms(0.95),
                    "spend_last_hour_usd": hour.cost,
                    "spend_per_hour_usd": last5m.cost * 12.0,
                    "baseline_last_hour_usd": hour.baseline,
                    "savings_last_hour_usd": hour.baseline - hour.cost,
                    "savings_ratio_last_hour": (hour.baseline > 0.0).then(|| 1.0 - hour.cost / hour.baseline),
                    "cache_saved_last_hour_usd": hour.saved,
                    "requests_last_hour": hour.requests,
                    "requests_24h": day.requests,
                    "spend_24h_usd": day.cost,
                    "baseline_24h_usd": day.baseline,
                    "strong_model": scope.and_then(|t| self.strong.get(t)).map(|m| m.name.clone()),
                }),
            );
            let points = self.points(now, window, step, scope);
            series.insert(
                name,
                json!({
                    "rps": points.iter().map(|(_, a)| a.requests as f64 / step as f64).collect::<Vec<_>>(),
                    "error_rate": points.iter().map(|(_, a)| (a.requests > 0).then(|| ratio(a.errors, a.requests))).collect::<Vec<_>>(),
                    "p50_ms": points.iter().map(|(_, a)| a.added.quantile_ms(0.5)).collect::<Vec<_>>(),
                    "p95_ms": points.iter().map(|(_, a)| a.added.quantile_ms(0.95)).collect::<Vec<_>>(),
                    "spend_per_hour_usd": points.iter().map(|(_, a)| a.cost * 3600.0 / step as f64).collect::<Vec<_>>(),
                    "baseline_per_hour_usd": points.iter().map(|(_, a)| a.baseline * 3600.0 / step as f64).collect::<Vec<_>>(),
                }),
            );
        }
        json!({
            "now": now,
            "step": step,
            "t": times(now, window, step),
            "tenants": tenants,
            "summary": summary,
            "series": series,
            "missed": self.missed,
        })
    }

    /// The Routing page, for `tenant` (`None`: all).
    pub fn routing(
        &self,
        snapshot: &Snapshot,
        now: SystemTime,
        window: u64,
        step: u64,
        tenant: Option<&str>,
    ) -> Value {
        let now = secs(now);
        let points = self.points(now, window, step, tenant);
        let total = self.sum_seconds(now.saturating_sub(window - 1), tenant);
        let models: Vec<String> = total.models.keys().cloned().collect();
        let mix: Map<String, Value> = models
            .iter()
            .map(|m| {
                (
                    m.clone(),
                    json!(
                        points
                            .iter()
                            .map(|(_, a)| a.models.get(m).copied().unwrap_or(0))
                            .collect::<Vec<_>>()
                    ),
                )
            })
            .collect();
        json!({
            "now": now,
            "step": step,
            "tenant": tenant,
            "tenants": self.tenants(snapshot),
            "t": points.iter().map(|(t, _)| t).collect::<Vec<_>>(),
            "mix": mix,
            "fallbacks": points.iter().map(|(_, a)| a.fallbacks).collect::<Vec<_>>(),
            "requests": points.iter().map(|(_, a)| a.requests).collect::<Vec<_>>(),
            "prompt_cache_ratio": points.iter().map(|(_, a)| (a.prompt_tokens > 0).then(|| a.cached_tokens as f64 / a.prompt_tokens as f64)).collect::<Vec<_>>(),
            "response_cache_ratio": points.iter().map(|(_, a)| (a.cache_hit + a.cache_miss > 0).then(|| a.cache_hit as f64 / (a.cache_hit + a.cache_miss) as f64)).collect::<Vec<_>>(),
            "totals": {
                "requests": total.requests,
                "models": total.models,
                "fallbacks": total.fallbacks,
                "failures": total.failures,
                "reasons": total.reasons,
                "prompt_tokens": total.prompt_tokens,
                "cached_prompt_tokens": total.cached_tokens,
                "prompt_cache_ratio": (total.prompt_tokens > 0).then(|| total.cached_tokens as f64 / total.prompt_tokens as f64),
                "cache_hits": total.cache_hit,
                "cache_misses": total.cache_miss,
                "response_cache_ratio": (total.cache_hit + total.cache_miss > 0).then(|| total.cache_hit as f64 / (total.cache_hit + total.cache_miss) as f64),
            },
        })
    }

    /// Attempts per (upstream, model) over the last `window` seconds, in `step`-second points.
    pub fn upstream_points(
        &self,
        now: SystemTime,
        window: u64,
        step: u64,
    ) -> (Vec<u64>, UpstreamPoints) {
        let now = secs(now);
        let start = (now + 1).saturating_sub(window) / step * step;
        let n = (now + 1 - start).div_ceil(step) as usize;
        let mut out = UpstreamPoints::new();
        for b in self.seconds.iter().filter(|b| b.t >= start && b.t <= now) {
            let i = ((b.t - start) / step) as usize;
            let flat = b.upstreams.iter().flat_map(|(up, models)| {
                models
                    .iter()
                    .map(move |(m, u)| ((up.clone(), m.clone()), u))
            });
            for (key, u) in flat {
                let points = out.entry(key).or_insert_with(|| vec![UpAgg::default(); n]);
                if let Some(p) = points.get_mut(i) {
                    p.attempts += u.attempts;
                    p.failed += u.failed;
                    p.served += u.served;
                    p.ttfb_ms_sum += u.ttfb_ms_sum;
                    for (k, v) in &u.failures {
                        bump(&mut p.failures, k, *v);
                    }
                }
            }
        }
        ((0..n).map(|i| start + i as u64 * step).collect(), out)
    }

    /// The live feed's headline figures (the whole gateway, last 10 s and 5 min).
    pub fn headline(&self, now: SystemTime) -> Value {
        let now = secs(now);
        let last10 = self.sum_seconds(now.saturating_sub(9), None);
        let last5m = self.sum_seconds(now.saturating_sub(299), None);
        json!({
            "rps": last10.requests as f64 / 10.0,
            "error_rate_5m": ratio(last5m.errors, last5m.requests),
            "added_p95_ms_5m": last5m.added.quantile_ms(0.95),
            "spend_per_hour_usd": last5m.cost * 12.0,
            "missed": self.missed,
        })
    }
}

/// The start of each `step`-second point over the last `window` seconds ending at `now`.
fn times(now: u64, window: u64, step: u64) -> Vec<u64> {
    let start = (now + 1).saturating_sub(window) / step * step;
    let n = (now + 1 - start).div_ceil(step);
    (0..n).map(|i| start + i * step).collect()
}

/// Adds `n` to `key`'s count, allocating the key only the first time.
fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    match map.get_mut(key) {
        Some(v) => *v += n,
        None => {
            map.insert(key.to_owned(), n);
        }
    }
}

/// The attempts of `model` on `upstream` in a bucket, allocating the keys only the first time.
fn up_mut<'a>(map: &'a mut UpstreamMap, upstream: &str, model: &str) -> &'a mut UpAgg {
    if !map.contains_key(upstream) {
        map.insert(upstream.to_owned(), BTreeMap::new());
    }
    let models = map.get_mut(upstream).expect("inserted above");
    if !models.contains_key(model) {
        models.insert(model.to_owned(), UpAgg::default());
    }
    models.get_mut(model).expect("inserted above")
}

fn add_tenants(out: &mut Agg, b: &Bucket, tenant: Option<&str>) {
    for (t, agg) in &b.tenants {
        if tenant.is_none_or(|want| want == &**t) {
            out.merge(agg);
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_histogram() {
        let mut h = Hist::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for ms in [1, 1, 1, 1, 1, 1, 1, 1, 1, 50] {
            h.add(Duration::from_millis(ms));
        }
        let p50 = h.quantile_ms(0.5).unwrap();
        let p95 = h.quantile_ms(0.95).unwrap();
        assert!((1.0..1.3).contains(&p50), "{p50}");
        assert!((50.0..63.0).contains(&p95), "{p95}");
    }
}
