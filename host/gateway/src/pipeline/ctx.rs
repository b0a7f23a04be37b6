//! One request's context: what the access-log line and the metrics will say, the budget it holds,
//! and how far its upstream call got. Whatever path the request takes, dropping the context
//! finishes it exactly once: the in-flight gauge comes down, the metrics are recorded, the line is
//! written, and a reservation still held is charged (when a provider started work for it) or
//! released. That includes a client that hangs up, which drops the request's future at whatever
//! await it was in; the line then says status 499, as nginx logs it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderValue, Method};
use switchyard_upstream::{Progress, StreamEnd, StreamOutcome, Usage};

use super::body::BodyPermit;
use crate::accounts::Reservation;
use crate::cache::CacheOutcome;
use crate::conversations::{ConversationKey, Conversations};
use crate::learning::Learning;
use crate::live::tenant::Tenant;
use crate::observe::metrics::{Metrics, RequestLabels, StreamLabels, TenantLabels};
use crate::observe::recent::Record;
use crate::response::headers;
use crate::rollout::Rollouts;

/// The status logged for a request whose client went away before its response was sent.
pub(crate) const CLIENT_GONE: u16 = 499;

/// The request id and the seed a policy gets: the client's `x-request-id` when it is short and
/// plain, otherwise a new one; the seed is derived from the id (XXH3-64 of its bytes), so a
/// replayed `x-request-id` replays the policy's sampled choices.
pub(crate) fn request_id(headers: &HeaderMap) -> (Arc<str>, u64) {
    let id: Arc<str> = match headers
        .get(headers::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
    {
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
        {
            id.into()
        }
        _ => format!("req_{:016x}", fastrand::u64(..)).into(),
    };
    let seed = seed_of(&id);
    (id, seed)
}

/// The seed of request `id`.
pub(crate) fn seed_of(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// How a relayed stream ended, for the log.
#[derive(Debug, Clone, Default)]
struct StreamRecord {
    outcome: &'static str,
    events: u64,
    /// Events dropped because they were not JSON.
    malformed: u64,
    /// The targets cut before the one that finished, and why, when it was resumed.
    resumed: String,
}

/// Everything one access-log line says. Never holds a key or prompt text (but the prompt excerpt
/// when `server.log_prompts` is on).
#[derive(Debug)]
pub(crate) struct RequestCtx {
    pub id: Arc<str>,
    pub seed: u64,
    method: Method,
    path: String,
    /// The API the client spoke (`chat`, `messages`, `responses`; `-` for other endpoints), a
    /// label on the metrics and the access line.
    pub api: &'static str,
    /// The API the serving upstream was spoken to in (`-` until one answered): the client's own
    /// when it passed through, `chat` or `messages` when translated.
    pub wire: &'static str,
    pub started: Instant,
    pub span: tracing::Span,
    pub tenant: Option<Arc<str>>,
    pub policy_header: Option<HeaderValue>,
    pub model: Option<String>,
    pub upstream: Option<Arc<str>>,
    pub attempts: usize,
    /// Every attempt's target and result, for the policy's outcome.
    pub attempt_list: Vec<switchyard_upstream::AttemptSummary>,
    pub decision: Option<Duration>,
    pub stream: bool,
    pub status: u16,
    pub usage: Option<Usage>,
    pub cost_usd: Option<f64>,
    /// The cost is the host's estimate: the provider reported no usage, or the request ended
    /// before it could.
    pub cost_estimated: bool,
    /// What a cache hit saved: the cost of the stored response at today's prices.
    pub saved_usd: Option<f64>,
    pub cache: CacheOutcome,
    pub tags: Vec<(String, String)>,
    pub error: Option<String>,
    /// The start of the last user message, only when `server.log_prompts` is on.
    pub prompt: Option<String>,
    /// When the response head (or a stream's first event) went out, from `started`.
    pub first_byte: Option<Duration>,
    /// Time spent waiting on upstreams before the first byte.
    pub upstream_wait: Duration,
    /// How far the upstream call got (read when the request is dropped in the middle of it).
    pub progress: Arc<Progress>,
    /// The route's models and upstreams, in order, to name the target of an abandoned attempt.
    pub route: Vec<(String, Arc<str>)>,
    /// When the request arrived (the summary's `received-at`).
    pub received_at: SystemTime,
    /// What is left of the tenant's rate limits this minute.
    pub requests_remaining: Option<u32>,
    pub tokens_remaining: Option<u32>,
    /// The conversation the request continues, and its tenant, for the record a finished turn
    /// leaves (see [`Finish`]).
    pub conversation: Option<ConversationKey>,
    /// The upstream that served the conversation's last turn, as it stood when the request was
    /// summarised.
    pub last_upstream: Option<Arc<str>>,
    /// What the request's end tells the host and the policy.
    pub finish: Option<Finish>,
    /// The budget held for this request, and the estimate it was reserved at.
    reservation: Option<(Reservation, f64)>,
    /// Hard budgets: the output tokens the reservation covers.
    pub output_budget: Option<u64>,
    /// The request body's bytes in the gateway's in-flight body budget, held until the request
    /// (or its stream) ends.
    pub body: Option<BodyPermit>,
    stream_end: Option<StreamRecord>,
    metrics: Arc<Metrics>,
    /// False once the record has been written (or handed to a stream that will write it).
    live: bool,
}

impl RequestCtx {
    /// A new request: counted in flight from now until the context is dropped.
    pub fn start(
        id: Arc<str>,
        seed: u64,
        method: Method,
        path: &str,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.in_flight.inc();
        let span = request_span(&id, &method, path);
        RequestCtx {
            id,
            seed,
            method,
            path: path.to_owned(),
            api: "-",
            wire: "-",
            started: Instant::now(),
            span,
            tenant: None,
            policy_header: None,
            model: None,
            upstream: None,
            attempts: 0,
            attempt_list: Vec::new(),
            decision: None,
            stream: false,
            status: CLIENT_GONE,
            usage: None,
            cost_usd: None,
            cost_estimated: false,
            saved_usd: None,
            cache: CacheOutcome::Bypass,
            tags: Vec::new(),
            error: None,
            prompt: None,
            first_byte: None,
            upstream_wait: Duration::ZERO,
            progress: Arc::default(),
            route: Vec::new(),
            received_at: SystemTime::now(),
            requests_remaining: None,
            tokens_remaining: None,
            conversation: None,
            last_upstream: None,
            finish: None,
            reservation: None,
            output_budget: None,
            body: None,
            stream_end: None,
            metrics,
            live: true,
        }
    }

    /// Holds `reservation` (reserved at `estimate` USD) until the request settles it.
    pub fn hold(&mut self, reservation: Reservation, estimate: f64) {
        self.reservation = Some((reservation, estimate));
    }

    /// Settles the held reservation with the cost of the response, `estimated` when the host
    /// worked it out from what was delivered because the provider reported no usage.
    pub fn settle(&mut self, usage: Option<Usage>, cost: f64, estimated: bool) {
        self.usage = usage;
        self.cost_estimated = estimated;
        self.cost_usd = Some(cost);
        if let Some((reservation, _)) = self.reservation.take() {
            reservation.settle(cost);
        }
    }

    /// Records how a relayed stream ended.
    pub fn stream_ended(&mut self, end: &StreamEnd) {
        let outcome = match &end.outcome {
            StreamOutcome::Completed if !end.resumed.is_empty() => "resumed",
            StreamOutcome::Failed(reason)
            | StreamOutcome::Truncated(reason)
            | StreamOutcome::BudgetExceeded(reason) => {
                self.error = Some(reason.clone());
                end.outcome.label()
            }
            other => other.label(),
        };
        let resumed = end
            .resumed
            .iter()
            .map(|s| format!("{} via {}: {}", s.model, s.upstream, s.cut))
            .collect::<Vec<_>>()
            .join("; ");
        if let Some((model, upstream)) = &end.last_target {
            self.tags
                .push(("resumed-on".into(), format!("{model}@{upstream}")));
        }
        self.attempts += end.resume_attempts.len();
        self.attempt_list
            .extend(end.resume_attempts.iter().cloned());
        self.stream_end = Some(StreamRecord {
            outcome,
            events: end.events,
            malformed: end.malformed,
            resumed,
        });
    }

    /// Moves this request's record into a new context that a stream body owns and drops when the
    /// stream ends; this one is left silent.
    pub fn hand_over(&mut self) -> RequestCtx {
        self.live = false;
        RequestCtx {
            id: self.id.clone(),
            seed: self.seed,
            method: self.method.clone(),
            path: std::mem::take(&mut self.path),
            api: self.api,
            wire: self.wire,
            started: self.started,
            span: self.span.clone(),
            tenant: self.tenant.take(),
            policy_header: self.policy_header.clone(),
            model: self.model.take(),
            upstream: self.upstream.take(),
            attempts: self.attempts,
            attempt_list: std::mem::take(&mut self.attempt_list),
            decision: self.decision,
            stream: self.stream,
            status: self.status,
            usage: self.usage.take(),
            cost_usd: self.cost_usd.take(),
            cost_estimated: self.cost_estimated,
            saved_usd: self.saved_usd.take(),
            cache: self.cache,
            tags: std::mem::take(&mut self.tags),
            error: self.error.take(),
            prompt: self.prompt.take(),
            first_byte: self.first_byte,
            upstream_wait: self.upstream_wait,
            progress: self.progress.clone(),
            route: std::mem::take(&mut self.route),
            received_at: self.received_at,
            requests_remaining: self.requests_remaining,
            tokens_remaining: self.tokens_remaining,
            conversation: self.conversation,
            last_upstream: self.last_upstream.take(),
            finish: self.finish.take(),
            reservation: self.reservation.take(),
            output_budget: self.output_budget,
            body: self.body.take(),
            stream_end: None,
            metrics: self.metrics.clone(),
            live: true,
        }
    }

    /// Settles whatever is still held as an abandoned request: a provider that received the
    /// request is paid the estimate; otherwise the reservation is released.
    fn settle_abandoned(&mut self) {
        if self.model.is_none()
            && let Some(i) = self.progress.last_target()
            && let Some((model, upstream)) = self.route.get(i)
        {
            self.model = Some(model.clone());
            self.upstream = Some(upstream.clone());
        }
        if self.attempts == 0 {
            self.attempts = self.progress.sent() as usize;
        }
        if let Some((reservation, estimate)) = self.reservation.take() {
            if self.progress.sent() > 0 {
                self.cost_usd = Some(estimate);
                self.cost_estimated = true;
                reservation.settle(estimate);
            } else {
                drop(reservation); // released: nothing was sent, nothing was spent
            }
        }
    }

    fn record_metrics(&self) {
        let m = &self.metrics;
        let tenant = self.tenant.as_deref().unwrap_or("-");
        let model = self.model.as_deref().unwrap_or("-");
        m.requests
            .get_or_create(&RequestLabels {
                tenant: tenant.to_owned(),
                model: model.to_owned(),
                status: self.status,
                cache: self.cache.as_str(),
                api: self.api,
            })
            .inc();
        let series = m.series(tenant, model);
        let total = self.started.elapsed();
        let first_byte = self.first_byte.unwrap_or(total);
        series.latencies(
            m,
            total,
            first_byte,
            first_byte.saturating_sub(self.upstream_wait),
        );
        if let Some(d) = self.decision {
            series.decision(m, d);
        }
        if let Some(u) = self.usage
            && self.cache != CacheOutcome::Hit
        {
            let counts = [
                u.uncached_prompt_tokens(),
                u.cached_prompt_tokens,
                u.completion_tokens,
            ];
            for (kind, n) in counts.into_iter().enumerate() {
                series.tokens(m, kind, n);
            }
        }
        if let Some(stream) = &self.stream_end {
            m.streams
                .get_or_create(&StreamLabels {
                    tenant: tenant.to_owned(),
                    outcome: stream.outcome,
                })
                .inc();
            if stream.malformed > 0 {
                m.stream_events_dropped
                    .get_or_create(&TenantLabels {
                        tenant: tenant.to_owned(),
                    })
                    .inc_by(stream.malformed);
            }
        }
        if let Some(c) = self.cost_usd.filter(|c| *c > 0.0) {
            series.cost(m, c, self.cost_estimated);
        }
        if let Some(s) = self.saved_usd.filter(|s| *s > 0.0) {
            series.saved(m, s);
        }
    }

    fn record_on_span(&self) {
        let span = &self.span;
        if let Some(t) = &self.tenant {
            span.record("tenant", &**t);
        }
        if let Some(p) = self.policy_header.as_ref().and_then(|h| h.to_str().ok()) {
            span.record("policy", p);
        }
        if let Some(m) = &self.model {
            span.record("model", m.as_str());
        }
        if let Some(d) = self.decision {
            span.record("decision_us", d.as_micros() as u64);
        }
        span.record("attempts", self.attempts);
        span.record("status", self.status);
        span.record("latency_ms", self.started.elapsed().as_secs_f64() * 1000.0);
        if self.status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
    }

    fn write_line(&self) {
        let usage = self.usage.unwrap_or_default();
        let tags = self
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let stream = self.stream_end.clone().unwrap_or_default();
        tracing::info!(
            target: "switchyard::access",
            request_id = %self.id,
            method = %self.method,
            path = %self.path,
            api = self.api,
            upstream_api = self.wire,
            status = self.status,
            tenant = self.tenant.as_deref().unwrap_or("-"),
            policy = self.policy_header.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("-"),
            model = self.model.as_deref().unwrap_or("-"),
            upstream = self.upstream.as_deref().unwrap_or("-"),
            attempts = self.attempts,
            stream = self.stream,
            stream_outcome = stream.outcome,
            stream_events = stream.events,
            stream_malformed = stream.malformed,
            stream_resumed = %stream.resumed,
            decision_us = self.decision.map_or(0, |d| d.as_micros() as u64),
            latency_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            prompt_tokens = usage.prompt_tokens,
            cached_prompt_tokens = usage.cached_prompt_tokens,
            completion_tokens = usage.completion_tokens,
            cost_usd = self.cost_usd.unwrap_or(0.0),
            cost_estimated = self.cost_estimated,
            saved_usd = self.saved_usd.unwrap_or(0.0),
            cache = self.cache.as_str(),
            tags = %tags,
            error = self.error.as_deref().unwrap_or(""),
            prompt = self.prompt.as_deref(),
            "request"
        );
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        self.live = false;
        self.settle_abandoned();
        if self.status == CLIENT_GONE && self.error.is_none() {
            self.error = Some("the client went away before the response was sent".into());
        }
        self.metrics.in_flight.dec();
        self.record_metrics();
        self.record_on_span();
        self.write_line();
        if let Some(finish) = self.finish.take() {
            finish.run(self);
        }
        // The console's ring of recent requests (observe/recent.rs): last, as the record's
        // fields are moved out of the context, not copied.
        let record = self.record();
        self.metrics.recent.push(record);
    }
}

impl RequestCtx {
    /// Moves a finished request's fields out of its context into the console's record.
    fn record(&mut self) -> Record {
        Record {
            seq: 0,
            id: self.id.clone(),
            received_at: self.received_at,
            api: self.api,
            tenant: self.tenant.take(),
            policy: self.policy_header.take(),
            model: self.model.take(),
            upstream: self.upstream.take(),
            attempts: self.attempts,
            attempt_list: std::mem::take(&mut self.attempt_list),
            decision: self.decision,
            stream: self.stream,
            status: self.status,
            usage: self.usage,
            cost_usd: self.cost_usd,
            cost_estimated: self.cost_estimated,
            saved_usd: self.saved_usd,
            cache: self.cache,
            tags: std::mem::take(&mut self.tags),
            error: self.error.take(),
            prompt: self.prompt.take(),
            total: self.started.elapsed(),
            first_byte: self.first_byte,
            upstream_wait: self.upstream_wait,
        }
    }
}

/// What a finished request leaves behind beyond its log line: the conversation's record (a turn
/// some upstream served) and, when the decision asked, the outcome for the policy to learn from.
#[derive(Debug)]
pub(crate) struct Finish {
    pub tenant: Arc<Tenant>,
    pub conversations: Arc<Conversations>,
    pub learning: Option<Arc<Learning>>,
    pub endpoint: switchyard_policy::types::Endpoint,
    /// A canary's request: counted when it ends (with whether its decision already failed).
    pub canary: Option<(Arc<Rollouts>, bool)>,
}

impl Finish {
    fn run(self, ctx: &RequestCtx) {
        if let Some((rollouts, policy_failed)) = &self.canary {
            rollouts.canary_finished(&self.tenant, *policy_failed || ctx.status >= 500, false);
        }
        let Some(conversation) = ctx.conversation else {
            return;
        };
        if let (Some(model), Some(upstream)) = (&ctx.model, &ctx.upstream)
            && ctx.status < 400
            && ctx.cache != CacheOutcome::Hit
        {
            self.conversations.served(
                &self.tenant.name,
                conversation.key,
                model,
                upstream,
                ctx.usage,
            );
        }
        let Some(learning) = self.learning else {
            return;
        };
        let usage = ctx.usage.unwrap_or_default();
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let outcome = switchyard_policy::types::Outcome {
            request_id: ctx.id.to_string(),
            endpoint: self.endpoint,
            conversation_key: conversation.key,
            model: ctx.model.clone(),
            upstream: ctx.upstream.as_deref().map(str::to_owned),
            status: ctx.status,
            ttft_ms: ctx.first_byte.map(ms),
            total_ms: ms(ctx.started.elapsed()),
            input_tokens: crate::routing::tokens(usage.prompt_tokens),
            cached_input_tokens: crate::routing::tokens(usage.cached_prompt_tokens),
            output_tokens: crate::routing::tokens(usage.completion_tokens),
            cost_usd: ctx.cost_usd.unwrap_or(0.0),
            fallbacks: ctx.attempts.saturating_sub(1) as u32,
            attempts: ctx
                .attempt_list
                .iter()
                .map(|a| switchyard_policy::types::Attempt {
                    model: a.model.clone(),
                    upstream: a.upstream.clone(),
                    ok: a.outcome == "ok",
                    failure: if a.outcome == "ok" {
                        String::new()
                    } else {
                        a.outcome.clone()
                    },
                })
                .collect(),
            tags: ctx
                .tags
                .iter()
                .map(|(k, v)| switchyard_policy::types::Pair {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            received_at_unix_ms: ctx
                .received_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        learning.report(self.tenant, outcome);
    }
}

/// The request's span. With export on it also carries OpenTelemetry's name, kind and status;
/// without it those fields would only clutter the log lines that print the span.
fn request_span(id: &str, method: &Method, path: &str) -> tracing::Span {
    macro_rules! request_span {
        ($($otel:tt)*) => {
            tracing::info_span!(
                "request",
                $($otel)*
                id = %id,
                tenant = tracing::field::Empty,
                policy = tracing::field::Empty,
                model = tracing::field::Empty,
                attempts = tracing::field::Empty,
                decision_us = tracing::field::Empty,
                status = tracing::field::Empty,
                latency_ms = tracing::field::Empty,
            )
        };
    }
    if crate::observe::telemetry::exporting() {
        request_span!(
            otel.name = %format_args!("{method} {path}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
        )
    } else {
        request_span!()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_is_derived_from_the_request_id() {
        let mut h = HeaderMap::new();
        h.insert(headers::REQUEST_ID, "replay-me-1".parse().unwrap());
        let (id, seed) = request_id(&h);
        assert_eq!(&*id, "replay-me-1");
        assert_eq!(seed, request_id(&h).1, "the same id, the same seed");
        assert_eq!(seed, xxhash_rust::xxh3::xxh3_64(b"replay-me-1"));
        h.insert(headers::REQUEST_ID, "replay-me-2".parse().unwrap());
        assert_ne!(seed, request_id(&h).1);
        // A generated id's seed is derived from it too.
        let (generated, seed) = request_id(&HeaderMap::new());
        assert!(generated.starts_with("req_"));
        assert_eq!(seed, seed_of(&generated));
    }

    #[test]
    fn a_dropped_context_counts_down_once() {
        let metrics = Arc::new(Metrics::default());
        let ctx = RequestCtx::start(
            "r".into(),
            1,
            Method::POST,
            "/v1/chat/completions",
            metrics.clone(),
        );
        assert_eq!(metrics.in_flight.get(), 1);
        let mut ctx = ctx;
        let handed = ctx.hand_over();
        drop(ctx);
        assert_eq!(metrics.in_flight.get(), 1, "the stream still holds it");
        drop(handed);
        assert_eq!(metrics.in_flight.get(), 0);
    }

    fn ctx(metrics: &Arc<Metrics>, id: &str) -> RequestCtx {
        let mut ctx = RequestCtx::start(
            id.into(),
            1,
            Method::POST,
            "/v1/chat/completions",
            metrics.clone(),
        );
        ctx.tenant = Some("a".into());
        ctx.model = Some("m".into());
        ctx.status = 200;
        ctx.tags = vec![("reason".into(), "cheap".into())];
        ctx
    }

    #[test]
    fn a_finished_request_leaves_its_record_in_the_ring() {
        let metrics = Arc::new(Metrics::default());
        drop(ctx(&metrics, "r1"));
        let (row, _) = metrics.recent.find("r1");
        let row = row.expect("kept");
        assert_eq!(row["tenant"], "a");
        assert_eq!(row["tags"][0][1], "cheap");
        assert_eq!(metrics.recent.next_seq(), 1);
    }

    /// The request path's cost of the console, with and without a watcher. Run with
    /// `cargo test -p switchyard-gateway --release --lib console_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn console_cost() {
        let metrics = Arc::new(Metrics::default());
        let (rounds, batch) = (50, 1000);
        // Kept until the end: dropped, each context would hand the ring a second, empty record.
        let mut graveyard = Vec::with_capacity(2 * rounds * batch);
        // Contexts made a batch at a time (warm in the cache, as a request's own context is);
        // only handing their records over is timed. Without the ring the record's fields would be
        // dropped right there: that is timed too, and the difference is what the ring adds.
        let mut timed = |keep: bool| {
            let mut total = std::time::Duration::ZERO;
            for round in 0..rounds {
                let mut contexts: Vec<RequestCtx> = (0..batch)
                    .map(|i| ctx(&metrics, &format!("r{round}-{i}")))
                    .collect();
                let started = std::time::Instant::now();
                for c in &mut contexts {
                    let record = c.record();
                    if keep {
                        metrics.recent.push(record);
                    } else {
                        drop(std::hint::black_box(record));
                    }
                }
                total += started.elapsed();
                graveyard.extend(contexts);
            }
            total / (rounds * batch) as u32
        };
        let dropped = timed(false);
        let record = timed(true);
        let n = rounds * batch;
        let mut summary = switchyard_policy::defaults::summary("r1", "a", "{}");
        summary.last_user_excerpt = "x".repeat(500);
        summary.candidates = ["deepseek-v4-flash", "deepseek-v4-pro", "gpt-5.5"]
            .iter()
            .map(|m| switchyard_policy::defaults::candidate(m, "simulated"))
            .collect();
        let started = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(metrics.recent.watch(&mut summary, false));
        }
        let unwatched = started.elapsed() / n as u32;
        let _guard = metrics.recent.subscribe();
        let policy = HeaderValue::from_static("p@123");
        let decision = Ok(switchyard_policy::types::Decision::Reject(
            switchyard_policy::types::Rejection {
                status: 429,
                code: "x".into(),
                message: "y".into(),
            },
        ));
        let started = std::time::Instant::now();
        for _ in 0..n {
            if let Some(w) = metrics.recent.watch(&mut summary, false) {
                w.decided(&policy, &decision);
            }
        }
        let watched = started.elapsed() / n as u32;
        drop(graveyard);
        eprintln!(
            "record into the ring: {record:?} (its fields dropped instead: {dropped:?}); detail, \
             nobody watching: {unwatched:?}; detail, watched: {watched:?} (summary with {} candidates)",
            summary.candidates.len()
        );
    }
}
