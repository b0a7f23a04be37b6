//! From a parsed request to a checked route plan: build the policy's summary, run the policy,
//! and check its decision against what the tenant may use. The policy proposes; the host decides.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::HeaderMap;
use switchyard_policy::types::{
    Budget, CacheMode, Decision, Endpoint, Health, Pair, RequestSummary,
};
use switchyard_policy::{CallContext, FailureKind, Outcome, PolicyFailure, SpentInstance};

use crate::config::{FailureOutcome, UpstreamChoice};
use crate::error::GatewayError;
use crate::metrics::{FailureLabels, Metrics};
use crate::openai::request::ChatRequest;
use crate::openai::rewrite::Overrides;
use crate::quarantine::Quarantine;
use crate::scheduler::{DecisionScheduler, Turn};
use crate::state::Snapshot;
use crate::tenant::Tenant;
use crate::upstream::PlannedTarget;
use crate::upstream::UpstreamClient;
use crate::upstream::health::Breakers;

/// Most hints handed to a policy.
const MAX_HINTS: usize = 32;
/// Longest hint value handed to a policy, bytes.
const MAX_HINT_VALUE: usize = 256;
/// Most tags a decision may carry.
const MAX_TAGS: usize = 16;

/// Where a plan came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanSource {
    /// The tenant's policy decided.
    Policy,
    /// The policy failed this way; the tenant's default route applies.
    FailureDefault(FailureKind),
}

/// A checked plan: resolved targets and what to change in the request.
#[derive(Debug, Clone)]
pub struct RoutePlan {
    pub targets: Vec<PlannedTarget>,
    pub overrides: Overrides,
    pub cache: CacheMode,
    pub cache_ttl_seconds: Option<u32>,
    pub tags: Vec<(String, String)>,
    pub source: PlanSource,
}

/// Routing hints from `x-switchyard-<key>` headers (first) and string `metadata` entries.
/// They come from the client: policies may use them to choose, never to escalate, since every
/// decision is checked against the tenant's allowed models.
pub fn hints(headers: &HeaderMap, chat: &ChatRequest) -> Vec<Pair> {
    let from_headers = headers.iter().filter_map(|(name, value)| {
        let key = name.as_str().strip_prefix("x-switchyard-")?;
        Some((key.to_owned(), value.to_str().ok()?.to_owned()))
    });
    from_headers
        .chain(chat.stats.metadata_hints.iter().cloned())
        .filter(|(k, _)| !k.is_empty() && k.len() <= 64)
        .take(MAX_HINTS)
        .map(|(key, mut value)| {
            if value.len() > MAX_HINT_VALUE {
                let mut cut = MAX_HINT_VALUE;
                while !value.is_char_boundary(cut) {
                    cut -= 1;
                }
                value.truncate(cut);
            }
            Pair { key, value }
        })
        .collect()
}

/// The policy's view of one request.
pub fn summarise(
    request_id: &str,
    seed: u64,
    tenant: &Tenant,
    chat: &ChatRequest,
    hints: Vec<Pair>,
    breakers: &Breakers,
    budget: Budget,
) -> RequestSummary {
    let s = &chat.stats;
    let mut candidates = tenant.candidates.clone();
    for c in &mut candidates {
        c.health = breakers.health(&c.upstream, &c.model);
        // Prices as of now: time-of-day windows move them.
        if let Some(p) = tenant.prices.get(&c.model).map(|m| m.prices_now()) {
            c.input_usd_per_mtok = p.input_usd_per_mtok;
            c.cached_input_usd_per_mtok = p.cached_input_usd_per_mtok;
            c.output_usd_per_mtok = p.output_usd_per_mtok;
        }
    }
    RequestSummary {
        request_id: request_id.to_owned(),
        tenant: tenant.name.to_string(),
        endpoint: Endpoint::ChatCompletions,
        requested_model: chat.model.value.clone(),
        streaming: chat.stream,
        estimated_input_tokens: s.estimated_input_tokens,
        max_output_tokens: chat.max_output_tokens(),
        message_count: s.message_count,
        tools_offered: s.tools_offered,
        tool_calls_so_far: s.tool_calls_so_far,
        reasoning_effort: chat.reasoning_effort.as_ref().map(|r| r.value.clone()),
        has_images: s.has_images,
        last_user_excerpt: s.last_user_excerpt.clone(),
        hints,
        candidates,
        config: tenant.config.policy_config.clone(),
        budget,
        seed,
    }
}

