//! The fallback loop: try each target of the route in order until one starts a response.
//!
//! The commit point is the first byte sent to the client. Before it, any retryable failure moves
//! on: to the same target again when its `retries` allow and the failure is transient (after a
//! backoff, or the upstream's `Retry-After` when it fits), else to the next target. After it,
//! nothing is sent twice: a cut stream either ends with an error event or, when the tenant opted
//! in, is continued by a [`Resumer`] on a later target from the text already delivered. For
//! non-streaming requests the whole upstream response is read before committing (it is small and
//! carries the usage); for streams, [`super::relay::start`] reads up to the first substantive
//! event.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Limited};
use tokio::time::{Instant, timeout_at};
use tracing::Instrument;

use crate::chat::{ChatRequest, Overrides, SplicedBody, rewrite};
use crate::client::{ResumeVia, UpstreamClient};
use crate::dialect::{self, Api};
use crate::failure::{
    FailureClass, UpstreamFailure, client_status_for, error_code, error_message,
    is_context_length_error, retry_after,
};
use crate::health::{Admission, Breakers, RetryBudget};
use crate::passthrough::Original;
use crate::redact::Redactor;
use crate::relay::{self, StreamStart};
use crate::usage::Usage;

/// Largest non-streaming response read from an upstream.
const MAX_RESPONSE_BYTES: usize = 64 << 20;
/// Largest error body read to explain a failure.
const MAX_ERROR_BYTES: usize = 64 << 10;
/// First wait before trying the same upstream and model again; doubles each time.
const SAME_TARGET_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait before trying the same upstream and model again. A `Retry-After` that asks for
/// longer moves on to the next target instead.
const MAX_SAME_TARGET_WAIT: Duration = Duration::from_secs(5);

/// One resolved target: a model on a specific upstream, with its own time limits.
#[derive(Debug, Clone)]
pub struct PlannedTarget {
    pub model: String,
    pub upstream: Arc<UpstreamClient>,
    pub context_window: u64,
    pub limits: TargetLimits,
}

impl PlannedTarget {
    /// Times this target is tried again after a transient failure: the decision's count, else
    /// the upstream's configured default.
    pub fn retries(&self) -> u8 {
        self.limits
            .retries
            .unwrap_or(self.upstream.settings.retries)
    }
}

/// What a decision (or the upstream's config) sets for one target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetLimits {
    /// Move on when no substantive event (or, not streaming, no whole response) has come within
    /// this long of sending: the first-token deadline. `None`: only the first-byte timeout.
    pub first_token: Option<Duration>,
    /// The longest one attempt may take (default: the upstream's request timeout).
    pub attempt: Option<Duration>,
    /// Times to try this target again after a transient failure before moving on; `None`: the
    /// upstream's `retries` setting.
    pub retries: Option<u8>,
}

/// What the client sent, in the forms an attempt may need.
#[derive(Clone, Copy)]
pub struct Outbound<'a> {
    /// The request as chat completions: the client's own body, or its translation.
    pub chat: &'a ChatRequest,
    /// The client's body when it spoke another dialect, for upstreams that speak that one too.
    pub original: Option<&'a Original>,
}

impl<'a> Outbound<'a> {
    /// A chat-completions request.
    pub fn chat(chat: &'a ChatRequest) -> Self {
        Outbound {
            chat,
            original: None,
        }
    }
}

/// What the winning attempt produced.
pub enum DeliveredBody {
    /// A complete JSON response in the upstream's dialect `wire`
    /// ([`dialect::response_chat_view`] reads it as a `chat.completion` when `wire` is not chat).
    Full {
        body: Bytes,
        wire: Api,
        usage: Option<Usage>,
    },
    /// A stream past its commit point.
    Stream(StreamStart),
}

