//! `adaptive`: flash-first's model tier, with the upstreams that serve each model ordered by what
//! the policy has learned of them, and first-token deadlines that abandon a slow one early.
//!
//! A circuit breaker opens after several failures in a row; an upstream that has turned slow, or
//! fails one request in three, never trips it and keeps its share of the traffic. This policy
//! learns each (model, upstream)'s latency, error rate and cost from the outcomes of its own
//! decisions, and moves traffic off a slow or failing upstream as soon as the evidence says so.
//!
//! **The rule.** The models, in order, are flash-first's (`flash_first_rule::plan`: Flash, Pro
//! for the hard 10%, the vision model for images, the frontier model last). Each model becomes one
//! target per upstream that serves it (`via`), ordered by the expected wait of trying it first:
//!
//! ```text
//! wait(u) = (1 - p(u)) * (latency(u) + prefill(u) * uncached tokens) + p(u) * deadline(u)
//!         + (USD of the prompt on u) / usd_per_second * 1000
//! ```
//!
//! with `p` the upstream's failure probability, `latency` its time to first token without
//! prefill, `prefill` its time per uncached input token, and the uncached tokens those of the whole
//! prompt, except on the upstream that served the conversation's last turn (within `warm_for_ms`),
//! where the learned share of warm turns served from its prompt cache is taken off; the money term
//! prices the same split at the candidate's prices. Exploration is Thompson sampling: `p` and
//! `latency` are drawn from their posteriors (normal approximations) with the request's `seed` as
//! the only randomness, so a decision is a function of its input and the state it read, and an
//! upstream seen little (or long ago) is tried now and then, which is how a recovered one gets
//! its traffic back. Unavailable upstreams (circuit open) go last; half-open ones, or ones that
//! report no rate-limit headroom left, count as failing at least half the time.
//!
//! **Deadlines.** A target followed by another upstream of the same model gets a first-token
//! deadline: `deadline_factor` times the best upstream's learned 95th-percentile latency (within
//! `min_deadline_ms`..`max_deadline_ms`), plus twice the expected prefill of the uncached tokens
//! (an upper bound on a warm turn's). A stalled upstream is then abandoned after about a second
//! for a healthy one. The last upstream of a model gets none: moving to another model changes the
//! price and the answer, and is left to failures and the host's own timeouts.
//!
//! **Learning.** Every decision asks for its outcome. `on_outcome` charges each failed attempt
//! (timeouts, connection failures, 408/429/5xx) to the upstream that failed it; the attempt that
//! served the request, when nothing was sent before it, gives a latency sample against its
//! uncached input tokens (a least-squares fit of latency + prefill per token, with a prior slope of
//! `prefill_ms_per_1k_tokens`), and, on a warm turn, a cache-hit share. Skipped attempts (circuit
//! open, context too small) and the client's own errors are not the upstream's fault and are not
//! charged. The host's live signals (its p50 and error rate over the last minute) are a prior
//! worth up to five observations; the policy's own observations fade with a half-life of
//! `half_life_ms` (a minute), so the past is forgotten in minutes.
//!
//! **State.** One key per (model, upstream), `arm/<model>/<upstream>`: 11 numbers as little-endian
//! `f64`s (88 bytes), read while deciding, written in `on_outcome`.
//!
//! Config: flash-first's fields (see `flash_first_rule::Config`) and the fields of [`Learn`].

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use switchyard_sdk::prelude::*;
use switchyard_sdk::state;
use switchyard_sdk::types::UpstreamSignals;

/// The tenant's settings: flash-first's, and this policy's own.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// flash-first's settings (models, thresholds, hints, phrases, budget guard, cache).
    pub rule: flash_first_rule::Config,
    /// How it learns, explores and sets deadlines.
    pub learn: Learn,
}

/// The settings adaptive adds to flash-first's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Learn {
    /// Observations lose half their weight every this many milliseconds.
    pub half_life_ms: u64,
    /// Time to first token assumed for an upstream nothing is known of, milliseconds.
    pub prior_ttft_ms: u32,
    /// Prefill time assumed per 1,000 uncached input tokens until observations say otherwise.
    pub prefill_ms_per_1k_tokens: f64,
    /// A first-token deadline is this many times the best upstream's 95th-percentile latency...
    pub deadline_factor: f64,
    /// ...but at least this...
    pub min_deadline_ms: u32,
    /// ...and at most this (before the prefill allowance), milliseconds.
    pub max_deadline_ms: u32,
    /// What a second of waiting is worth, USD: converts the cost of a turn into waiting time.
    pub usd_per_second: f64,
    /// A conversation's last upstream holds its prompt cache for this long, milliseconds.
    pub warm_for_ms: u64,
    /// At most this many targets (the host refuses more than 1 + its `max_fallbacks`, 8 unless
    /// configured).
    pub max_targets: u32,
    /// Thompson sampling; `false` orders by the posterior means (no exploration).
    pub explore: bool,
}

