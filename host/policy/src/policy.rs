//! A compiled policy and the per-decision call path.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use crate::bindings::types::{Decision, Outcome as RequestOutcome, RequestSummary};
use crate::bindings::{ContractVersion, convert, v0_1, v0_2};
use crate::epoch::EpochActivity;
use crate::error::{FailureKind, PolicyFailure};
use crate::hash::PolicyHash;

use crate::limits::{InstanceReuse, SandboxLimits};
use crate::state::{PolicyLogLine, PolicyState, PolicyStore};

/// A decision is stopped after this many times its CPU budget in wall-clock time, whatever CPU
/// it got, so that no decision can hold a thread indefinitely.
const WALL_CAP_FACTOR: u32 = 20;
/// The wall-clock cap is never shorter than this.
const MIN_WALL_CAP: Duration = Duration::from_millis(200);

/// Who a call is for: tags the policy's log lines and sets its limits.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The tenant the decision is for.
    pub tenant: Arc<str>,
    /// The request (or load-time check) the call belongs to.
    pub request_id: Arc<str>,
    /// The limits this call runs under.
    pub limits: SandboxLimits,
    /// Keep the policy's log lines and return them (for `policy check`); they always go to tracing.
    pub capture_logs: bool,
    /// Give up the CPU at every epoch tick while the call runs. For calls on low-priority
    /// threads: the OS lets such a thread finish its time slice (up to a few milliseconds) even
    /// while normal threads wait, unless it yields.
    pub yield_each_tick: bool,
    /// The tenant's `state` store: readable by `decide`, writable by `on-outcome`. `None`: reads
    /// find nothing and writes fail.
    pub store: Option<Arc<dyn PolicyStore>>,
}

impl fmt::Debug for dyn PolicyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PolicyStore")
    }
}

/// A component's pre-instantiated form, for the version of the contract it was built against.
pub(crate) enum Pre {
    V0_1(v0_1::PolicyPre<PolicyState>),
    V0_2(v0_2::PolicyPre<PolicyState>),
}

/// An instance of either version.
enum Instance {
    V0_1(v0_1::Policy),
    V0_2(v0_2::Policy),
}

impl Pre {
    fn instance_pre(&self) -> &wasmtime::component::InstancePre<PolicyState> {
        match self {
            Pre::V0_1(p) => p.instance_pre(),
            Pre::V0_2(p) => p.instance_pre(),
        }
    }

    fn instantiate(&self, store: &mut Store<PolicyState>) -> wasmtime::Result<Instance> {
        match self {
            Pre::V0_1(p) => p.instantiate(store).map(Instance::V0_1),
            Pre::V0_2(p) => p.instantiate(store).map(Instance::V0_2),
        }
    }

    fn version(&self) -> ContractVersion {
        match self {
            Pre::V0_1(_) => ContractVersion::V0_1,
            Pre::V0_2(_) => ContractVersion::V0_2,
        }
    }
}

impl Instance {
    fn decide(
        &self,
        store: &mut Store<PolicyState>,
        summary: &RequestSummary,
    ) -> wasmtime::Result<Decision> {
        match self {
            Instance::V0_2(p) => p.call_decide(store, summary),
            Instance::V0_1(p) => p
                .call_decide(store, &convert::summary(summary))
                .map(convert::decision),
        }
    }

    fn validate_config(
        &self,
        store: &mut Store<PolicyState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Instance::V0_2(p) => p.call_validate_config(store, config),
            Instance::V0_1(p) => p.call_validate_config(store, config),
        }
    }
}

/// What a successful call returned, with the lines the policy logged if they were captured.
#[derive(Debug)]
pub struct Outcome<T> {
    /// The export's return value.
    pub value: T,
    /// Captured log lines (empty unless [`CallContext::capture_logs`]).
    pub logs: Vec<PolicyLogLine>,
    /// The instance the call ran in, torn down when this is dropped (unless it was kept warm for
    /// the tenant: [`SpentInstance::kept_warm`]).
    pub instance: SpentInstance,
}

