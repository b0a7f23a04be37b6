//! Policy decision cost: a fresh instance per decision (instantiate + call + result conversion),
//! for the reference `flash-first` component built from source, and apart from it what the
//! gateway does after the request has left for its upstream: the teardown of the instance and
//! the instantiation of the next one, which the next decision then only calls.
//!
//! `cargo bench -p switchyard-policy --bench decision` (after `scripts/build-policies.sh`).
//! Prints median, p99 and mean over many iterations, with and without the pooling allocator.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_policy::defaults;
use switchyard_policy::types::{
    Attempt, Candidate, Conversation, ConversationSource, Endpoint, Health, Outcome, Pair,
    RateLimits, RequestSummary, UpstreamSignals,
};
use switchyard_policy::{CallContext, EngineSettings, PolicyEngine, PolicyStore, SandboxLimits};

const ITERATIONS: usize = 20_000;
const WARMUP: usize = 2_000;

/// A request as contract 0.2 describes it: every candidate with its labels and two upstreams'
/// signals, a conversation in progress, rate limits: the richer summary is part of the cost.
fn summary() -> RequestSummary {
    let signals = |upstream: &str| UpstreamSignals {
        upstream: upstream.into(),
        health: Health::Healthy,
        ttft_p50_ms: Some(420),
        ttft_p95_ms: Some(1_300),
        error_rate: Some(0.01),
        samples: 256,
        in_flight: 3,
        remaining_requests: Some(4_000),
        remaining_tokens: Some(1_000_000),
    };
    let c = |model: &str, input: f64, tier: &str| Candidate {
        input_usd_per_mtok: input,
        cached_input_usd_per_mtok: input / 50.0,
        output_usd_per_mtok: input * 2.0,
        labels: vec![Pair {
            key: "tier".into(),
            value: tier.into(),
        }],
        upstreams: vec![signals("main"), signals("backup")],
        ..defaults::candidate(model, "main")
    };
    RequestSummary {
        estimated_input_tokens: 1_200,
        max_output_tokens: Some(1_000),
        message_count: 3,
        tools_offered: 2,
        tool_calls_so_far: 1,
        last_user_excerpt:
            "Review this function and point out any off-by-one errors in the loop bounds.".into(),
        candidates: vec![
            c("deepseek-v4-flash", 0.14, "fast"),
            c("deepseek-v4-pro", 0.435, "strong"),
            c("gpt-5.5", 5.0, "frontier"),
        ],
        rate_limits: RateLimits {
            requests_per_minute: Some(600),
            requests_remaining: Some(590),
            tokens_per_minute: Some(2_000_000),
            tokens_remaining: Some(1_900_000),
        },
        conversation: Conversation {
            key: 0x5eed,
            source: ConversationSource::Prefix,
            turns: 6,
            last_model: Some("deepseek-v4-flash".into()),
            last_upstream: Some("main".into()),
            last_cache_hit_ratio: Some(0.92),
            since_last_ms: Some(4_000),
        },
        received_at_unix_ms: 1_796_000_000_000,
        seed: 42,
        ..defaults::summary("req_0123456789abcdef", "acme", "{}")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn run(label: &str, pooling: bool, bytes: &[u8], summary: &RequestSummary) {
    run_n(
        label,
        pooling,
        bytes,
        summary,
        ITERATIONS,
        WARMUP,
        SandboxLimits::default(),
        None,
    );
}

/// A tenant's `state` store in memory, as the gateway's local store is (without its limits).
#[derive(Default)]
struct MemoryStore(std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>);

impl PolicyStore for MemoryStore {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(key).cloned()
    }
    fn set(&self, key: &str, value: Vec<u8>) -> Result<(), String> {
        self.0.lock().unwrap().insert(key.to_owned(), value);
        Ok(())
    }
    fn remove(&self, key: &str) {
        self.0.lock().unwrap().remove(key);
    }
}

/// A store as `bytes`' `on-outcome` left it after `n` requests spread over both upstreams and
/// the three models, one in ten failed over: what `decide` reads on a tenant in service.
fn warmed_store(bytes: &[u8], n: u32) -> Arc<dyn PolicyStore> {
    let store: Arc<dyn PolicyStore> = Arc::new(MemoryStore::default());
    let engine = PolicyEngine::new(EngineSettings::default()).expect("engine");
    let policy = engine.compile("warm-up", bytes).expect("compile");
    let ctx = CallContext {
        tenant: "acme".into(),
        request_id: Arc::from("warm-up"),
        limits: SandboxLimits::default(),
        capture_logs: false,
        yield_each_tick: false,
        store: Some(store.clone()),
    };
    let models = ["deepseek-v4-flash", "deepseek-v4-pro", "gpt-5.5"];
    for i in 0..n {
        let model = models[i as usize % 3].to_string();
        let upstream = if i % 2 == 0 { "main" } else { "backup" };
        let failed = i % 10 == 0;
        let mut attempts = Vec::new();
        if failed {
            attempts.push(Attempt {
                model: model.clone(),
                upstream: "main".into(),
                ok: false,
                failure: "HTTP 503: overloaded".into(),
            });
        }
        attempts.push(Attempt {
            model: model.clone(),
            upstream: upstream.into(),
            ok: true,
            failure: String::new(),
        });
        let outcome = Outcome {
            request_id: format!("req_{i}"),
            endpoint: Endpoint::ChatCompletions,
            conversation_key: 0x5eed + u64::from(i % 7),
            model: Some(model),
            upstream: Some(upstream.into()),
            status: 200,
            ttft_ms: Some(300 + i % 400),
            total_ms: 900 + i % 700,
            input_tokens: 1_200,
            cached_input_tokens: 1_000,
            output_tokens: 300,
            cost_usd: 0.0004,
            fallbacks: u32::from(failed),
            attempts,
            tags: Vec::new(),
            received_at_unix_ms: 1_796_000_000_000 + u64::from(i) * 1_000,
        };
        policy
            .on_outcome(&ctx, "{}", &outcome)
            .expect("on-outcome runs");
    }
    store
}

// One flat call per table row reads better here than a settings struct built for each.
#[allow(clippy::too_many_arguments)]
fn run_n(
    label: &str,
    pooling: bool,
    bytes: &[u8],
    s: &RequestSummary,
    iterations: usize,
    warmup: usize,
    limits: SandboxLimits,
    store: Option<Arc<dyn PolicyStore>>,
) {
    let engine = PolicyEngine::new(EngineSettings {
        pooling,
        max_memory_bytes: 256 << 20,
        ..EngineSettings::default()
    })
    .expect("engine");
    let compile_started = Instant::now();
    let policy = engine.compile("flash-first", bytes).expect("compile");
    let compile = compile_started.elapsed();
    let ctx = CallContext {
        tenant: "acme".into(),
        request_id: Arc::from("req"),
        limits,
        capture_logs: false,
        yield_each_tick: false,
        store,
    };
    for _ in 0..warmup {
        policy.decide(&ctx, s).expect("decides");
        policy.prepare(&ctx);
    }
    // As the gateway does it: the decision (the call on the instance made ahead, and result
    // conversion), then, timed apart, what it does once the request has left for its upstream:
    // tear that instance down and make the next one.
    let mut samples = Vec::with_capacity(iterations);
    let mut teardowns = Vec::with_capacity(iterations);
    let mut prepares = Vec::with_capacity(iterations);
    let mut totals = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        let d = policy.decide(&ctx, s).expect("decides");
        let decided = t.elapsed();
        std::hint::black_box(&d.value);
        let teardown = d.instance.tear_down();
        let prepare = policy.prepare(&ctx).took;
        samples.push(decided);
        teardowns.push(teardown);
        prepares.push(prepare);
        totals.push(t.elapsed());
    }
    samples.sort();
    teardowns.sort();
    prepares.sort();
    totals.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "| {label} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
        us(percentile(&samples, 0.5)),
        us(percentile(&samples, 0.99)),
        us(mean),
        us(percentile(&teardowns, 0.5)),
        us(percentile(&prepares, 0.5)),
        us(percentile(&totals, 0.5)),
        compile.as_secs_f64() * 1e3,
        bytes.len()
    );
}