/// A decided plan and how long the policy took.
pub struct Decided<'a> {
    pub plan: RoutePlan,
    /// From the start of `decide` to the policy's answer: waiting for a turn and the call, not the
    /// teardown of the instance nor the making of the next one, which come after the answer.
    pub decision_time: Duration,
    /// The inline decision's instance, to tear down once the request first waits (see
    /// [`tear_down_once_waiting`]); dropping it anywhere is correct.
    pub teardown: Option<PendingTeardown<'a>>,
}

/// An inline decision's spent instance and the tenant's turn, kept until the request first waits
/// (normally for its upstream). Then the instance is torn down (its pooled memory reset: 4 of a warm decision's
/// 10 µs here, 40 of the 166 µs of one after an idle gap) and the policy's next instance made
/// ([`switchyard_policy::CompiledPolicy::prepare`]: 2.7 µs warm, about 70 after an idle gap):
/// on the request's path both delayed its upstream call. The decision is charged to the tenant
/// then, with both included, so a policy whose instances are costly to make or tear down still
/// crosses the offload line; the tenant's turn is held until then, so that its concurrency limit
/// covers them too. Offloaded decisions do both on their pool thread instead, at low priority,
/// after they answered (see [`decide_offloaded`]).
pub struct PendingTeardown<'a> {
    instance: Option<SpentInstance>,
    scheduler: &'a DecisionScheduler,
    tenant: Arc<Tenant>,
    ctx: CallContext,
    call_time: Duration,
    _turn: Turn,
}

impl Drop for PendingTeardown<'_> {
    fn drop(&mut self) {
        let teardown = self
            .instance
            .take()
            .map_or(Duration::ZERO, SpentInstance::tear_down);
        let prepared = self.tenant.policy.compiled.prepare(&self.ctx);
        self.scheduler.charge(
            &self.tenant.name,
            self.call_time + teardown + prepared.took,
            false,
        );
    }
}

/// Runs `work` (the rest of the request) and drops `teardown` (a [`PendingTeardown`]) as soon as
/// `work` first waits: on the next pass of the scheduler after its first poll returned pending.
/// When that wait is the upstream call, the request has been handed to its connection task, which
/// that hand-over woke ahead of this task, so the request is written before the teardown runs;
/// when it is the cache or the budget store (Redis), the teardown runs during that round trip.
pub async fn tear_down_once_waiting<F: Future, T>(work: F, teardown: Option<T>) -> F::Output {
    let tear_down = async move {
        if let Some(teardown) = teardown {
            tokio::task::yield_now().await;
            drop(teardown);
        }
    };
    tokio::join!(work, tear_down).0
}

/// Runs a decision on the calling async worker. A routed decision comes back with its
/// [`PendingTeardown`], which charges it and gives the turn back once the instance is torn down;
/// a failed one is charged now and its turn given back here.
fn decide_inline<'a>(
    tenant: &Arc<Tenant>,
    ctx: CallContext,
    summary: &RequestSummary,
    scheduler: &'a DecisionScheduler,
    turn: Turn,
) -> (Result<Decision, PolicyFailure>, Option<PendingTeardown<'a>>) {
    let started = Instant::now();
    let result = tenant.policy.compiled.decide(&ctx, summary);
    let time = started.elapsed();
    match result {
        Ok(Outcome {
            value, instance, ..
        }) => {
            let pending = PendingTeardown {
                instance: Some(instance),
                scheduler,
                tenant: tenant.clone(),
                ctx,
                call_time: time,
                _turn: turn,
            };
            (Ok(value), Some(pending))
        }
        Err(failure) => {
            let hit_deadline = failure.kind == FailureKind::Deadline;
            scheduler.charge(&tenant.name, time, hit_deadline);
            (Err(failure), None)
        }
    }
}

/// Runs an offloaded decision on the low-priority pool and hands its answer back as soon as the
/// policy has answered; the instance is torn down and the policy's next one made after that, on
/// the same pool thread, and only then is the decision charged (call, teardown and next instance,
/// in CPU time) and are the tenant's turn and its place on the pool (`hold`) given back. The
/// charge thus lands after the answer: a request of the same tenant that comes meanwhile sees the
/// budget and pace before it, which the next charge evens out (and the turn still bounds how many
/// decisions run at once). A panic after the answer (in the teardown or the next instance) has
/// served its request already; it is logged here.
async fn decide_offloaded(
    tenant: &Arc<Tenant>,
    ctx: CallContext,
    summary: RequestSummary,
    scheduler: Arc<DecisionScheduler>,
    hold: (Turn, crate::scheduler::OffloadSlot),
) -> Result<Result<Decision, PolicyFailure>, crate::offload::OffloadError> {
    let (policy, name) = (tenant.clone(), tenant.name.clone());
    crate::offload::answer_early(
        move |answer| {
            let started = cpu_time::ThreadTime::now();
            let compiled = &policy.policy.compiled;
            match compiled.decide(&ctx, &summary) {
                Ok(outcome) => {
                    answer.send(Ok(outcome.value));
                    outcome.instance.tear_down();
                    compiled.prepare(&ctx);
                    (started.elapsed(), false)
                }
                Err(failure) => {
                    let hit_deadline = failure.kind == FailureKind::Deadline;
                    answer.send(Err(failure));
                    (started.elapsed(), hit_deadline)
                }
            }
        },
        move |finished| {
            match finished {
                Ok((time, hit_deadline)) => scheduler.charge(&name, time, hit_deadline),
                Err(error) => tracing::error!(
                    tenant = %name,
                    %error,
                    "an offloaded decision failed after it answered (tearing its instance down or making the next one)"
                ),
            }
            drop(hold);
        },
    )
    .await
}