/// An instance whose call has returned. Nothing can call it again; dropping it tears it down:
/// the `Store` goes and its pooled memory is reset for the next instance (dirty pages found with
/// `PAGEMAP_SCAN` and zeroed), which takes about as long as a compiled policy's call, and longer
/// after an idle gap (figures: `BENCHMARKS.md`). A caller on a latency path keeps it until its
/// own work has left (the gateway: until the upstream request is on its way) and tears it down
/// then; the work is the same, it only stops delaying the request. Until then it holds a slot of
/// the instance pool.
///
/// A decision on a tenant's warm instance ([`InstanceReuse::Warm`]) leaves nothing to tear down:
/// the instance went back to the tenant.
pub struct SpentInstance(Option<Store<PolicyState>>);

impl SpentInstance {
    /// Tears the instance down now and says how long that took.
    pub fn tear_down(self) -> Duration {
        let started = Instant::now();
        drop(self);
        started.elapsed()
    }

    /// Whether the call's instance was kept warm for the tenant's next decision.
    pub fn kept_warm(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Debug for SpentInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpentInstance")
            .field("tenant", &self.0.as_ref().map(|s| s.data().tenant.clone()))
            .finish()
    }
}

/// A policy component, compiled and type-checked against the contract, ready to instantiate.
pub struct CompiledPolicy {
    name: Arc<str>,
    hash: PolicyHash,
    size: usize,
    engine: Engine,
    pre: Pre,
    epoch_tick: Duration,
    epoch_activity: Arc<EpochActivity>,
    imports: Vec<String>,
    pub(crate) from_cache: bool,
    /// An instance made ahead of the next decision (see [`CompiledPolicy::prepare`]).
    ready: Mutex<Option<ReadyInstance>>,
    ready_places: Arc<ReadyPlaces>,
    /// Decisions that ran on an instance made ahead.
    ready_used: AtomicU64,
    /// Tenants' warm instances ([`InstanceReuse::Warm`]), one per tenant at most.
    warm: Mutex<HashMap<Arc<str>, WarmInstance>>,
    warm_places: Arc<ReadyPlaces>,
    /// Decisions that ran on a tenant's warm instance.
    warm_used: AtomicU64,
}

/// A tenant's instance between two of its decisions: called before, and every call returned.
struct WarmInstance {
    store: Store<PolicyState>,
    policy: Instance,
    /// The limits it runs under; a call under other limits (a reload changed them) replaces it.
    limits: SandboxLimits,
    _place: ReadyPlace,
}

/// What [`CompiledPolicy::prepare`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    /// An instance was made and now waits for the next decision.
    pub made: bool,
    /// How long it took (an instantiation that failed included).
    pub took: Duration,
}

/// A fresh instance, instantiated but never called, waiting for the next decision of its policy.
struct ReadyInstance {
    store: Store<PolicyState>,
    policy: Instance,
    /// The limits it was instantiated under; a call under other limits does not use it.
    limits: SandboxLimits,
    _place: ReadyPlace,
}

/// How many instances may wait ready at once over all policies of an engine: each holds a slot
/// of the instance pool, which decisions need more.
#[derive(Debug)]
pub(crate) struct ReadyPlaces {
    taken: AtomicUsize,
    max: usize,
}

impl ReadyPlaces {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(ReadyPlaces {
            taken: AtomicUsize::new(0),
            max,
        })
    }

    fn take(self: &Arc<Self>) -> Option<ReadyPlace> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| ReadyPlace(self.clone()))
    }
}

/// One of the [`ReadyPlaces`], given back when the ready instance is used or dropped.
struct ReadyPlace(Arc<ReadyPlaces>);

impl Drop for ReadyPlace {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

impl fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("name", &self.name)
            .field("hash", &self.hash)
            .finish()
    }
}

/// What every policy of one engine shares.
pub(crate) struct EngineParts {
    pub(crate) engine: Engine,
    pub(crate) epoch_tick: Duration,
    pub(crate) epoch_activity: Arc<EpochActivity>,
    pub(crate) ready_places: Arc<ReadyPlaces>,
    pub(crate) warm_places: Arc<ReadyPlaces>,
}

