//! The process-wide wasmtime engine: compilation settings, the pooling allocator, the linker with
//! the host's imports, and the epoch ticker that enforces decision deadlines.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{v0_1, v0_2};
use crate::cache::ArtifactCache;
use crate::epoch::EpochTicker;
use crate::error::LoadError;
use crate::hash::PolicyHash;
use crate::policy::{CompiledPolicy, EngineParts, Pre, ReadyPlaces};
use crate::state::PolicyState;

/// How the engine is built. One set per process.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Epoch tick: the granularity of decision deadlines.
    pub epoch_tick: Duration,
    /// Epoch tick while a call that yields at every tick runs
    /// ([`crate::CallContext::yield_each_tick`]): how long normal work can wait behind a
    /// low-priority decision. Only those calls pay for the faster ticker.
    pub yield_tick: Duration,
    /// Largest linear memory any policy may have, in bytes: the pooling allocator's slot size.
    /// Per-tenant caps ([`crate::SandboxLimits::memory_bytes`]) apply below it.
    pub max_memory_bytes: usize,
    /// Decisions that can run at the same time (pool slots for component instances).
    pub concurrent_instances: u32,
    /// Use the pooling allocator (faster instantiation; reserves virtual address space up front).
    pub pooling: bool,
    /// Wasm stack a decision may use, in bytes.
    pub max_wasm_stack: usize,
    /// Bytes of each pooled linear memory kept mapped between decisions and reset in place
    /// (pooling only). Larger values trade resident memory per slot for fewer page faults.
    pub keep_resident_bytes: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            epoch_tick: Duration::from_millis(1),
            // A request waiting behind a yielding decision waits up to one tick; 10,000 ticker
            // wake-ups a second, but only while such decisions run (measurements:
            // `host/gateway/src/sandbox/README.md`).
            yield_tick: Duration::from_micros(100),
            max_memory_bytes: 64 << 20,
            concurrent_instances: 256,
            pooling: true,
            max_wasm_stack: 512 << 10,
            keep_resident_bytes: 4 << 20,
        }
    }
}

/// Compiles and links policy components. Cheap to clone.
#[derive(Clone)]
pub struct PolicyEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: Engine,
    linker: Linker<PolicyState>,
    settings: EngineSettings,
    cache: Option<ArtifactCache>,
    ticker: EpochTicker,
    ready_places: Arc<ReadyPlaces>,
    warm_places: Arc<ReadyPlaces>,
}

impl PolicyEngine {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(settings: EngineSettings) -> Result<Self, LoadError> {
        Self::with_cache(settings, None)
    }