/// Runs the tenant's policy and checks the result. A policy failure (or a decision the host
/// refuses) gets the tenant's configured outcome.
#[allow(
    clippy::too_many_arguments,
    reason = "the request's pieces and the process-wide services it uses"
)]
pub async fn decide<'a>(
    snapshot: &Snapshot,
    tenant: &Arc<Tenant>,
    request_id: &Arc<str>,
    summary: RequestSummary,
    chooser: &Chooser<'_>,
    quarantine: &Quarantine,
    scheduler: &'a Arc<DecisionScheduler>,
    metrics: &Metrics,
) -> Result<Decided<'a>, GatewayError> {
    let started = Instant::now();
    let hash = tenant.policy.compiled.hash();
    let mut teardown = None;
    let result = if quarantine.is_quarantined(&tenant.name, hash) {
        Err(PolicyFailure::new(
            FailureKind::Quarantined,
            "quarantined after repeated failures; not called",
        ))
    } else {
        match scheduler
            .turn(&tenant.name, tenant.config.limits.scheduler)
            .await
        {
            None => Err(PolicyFailure::new(
                FailureKind::Throttled,
                "the tenant's share of policy CPU is used up",
            )),
            Some(turn) => {
                // At low rates even a fast policy's decisions run with cold caches (60-200 µs
                // for the Rust reference policy against 4 µs warm on an instance made ahead) and
                // can average over the offload line; with no other request in flight they stay
                // inline.
                let offload = turn.offload(metrics.in_flight.get() > 1);
                let ctx = CallContext {
                    tenant: tenant.name.clone(),
                    request_id: request_id.clone(),
                    limits: tenant.config.limits.sandbox.clone(),
                    capture_logs: false,
                    // Offloaded decisions run at low priority and must also give up their time
                    // slice, or a waiting request can sit behind one for milliseconds.
                    yield_each_tick: offload,
                };
                // An inline decision is charged by wall time, not the thread's CPU clock:
                // reading that clock is a system call that cost 2-4 µs under load here (a fifth
                // of a decision), while a synchronous decision's wall time equals its CPU time
                // unless the OS preempts the thread, which then overcharges one decision a little
                // (the scheduler caps its effect on the offload average). An offloaded one is
                // charged by CPU time: it is slow anyway, and at low priority its wall time
                // includes every wait for the CPU, which would keep even a fast policy that a
                // busy moment pushed off the workers there for good.
                if offload {
                    match turn.offload_slot().await {
                        None => {
                            scheduler.charge(&tenant.name, Duration::ZERO, false);
                            Err(PolicyFailure::new(
                                FailureKind::Throttled,
                                "no place on the pool for slow decisions in time",
                            ))
                        }
                        Some(place) => {
                            decide_offloaded(tenant, ctx, summary, scheduler.clone(), (turn, place))
                                .await
                                .map_err(|e| GatewayError::Internal(e.to_string()))?
                        }
                    }
                } else {
                    let (result, pending) = decide_inline(tenant, ctx, &summary, scheduler, turn);
                    teardown = pending;
                    result
                }
            }
        }
    };
    let decision_time = started.elapsed();
    let checked = result.and_then(|decision| check(snapshot, tenant, decision, chooser));
    match checked {
        Ok(Checked::Route(plan)) => Ok(Decided {
            plan,
            decision_time,
            teardown,
        }),
        Ok(Checked::Reject {
            status,
            code,
            message,
        }) => Err(GatewayError::PolicyRejected {
            status,
            code,
            message,
        }),
        Err(failure) => {
            if failure.kind != FailureKind::Quarantined {
                tracing::warn!(
                    tenant = %tenant.name,
                    request_id = %request_id,
                    policy = %tenant.policy.name,
                    kind = %failure.kind,
                    detail = %failure.detail,
                    "policy failed"
                );
            }
            metrics
                .policy_failures
                .get_or_create(&FailureLabels {
                    tenant: tenant.name.to_string(),
                    kind: failure.kind.as_str(),
                })
                .inc();
            let settings = &tenant.config.limits.quarantine;
            if quarantine.record_failure(&tenant.name, hash, failure.kind, settings) {
                tracing::error!(
                    tenant = %tenant.name,
                    policy = %tenant.policy.name,
                    failures = settings.failures,
                    cool_down = ?settings.cool_down,
                    "policy quarantined after repeated failures"
                );
            }
            match &tenant.config.on_policy_failure {
                FailureOutcome::Reject => Err(GatewayError::PolicyFailed { kind: failure.kind }),
                FailureOutcome::Route(models) => {
                    let targets = models
                        .iter()
                        .filter_map(|m| resolve(snapshot, m, None, chooser).ok())
                        .flatten()
                        .collect::<Vec<_>>();
                    if targets.is_empty() {
                        return Err(GatewayError::PolicyFailed { kind: failure.kind });
                    }
                    let plan = RoutePlan {
                        targets,
                        overrides: Overrides::default(),
                        cache: CacheMode::Off,
                        cache_ttl_seconds: None,
                        tags: vec![("policy-failure".into(), failure.kind.as_str().into())],
                        source: PlanSource::FailureDefault(failure.kind),
                    };
                    Ok(Decided {
                        plan,
                        decision_time,
                        teardown,
                    })
                }
            }
        }
    }
}