impl CompiledPolicy {
    pub(crate) fn new(
        name: &str,
        hash: PolicyHash,
        size: usize,
        pre: Pre,
        parts: EngineParts,
    ) -> Self {
        let EngineParts {
            engine,
            epoch_tick,
            epoch_activity,
            ready_places,
            warm_places,
        } = parts;
        let component_type = pre.instance_pre().component().component_type();
        let imports = component_type
            .imports(&engine)
            .map(|(name, _)| name.to_string())
            .collect();
        CompiledPolicy {
            name: name.into(),
            hash,
            size,
            engine,
            pre,
            epoch_tick,
            epoch_activity,
            imports,
            from_cache: false,
            ready: Mutex::new(None),
            ready_places,
            ready_used: AtomicU64::new(0),
            warm: Mutex::new(HashMap::new()),
            warm_places,
            warm_used: AtomicU64::new(0),
        }
    }

    /// The policy's name (from config, or its file name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The content hash of the component file.
    pub fn hash(&self) -> PolicyHash {
        self.hash
    }

    /// Size of the component file in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether the compiled code came from the artifact cache rather than a fresh compile.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    pub(crate) fn component(&self) -> &wasmtime::component::Component {
        self.pre.instance_pre().component()
    }

    /// What the component imports (it can import nothing the host does not provide).
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// The version of the contract the component was built against.
    pub fn contract(&self) -> ContractVersion {
        self.pre.version()
    }

    /// A fresh store for one call under `ctx`, its deadline armed.
    fn store(&self, ctx: &CallContext) -> Store<PolicyState> {
        let state = PolicyState::new(
            ctx.tenant.clone(),
            ctx.request_id.clone(),
            self.name.clone(),
            ctx.limits.clone(),
            ctx.capture_logs,
        );
        let mut store = Store::new(&self.engine, state);
        store.data_mut().store = ctx.store.clone();
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        self.arm(&mut store, ctx);
        store
    }

    /// Sets the call's deadline from now, replacing any earlier one (a ready instance was armed
    /// for its instantiation).
    fn arm(&self, store: &mut Store<PolicyState>, ctx: &CallContext) {
        // The deadline is CPU time of this thread, not wall-clock time: under load the OS may
        // preempt a decision for longer than its whole budget, and a well-behaved policy must not
        // fail for that. The epoch ticker only wakes the check; when it fires, the callback
        // compares the CPU the decision has used with its budget and extends or interrupts. A
        // generous wall-clock cap still guarantees termination.
        //
        // Reading this thread's CPU clock is a system call, so it is not read up front: the
        // first check comes at the next epoch tick, takes the CPU baseline there, and counts the
        // time before it as CPU: the wall time since the start, but at most one tick, since the
        // thread may have been preempted in between (the decision cannot have run longer than the
        // tick without the tick firing, as long as the ticker is on time, which the eager reading
        // depended on as well). A decision that ends before the next tick, nearly all of them,
        // reads no clock but the vDSO one.
        let tick = self.epoch_tick;
        let ticks_for =
            move |d: Duration| (d.as_nanos().div_ceil(tick.as_nanos().max(1)) as u64).max(1);
        let budget = ctx.limits.deadline;
        let started = Instant::now();
        let wall_allowance = (budget * WALL_CAP_FACTOR).max(MIN_WALL_CAP);
        let wall_cap = started + wall_allowance;
        // (wall time before the first check, CPU clock at the first check)
        let mut baseline: Option<(Duration, Duration)> = None;
        // A yielding call gives up the CPU at every tick for four times its CPU budget of wall
        // time (at most half its wall cap). On a saturated machine every yield can cost it a
        // round of the other runnable threads; past that point it stops yielding so that it still
        // finishes (at its low priority) instead of failing at the cap for having been polite.
        let yield_until = ctx
            .yield_each_tick
            .then(|| started + (budget * 4).min(wall_allowance / 2));
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut store| {
            let yielding = yield_until.is_some_and(|until| Instant::now() < until);
            if yielding {
                std::thread::yield_now();
            }
            let cpu_now = cpu_time::ThreadTime::now().as_duration();
            let (before_first, cpu_first) =
                *baseline.get_or_insert_with(|| (started.elapsed().min(tick), cpu_now));
            let used = before_first + cpu_now.saturating_sub(cpu_first);
            if used >= budget || Instant::now() >= wall_cap {
                store.data_mut().stopped_because = Some(if used >= budget {
                    format!("used its CPU budget of {budget:?}")
                } else {
                    format!(
                        "reached its wall-clock cap of {wall_allowance:?} with {used:?} of CPU \
                         (the machine gave it too little)"
                    )
                });
                return Ok(UpdateDeadline::Interrupt);
            }
            if yielding {
                return Ok(UpdateDeadline::Continue(1));
            }
            // The current tick may be nearly over: one extra tick keeps the deadline a lower
            // bound.
            Ok(UpdateDeadline::Continue(ticks_for(budget - used) + 1))
        });
    }

    /// Instantiates the next decision's instance now, if none is waiting and a place is free, so
    /// that the decision only calls it: the caller does this once its request has left (the
    /// gateway, with the teardown of the decision's instance). The instance is as fresh as one
    /// made in the decision (never called; nothing of any request is in it) and serves exactly
    /// one decision, of any tenant with the same limits. Instantiating is a large part of a
    /// decision, more so after an idle gap (figures: `BENCHMARKS.md`). Nothing is done while an
    /// instance waits or every place is taken; a failed instantiation (which runs under `ctx`'s
    /// deadline and memory cap) is left for the decision to meet and report.
    pub fn prepare(&self, ctx: &CallContext) -> Prepared {
        let started = Instant::now();
        let nothing = Prepared {
            made: false,
            took: Duration::ZERO,
        };
        if self.lock_ready().is_some() {
            return nothing;
        }
        let Some(place) = self.ready_places.take() else {
            return nothing;
        };
        // Not under the lock: a decision that comes meanwhile instantiates its own instead of
        // waiting (an interpreted policy's instantiation takes milliseconds).
        let _ticking = self.epoch_activity.enter(ctx.yield_each_tick);
        let mut store = self.store(ctx);
        let made = match self.pre.instantiate(&mut store) {
            Ok(policy) => {
                let instance = ReadyInstance {
                    store,
                    policy,
                    limits: ctx.limits.clone(),
                    _place: place,
                };
                // Another `prepare` may have filled it meanwhile; this instance is then dropped
                // (after the lock is released) and counts as not made.
                let unused = {
                    let mut ready = self.lock_ready();
                    match *ready {
                        None => {
                            *ready = Some(instance);
                            None
                        }
                        Some(_) => Some(instance),
                    }
                };
                unused.is_none()
            }
            Err(_) => false,
        };
        Prepared {
            made,
            took: started.elapsed(),
        }
    }

    /// How many decisions so far ran on an instance [`Self::prepare`] made.
    pub fn decisions_on_prepared_instances(&self) -> u64 {
        self.ready_used.load(Ordering::Relaxed)
    }

    fn lock_ready(&self) -> parking_lot::MutexGuard<'_, Option<ReadyInstance>> {
        self.ready.lock()
    }

    /// The waiting instance, ready for a call under `ctx`, if there is one made under its limits.
    /// One made under other limits stays for the call it fits (tenants that share a policy can
    /// have different limits; taking and dropping it would make them tear down each other's
    /// instances on every decision).
    fn take_ready(&self, ctx: &CallContext) -> Option<(Store<PolicyState>, Instance)> {
        let ready = {
            let mut waiting = self.lock_ready();
            if !waiting
                .as_ref()
                .is_some_and(|r| r.limits.same_sandbox(&ctx.limits))
            {
                return None;
            }
            waiting.take()?
        };
        self.ready_used.fetch_add(1, Ordering::Relaxed);
        let ReadyInstance {
            mut store, policy, ..
        } = ready;
        self.begin_call(&mut store, ctx);
        Some((store, policy))
    }

    /// Readies an instance made earlier (ahead, or warm) for a call under `ctx`: the call's own
    /// context, its tenant's store, and its deadline counted from now.
    fn begin_call(&self, store: &mut Store<PolicyState>, ctx: &CallContext) {
        store
            .data_mut()
            .begin_call(ctx.tenant.clone(), ctx.request_id.clone(), ctx.capture_logs);
        store.data_mut().store = ctx.store.clone();
        self.arm(store, ctx);
    }

    /// The tenant's warm instance, armed for a call under `ctx`, if it has one under these limits.
    fn take_warm(&self, ctx: &CallContext) -> Option<(Store<PolicyState>, Instance)> {
        let warm = self.warm.lock().remove(&ctx.tenant)?;
        if warm.limits != ctx.limits {
            // Made under other limits: replaced by this call's instance (and torn down here,
            // outside the lock).
            return None;
        }
        self.warm_used.fetch_add(1, Ordering::Relaxed);
        let WarmInstance {
            mut store, policy, ..
        } = warm;
        self.begin_call(&mut store, ctx);
        Some((store, policy))
    }

    /// Keeps a clean call's instance as the tenant's warm one, or hands it back for teardown
    /// (another decision of the tenant kept one meanwhile, or every warm place is taken).
    fn keep_warm(
        &self,
        ctx: &CallContext,
        store: Store<PolicyState>,
        policy: Instance,
    ) -> Option<Store<PolicyState>> {
        let mut warm = self.warm.lock();
        if warm.contains_key(&ctx.tenant) {
            return Some(store);
        }
        let Some(place) = self.warm_places.take() else {
            return Some(store);
        };
        warm.insert(
            ctx.tenant.clone(),
            WarmInstance {
                store,
                policy,
                limits: ctx.limits.clone(),
                _place: place,
            },
        );
        None
    }

    /// Drops `tenant`'s warm instance, if it has one: the host refused what its last decision
    /// returned, so that instance counts as failed.
    pub fn discard_warm(&self, tenant: &str) {
        let dropped = self.warm.lock().remove(tenant);
        drop(dropped);
    }

    /// Keeps only the warm instances of tenants for which `keep` holds (after a reload: the
    /// tenants that still run this policy on a warm instance).
    pub fn retain_warm(&self, mut keep: impl FnMut(&str) -> bool) {
        let dropped: Vec<WarmInstance> = {
            let mut warm = self.warm.lock();
            let gone: Vec<Arc<str>> = warm.keys().filter(|t| !keep(t)).cloned().collect();
            gone.iter().filter_map(|t| warm.remove(t)).collect()
        };
        drop(dropped);
    }

    /// How many decisions so far ran on a tenant's warm instance.
    pub fn decisions_on_warm_instances(&self) -> u64 {
        self.warm_used.load(Ordering::Relaxed)
    }

    /// Runs `decide` under `ctx.limits`: in a fresh instance (the one [`Self::prepare`] made, or
    /// one instantiated now), or, for [`InstanceReuse::Warm`], in the tenant's warm instance,
    /// which a call that fails in any way discards. The decision is size-checked here; whether
    /// its models are allowed is for the caller, who knows the tenant.
    pub fn decide(
        &self,
        ctx: &CallContext,
        summary: &RequestSummary,
    ) -> Result<Outcome<Decision>, PolicyFailure> {
        let _ticking = self.epoch_activity.enter(ctx.yield_each_tick);
        let warm = ctx.limits.instance == InstanceReuse::Warm;
        let taken = warm
            .then(|| self.take_warm(ctx))
            .flatten()
            .or_else(|| self.take_ready(ctx));
        let (mut store, instance) = match taken {
            Some((store, policy)) => (store, Ok(policy)),
            None => {
                let mut store = self.store(ctx);
                let policy = self.pre.instantiate(&mut store);
                (store, policy)
            }
        };
        let policy = instance.map_err(|e| instantiation_failure(e, store.data()))?;
        let decision = policy
            .decide(&mut store, summary)
            .map_err(|e| classify(e, store.data()))?;
        let size = decision_size(&decision);
        if size > ctx.limits.max_decision_bytes {
            return Err(PolicyFailure::new(
                FailureKind::OversizedDecision,
                format!(
                    "decision is {size} bytes, over the {}-byte limit",
                    ctx.limits.max_decision_bytes
                ),
            ));
        }
        let logs = store.data_mut().captured.take().unwrap_or_default();
        // A call that returned but met a limit on the way (a refused memory growth it
        // recovered from, the log cap) does not leave its instance for the next one either.
        let clean = !store.data().memory_refused && !store.data().log_limit_hit;
        let spent = if warm && clean {
            self.keep_warm(ctx, store, policy)
        } else {
            Some(store)
        };
        Ok(Outcome {
            value: decision,
            logs,
            instance: SpentInstance(spent),
        })
    }

    /// Runs `validate-config` in a fresh instance: `Ok(Err(reason))` is the policy refusing the
    /// config, `Err` is the policy failing to answer.
    pub fn validate_config(
        &self,
        ctx: &CallContext,
        config: &str,
    ) -> Result<Outcome<Result<(), String>>, PolicyFailure> {
        let _ticking = self.epoch_activity.enter(ctx.yield_each_tick);
        let mut store = self.store(ctx);
        let verdict = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| instantiation_failure(e, store.data()))
            .and_then(|policy| {
                policy
                    .validate_config(&mut store, config)
                    .map_err(|e| classify(e, store.data()))
            })?;
        Ok(Outcome {
            value: verdict,
            logs: store.data_mut().captured.take().unwrap_or_default(),
            instance: SpentInstance(Some(store)),
        })
    }

    /// Runs `on-outcome` in a fresh instance, with `config` (the tenant's policy config) and the
    /// request's `outcome`; the call may write the tenant's store. A 0.1.0 component has no
    /// such export: the call does nothing.
    pub fn on_outcome(
        &self,
        ctx: &CallContext,
        config: &str,
        outcome: &RequestOutcome,
    ) -> Result<Outcome<()>, PolicyFailure> {
        let _ticking = self.epoch_activity.enter(ctx.yield_each_tick);
        let mut store = self.store(ctx);
        store.data_mut().store_writable = true;
        let called = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| instantiation_failure(e, store.data()))
            .and_then(|policy| match policy {
                Instance::V0_2(p) => p
                    .call_on_outcome(&mut store, config, outcome)
                    .map_err(|e| classify(e, store.data())),
                Instance::V0_1(_) => Ok(()),
            });
        called?;
        Ok(Outcome {
            value: (),
            logs: store.data_mut().captured.take().unwrap_or_default(),
            instance: SpentInstance(Some(store)),
        })
    }
}