/// The successful outcome of the loop.
pub struct Delivered {
    pub model: String,
    pub upstream: Arc<UpstreamClient>,
    /// The target's index in the route (a cut stream resumes on the targets after it).
    pub index: usize,
    /// Every attempt, failures first, in order (the last one succeeded).
    pub attempts: Vec<AttemptSummary>,
    pub body: DeliveredBody,
    /// Time spent in upstream attempts up to the commit (the rest of the time to first byte is
    /// the gateway's own).
    pub upstream_time: Duration,
}

pub use crate::attempt::AttemptSummary;

/// Why no target answered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    /// An upstream refused the request in a way every other would too (a client error); the
    /// status is what the client should see.
    #[error("{message}")]
    Rejected {
        status: u16,
        message: String,
        /// The provider's own error code, when it sent one.
        code: Option<String>,
        attempts: Vec<AttemptSummary>,
    },
    /// Every target failed, was skipped or was not tried.
    #[error("all upstream attempts failed")]
    AllFailed {
        attempts: Vec<AttemptSummary>,
        all_timed_out: bool,
    },
}

impl ExecError {
    /// Every attempt, in order.
    pub fn attempts(&self) -> &[AttemptSummary] {
        match self {
            ExecError::Rejected { attempts, .. } | ExecError::AllFailed { attempts, .. } => {
                attempts
            }
        }
    }
}

/// Told about every attempt as it ends (the gateway counts them in its metrics).
pub trait AttemptObserver: Send + Sync {
    /// `outcome` is `ok` or the failure class's label.
    fn attempt(&self, upstream: &str, model: &str, outcome: &'static str);
}

/// How attempts join the request's trace.
pub trait TracePropagation: Send + Sync {
    /// Whether each attempt gets a span of its own.
    fn spans(&self) -> bool;
    /// The trace-context headers to send upstream for an attempt running in `span`.
    fn headers(&self, span: &tracing::Span) -> Vec<(&'static str, HeaderValue)>;
}

/// How far the loop got, readable while it runs: a request dropped in the middle (its client
/// left) still knows whether a provider started work for it, and where.
#[derive(Debug, Default)]
pub struct Progress {
    sent: AtomicU32,
    /// Index of the target of the attempt last sent, plus one.
    target: AtomicUsize,
}

impl Progress {
    /// Attempts sent to an upstream so far.
    pub fn sent(&self) -> u32 {
        self.sent.load(Ordering::Acquire)
    }