/// A decision as the host accepted it.
pub(crate) enum Checked {
    Route(RoutePlan),
    Reject {
        status: u16,
        code: String,
        message: String,
    },
}

fn invalid(detail: impl Into<String>) -> PolicyFailure {
    PolicyFailure::new(FailureKind::InvalidDecision, detail)
}

/// What the host accepts from a policy: only the tenant's models and upstreams that serve them,
/// a bounded number of fallbacks and tags, and rejections with a sane status, code and message.
pub(crate) fn check(
    snapshot: &Snapshot,
    tenant: &Tenant,
    decision: Decision,
    chooser: &Chooser<'_>,
) -> Result<Checked, PolicyFailure> {
    match decision {
        Decision::Reject(r) => {
            if !((400..=499).contains(&r.status) || r.status == 503) {
                return Err(invalid(format!(
                    "rejection status {} is not 4xx or 503",
                    r.status
                )));
            }
            let code_ok = !r.code.is_empty()
                && r.code.len() <= 64
                && r.code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
            if !code_ok {
                return Err(invalid(
                    "rejection code must be 1-64 characters of [A-Za-z0-9_.-]",
                ));
            }
            if r.message.is_empty()
                || r.message.len() > 1024
                || r.message.chars().any(char::is_control)
            {
                return Err(invalid(
                    "rejection message must be 1-1024 characters without control characters",
                ));
            }
            Ok(Checked::Reject {
                status: r.status,
                code: r.code,
                message: r.message,
            })
        }
        Decision::Route(route) => {
            let max = tenant.config.limits.max_fallbacks;
            if route.fallbacks.len() > max {
                return Err(invalid(format!(
                    "{} fallbacks, more than the {max} allowed",
                    route.fallbacks.len()
                )));
            }
            if route.tags.len() > MAX_TAGS {
                return Err(invalid(format!(
                    "{} tags, more than the {MAX_TAGS} allowed",
                    route.tags.len()
                )));
            }
            let mut targets = Vec::with_capacity(1 + route.fallbacks.len());
            for t in std::iter::once(&route.primary).chain(&route.fallbacks) {
                if !tenant.allows(&t.model) {
                    return Err(invalid(format!(
                        "model `{}` is not allowed for tenant `{}`",
                        t.model, tenant.name
                    )));
                }
                targets.extend(
                    resolve(snapshot, &t.model, t.upstream.as_deref(), chooser).map_err(invalid)?,
                );
            }
            if let Some(effort) = &route.reasoning_effort
                && (effort.is_empty()
                    || effort.len() > 16
                    || !effort.bytes().all(|b| b.is_ascii_lowercase()))
            {
                return Err(invalid("reasoning effort must be 1-16 lower-case letters"));
            }
            if route.max_output_tokens == Some(0) {
                return Err(invalid("max output tokens must be positive"));
            }
            Ok(Checked::Route(RoutePlan {
                targets,
                overrides: Overrides {
                    reasoning_effort: route.reasoning_effort,
                    max_output_tokens: route.max_output_tokens,
                    force_stream_usage: true,
                },
                cache: route.cache,
                cache_ttl_seconds: route.cache_ttl_seconds,
                tags: route.tags.into_iter().map(|p| (p.key, p.value)).collect(),
                source: PlanSource::Policy,
            }))
        }
    }
}