/// Bytes of strings in a decision plus a fixed cost per list entry: what it costs the host to hold.
fn decision_size(decision: &Decision) -> usize {
    const ENTRY: usize = 16;
    match decision {
        Decision::Route(route) => {
            let target = |t: &crate::bindings::types::Target| {
                ENTRY + t.model.len() + t.upstream.as_ref().map_or(0, String::len)
            };
            target(&route.primary)
                + route.fallbacks.iter().map(target).sum::<usize>()
                + route.reasoning_effort.as_ref().map_or(0, String::len)
                + route
                    .tags
                    .iter()
                    .map(|p| ENTRY + p.key.len() + p.value.len())
                    .sum::<usize>()
        }
        Decision::Reject(r) => r.code.len() + r.message.len(),
    }
}

fn instantiation_failure(err: wasmtime::Error, state: &PolicyState) -> PolicyFailure {
    let failure = classify(err, state);
    if failure.kind == FailureKind::Trap {
        // Not a trap in guest code: the instance could not be created (limits, pool).
        return PolicyFailure::new(FailureKind::Instantiation, failure.detail);
    }
    failure
}

/// Turns a wasmtime error into a failure kind, using what the store saw to tell an allocation
/// failure or a log flood apart from an ordinary trap.
fn classify(err: wasmtime::Error, state: &PolicyState) -> PolicyFailure {
    let trap = err.downcast_ref::<Trap>().copied();
    let kind = if state.log_limit_hit {
        FailureKind::HostCallLimit
    } else {
        match trap {
            Some(Trap::Interrupt) => FailureKind::Deadline,
            Some(Trap::StackOverflow) => FailureKind::StackOverflow,
            _ if state.memory_refused => FailureKind::OutOfMemory,
            _ => FailureKind::Trap,
        }
    };
    let detail = match trap {
        Some(Trap::Interrupt) => state
            .stopped_because
            .clone()
            .unwrap_or_else(|| Trap::Interrupt.to_string()),
        Some(trap) => trap.to_string(),
        None => first_line(&format!("{err:#}")),
    };
    PolicyFailure::new(kind, detail)
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    line.chars().take(300).collect()
}