impl Learn {
    /// Its field names, as they appear in the tenant's config.
    pub const FIELDS: &'static [&'static str] = &[
        "half_life_ms",
        "prior_ttft_ms",
        "prefill_ms_per_1k_tokens",
        "deadline_factor",
        "min_deadline_ms",
        "max_deadline_ms",
        "usd_per_second",
        "warm_for_ms",
        "max_targets",
        "explore",
    ];
}

impl Default for Learn {
    fn default() -> Self {
        Learn {
            half_life_ms: 60_000,
            prior_ttft_ms: 600,
            prefill_ms_per_1k_tokens: 50.0,
            deadline_factor: 3.0,
            min_deadline_ms: 1_000,
            max_deadline_ms: 10_000,
            usd_per_second: 0.01,
            warm_for_ms: 10 * 60 * 1000,
            max_targets: 8,
            explore: true,
        }
    }
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (rule, learn) = flash_first_rule::split_config(d, Learn::FIELDS)?;
        Ok(Config { rule, learn })
    }
}

/// Weight of the prior slope in the latency fit, in (thousands of tokens)² of spread.
const SLOPE_PRIOR_WEIGHT: f64 = 4.0;
/// Prior failure probability and its weight in attempts.
const PRIOR_FAILURE: f64 = 0.05;
const PRIOR_ATTEMPTS: f64 = 2.0;
/// Prior share of a warm turn served from the prompt cache, and its weight.
const PRIOR_WARM_HIT: f64 = 0.9;
/// The host's window counts for at most this many observations.
const HOST_WEIGHT: f64 = 5.0;
/// Allowance for a warm turn's new tokens beyond the expected share, thousands of tokens.
const WARM_NEW_KTOKENS: f64 = 8.0;

/// What the policy has learned of one model on one upstream: decayed sums.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Arm {
    /// Unix ms of the newest observation.
    t: f64,
    /// Attempts charged, and of them failures.
    n: f64,
    f: f64,
    /// Latency samples: weight, and sums of x (uncached kilotokens), y (ms), x², xy, y².
    w: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
    syy: f64,
    /// Warm-turn cache-hit samples: weight and the weighted mean share.
    hw: f64,
    h: f64,
}

/// Bytes of an [`Arm`] in the store: its 11 numbers as little-endian `f64`s. A fixed binary
/// form rather than JSON: parsing six JSON arms was a third of a decision's time (docs/policies.md).
const ARM_BYTES: usize = 11 * 8;

impl Arm {
    fn fields(&self) -> [f64; 11] {
        let a = self;
        [
            a.t, a.n, a.f, a.w, a.sx, a.sy, a.sxx, a.sxy, a.syy, a.hw, a.h,
        ]
    }

    fn encode(&self) -> [u8; ARM_BYTES] {
        let mut out = [0u8; ARM_BYTES];
        for (chunk, v) in out.chunks_exact_mut(8).zip(self.fields()) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// The arm in `bytes`: the binary form, or the JSON array an earlier build wrote; anything
    /// else (another version's entry, garbage) is nothing learned.
    fn decode(bytes: &[u8]) -> Option<Arm> {
        let v: [f64; 11] = if bytes.len() == ARM_BYTES {
            let mut v = [0.0; 11];
            for (x, chunk) in v.iter_mut().zip(bytes.chunks_exact(8)) {
                *x = f64::from_le_bytes(chunk.try_into().ok()?);
            }
            v
        } else {
            serde_json::from_slice(bytes).ok()?
        };
        if v.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let [t, n, f, w, sx, sy, sxx, sxy, syy, hw, h] = v;
        Some(Arm {
            t,
            n,
            f,
            w,
            sx,
            sy,
            sxx,
            sxy,
            syy,
            hw,
            h,
        })
    }
}

/// The state key of `model` on `upstream`.
fn key(model: &str, upstream: &str) -> String {
    format!("arm/{model}/{upstream}")
}

impl Arm {
    fn load(model: &str, upstream: &str) -> Arm {
        state::get(&key(model, upstream))
            .and_then(|bytes| Arm::decode(&bytes))
            .unwrap_or_default()
    }