/// How to order the upstreams that serve the same model.
pub struct Chooser<'a> {
    pub choice: UpstreamChoice,
    /// The conversation's opening, for prefix affinity.
    pub prefix_key: u64,
    pub tenant: &'a str,
    /// Shared rotation counter, for round-robin.
    pub round_robin: &'a AtomicU64,
    pub breakers: &'a Breakers,
}

impl Chooser<'_> {
    /// Orders `serving` for `model`: the preferred upstream first (by the configured choice),
    /// upstreams whose circuit is open last.
    fn order(&self, model: &str, serving: &mut [Arc<UpstreamClient>]) {
        if serving.len() > 1 {
            match self.choice {
                UpstreamChoice::First => {}
                UpstreamChoice::RoundRobin => {
                    let n =
                        self.round_robin.fetch_add(1, Ordering::Relaxed) as usize % serving.len();
                    serving.rotate_left(n);
                }
                UpstreamChoice::PrefixAffinity => {
                    // Rendezvous hashing: each replica, and each reload, agrees on the winner,
                    // and adding an upstream moves only the conversations it wins.
                    let score = |u: &Arc<UpstreamClient>| {
                        let mut h = std::hash::DefaultHasher::new();
                        (self.tenant, self.prefix_key, &*u.name).hash(&mut h);
                        h.finish()
                    };
                    serving.sort_by_key(|u| std::cmp::Reverse(score(u)));
                }
            }
        }
        serving.sort_by_key(|u| self.breakers.health(&u.name, model) == Health::Unavailable);
    }
}

/// A model on a specific upstream: the one named, or the first in config order that serves it.
fn resolve(
    snapshot: &Snapshot,
    model: &str,
    upstream: Option<&str>,
    chooser: &Chooser<'_>,
) -> Result<Vec<PlannedTarget>, String> {
    let context_window = snapshot
        .config
        .models
        .get(model)
        .map(|m| m.context_window)
        .ok_or_else(|| format!("unknown model `{model}`"))?;
    let target = |client: &Arc<UpstreamClient>| PlannedTarget {
        model: model.to_owned(),
        upstream: client.clone(),
        context_window,
    };
    if let Some(name) = upstream {
        let client = snapshot
            .upstreams
            .get(name)
            .filter(|u| u.config.models.contains_key(model))
            .ok_or_else(|| format!("upstream `{name}` does not serve `{model}`"))?;
        return Ok(vec![target(client)]);
    }
    let mut serving: Vec<Arc<UpstreamClient>> = snapshot
        .upstreams
        .values()
        .filter(|u| u.config.models.contains_key(model))
        .cloned()
        .collect();
    if serving.is_empty() {
        return Err(format!("no upstream serves `{model}`"));
    }
    chooser.order(model, &mut serving);
    Ok(serving.iter().map(target).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::{mpsc, oneshot};

    use super::*;

    /// Writes `event` to the log when dropped, as a pending teardown tears down when dropped.
    struct Marker(Arc<Mutex<Vec<&'static str>>>, &'static str);

    impl Drop for Marker {
        fn drop(&mut self) {
            self.0.lock().unwrap().push(self.1);
        }
    }

    /// The instance is torn down after the request reached its connection task and before the
    /// response came back: off the request's path, not after the whole upstream call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_teardown_runs_after_the_request_left_and_before_the_response() {
        let log = Arc::new(Mutex::new(Vec::new()));
        // A connection task like hyper's: it gets the request through a channel and answers
        // later.
        let (to_connection, mut requests) = mpsc::channel::<oneshot::Sender<()>>(1);
        let connection = tokio::spawn({
            let log = log.clone();
            async move {
                while let Some(reply) = requests.recv().await {
                    log.lock().unwrap().push("request written");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    log.lock().unwrap().push("response");
                    let _ = reply.send(());
                }
            }
        });
        // The request's task shares the one worker with the connection task, as in the server.
        let request = tokio::spawn({
            let (log, to_connection) = (log.clone(), to_connection.clone());
            async move {
                let call = async {
                    let (reply, response) = oneshot::channel();
                    to_connection.send(reply).await.unwrap();
                    response.await.unwrap();
                };
                tear_down_once_waiting(call, Some(Marker(log, "torn down"))).await;
            }
        });
        request.await.unwrap();
        drop(to_connection);
        connection.await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            ["request written", "torn down", "response"]
        );
    }
}
