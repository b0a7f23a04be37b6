//! The one place that sees the code generated from the contract: one module per version of
//! `switchyard:policy` the host loads, and the conversions from the host's vocabulary (the newest
//! version's types) to each older one.

/// `switchyard:policy@0.2.0` (`wit/policy.wit`): the host's own vocabulary.
pub(crate) mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "policy",
        imports: { default: trappable },
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

/// `switchyard:policy@0.1.0` (`wit/archive/0.1.0`): components built against it keep working.
pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/archive/0.1.0",
        world: "policy",
        imports: { default: trappable },
    });
}

/// The contract's types, as the rest of the host uses them (the newest version's).
pub mod types {
    pub use super::v0_2::switchyard::policy::log::Level as LogLevel;
    pub use super::v0_2::switchyard::policy::types::{
        Attempt, Budget, CacheMode, Candidate, Conversation, ConversationSource, Decision,
        Endpoint, Health, Outcome, Pair, RateLimits, Rejection, RequestSummary, Route, Target,
        UpstreamSignals,
    };
}

/// Which version of the contract a component was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum ContractVersion {
    #[serde(rename = "0.1.0")]
    V0_1,
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl ContractVersion {
    /// As written in the WIT package name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "0.1.0",
            ContractVersion::V0_2 => "0.2.0",
        }
    }
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// From the host's summary to 0.1.0's, and from 0.1.0's decision to the host's: 0.1.0 has a
/// subset of the fields (what it lacks, its policies never see or set).
pub(crate) mod convert {
    use super::types as new;
    use super::v0_1::switchyard::policy::types as old;

    fn health(h: new::Health) -> old::Health {
        match h {
            new::Health::Healthy => old::Health::Healthy,
            new::Health::Degraded => old::Health::Degraded,
            new::Health::Unavailable => old::Health::Unavailable,
        }
    }

    fn pair(p: &new::Pair) -> old::Pair {
        old::Pair {
            key: p.key.clone(),
            value: p.value.clone(),
        }
    }

    /// The summary a 0.1.0 policy sees. Its `endpoint` enum knows only chat completions: the
    /// other front doors are presented as it (their requests are chat requests to the policy).
    pub fn summary(s: &new::RequestSummary) -> old::RequestSummary {
        old::RequestSummary {
            request_id: s.request_id.clone(),
            tenant: s.tenant.clone(),
            endpoint: old::Endpoint::ChatCompletions,
            requested_model: s.requested_model.clone(),
            streaming: s.streaming,
            estimated_input_tokens: s.estimated_input_tokens,
            max_output_tokens: s.max_output_tokens,
            message_count: s.message_count,
            tools_offered: s.tools_offered,
            tool_calls_so_far: s.tool_calls_so_far,
            reasoning_effort: s.reasoning_effort.clone(),
            has_images: s.has_images,
            last_user_excerpt: s.last_user_excerpt.clone(),
            hints: s.hints.iter().map(pair).collect(),
            candidates: s
                .candidates
                .iter()
                .map(|c| old::Candidate {
                    model: c.model.clone(),
                    upstream: c.upstream.clone(),
                    input_usd_per_mtok: c.input_usd_per_mtok,
                    cached_input_usd_per_mtok: c.cached_input_usd_per_mtok,
                    output_usd_per_mtok: c.output_usd_per_mtok,
                    context_window: c.context_window,
                    max_output_tokens: c.max_output_tokens,
                    supports_images: c.supports_images,
                    health: health(c.health),
                })
                .collect(),
            config: s.config.clone(),
            budget: old::Budget {
                spent_today_usd: s.budget.spent_today_usd,
                daily_limit_usd: s.budget.daily_limit_usd,
                spent_month_usd: s.budget.spent_month_usd,
                monthly_limit_usd: s.budget.monthly_limit_usd,
            },
            seed: s.seed,
        }
    }

    fn target(t: old::Target) -> new::Target {
        new::Target {
            model: t.model,
            upstream: t.upstream,
            first_token_deadline_ms: None,
            attempt_timeout_ms: None,
            retries: None,
        }
    }

    /// A 0.1.0 decision in the host's terms.
    pub fn decision(d: old::Decision) -> new::Decision {
        match d {
            old::Decision::Reject(r) => new::Decision::Reject(new::Rejection {
                status: r.status,
                code: r.code,
                message: r.message,
            }),
            old::Decision::Route(r) => new::Decision::Route(new::Route {
                primary: target(r.primary),
                fallbacks: r.fallbacks.into_iter().map(target).collect(),
                reasoning_effort: r.reasoning_effort,
                max_output_tokens: r.max_output_tokens,
                cache: match r.cache {
                    old::CacheMode::Off => new::CacheMode::Off,
                    old::CacheMode::ReadOnly => new::CacheMode::ReadOnly,
                    old::CacheMode::WriteOnly => new::CacheMode::WriteOnly,
                    old::CacheMode::ReadWrite => new::CacheMode::ReadWrite,
                },
                cache_ttl_seconds: r.cache_ttl_seconds,
                tags: r
                    .tags
                    .into_iter()
                    .map(|p| new::Pair {
                        key: p.key,
                        value: p.value,
                    })
                    .collect(),
                keep_conversation: false,
                report_outcome: false,
            }),
        }
    }

    /// A 0.1.0 log level in the host's terms.
    pub fn level(l: super::v0_1::switchyard::policy::log::Level) -> new::LogLevel {
        use super::v0_1::switchyard::policy::log::Level as L;
        match l {
            L::Trace => new::LogLevel::Trace,
            L::Debug => new::LogLevel::Debug,
            L::Info => new::LogLevel::Info,
            L::Warn => new::LogLevel::Warn,
            L::Error => new::LogLevel::Error,
        }
    }
}