    /// Index in the route of the target last sent to.
    pub fn last_target(&self) -> Option<usize> {
        self.target.load(Ordering::Acquire).checked_sub(1)
    }
}

/// Per-request inputs of the loop.
pub struct ExecOptions<'a> {
    pub request_id: &'a str,
    pub overrides: Overrides,
    pub deadline: Instant,
    pub redactor: &'a Redactor,
    pub breakers: &'a Breakers,
    pub retry_budget: &'a RetryBudget,
    pub observer: &'a dyn AttemptObserver,
    pub trace: &'a dyn TracePropagation,
    pub progress: &'a Progress,
    pub stats: &'a crate::stats::UpstreamStats,
}

/// Tries `targets` in order. Returns the first success, or an error listing every attempt.
pub async fn execute(
    targets: &[PlannedTarget],
    request: Outbound<'_>,
    opts: &ExecOptions<'_>,
) -> Result<Delivered, ExecError> {
    let mut attempts: Vec<AttemptSummary> = Vec::with_capacity(targets.len());
    let mut failures: Vec<UpstreamFailure> = Vec::with_capacity(targets.len());
    let mut tried: HashMap<(&str, &str), u32> = HashMap::new();
    let mut needs_context_above: u64 = 0;
    let mut sent = 0usize;
    let mut upstream_time = Duration::ZERO;
    // Why the last target skipped for want of a translation could not carry the request.
    let mut untranslatable: Option<String> = None;
    opts.retry_budget.record_request();
    // The order targets are tried in: the route's, except that a target whose model and
    // upstream already failed waits behind a later one serving the same model on an upstream not
    // tried yet (a fallback "the same model anywhere" goes to the other upstream first, not back to
    // the one that just failed).
    let mut order: Vec<usize> = (0..targets.len()).collect();
    let mut position = 0;
    'targets: while position < order.len() {
        let index = order[position];
        position += 1;
        let target = &targets[index];
        let failed_here = tried.contains_key(&(target.model.as_str(), &*target.upstream.name));
        if failed_here
            && let Some(later) = order[position..].iter().position(|&j| {
                targets[j].model == target.model
                    && !tried.contains_key(&(targets[j].model.as_str(), &*targets[j].upstream.name))
            })
        {
            order.insert(position + later + 1, index);
            continue 'targets;
        }
        let summary = |outcome: String| AttemptSummary {
            model: target.model.clone(),
            upstream: target.upstream.name.to_string(),
            outcome,
        };
        let provider_model = target.upstream.provider_model(&target.model);
        let outgoing = match outgoing(&target.upstream, request, provider_model, &opts.overrides) {
            Ok(o) => o,
            Err(why) => {
                attempts.push(summary(format!("skipped: {why}")));
                untranslatable = Some(why);
                continue 'targets;
            }
        };
        let mut retries_left = target.retries();
        loop {
            if target.context_window <= needs_context_above {
                attempts.push(summary(format!(
                    "skipped: its {}-token context window is too small",
                    target.context_window
                )));
                continue 'targets;
            }
            // A probe is handed back if this attempt ends any way but with a result recorded.
            let probe = match opts.breakers.admit(&target.upstream.name, &target.model) {
                Admission::Rejected => {
                    attempts.push(summary("skipped: circuit open".into()));
                    continue 'targets;
                }
                Admission::Allowed => None,
                Admission::Probe(p) => Some(p),
            };
            // Every attempt after the first sent one spends the shared retry budget.
            if sent > 0 && !opts.retry_budget.try_extra_attempt() {
                attempts.push(summary("not tried: retry budget exhausted".into()));
                break 'targets;
            }
            // Never hit the same upstream and model again straight after it failed: wait, as
            // long as its `Retry-After` asks when that fits, else move on.
            let key = (target.model.as_str(), &*target.upstream.name);
            if let Some(n) = tried.get(&key) {
                let hinted = failures
                    .last()
                    .and_then(|f| f.retry_after)
                    .unwrap_or_default();
                let backoff = (SAME_TARGET_BACKOFF * 2u32.saturating_pow(*n - 1)).max(hinted);
                if backoff > MAX_SAME_TARGET_WAIT {
                    attempts.push(summary(format!(
                        "not retried: it asked to wait {} s",
                        backoff.as_secs()
                    )));
                    continue 'targets;
                }
                if Instant::now() + backoff >= opts.deadline {
                    // The wait would outlast the request; a later target may still answer now.
                    attempts.push(summary(
                        "not retried: its wait passes the request deadline".into(),
                    ));
                    continue 'targets;
                }
                tokio::time::sleep(backoff).await;
            }
            *tried.entry(key).or_default() += 1;
            if Instant::now() >= opts.deadline {
                let f = UpstreamFailure::new(FailureClass::DeadlineExceeded, "");
                attempts.push(summary(f.outcome()));
                failures.push(f);
                break 'targets;
            }
            sent += 1;
            opts.progress.target.store(index + 1, Ordering::Release);
            opts.progress.sent.fetch_add(1, Ordering::AcqRel);
            let attempt_started = Instant::now();
            let span = if opts.trace.spans() {
                tracing::info_span!(
                    "upstream.attempt",
                    otel.kind = "client",
                    upstream = %target.upstream.name,
                    model = %target.model,
                    attempt = sent,
                    outcome = tracing::field::Empty,
                    otel.status_code = tracing::field::Empty,
                )
            } else {
                tracing::Span::none()
            };
            let mut trace_headers = opts.trace.headers(&span);
            // Headers that belong to a passed-through body's dialect go with it.
            if let Some(original) = request.original
                && outgoing.0 == original.api
            {
                trace_headers.extend(original.forward.iter().cloned());
            }
            let in_flight = opts.stats.start(&target.upstream.name, &target.model);
            let result = attempt(target, &outgoing, request.chat.stream, opts, &trace_headers)
                .instrument(span.clone())
                .await;
            drop(in_flight);
            let took = attempt_started.elapsed();
            upstream_time += took;
            let outcome = settle_attempt(
                (opts.breakers, opts.stats, opts.observer),
                probe,
                target,
                &result,
                took,
            );
            span.record("outcome", outcome);
            if result.is_err() {
                span.record("otel.status_code", "ERROR");
            }
            drop(span);
            let failure = match result {
                Ok(body) => {
                    attempts.push(summary("ok".into()));
                    return Ok(Delivered {
                        model: target.model.clone(),
                        upstream: target.upstream.clone(),
                        index,
                        attempts,
                        body,
                        upstream_time,
                    });
                }
                Err(failure) => failure,
            };
            tracing::warn!(
                request_id = opts.request_id,
                model = %target.model,
                upstream = %target.upstream.name,
                outcome = %failure.outcome(),
                "upstream attempt failed"
            );
            attempts.push(summary(failure.outcome()));
            if failure.class == FailureClass::ContextLength {
                needs_context_above = needs_context_above.max(target.context_window);
            }
            if !failure.retryable() {
                let code = match failure.class {
                    FailureClass::Status(code) => code,
                    _ => 502,
                };
                return Err(ExecError::Rejected {
                    status: client_status_for(code),
                    message: format!(
                        "upstream {} refused the request: {}",
                        target.upstream.name,
                        failure.outcome()
                    ),
                    code: failure.code.clone(),
                    attempts,
                });
            }
            let again = retries_left > 0 && failure.retry_same_target();
            failures.push(failure);
            if !again {
                continue 'targets;
            }
            retries_left -= 1;
        }
    }
    if let (0, Some(why)) = (sent, untranslatable) {
        return Err(ExecError::Rejected {
            status: 400,
            message: why,
            code: None,
            attempts,
        });
    }
    let all_timed_out = !failures.is_empty() && failures.iter().all(UpstreamFailure::is_timeout);
    Err(ExecError::AllFailed {
        attempts,
        all_timed_out,
    })
}