    /// Builds the engine with an artifact cache for compiled components.
    pub fn with_cache(
        settings: EngineSettings,
        cache: Option<ArtifactCache>,
    ) -> Result<Self, LoadError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.max_wasm_stack(settings.max_wasm_stack);
        // `SWITCHYARD_WASM_PERFMAP=1` writes /tmp/perf-<pid>.map so `perf report` can name the
        // policies' compiled functions (only for components compiled in this process, not loaded
        // from the artifact cache).
        if std::env::var_os("SWITCHYARD_WASM_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if settings.pooling {
            let mut pool = PoolingAllocationConfig::new();
            // Sized for interpreted-language components too: componentize-py's has 38 core
            // instances (interpreter, libc, adapters) and several tables.
            pool.total_component_instances(settings.concurrent_instances);
            pool.total_core_instances(settings.concurrent_instances * 16);
            pool.total_memories(settings.concurrent_instances * 2);
            pool.total_tables(settings.concurrent_instances * 16);
            pool.max_memory_size(settings.max_memory_bytes);
            pool.max_memories_per_component(4);
            pool.max_tables_per_component(64);
            pool.max_core_instances_per_component(64);
            pool.table_elements(100_000);
            // Reset a freed slot by rewriting the pages a decision dirtied instead of handing
            // them back to the kernel: without this, every decision paid for `madvise`, a TLB
            // shootdown across cores and a page fault per touched page on the next use (the
            // kernel's share was most of the decision's cost). PAGEMAP_SCAN (Linux 6.7+) finds
            // the dirtied pages; older kernels fall back to resetting the low addresses.
            pool.linear_memory_keep_resident(settings.keep_resident_bytes);
            pool.table_keep_resident(64 << 10);
            pool.pagemap_scan(wasmtime::Enabled::Auto);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config).map_err(|e| LoadError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        // Every version of the contract the host serves: a component imports the one it was
        // built against.
        v0_2::Policy::add_to_linker::<PolicyState, HasSelf<PolicyState>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        v0_1::Policy::add_to_linker::<PolicyState, HasSelf<PolicyState>>(&mut linker, |s| s)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        let ticker = EpochTicker::start(engine.clone(), settings.epoch_tick, settings.yield_tick)
            .map_err(|e| LoadError::Engine(format!("starting the epoch thread: {e}")))?;
        Ok(PolicyEngine {
            inner: Arc::new(EngineInner {
                engine,
                linker,
                cache,
                ticker,
                // A quarter of the pool: the rest stays for decisions that find no instance
                // waiting (another decision of the policy took it, or there are more policies
                // than places).
                ready_places: ReadyPlaces::new(settings.concurrent_instances as usize / 4),
                // Another quarter for tenants' warm instances, which hold theirs between decisions.
                warm_places: ReadyPlaces::new((settings.concurrent_instances as usize / 4).max(1)),
                settings,
            }),
        })
    }

    /// The settings the engine was built with.
    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    /// Compiles `bytes` and checks them against the contract. CPU-heavy (milliseconds to seconds):
    /// call it off the request path.
    ///
    /// With an artifact cache, a component compiled before (by this or an earlier process) is
    /// loaded from the cache instead of recompiled; [`CompiledPolicy::from_cache`] says which.
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<CompiledPolicy, LoadError> {
        check_header(bytes)?;
        let hash = PolicyHash::of(bytes);
        let engine = &self.inner.engine;
        if let Some(cache) = &self.inner.cache
            && let Some(component) = cache.load(engine, &hash)
        {
            let mut policy = self.link(name, hash, bytes.len(), component)?;
            policy.from_cache = true;
            return Ok(policy);
        }
        let component = Component::new(engine, bytes)
            .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))?;
        let policy = self.link(name, hash, bytes.len(), component)?;
        // Cache only components that match the contract.
        if let Some(cache) = &self.inner.cache {
            cache.store(engine, &hash, policy.component());
        }
        Ok(policy)
    }

    fn link(
        &self,
        name: &str,
        hash: PolicyHash,
        size: usize,
        component: Component,
    ) -> Result<CompiledPolicy, LoadError> {
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        // The newest version first; a component that matches neither is told what 0.2.0 wants.
        let pre = match v0_2::PolicyPre::new(pre.clone()) {
            Ok(p) => Pre::V0_2(p),
            Err(newest) => match v0_1::PolicyPre::new(pre) {
                Ok(p) => Pre::V0_1(p),
                Err(_) => return Err(LoadError::WrongWorld(format!("{newest:#}"))),
            },
        };
        Ok(CompiledPolicy::new(
            name,
            hash,
            size,
            pre,
            EngineParts {
                engine: self.inner.engine.clone(),
                epoch_tick: self.inner.settings.epoch_tick,
                epoch_activity: self.inner.ticker.activity.clone(),
                ready_places: self.inner.ready_places.clone(),
                warm_places: self.inner.warm_places.clone(),
            },
        ))
    }
}

/// Gives a precise reason for the commonest wrong files before handing them to the compiler.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8; 4] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError::NotAComponent(format!(
            "not a WebAssembly file ({} bytes, no `\\0asm` header)",
            bytes.len()
        )));
    }
    // Core modules carry version 1 and layer 0; components carry layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::NotAComponent(
            "this is a core WebAssembly module, not a component (wrap it with `wasm-tools component new`)".into(),
        ));
    }
    Ok(())
}