    /// The sums as of `now`: every weight halved per `half_life_ms` since the newest observation.
    fn at(mut self, now: u64, half_life_ms: u64) -> Arm {
        let age = now as f64 - self.t;
        if age > 0.0 {
            let k = 0.5f64.powf(age / half_life_ms as f64);
            for v in [
                &mut self.n,
                &mut self.f,
                &mut self.w,
                &mut self.sx,
                &mut self.sy,
                &mut self.sxx,
                &mut self.sxy,
                &mut self.syy,
                &mut self.hw,
            ] {
                *v *= k;
            }
        }
        self
    }

    fn attempt(&mut self, failed: bool) {
        self.n += 1.0;
        if failed {
            self.f += 1.0;
        }
    }

    fn latency(&mut self, uncached_ktokens: f64, ms: f64) {
        let (x, y) = (uncached_ktokens, ms);
        self.w += 1.0;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.sxy += x * y;
        self.syy += y * y;
    }

    fn hit(&mut self, share: f64) {
        self.hw += 1.0;
        self.h += (share - self.h) / self.hw;
    }

    /// The least-squares fit `y = a + b x` (b pulled towards `b0`) and its residual variance;
    /// `None` without samples.
    fn fit(&self, b0: f64) -> Option<(f64, f64, f64)> {
        if self.w < 1e-6 {
            return None;
        }
        let (mx, my) = (self.sx / self.w, self.sy / self.w);
        let cxx = (self.sxx - self.sx * mx).max(0.0);
        let cxy = self.sxy - self.sx * my;
        let b = ((cxy + SLOPE_PRIOR_WEIGHT * b0) / (cxx + SLOPE_PRIOR_WEIGHT)).max(0.0);
        let a = my - b * mx;
        let rss = self.syy - 2.0 * a * self.sy - 2.0 * b * self.sxy
            + a * a * self.w
            + 2.0 * a * b * self.sx
            + b * b * self.sxx;
        Some((a, b, (rss / self.w).max(0.0)))
    }
}

/// What the policy believes of one upstream of a model for this request.
struct Belief {
    /// Latency without prefill: mean, standard deviation of one observation, weight.
    mean: f64,
    sd: f64,
    weight: f64,
    /// Milliseconds per thousand uncached tokens.
    prefill: f64,
    /// Failure probability: mean and weight.
    p: f64,
    p_weight: f64,
    /// Share of a warm turn's input served from the cache.
    warm_hit: f64,
}

impl Belief {
    fn of(c: &Learn, arm: &Arm, host: &UpstreamSignals) -> Belief {
        let b0 = c.prefill_ms_per_1k_tokens;
        // The prior: the host's window when it has samples, else the configured guess.
        let host_w = f64::from(host.samples.min(10)) * HOST_WEIGHT / 10.0;
        let prior = host
            .ttft_p50_ms
            .filter(|_| host.samples > 0)
            .map_or(f64::from(c.prior_ttft_ms), f64::from);
        let w0 = 1.0 + host_w;
        let (a, b, var, w) = match arm.fit(b0) {
            Some((a, b, var)) => (a, b, var, arm.w),
            None => (prior, b0, 0.0, 0.0),
        };
        let mean = (w * a + w0 * prior) / (w + w0);
        let prior_var = (0.5 * prior).powi(2);
        let sd = ((w * var + w0 * prior_var) / (w + w0)).sqrt().max(20.0);
        let host_fail = f64::from(host.error_rate.unwrap_or(0.0)).clamp(0.0, 1.0);
        let (n, f) = (
            arm.n + PRIOR_ATTEMPTS + host_w,
            arm.f + PRIOR_FAILURE * PRIOR_ATTEMPTS + host_fail * host_w,
        );
        Belief {
            mean,
            sd,
            weight: w + w0,
            prefill: b.max(0.0),
            p: f / n,
            p_weight: n,
            warm_hit: (arm.h * arm.hw + PRIOR_WARM_HIT) / (arm.hw + 1.0),
        }
    }

    /// The latency 95% of first tokens come within, without prefill.
    fn p95(&self) -> f64 {
        self.mean + 1.65 * self.sd
    }
}

/// SplitMix64 over the request's seed: the decision's only randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// One upstream of a model, scored for this request.
struct Scored<'a> {
    upstream: &'a str,
    unavailable: bool,
    wait_ms: f64,
    deadline_ms: u32,
}