/// What a resumption needs of the request, owned: a stream body outlives the request's future.
pub struct ResumeContext {
    /// The conversation as chat completions (the client's body, or its translation).
    pub chat: ChatRequest,
    pub overrides: Overrides,
    pub request_id: Arc<str>,
    /// When the whole request must be over.
    pub deadline: Instant,
    pub redactor: Redactor,
    pub breakers: Breakers,
    pub retry_budget: Arc<RetryBudget>,
    pub stats: crate::stats::UpstreamStats,
    pub observer: Arc<dyn AttemptObserver>,
}

/// Continues an answer whose stream was cut after its commit point on the targets of the route
/// after the one that served it: each gets the conversation plus the text delivered so far as the
/// start of the assistant's reply, and streams only what comes after it. Targets whose upstream
/// has no `resume` setting are passed over; so are targets that already failed this stream.
pub struct Resumer {
    targets: std::collections::VecDeque<PlannedTarget>,
    /// The target streaming now.
    current: (String, Arc<str>),
    /// Targets whose stream was cut, never asked to continue it.
    cut: Vec<(String, Arc<str>)>,
    ctx: ResumeContext,
    /// Every resumption attempt, in order.
    attempts: Vec<AttemptSummary>,
}

pub use crate::relay::Resumed;

impl crate::relay::Resume for Resumer {
    fn possible(&self) -> bool {
        Resumer::possible(self)
    }

    fn current(&self) -> &(String, Arc<str>) {
        Resumer::current(self)
    }

    fn attempts(&self) -> &[AttemptSummary] {
        Resumer::attempts(self)
    }

