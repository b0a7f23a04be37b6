//! The policy's view of one request: a compact summary built after authentication, from the
//! parsed request, the routing hints the client sent, and what the host knows about each of the
//! tenant's candidate models right now.

use http::HeaderMap;
use switchyard_policy::types::{Budget, Endpoint, Health as WitHealth, Pair, RequestSummary};
use switchyard_upstream::chat::ChatRequest;
use switchyard_upstream::{Breakers, Health};

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

/// The policy's view of one request.
pub(crate) fn summarise(
    request_id: &str,
    seed: u64,
    tenant: &Tenant,
    chat: &ChatRequest,
    hints: Vec<Pair>,
    breakers: &Breakers,
    budget: Budget,
) -> RequestSummary {
    let s = &chat.stats;
    let mut candidates = tenant.candidates.clone();
    for c in &mut candidates {
        // A model is as healthy as the healthiest upstream that serves it, and the candidate
        // names that upstream (the first in config order among the healthiest).
        if let Some((health, upstream)) = tenant
            .serving(&c.model)
            .iter()
            .map(|u| (breakers.health(u, &c.model), u))
            .min_by_key(|(h, _)| *h)
        {
            c.health = wit_health(health);
            if **upstream != *c.upstream {
                c.upstream = upstream.to_string();
            }
        }
        // Prices as of now: time-of-day windows move them.
        if let Some(p) = tenant.prices.get(&c.model).map(|m| m.prices_now()) {
            c.input_usd_per_mtok = p.input_usd_per_mtok;
            c.cached_input_usd_per_mtok = p.cached_input_usd_per_mtok;
            c.output_usd_per_mtok = p.output_usd_per_mtok;
        }
    }
    RequestSummary {
        request_id: request_id.to_owned(),
        tenant: tenant.name.to_string(),
        endpoint: Endpoint::ChatCompletions,
        requested_model: chat.model.value.clone(),
        streaming: chat.stream,
        estimated_input_tokens: s.estimated_input_tokens,
        max_output_tokens: chat.max_output_tokens(),
        message_count: s.message_count,
        tools_offered: s.tools_offered,
        tool_calls_so_far: s.tool_calls_so_far,
        reasoning_effort: chat.reasoning_effort.as_ref().map(|r| r.value.clone()),
        has_images: s.has_images,
        last_user_excerpt: s.last_user_excerpt.clone(),
        hints,
        candidates,
        config: tenant.config.policy_config.clone(),
        budget,
        seed,
    }
}