/// The upstreams of `model`, best first, each with its deadline.
fn rank<'a>(c: &Learn, r: &Request, model: &'a Candidate, rng: &mut Rng) -> Vec<Scored<'a>> {
    let now = r.received_at_unix_ms();
    let conversation = r.conversation();
    let warm_upstream = conversation
        .last_upstream
        .as_deref()
        .filter(|_| conversation.last_model.as_deref() == Some(model.model.as_str()))
        .filter(|_| {
            conversation
                .since_last_ms
                .is_some_and(|ms| ms <= c.warm_for_ms)
        });
    let ktokens = r.input_tokens() as f64 / 1000.0;
    let beliefs: Vec<Belief> = model
        .upstreams
        .iter()
        .map(|s| {
            let arm = Arm::load(&model.model, &s.upstream).at(now, c.half_life_ms);
            Belief::of(c, &arm, s)
        })
        .collect();
    // The latency a healthy upstream of this model achieves: the base of every deadline.
    let best = model
        .upstreams
        .iter()
        .zip(&beliefs)
        .filter(|(s, _)| s.health != Health::Unavailable)
        .map(|(_, b)| b.p95())
        .fold(f64::INFINITY, f64::min);
    let best = if best.is_finite() {
        best
    } else {
        f64::from(c.prior_ttft_ms)
    };
    let base_deadline = (c.deadline_factor * best)
        .clamp(f64::from(c.min_deadline_ms), f64::from(c.max_deadline_ms));
    let mut scored: Vec<Scored<'a>> = model
        .upstreams
        .iter()
        .zip(&beliefs)
        .map(|(s, b)| {
            let warm = warm_upstream == Some(s.upstream.as_str());
            let cached_share = if warm { b.warm_hit } else { 0.0 };
            let uncached = ktokens * (1.0 - cached_share);
            let uncached_bound = if warm {
                ktokens.min(uncached + WARM_NEW_KTOKENS)
            } else {
                ktokens
            };
            let prefill = b.prefill.max(c.prefill_ms_per_1k_tokens);
            let deadline = base_deadline + 2.0 * prefill * uncached_bound;
            let (z_latency, z_failure) = if c.explore {
                (rng.normal(), rng.normal())
            } else {
                (0.0, 0.0)
            };
            let latency = (b.mean + z_latency * b.sd / b.weight.sqrt()).max(0.0);
            let p_sd = (b.p * (1.0 - b.p) / (b.p_weight + 1.0)).sqrt();
            let mut p = (b.p + z_failure * p_sd).clamp(0.0, 1.0);
            if s.health == Health::Degraded || s.remaining_requests == Some(0) {
                p = p.max(0.5);
            }
            // The input's cost there (the output costs the same on every upstream of a model).
            let usd = (uncached * model.input_usd_per_mtok
                + (ktokens - uncached) * model.cached_input_usd_per_mtok)
                / 1000.0;
            let wait_ms = (1.0 - p) * (latency + b.prefill * uncached)
                + p * deadline
                + usd / c.usd_per_second * 1000.0;
            Scored {
                upstream: &s.upstream,
                unavailable: s.health == Health::Unavailable,
                wait_ms,
                deadline_ms: deadline.clamp(1.0, f64::from(u32::MAX)) as u32,
            }
        })
        .collect();
    scored.sort_by(|a, b| {
        (a.unavailable, a.wait_ms)
            .partial_cmp(&(b.unavailable, b.wait_ms))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.upstream.cmp(b.upstream))
    });
    scored
}

/// One target of the route.
struct Planned<'a> {
    model: &'a str,
    upstream: Option<&'a str>,
    deadline_ms: u32,
}

/// Whether a failed attempt was never sent (the host skipped it).
fn skipped(failure: &str) -> bool {
    ["skipped", "not tried", "not retried"]
        .iter()
        .any(|p| failure.starts_with(p))
}