    fn resume<'a>(
        &'a mut self,
        prefix: &'a str,
        delivered_tokens: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Resumed, String>> + Send + 'a>>
    {
        Box::pin(Resumer::resume(self, prefix, delivered_tokens))
    }
}

impl Resumer {
    /// A resumer for a stream that `route[served]` started.
    pub fn new(route: &[PlannedTarget], served: usize, ctx: ResumeContext) -> Self {
        let current = route.get(served).map_or_else(
            || (String::new(), Arc::from("")),
            |t| (t.model.clone(), t.upstream.name.clone()),
        );
        Resumer {
            targets: route.iter().skip(served + 1).cloned().collect(),
            cut: Vec::new(),
            current,
            ctx,
            attempts: Vec::new(),
        }
    }

    /// Whether a later target of the route could continue the answer.
    pub fn possible(&self) -> bool {
        self.targets
            .iter()
            .any(|t| t.upstream.settings.resume.is_some())
    }

    /// The target streaming now: `(model, upstream)`.
    pub fn current(&self) -> &(String, Arc<str>) {
        &self.current
    }

    /// Every resumption attempt so far.
    pub fn attempts(&self) -> &[AttemptSummary] {
        &self.attempts
    }

    /// Asks the next targets in turn to continue the answer from `prefix` (the client has it);
    /// `delivered_tokens` come off the request's output limit. `Err` says why none did.
    pub async fn resume(&mut self, prefix: &str, delivered_tokens: u64) -> Result<Resumed, String> {
        let cut = std::mem::take(&mut self.current);
        self.cut.push(cut);
        let mut why = "no later target of the route resumes streams".to_owned();
        while let Some(target) = self.targets.pop_front() {
            let Some(via) = target.upstream.settings.resume.clone() else {
                continue;
            };
            let key = (target.model.clone(), target.upstream.name.clone());
            if self.cut.contains(&key) {
                continue;
            }
            let summary = |outcome: String| AttemptSummary {
                model: target.model.clone(),
                upstream: target.upstream.name.to_string(),
                outcome: format!("resuming: {outcome}"),
            };
            let probe = match self
                .ctx
                .breakers
                .admit(&target.upstream.name, &target.model)
            {
                Admission::Rejected => {
                    self.attempts.push(summary("skipped: circuit open".into()));
                    continue;
                }
                Admission::Allowed => None,
                Admission::Probe(p) => Some(p),
            };
            if !self.ctx.retry_budget.try_extra_attempt() {
                self.attempts
                    .push(summary("not tried: retry budget exhausted".into()));
                why = "the retry budget is exhausted".into();
                break;
            }
            if Instant::now() >= self.ctx.deadline {
                self.attempts
                    .push(summary("not tried: request deadline exceeded".into()));
                why = "the request deadline passed".into();
                break;
            }
            let in_flight = self.ctx.stats.start(&target.upstream.name, &target.model);
            let started = Instant::now();
            let result = self.attempt(&target, &via, prefix, delivered_tokens).await;
            drop(in_flight);
            let ctx = &self.ctx;
            settle_attempt(
                (&ctx.breakers, &ctx.stats, &*ctx.observer),
                probe,
                &target,
                &result,
                started.elapsed(),
            );
            match result {
                Ok((start, trimmed)) => {
                    self.attempts.push(summary("ok".into()));
                    self.current = key;
                    return Ok(Resumed { start, trimmed });
                }
                Err(failure) => {
                    tracing::warn!(
                        request_id = &*self.ctx.request_id,
                        model = %target.model,
                        upstream = %target.upstream.name,
                        outcome = %failure.outcome(),
                        "resuming a cut stream failed"
                    );
                    why = format!(
                        "{} via {} did not continue it: {}",
                        target.model,
                        target.upstream.name,
                        failure.outcome()
                    );
                    self.attempts.push(summary(failure.outcome()));
                    self.cut.push(key);
                }
            }
        }
        Err(why)
    }

