//! The policy's view of one request: a compact summary built after authentication, from the
//! parsed request, the routing hints the client sent, and what the host knows about each of the
//! tenant's candidate models right now.

use std::time::SystemTime;

use http::HeaderMap;
use switchyard_policy::types::{
    Budget, Conversation, Endpoint, Health as WitHealth, Pair, RateLimits, RequestSummary,
    UpstreamSignals,
};
use switchyard_upstream::chat::ChatRequest;
use switchyard_upstream::{Breakers, Health, UpstreamStats};

use crate::live::tenant::Tenant;

/// Most hints handed to a policy.
const MAX_HINTS: usize = 32;
/// Longest hint value handed to a policy, bytes.
const MAX_HINT_VALUE: usize = 256;

/// The contract's health for the host's.
pub(crate) fn wit_health(h: Health) -> WitHealth {
    match h {
        Health::Healthy => WitHealth::Healthy,
        Health::Degraded => WitHealth::Degraded,
        Health::Unavailable => WitHealth::Unavailable,
    }
}

/// Routing hints from `x-switchyard-<key>` headers (first) and string `metadata` entries.
/// They come from the client: policies may use them to choose, never to escalate, since every
/// decision is checked against the tenant's allowed models.
pub(crate) fn hints(headers: &HeaderMap, chat: &ChatRequest) -> Vec<Pair> {
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

/// What the host knows about the request beyond its body, for the summary.
pub(crate) struct Context<'a> {
    pub request_id: &'a str,
    pub seed: u64,
    pub endpoint: Endpoint,
    pub hints: Vec<Pair>,
    pub breakers: &'a Breakers,
    pub stats: &'a UpstreamStats,
    pub budget: Budget,
    pub rate_limits: RateLimits,
    pub conversation: Conversation,
    pub received_at: SystemTime,
}

/// The policy's view of one request.
pub(crate) fn summarise(tenant: &Tenant, chat: &ChatRequest, cx: Context<'_>) -> RequestSummary {
    let s = &chat.stats;
    let mut candidates = tenant.candidates.clone();
    for c in &mut candidates {
        // Every upstream that serves the model, with what the host has seen of it; the model is
        // as healthy as the healthiest, and the candidate names that one (the first in config
        // order among the healthiest).
        let mut best: Option<(Health, usize)> = None;
        c.upstreams = tenant
            .serving(&c.model)
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let health = cx.breakers.health(u, &c.model);
                if best.is_none_or(|(h, _)| health < h) {
                    best = Some((health, i));
                }
                let sig = cx.stats.signals(u, &c.model);
                UpstreamSignals {
                    upstream: u.to_string(),
                    health: wit_health(health),
                    ttft_p50_ms: sig.ttft_p50_ms,
                    ttft_p95_ms: sig.ttft_p95_ms,
                    error_rate: sig.error_rate,
                    samples: sig.samples,
                    in_flight: sig.in_flight,
                    remaining_requests: sig.remaining_requests,
                    remaining_tokens: sig.remaining_tokens,
                }
            })
            .collect();
        if let Some((health, i)) = best {
            c.health = wit_health(health);
            if c.upstreams[i].upstream != c.upstream {
                c.upstream = c.upstreams[i].upstream.clone();
            }
        }
        // Prices as of the request's arrival: time-of-day windows move them.
        if let Some(info) = tenant.prices.get(&c.model) {
            let p = info.prices_at(cx.received_at);
            c.input_usd_per_mtok = p.input_usd_per_mtok;
            c.cached_input_usd_per_mtok = p.cached_input_usd_per_mtok;
            c.output_usd_per_mtok = p.output_usd_per_mtok;
            c.price_window = info.window_at(cx.received_at).map(|w| w.name.to_string());
        }
    }
    RequestSummary {
        request_id: cx.request_id.to_owned(),
        tenant: tenant.name.to_string(),
        endpoint: cx.endpoint,
        requested_model: chat.model.value.clone(),
        streaming: chat.stream,
        estimated_input_tokens: s.estimated_input_tokens,
        max_output_tokens: chat.max_output_tokens(),
        message_count: s.message_count,
        tools_offered: s.tools_offered,
        tool_calls_so_far: s.tool_calls_so_far,
        messages_since_user: s.messages_since_user,
        reasoning_effort: chat.reasoning_effort.as_ref().map(|r| r.value.clone()),
        has_images: s.has_images,
        last_user_excerpt: s.last_user_excerpt.clone(),
        hints: cx.hints,
        candidates,
        config: tenant.config.policy_config.clone(),
        budget: cx.budget,
        rate_limits: cx.rate_limits,
        conversation: cx.conversation,
        received_at_unix_ms: cx
            .received_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        seed: cx.seed,
    }
}

/// A token count as the contract carries it (saturating: no prompt comes near 4 billion).
pub(crate) fn tokens(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