fn main() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/policies/flash-first.wasm");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-policies.sh", path.display()));
    println!(
        "policy decision cost, fresh instance per decision, {ITERATIONS} iterations after {WARMUP} warm-up"
    );
    println!();
    println!(
        "| engine | p50 µs | p99 µs | mean µs | teardown p50 µs | next instance p50 µs | all three p50 µs | compile ms | component bytes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    if std::env::var_os("DECISION_PROFILE").is_some() {
        // A long pooled run and nothing else, for `perf record`.
        run_n(
            "flash-first, pooling (profile run)",
            true,
            &bytes,
            &summary(),
            200_000,
            WARMUP,
            SandboxLimits::default(),
            None,
        );
        return;
    }
    let short = summary();
    // The longest excerpt the host passes (2 KiB of the last user message), with no hard-task
    // phrase in it, so the policy scans all of it for every phrase.
    let long = RequestSummary {
        last_user_excerpt: "Review this function and point out any off-by-one errors. ".repeat(40)
            [..2048]
            .to_string(),
        ..summary()
    };
    run("flash-first, pooling allocator", true, &bytes, &short);
    run("flash-first, on-demand allocator", false, &bytes, &short);
    // The opt-in warm instance: the tenant's decisions reuse one instance, so there is nothing
    // to tear down and no next instance to make.
    run_n(
        "flash-first, pooling, warm instance per tenant",
        true,
        &bytes,
        &short,
        ITERATIONS,
        WARMUP,
        SandboxLimits {
            instance: switchyard_policy::InstanceReuse::Warm,
            ..SandboxLimits::default()
        },
        None,
    );
    run(
        "flash-first, pooling, 2 KiB prompt excerpt",
        true,
        &bytes,
        &long,
    );
    // Contract 0.2's policies: each reads the conversation and the tenant's store (warmed by
    // 200 outcomes) in its decision.
    for name in ["cache-sticky", "adaptive"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../target/policies/{name}.wasm"));
        match std::fs::read(&path) {
            Ok(b) => run_n(
                &format!("{name}, pooling, store warmed by 200 outcomes"),
                true,
                &b,
                &short,
                ITERATIONS,
                WARMUP,
                SandboxLimits::default(),
                Some(warmed_store(&b, 200)),
            ),
            Err(e) => println!(
                "| {name} | - | - | - | - | - | - | - | {}: {e} |",
                path.display()
            ),
        }
    }
    startup(&bytes);

    // The same rule built from Python and JavaScript: an interpreter inside the component.
    println!();
    println!(
        "other languages, same rule (pooling allocator; 500 iterations after 50 warm-up for Python and JavaScript):"
    );
    println!();
    println!(
        "| language | p50 µs | p99 µs | mean µs | teardown p50 µs | next instance p50 µs | all three p50 µs | compile ms | component bytes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let limits = SandboxLimits {
        memory_bytes: 128 << 20,
        deadline: Duration::from_secs(1),
        ..SandboxLimits::default()
    };
    run_n(
        "Rust (flash-first)",
        true,
        &bytes,
        &short,
        2_000,
        200,
        limits.clone(),
        None,
    );
    for (label, name) in [
        ("Python (componentize-py)", "flash-first-py"),
        ("JavaScript (componentize-js)", "flash-first-js"),
    ] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../target/policies/{name}.wasm"));
        match std::fs::read(&path) {
            Ok(b) => run_n(label, true, &b, &short, 500, 50, limits.clone(), None),
            Err(e) => println!(
                "| {label} | - | - | - | - | - | - | - | {}: {e} |",
                path.display()
            ),
        }
    }
}

/// What a restart costs with and without the artifact cache: compiling the component versus
/// loading the artifact a previous process wrote (median of several runs, fresh engine each time).
fn startup(bytes: &[u8]) {
    use switchyard_policy::ArtifactCache;
    const RUNS: usize = 7;
    let dir = std::env::temp_dir().join(format!("switchyard-bench-cache-{}", std::process::id()));
    let measure = |warm: bool| {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            if !warm {
                let _ = std::fs::remove_dir_all(&dir);
            }
            let cache = ArtifactCache::open(&dir).expect("cache dir");
            let engine =
                PolicyEngine::with_cache(EngineSettings::default(), Some(cache)).expect("engine");
            let t = Instant::now();
            let policy = engine.compile("flash-first", bytes).expect("compile");
            times.push(t.elapsed());
            assert_eq!(policy.from_cache(), warm);
        }
        times.sort();
        times[RUNS / 2].as_secs_f64() * 1e3
    };
    let cold = measure(false);
    let warm = measure(true);
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!(
        "policy load at start-up (median of {RUNS}): cold cache (compile) {cold:.1} ms, warm cache (load artifact) {warm:.2} ms"
    );
}