    /// One resumption attempt: up to the continuation's first substantive event.
    async fn attempt(
        &self,
        target: &PlannedTarget,
        via: &ResumeVia,
        prefix: &str,
        delivered_tokens: u64,
    ) -> Result<(StreamStart, String), UpstreamFailure> {
        let up = &target.upstream;
        let started = Instant::now();
        let attempt_deadline = self.ctx.deadline.min(
            started
                + target
                    .limits
                    .attempt
                    .unwrap_or(up.settings.timeouts.request),
        );
        let first_token = target
            .limits
            .first_token
            .or(up.settings.timeouts.first_token);
        let first_event_deadline =
            first_token.map_or(attempt_deadline, |d| attempt_deadline.min(started + d));
        let first_event_deadline =
            first_event_deadline.min(started + up.settings.timeouts.first_byte);
        let (wire, body, trimmed) = resume_body(
            &self.ctx.chat,
            up.provider_model(&target.model),
            &self.ctx.overrides,
            via,
            prefix,
            delivered_tokens,
        )
        .map_err(|why| UpstreamFailure::new(FailureClass::Broken, why))?;
        let id = &*self.ctx.request_id;
        let send = async {
            match via {
                ResumeVia::ChatPrefix { .. } => up.send_prefix(body, id).await,
                ResumeVia::MessagesPrefill => up.send(Api::Messages, body, id, &[]).await,
            }
        };
        let response = match timeout_at(first_event_deadline, send).await {
            Err(_) => {
                return Err(UpstreamFailure::new(
                    FailureClass::Timeout,
                    "no response to the resumption",
                ));
            }
            Ok(Err(e)) => return Err(client_failure(&e, &self.ctx.redactor)),
            Ok(Ok(r)) => r,
        };
        if !response.status().is_success() {
            return Err(status_failure(response, attempt_deadline, &self.ctx.redactor).await);
        }
        let start = relay::start(wire, response, first_event_deadline, &self.ctx.redactor).await?;
        Ok((start.until(attempt_deadline), trimmed))
    }
}

/// The body asking `via` to continue the answer from `prefix`: the conversation with the prefix
/// as the start of the assistant's reply, streamed with usage, and the client's output limit
/// less what it already got. Returns the wire API, the body, and whitespace trimmed off the
/// prefix.
fn resume_body(
    chat: &ChatRequest,
    provider_model: &str,
    overrides: &Overrides,
    via: &ResumeVia,
    prefix: &str,
    delivered_tokens: u64,
) -> Result<(Api, SplicedBody, String), String> {
    let mut value: serde_json::Value = serde_json::from_slice(&chat.body)
        .map_err(|e| format!("the request cannot be read again: {e}"))?;
    let obj = value
        .as_object_mut()
        .ok_or("the request is not a JSON object")?;
    obj.insert("model".into(), provider_model.into());
    obj.insert("stream".into(), true.into());
    obj.insert(
        "stream_options".into(),
        serde_json::json!({"include_usage": true}),
    );
    if let Some(effort) = &overrides.reasoning_effort {
        obj.insert("reasoning_effort".into(), effort.as_str().into());
    }
    let limit = [chat.max_output_tokens(), overrides.max_output_tokens]
        .into_iter()
        .flatten()
        .min();
    if let Some(limit) = limit {
        obj.remove("max_completion_tokens");
        obj.insert(
            "max_tokens".into(),
            limit.saturating_sub(delivered_tokens).max(1).into(),
        );
    }
    let (content, trimmed) = match via {
        ResumeVia::ChatPrefix { .. } => (prefix, ""),
        ResumeVia::MessagesPrefill => {
            let kept = prefix.trim_end();
            (kept, &prefix[kept.len()..])
        }
    };
    let message = match via {
        ResumeVia::ChatPrefix { .. } => {
            serde_json::json!({"role": "assistant", "content": content, "prefix": true})
        }
        ResumeVia::MessagesPrefill => serde_json::json!({"role": "assistant", "content": content}),
    };
    obj.get_mut("messages")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or("the request has no messages")?
        .push(message);
    let (wire, body) = match via {
        ResumeVia::ChatPrefix { .. } => (Api::Chat, value),
        ResumeVia::MessagesPrefill => (
            Api::Messages,
            dialect::messages::request_from_chat(&value)
                .map_err(|e| format!("the conversation cannot be sent as Messages: {e}"))?,
        ),
    };
    Ok((
        wire,
        SplicedBody::whole(dialect::json_bytes(&body)),
        trimmed.to_owned(),
    ))
}

