//! CPU isolation of policy decisions: who runs a decision, where, and when its instance is torn
//! down. Read `README.md` in this folder for the design and the measurements behind it.
//!
//! A request's decision goes: quarantine (a policy that keeps failing is not called) → the
//! tenant's turn ([`scheduler`]: concurrency and a CPU budget per tenant) → inline on the async
//! worker (fast policies) or on the idle-class pool ([`offload`]: slow ones) → the charge → the
//! instance's teardown ([`teardown`]: after the request has left, or on the pool thread).

pub(crate) mod offload;
pub(crate) mod quarantine;
pub(crate) mod scheduler;
mod teardown;

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_policy::types::{Decision, RequestSummary};
use switchyard_policy::{CallContext, FailureKind, Outcome, PolicyFailure};

pub(crate) use quarantine::Quarantine;
pub(crate) use scheduler::DecisionScheduler;
pub(crate) use teardown::Teardown;

use self::scheduler::{OffloadSlot, Turn};
use crate::error::GatewayError;
use crate::learning::Learning;
use crate::live::loader::LoadedPolicy;
use crate::live::tenant::Tenant;
use crate::observe::metrics::{FailureLabels, Metrics};

/// The functions the starved-decision test drives on its own pinned threads.
#[doc(hidden)]
pub mod testing {
    pub use super::offload::{
        STARVED_AFTER, ThreadPriority, can_raise_priority, current_priority, run_slow,
    };
}

/// What the sandbox made of one request.
pub(crate) struct Decided {
    /// The policy's decision, or how it failed.
    pub result: Result<Decision, PolicyFailure>,
    /// From the start of the decision to the policy's answer: waiting for a turn and the call,
    /// not the teardown of the instance nor the making of the next one, which come after.
    pub time: Duration,
    /// The inline decision's instance, to tear down once the request first waits.
    pub teardown: Teardown,
}

/// Where decisions run: the scheduler, the quarantine, and the metrics they feed.
pub(crate) struct Sandbox {
    pub scheduler: Arc<DecisionScheduler>,
    pub quarantine: Quarantine,
    metrics: Arc<Metrics>,
    /// The tenants' policy stores, which decisions read.
    learning: Arc<Learning>,
}

impl Sandbox {
    pub fn new(metrics: Arc<Metrics>, learning: Arc<Learning>) -> Self {
        Sandbox {
            scheduler: Arc::default(),
            quarantine: Quarantine::default(),
            metrics,
            learning,
        }
    }

    fn store(&self, tenant: &Arc<str>) -> Arc<dyn switchyard_policy::PolicyStore> {
        self.learning.store(tenant)
    }

    /// Runs `policy` (the tenant's, or its candidate) on `summary` (see [`decide`]).
    pub async fn decide(
        &self,
        tenant: &Arc<Tenant>,
        policy: &Arc<LoadedPolicy>,
        request_id: &Arc<str>,
        summary: RequestSummary,
    ) -> Result<Decided, GatewayError> {
        decide(self, tenant, policy, request_id, summary).await
    }

    /// Records a failure of `policy` (see [`record_failure`]); returns whether it is quarantined
    /// now.
    pub fn record_failure(
        &self,
        tenant: &Tenant,
        policy: &LoadedPolicy,
        request_id: &str,
        failure: &PolicyFailure,
    ) -> bool {
        record_failure(self, tenant, policy, request_id, failure)
    }
}

/// Runs the tenant's policy on `summary`. A policy failure is not an error here: the caller
/// applies the tenant's outcome (after [`record_failure`]). Only the pool losing a decision is.
async fn decide(
    services: &Sandbox,
    tenant: &Arc<Tenant>,
    policy: &Arc<LoadedPolicy>,
    request_id: &Arc<str>,
    summary: RequestSummary,
) -> Result<Decided, GatewayError> {
    let started = Instant::now();
    let quarantined = services
        .quarantine
        .is_quarantined(&quarantine_key(tenant, policy), policy.compiled.hash());
    let (result, teardown) = if quarantined {
        let failure = PolicyFailure::new(
            FailureKind::Quarantined,
            "quarantined after repeated failures; not called",
        );
        (Err(failure), Teardown::none())
    } else {
        let scheduler = &services.scheduler;
        match scheduler
            .turn(&tenant.name, tenant.config.limits.scheduler)
            .await
        {
            None => {
                let failure = PolicyFailure::new(
                    FailureKind::Throttled,
                    "the tenant's share of policy CPU is used up",
                );
                (Err(failure), Teardown::none())
            }
            Some(turn) => {
                // At low rates even a fast policy's decisions run with cold caches and can
                // average over the offload line; with no other request in flight they stay
                // inline (an offload would only add a thread hop).
                let offload = turn.offload(services.metrics.in_flight.get() > 1);
                let ctx = CallContext {
                    tenant: tenant.name.clone(),
                    request_id: request_id.clone(),
                    limits: tenant.config.limits.sandbox.clone(),
                    capture_logs: false,
                    // Offloaded decisions run at low priority and must also give up their time
                    // slice, or a waiting request can sit behind one for milliseconds.
                    yield_each_tick: offload,
                    store: Some(services.store(&tenant.name)),
                };
                if offload {
                    match turn.offload_slot().await {
                        None => {
                            scheduler.charge(&tenant.name, Duration::ZERO, false);
                            let failure = PolicyFailure::new(
                                FailureKind::Throttled,
                                "no place on the pool for slow decisions in time",
                            );
                            (Err(failure), Teardown::none())
                        }
                        Some(place) => {
                            let result = decide_offloaded(
                                tenant,
                                policy,
                                ctx,
                                summary,
                                scheduler.clone(),
                                (turn, place),
                            )
                            .await
                            .map_err(|e| GatewayError::Internal(e.to_string()))?;
                            (result, Teardown::none())
                        }
                    }
                } else {
                    decide_inline(tenant, policy, ctx, &summary, scheduler, turn)
                }
            }
        }
    };
    Ok(Decided {
        result,
        time: started.elapsed(),
        teardown,
    })
}

