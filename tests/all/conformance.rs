//! One conformance fixture, `tests/conformance/flash-first.json`, run in the host against every
//! language's build of the flash-first rule: Rust, Python (componentize-py) and JavaScript
//! (componentize-js). All must give exactly the decisions the fixture names.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchyard_policy::defaults;
use switchyard_policy::types::{
    Budget, CacheMode, Candidate, Decision, Health, Pair, RequestSummary,
};
use switchyard_policy::{CallContext, CompiledPolicy, EngineSettings, PolicyEngine, SandboxLimits};
use switchyard_tests::*;

fn fixture() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("tests/conformance/flash-first.json")).unwrap(),
    )
    .unwrap()
}

fn candidate(model: &str) -> Candidate {
    let (context, images) = if model == "gpt-5.5" {
        (400_000, true)
    } else {
        (1_000_000, false)
    };
    Candidate {
        input_usd_per_mtok: 0.14,
        cached_input_usd_per_mtok: 0.0028,
        output_usd_per_mtok: 0.28,
        context_window: context,
        max_output_tokens: 384_000,
        supports_images: images,
        ..defaults::candidate(model, "main")
    }
}

fn summary(case: &Value) -> RequestSummary {
    let r = &case["request"];
    let models: Vec<String> = r["candidates"]
        .as_array()
        .map(|a| a.iter().map(|m| m.as_str().unwrap().to_owned()).collect())
        .unwrap_or_else(|| {
            vec![
                "deepseek-v4-flash".into(),
                "deepseek-v4-pro".into(),
                "gpt-5.5".into(),
            ]
        });
    let mut candidates: Vec<Candidate> = models.iter().map(|m| candidate(m)).collect();
    if let Some(health) = r["health"].as_object() {
        for c in &mut candidates {
            match health.get(&c.model).and_then(Value::as_str) {
                Some("unavailable") => c.health = Health::Unavailable,
                Some("degraded") => c.health = Health::Degraded,
                _ => {}
            }
        }
    }
    let budget = match r["budget"].as_array() {
        Some(b) => Budget {
            spent_today_usd: b[0].as_f64().unwrap(),
            daily_limit_usd: b[1].as_f64(),
            spent_month_usd: 0.0,
            monthly_limit_usd: None,
        },
        None => Budget {
            spent_today_usd: 0.0,
            daily_limit_usd: None,
            spent_month_usd: 0.0,
            monthly_limit_usd: None,
        },
    };
    let config = case.get("config").map_or("{}".into(), Value::to_string);
    RequestSummary {
        requested_model: r["requested_model"].as_str().unwrap_or("auto").into(),
        estimated_input_tokens: r["input_tokens"].as_u64().unwrap_or(1000),
        max_output_tokens: r["max_output_tokens"].as_u64(),
        tool_calls_so_far: r["tool_calls"].as_u64().unwrap_or(0) as u32,
        reasoning_effort: r["reasoning_effort"].as_str().map(str::to_owned),
        has_images: r["images"].as_bool().unwrap_or(false),
        last_user_excerpt: r["excerpt"].as_str().unwrap_or("").into(),
        hints: r["hints"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| Pair {
                        key: p[0].as_str().unwrap().into(),
                        value: p[1].as_str().unwrap().into(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        candidates,
        budget,
        seed: 1,
        ..defaults::summary("req_conformance", "t", &config)
    }
}

fn cache_name(mode: CacheMode) -> &'static str {
    match mode {
        CacheMode::Off => "off",
        CacheMode::ReadOnly => "read-only",
        CacheMode::WriteOnly => "write-only",
        CacheMode::ReadWrite => "read-write",
    }
}

/// The decision in the fixture's terms.
fn describe(d: &Decision) -> Value {
    match d {
        Decision::Reject(r) => serde_json::json!({"reject": {"status": r.status, "code": r.code}}),
        Decision::Route(r) => {
            let mut v = serde_json::json!({
                "primary": r.primary.model,
                "fallbacks": r.fallbacks.iter().map(|t| t.model.clone()).collect::<Vec<_>>(),
            });
            for p in &r.tags {
                match p.key.as_str() {
                    "reason" => v["reason"] = p.value.clone().into(),
                    "downgraded" => v["downgraded"] = (p.value == "true").into(),
                    _ => {}
                }
            }
            if r.cache != CacheMode::Off {
                v["cache"] = cache_name(r.cache).into();
            }
            if let Some(ttl) = r.cache_ttl_seconds {
                v["ttl"] = ttl.into();
            }
            v
        }
    }
}

fn check(language: &str, component_name: &str) {
    let engine = PolicyEngine::new(EngineSettings {
        concurrent_instances: 8,
        max_memory_bytes: 256 << 20,
        ..EngineSettings::default()
    })
    .unwrap();
    let bytes = std::fs::read(component(component_name)).unwrap();
    let policy: CompiledPolicy = engine
        .compile(component_name, &bytes)
        .unwrap_or_else(|e| panic!("{language}: {e}"));
    // Only the contract, never WASI; Rust's build imports no state it does not use, the
    // Python and JavaScript SDKs bind every interface.
    let imports = policy.imports();
    assert!(
        imports
            .iter()
            .all(|i| i.starts_with("switchyard:policy/") && i.ends_with("@0.2.0")),
        "{language}: the component imports only the 0.2.0 contract (no WASI): {imports:?}"
    );
    assert!(
        imports.iter().any(|i| i == "switchyard:policy/types@0.2.0"),
        "{language}: {imports:?}"
    );
    let ctx = CallContext {
        tenant: "t".into(),
        request_id: Arc::from("req_conformance"),
        limits: SandboxLimits {
            memory_bytes: 256 << 20,
            deadline: Duration::from_secs(2),
            ..SandboxLimits::default()
        },
        capture_logs: false,
        yield_each_tick: false,
        store: None,
    };
    let f = fixture();
    let mut failures = Vec::new();
    for case in f["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let decided = policy
            .decide(&ctx, &summary(case))
            .unwrap_or_else(|e| panic!("{language}: {name}: {e}"));
        let got = describe(&decided.value);
        if got != case["expect"] {
            failures.push(format!("{name}: expected {}, got {got}", case["expect"]));
        }
    }
    for case in f["config_validation"].as_array().unwrap() {
        let verdict = policy
            .validate_config(&ctx, &case["config"].to_string())
            .unwrap()
            .value;
        match (
            case["ok"].as_bool(),
            case["error_contains"].as_str(),
            &verdict,
        ) {
            (Some(true), _, Ok(())) => {}
            (_, Some(needle), Err(e)) if e.contains(needle) => {}
            _ => failures.push(format!("validate {}: got {verdict:?}", case["config"])),
        }
    }
    assert!(
        failures.is_empty(),
        "{language} disagrees with the fixture:\n{}",
        failures.join("\n")
    );
}

#[test]
fn rust_flash_first_passes_the_fixture() {
    check("Rust", "flash-first");
}

#[test]
fn python_flash_first_passes_the_fixture() {
    check("Python", "flash-first-py");
}

#[test]
fn javascript_flash_first_passes_the_fixture() {
    check("JavaScript", "flash-first-js");
}