/// What every attempt leaves behind, whatever it returned: its circuit's record (the probe's, when
/// it was one), the upstream's statistics, and the attempt counter. Returns the outcome's label.
fn settle_attempt<T>(
    (breakers, stats, observer): (
        &Breakers,
        &crate::stats::UpstreamStats,
        &dyn AttemptObserver,
    ),
    probe: Option<crate::health::Probe>,
    target: &PlannedTarget,
    result: &Result<T, UpstreamFailure>,
    took: Duration,
) -> &'static str {
    let provider_failed = result
        .as_ref()
        .err()
        .is_some_and(UpstreamFailure::is_provider_failure);
    match probe {
        Some(p) => p.record(provider_failed),
        None => breakers.record(&target.upstream.name, &target.model, provider_failed),
    }
    stats.record(
        &target.upstream.name,
        &target.model,
        result.is_ok().then_some(took),
        provider_failed,
    );
    let outcome = match result {
        Ok(_) => "ok",
        Err(f) => f.class.label(),
    };
    observer.attempt(&target.upstream.name, &target.model, outcome);
    outcome
}

/// The body of one attempt and the dialect it is in: the client's own bytes when the upstream
/// speaks the client's dialect, else chat completions, else chat translated to Messages.
fn outgoing(
    up: &UpstreamClient,
    request: Outbound<'_>,
    provider_model: &str,
    overrides: &Overrides,
) -> Result<(Api, SplicedBody), String> {
    if let Some(original) = request.original
        && up.speaks(original.api)
        && original.can_carry(overrides)
    {
        return Ok((original.api, original.splice(provider_model, overrides)));
    }
    if up.speaks(Api::Chat) {
        return Ok((Api::Chat, rewrite(request.chat, provider_model, overrides)));
    }
    if up.speaks(Api::Messages) {
        let chat = rewrite(request.chat, provider_model, overrides).to_bytes();
        let chat: serde_json::Value = serde_json::from_slice(&chat)
            .map_err(|e| format!("internal translation error: {e}"))?;
        let messages = dialect::messages::request_from_chat(&chat).map_err(|e| {
            format!(
                "upstream {} speaks only Anthropic Messages, which cannot carry this request: {e}",
                up.name
            )
        })?;
        return Ok((
            Api::Messages,
            SplicedBody::whole(dialect::json_bytes(&messages)),
        ));
    }
    Err(format!(
        "upstream {} speaks none of the APIs this request can be sent in",
        up.name
    ))
}