/// Runs a decision on the calling async worker. A routed decision comes back with its
/// [`Teardown`], which charges it and gives the turn back once the instance is torn down; a
/// failed one is charged now and its turn given back here.
///
/// An inline decision is charged by wall time, not the thread's CPU clock: reading that clock is
/// a system call on every decision, while a synchronous decision's wall time equals its CPU time
/// unless the OS preempts the thread (the scheduler caps the effect of one such decision on the
/// offload average). See `README.md` in this folder.
fn decide_inline(
    tenant: &Arc<Tenant>,
    policy: &Arc<LoadedPolicy>,
    ctx: CallContext,
    summary: &RequestSummary,
    scheduler: &Arc<DecisionScheduler>,
    turn: Turn,
) -> (Result<Decision, PolicyFailure>, Teardown) {
    let started = Instant::now();
    let result = policy.compiled.decide(&ctx, summary);
    let time = started.elapsed();
    match result {
        Ok(Outcome {
            value, instance, ..
        }) => {
            let teardown = Teardown::pending(
                instance,
                scheduler.clone(),
                tenant.clone(),
                policy.clone(),
                ctx,
                time,
                turn,
            );
            (Ok(value), teardown)
        }
        Err(failure) => {
            let hit_deadline = failure.kind == FailureKind::Deadline;
            scheduler.charge(&tenant.name, time, hit_deadline);
            (Err(failure), Teardown::none())
        }
    }
}

/// Runs an offloaded decision on the low-priority pool and hands its answer back as soon as the
/// policy has answered; the instance is torn down and the policy's next one made after that, on
/// the same pool thread, and only then is the decision charged (call, teardown and next instance,
/// in CPU time: at low priority its wall time includes every wait for the CPU) and are the
/// tenant's turn and its place on the pool given back. A panic after the answer has served its
/// request already; it is logged here.
async fn decide_offloaded(
    tenant: &Arc<Tenant>,
    policy: &Arc<LoadedPolicy>,
    ctx: CallContext,
    summary: RequestSummary,
    scheduler: Arc<DecisionScheduler>,
    hold: (Turn, OffloadSlot),
) -> Result<Result<Decision, PolicyFailure>, offload::OffloadError> {
    let (policy, name) = (policy.clone(), tenant.name.clone());
    offload::answer_early(
        move |answer| {
            let started = cpu_time::ThreadTime::now();
            let compiled = &policy.compiled;
            match compiled.decide(&ctx, &summary) {
                Ok(outcome) => {
                    answer.send(Ok(outcome.value));
                    if !outcome.instance.kept_warm() {
                        outcome.instance.tear_down();
                        compiled.prepare(&ctx);
                    }
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

/// Records a policy failure (or a decision the host refused): logged, counted per tenant and
/// kind, and counted towards the policy's quarantine.
fn record_failure(
    services: &Sandbox,
    tenant: &Tenant,
    policy: &LoadedPolicy,
    request_id: &str,
    failure: &PolicyFailure,
) -> bool {
    if failure.kind != FailureKind::Quarantined {
        tracing::warn!(
            tenant = %tenant.name,
            request_id = %request_id,
            policy = %policy.name,
            kind = %failure.kind,
            detail = %failure.detail,
            "policy failed"
        );
    }
    services
        .metrics
        .policy_failures
        .get_or_create(&FailureLabels {
            tenant: tenant.name.to_string(),
            kind: failure.kind.as_str(),
        })
        .inc();
    let settings = &tenant.config.limits.quarantine;
    let hash = policy.compiled.hash();
    let quarantined = services.quarantine.record_failure(
        &quarantine_key(tenant, policy),
        hash,
        failure.kind,
        settings,
    );
    if quarantined {
        tracing::error!(
            tenant = %tenant.name,
            policy = %policy.name,
            failures = settings.failures,
            cool_down = ?settings.cool_down,
            "policy quarantined after repeated failures"
        );
    }
    quarantined
}

/// A tenant's candidate policy is quarantined apart from its live one.
fn quarantine_key(tenant: &Tenant, policy: &LoadedPolicy) -> std::borrow::Cow<'static, str> {
    if std::ptr::eq(policy, &*tenant.policy) {
        tenant.name.to_string().into()
    } else {
        format!("{} (candidate {})", tenant.name, policy.name).into()
    }
}
