//! Sample requests used by `policy check`: one of each kind of traffic the reference rule tells
//! apart.

use switchyard_policy::types::{
    Budget, Candidate, Conversation, ConversationSource, Endpoint, Health, Pair, RateLimits,
    RequestSummary,
};

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
            context_window: u32::try_from(m.context_window).unwrap_or(u32::MAX),
            max_output_tokens: u32::try_from(m.max_output_tokens).unwrap_or(u32::MAX),
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
        tenant: "sample".into(),
        endpoint: Endpoint::ChatCompletions,
        requested_model: "auto".into(),
        streaming: false,
        estimated_input_tokens: 1_500,
        max_output_tokens: None,
        message_count: 2,
        tools_offered: 0,
        tool_calls_so_far: 0,
        reasoning_effort: None,
        has_images: false,
        last_user_excerpt: String::new(),
        hints: Vec::new(),
        candidates: default_candidates(),
        config: config.to_owned(),
        budget: Budget {
            spent_today_usd: 0.0,
            daily_limit_usd: None,
            spent_month_usd: 0.0,
            monthly_limit_usd: None,
        },
        rate_limits: RateLimits {
            requests_per_minute: None,
            requests_remaining: None,
            tokens_per_minute: None,
            tokens_remaining: None,
        },
        conversation: Conversation {
            key: 1,
            source: ConversationSource::Prefix,
            turns: 0,
            last_model: None,
            last_upstream: None,
            last_cache_hit_ratio: None,
            since_last_ms: None,
        },
        received_at_unix_ms: 1_796_000_000_000,
        seed: 7,
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
