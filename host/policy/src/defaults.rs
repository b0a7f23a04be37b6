//! Neutral values of the contract's records, for the host's synthetic requests (the load-time
//! smoke decision, `policy check`'s samples) and tests: set the fields that matter with struct
//! update syntax, `RequestSummary { streaming: true, ..summary("req_1", "acme", "{}") }`.

use crate::bindings::types::{
    Budget, Candidate, Conversation, ConversationSource, Endpoint, Health, RateLimits,
    RequestSummary,
};

/// A small chat request with no candidates, no hints, no budget or rate limit, a new
/// conversation, received at the Unix epoch, seed 0.
pub fn summary(request_id: &str, tenant: &str, config: &str) -> RequestSummary {
    RequestSummary {
        request_id: request_id.into(),
        tenant: tenant.into(),
        endpoint: Endpoint::ChatCompletions,
        requested_model: "auto".into(),
        streaming: false,
        estimated_input_tokens: 24,
        max_output_tokens: None,
        message_count: 1,
        tools_offered: 0,
        tool_calls_so_far: 0,
        messages_since_user: 0,
        reasoning_effort: None,
        has_images: false,
        last_user_excerpt: String::new(),
        hints: Vec::new(),
        candidates: Vec::new(),
        config: config.into(),
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
            key: 0,
            source: ConversationSource::Prefix,
            turns: 0,
            last_model: None,
            last_upstream: None,
            last_cache_hit_ratio: None,
            since_last_ms: None,
        },
        received_at_unix_ms: 0,
        seed: 0,
    }
}

/// A healthy, text-only candidate with a 1M-token window and no price.
pub fn candidate(model: &str, upstream: &str) -> Candidate {
    Candidate {
        model: model.into(),
        upstream: upstream.into(),
        input_usd_per_mtok: 0.0,
        cached_input_usd_per_mtok: 0.0,
        output_usd_per_mtok: 0.0,
        price_window: None,
        context_window: 1_000_000,
        max_output_tokens: 384_000,
        supports_images: false,
        health: Health::Healthy,
        labels: Vec::new(),
        upstreams: Vec::new(),
    }
}
