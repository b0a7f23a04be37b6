//! Sample requests used by `policy check`: one of each kind of traffic the reference rule tells
//! apart.

use switchyard_policy::defaults;
use switchyard_policy::types::{Candidate, Health, Pair, RequestSummary};

use switchyard_gateway::builtin_models;

/// The built-in catalog's models as candidates (all healthy).
pub fn default_candidates() -> Vec<Candidate> {
    builtin_models()
        .into_iter()
        .map(|m| Candidate {
            upstream: "simulated".into(),
            input_usd_per_mtok: m.input_usd_per_mtok,
            cached_input_usd_per_mtok: m.cached_input_usd_per_mtok,
            output_usd_per_mtok: m.output_usd_per_mtok,
            price_window: None,
            context_window: m.context_window,
            max_output_tokens: m.max_output_tokens,
            supports_images: m.supports_images,
            health: Health::Healthy,
            labels: m
                .labels
                .iter()
                .map(|(k, v)| Pair {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            upstreams: Vec::new(),
            model: m.name,
        })
        .collect()
}

fn base(config: &str) -> RequestSummary {
    RequestSummary {
        request_id: "req_sample".into(),
        estimated_input_tokens: 1_500,
        message_count: 2,
        candidates: default_candidates(),
        received_at_unix_ms: 1_796_000_000_000,
        seed: 7,
        ..defaults::summary("req_sample", "sample", config)
    }
}

/// `(label, summary)` pairs covering the usual kinds of coding-assistant traffic.
pub fn samples(config: &str) -> Vec<(&'static str, RequestSummary)> {
    let s = |f: &dyn Fn(&mut RequestSummary)| {
        let mut r = base(config);
        f(&mut r);
        r
    };
    vec![
        (
            "code review",
            s(&|r| r.last_user_excerpt = "Review this diff for bugs and style issues.".into()),
        ),
        (
            "single-file edit",
            s(&|r| {
                r.last_user_excerpt = "Add input validation to parse_config in config.rs.".into()
            }),
        ),
        (
            "classification",
            s(&|r| {
                r.estimated_input_tokens = 300;
                r.last_user_excerpt = "Label this ticket: bug, feature or question?".into();
            }),
        ),
        (
            "agent, 3 tool calls",
            s(&|r| {
                r.tools_offered = 6;
                r.tool_calls_so_far = 3;
                r.message_count = 9;
            }),
        ),
        (
            "agent, 14 tool calls",
            s(&|r| {
                r.tools_offered = 6;
                r.tool_calls_so_far = 14;
                r.message_count = 31;
                r.estimated_input_tokens = 48_000;
            }),
        ),
        (
            "multi-file refactor",
            s(&|r| {
                r.last_user_excerpt =
                    "Do a multi-file refactor of the storage layer to async.".into()
            }),
        ),
        (
            "whole-codebase synthesis",
            s(&|r| {
                r.estimated_input_tokens = 420_000;
                r.last_user_excerpt =
                    "Explain how requests flow across the entire codebase.".into();
            }),
        ),
        (
            "xhigh reasoning",
            s(&|r| r.reasoning_effort = Some("xhigh".into())),
        ),
        (
            "hard-task hint",
            s(&|r| {
                r.hints = vec![Pair {
                    key: "difficulty".into(),
                    value: "hard".into(),
                }]
            }),
        ),
        (
            "screenshot",
            s(&|r| {
                r.has_images = true;
                r.last_user_excerpt = "What is wrong in this screenshot?".into();
            }),
        ),
        (
            "explicit pro",
            s(&|r| r.requested_model = "deepseek-v4-pro".into()),
        ),
    ]
}