/// Whether a failed attempt is the upstream's fault: a timeout, a broken or refused connection,
/// a 408, 409, 425, 429 or 5xx; not the client's own error (another 4xx, a context too long).
fn charged(failure: &str) -> bool {
    if skipped(failure) || failure.starts_with("context length") {
        return false;
    }
    match failure
        .strip_prefix("HTTP ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse::<u16>().ok())
    {
        Some(code) => matches!(code, 408 | 409 | 425 | 429) || code >= 500,
        None => true,
    }
}

/// The reference adaptive policy.
pub struct Adaptive;

impl Policy for Adaptive {
    type Config = Config;

    fn validate(c: &Config) -> Result<(), String> {
        flash_first_rule::validate(&c.rule)?;
        let l = &c.learn;
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
        check(
            l.half_life_ms >= 1_000,
            "half_life_ms must be at least 1000",
        )?;
        check(
            l.deadline_factor.is_finite() && l.deadline_factor >= 1.0,
            "deadline_factor must be at least 1",
        )?;
        check(
            l.min_deadline_ms >= 1 && l.min_deadline_ms <= l.max_deadline_ms,
            "min_deadline_ms must be positive and at most max_deadline_ms",
        )?;
        check(
            l.prefill_ms_per_1k_tokens.is_finite() && l.prefill_ms_per_1k_tokens >= 0.0,
            "prefill_ms_per_1k_tokens must be zero or more",
        )?;
        check(
            l.usd_per_second.is_finite() && l.usd_per_second > 0.0,
            "usd_per_second must be positive",
        )?;
        check(
            (1..=32).contains(&l.max_targets),
            "max_targets must be between 1 and 32",
        )
    }

    fn decide(c: &Config, r: &Request) -> Decision {
        let plan = match flash_first_rule::plan(&c.rule, r) {
            Ok(plan) => plan,
            Err(none) => return none.decision(r),
        };
        let mut rng = Rng(r.seed());
        let max = c.learn.max_targets as usize;
        let mut targets: Vec<Planned<'_>> = Vec::new();
        for (i, model) in plan.models.iter().enumerate() {
            // Leave a slot for each model after this one, while there are slots.
            let remaining = max.saturating_sub(targets.len());
            if remaining == 0 {
                break;
            }
            let slots = remaining.saturating_sub(plan.models.len() - 1 - i).max(1);
            if model.upstreams.is_empty() {
                targets.push(Planned {
                    model: &model.model,
                    upstream: None,
                    deadline_ms: 0,
                });
                continue;
            }
            let ranked = rank(&c.learn, r, model, &mut rng);
            targets.extend(ranked.into_iter().take(slots).map(|s| Planned {
                model: &model.model,
                upstream: Some(s.upstream),
                deadline_ms: s.deadline_ms,
            }));
        }
        let mut d: Option<Decision> = None;
        for (i, t) in targets.iter().enumerate() {
            let mut next = match d {
                None => Decision::route(t.model),
                Some(d) => d.fallback(t.model),
            };
            if let Some(upstream) = t.upstream {
                next = next.via(upstream);
            }
            // Abandon it early only for another upstream of the same model.
            if targets.get(i + 1).is_some_and(|n| n.model == t.model) && t.deadline_ms > 0 {
                next = next.first_token_deadline_ms(t.deadline_ms);
            }
            d = Some(next);
        }
        // (A plan names a model, and `max_targets` is at least 1.)
        let d = d.unwrap_or_else(|| plan.route());
        let conversation = r.conversation();
        let warm = match (&conversation.last_model, &conversation.last_upstream) {
            (Some(m), Some(u))
                if conversation
                    .since_last_ms
                    .is_some_and(|ms| ms <= c.learn.warm_for_ms) =>
            {
                Some(format!("{m}@{u}"))
            }
            _ => None,
        };
        let mut d = plan.finish(&c.rule, d, plan.reason).report_outcome();
        if let Some(warm) = warm {
            d = d.tag("warm", warm);
        }
        d
    }

    fn on_outcome(c: &Config, o: &Outcome) {
        let now = o.received_at_unix_ms;
        // A host that lists no attempts: the one that served it, if any.
        let served = o
            .model
            .as_deref()
            .zip(o.upstream.as_deref())
            .filter(|_| o.attempts.is_empty() && o.fallbacks == 0);
        let mut attempts: Vec<(&str, &str, bool, &str)> = o
            .attempts
            .iter()
            .map(|a| {
                (
                    a.model.as_str(),
                    a.upstream.as_str(),
                    a.ok,
                    a.failure.as_str(),
                )
            })
            .collect();
        attempts.extend(served.map(|(m, u)| (m, u, true, "")));
        let mut sent_before = false;
        for (model, upstream, ok, failure) in attempts {
            if !ok && skipped(failure) {
                continue;
            }
            if !ok && !charged(failure) {
                sent_before = true;
                continue;
            }
            let mut arm = Arm::load(model, upstream).at(now, c.learn.half_life_ms);
            arm.attempt(!ok);
            if ok && !sent_before {
                let (input, cached) = (
                    u64::from(o.input_tokens) as f64,
                    u64::from(o.cached_input_tokens) as f64,
                );
                if let Some(ttft) = o.ttft_ms {
                    arm.latency((input - cached).max(0.0) / 1000.0, f64::from(ttft));
                }
                if input > 0.0 && o.tag("warm") == Some(&format!("{model}@{upstream}")) {
                    arm.hit((cached / input).min(1.0));
                }
            }
            sent_before = true;
            arm.t = arm.t.max(now as f64);
            if let Err(e) = state::set(&key(model, upstream), &arm.encode()) {
                switchyard_sdk::warn!("{model} on {upstream} not recorded: {e}");
            }
        }
    }
}

switchyard_sdk::export_policy!(Adaptive);

#[cfg(test)]
mod tests;
