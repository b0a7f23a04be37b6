//! Shared by the policy crate's integration tests: the test components and a request summary.
#![allow(dead_code)] // each test binary uses a different part

use std::path::PathBuf;
use std::sync::Arc;

use switchyard_policy::defaults;
use switchyard_policy::types::{Candidate, RequestSummary};
use switchyard_policy::{CallContext, EngineSettings, PolicyEngine, SandboxLimits};

/// A component built by `scripts/build-policies.sh` into `target/policies`.
pub fn component(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/policies")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the test components first with scripts/build-policies.sh",
            path.display()
        )
    })
}

/// An engine with a small pool (16 instance slots), so that tests run light.
pub fn engine() -> PolicyEngine {
    PolicyEngine::new(EngineSettings {
        concurrent_instances: 16,
        ..EngineSettings::default()
    })
    .expect("engine")
}

/// A call for `tenant` under the default limits, capturing logs.
pub fn ctx(tenant: &str) -> CallContext {
    CallContext {
        tenant: tenant.into(),
        request_id: Arc::from("req_1"),
        limits: SandboxLimits::default(),
        capture_logs: true,
        yield_each_tick: false,
        store: None,
    }
}

/// A one-message request with `config` as the tenant's policy config.
pub fn summary(tenant: &str, config: &str) -> RequestSummary {
    let candidate = |model: &str| Candidate {
        input_usd_per_mtok: 0.14,
        cached_input_usd_per_mtok: 0.0028,
        output_usd_per_mtok: 0.28,
        ..defaults::candidate(model, "sim")
    };
    RequestSummary {
        estimated_input_tokens: 100,
        last_user_excerpt: "hello".into(),
        candidates: vec![
            candidate("deepseek-v4-flash"),
            candidate("deepseek-v4-pro"),
            candidate("gpt-5.5"),
        ],
        seed: 7,
        ..defaults::summary("req_1", tenant, config)
    }
}