async fn attempt(
    target: &PlannedTarget,
    (wire, body): &(Api, SplicedBody),
    stream: bool,
    opts: &ExecOptions<'_>,
    trace_headers: &[(&'static str, HeaderValue)],
) -> Result<DeliveredBody, UpstreamFailure> {
    let up = &target.upstream;
    let started = Instant::now();
    let attempt_deadline = opts.deadline.min(
        started
            + target
                .limits
                .attempt
                .unwrap_or(up.settings.timeouts.request),
    );
    let first_byte_deadline = attempt_deadline.min(started + up.settings.timeouts.first_byte);
    // The first substantive event (a whole response, when not streaming) must come by here.
    let first_token = target
        .limits
        .first_token
        .or(up.settings.timeouts.first_token);
    let first_token_deadline =
        first_token.map_or(attempt_deadline, |d| attempt_deadline.min(started + d));
    let first_event_deadline = first_byte_deadline.min(first_token_deadline);
    let wire = *wire;

    let timed_out = |what: &str, deadline: Instant| {
        let which = if deadline == first_token_deadline && first_token.is_some() {
            " (the target's first-token deadline)"
        } else {
            ""
        };
        UpstreamFailure::new(
            FailureClass::Timeout,
            format!(
                "{what} within {} ms{which}",
                (deadline - started).as_millis()
            ),
        )
    };
    let response = match timeout_at(
        first_event_deadline,
        up.send(wire, body.clone(), opts.request_id, trace_headers),
    )
    .await
    {
        Err(_) => return Err(timed_out("no response", first_event_deadline)),
        Ok(Err(e)) => return Err(client_failure(&e, opts.redactor)),
        Ok(Ok(r)) => r,
    };
    opts.stats
        .headroom(&up.name, &target.model, response.headers());

    if !response.status().is_success() {
        return Err(status_failure(response, attempt_deadline, opts.redactor).await);
    }

    if stream {
        let start = relay::start(wire, response, first_event_deadline, opts.redactor)
            .await
            .map_err(|f| {
                if f.class == FailureClass::Timeout {
                    timed_out("no stream event", first_event_deadline)
                } else {
                    f
                }
            })?;
        return Ok(DeliveredBody::Stream(start.until(attempt_deadline)));
    }

    let bytes = match read_capped(
        response.into_body(),
        MAX_RESPONSE_BYTES,
        first_token_deadline,
    )
    .await
    {
        Ok(b) => b,
        Err(ReadError::Timeout) => {
            return Err(timed_out("no complete response", first_token_deadline));
        }
        Err(ReadError::Failed(e)) => {
            return Err(UpstreamFailure::new(
                FailureClass::Broken,
                opts.redactor.redact(&e),
            ));
        }
    };
    // DeepSeek holds slow non-streaming responses open with blank lines before the JSON.
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    // Whatever an upstream sends back is checked for pieces of a key before anyone sees it.
    let bytes = opts.redactor.redact_bytes(bytes.slice(start..));
    if !bytes.starts_with(b"{") || serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err()
    {
        return Err(UpstreamFailure::new(
            FailureClass::Broken,
            "upstream sent a response that is not a JSON object",
        ));
    }
    let usage = dialect::response_usage(wire, &bytes);
    Ok(DeliveredBody::Full {
        body: bytes,
        wire,
        usage,
    })
}

/// The failure an error status stands for: its class, the provider's message (redacted) and
/// code, and its `Retry-After`.
async fn status_failure(
    response: http::Response<hyper::body::Incoming>,
    deadline: Instant,
    redactor: &Redactor,
) -> UpstreamFailure {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = read_capped(response.into_body(), MAX_ERROR_BYTES, deadline)
        .await
        .unwrap_or_default();
    let message = redactor.redact(&error_message(&body));
    let class = if status == StatusCode::BAD_REQUEST && is_context_length_error(&message) {
        FailureClass::ContextLength
    } else {
        FailureClass::Status(status.as_u16())
    };
    UpstreamFailure {
        class,
        detail: message,
        retry_after,
        code: error_code(&body),
    }
}

enum ReadError {
    Timeout,
    Failed(String),
}

async fn read_capped(
    body: hyper::body::Incoming,
    cap: usize,
    deadline: Instant,
) -> Result<Bytes, ReadError> {
    match timeout_at(deadline, Limited::new(body, cap).collect()).await {
        Err(_) => Err(ReadError::Timeout),
        Ok(Err(e)) => Err(ReadError::Failed(e.to_string())),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn client_failure(e: &hyper_util::client::legacy::Error, redactor: &Redactor) -> UpstreamFailure {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    let class = if e.is_connect() {
        FailureClass::Connect
    } else {
        FailureClass::Broken
    };
    UpstreamFailure::new(class, redactor.redact(&detail))
}
