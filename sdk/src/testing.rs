//! Native unit tests for policies: build a request summary, run the policy exactly as the
//! component export would (config parsed from JSON, then `decide`), inspect the decision.
//!
//! ```
//! use switchyard_sdk::testing::{request, decide};
//! # use switchyard_sdk::prelude::*;
//! # struct Always;
//! # impl Policy for Always {
//! #     type Config = serde_json::Value;
//! #     fn decide(_: &serde_json::Value, _: &Request) -> Decision { Decision::route("m") }
//! # }
//! let d = decide::<Always>("{}", request("m").input_tokens(9_000).hint("tier", "free"));
//! assert_eq!(d.primary(), Some("m"));
//! ```

use crate::bindings::switchyard::policy::types::{
    Budget, Candidate, Endpoint, Health, Pair, RequestSummary,
};
use crate::log::Level;
use crate::{Decision, Policy, Request};

/// Starts a request summary for `model` with the DeepSeek V4 pair and a frontier model as
/// candidates (all healthy), a 1,000-token prompt and one message.
pub fn request(model: &str) -> RequestBuilder {
    RequestBuilder(RequestSummary {
        request_id: "req_test".into(),
        tenant: "test-tenant".into(),
        endpoint: Endpoint::ChatCompletions,
        requested_model: model.into(),
        streaming: false,
        estimated_input_tokens: 1_000,
        max_output_tokens: None,
        message_count: 1,
        tools_offered: 0,
        tool_calls_so_far: 0,
        reasoning_effort: None,
        has_images: false,
        last_user_excerpt: String::new(),
        hints: Vec::new(),
        candidates: default_candidates(),
        config: String::new(),
        budget: Budget {
            spent_today_usd: 0.0,
            daily_limit_usd: None,
            spent_month_usd: 0.0,
            monthly_limit_usd: None,
        },
        seed: 0,
    })
}

/// `deepseek-v4-flash`, `deepseek-v4-pro` (text-only, 1M context) and `gpt-5.5` (images).
pub fn default_candidates() -> Vec<Candidate> {
    vec![
        candidate("deepseek-v4-flash", 0.14, 0.0028, 0.28, 1_000_000, false),
        candidate("deepseek-v4-pro", 0.435, 0.003625, 0.87, 1_000_000, false),
        candidate("gpt-5.5", 5.0, 0.5, 30.0, 400_000, true),
    ]
}

/// A healthy candidate with the given prices (USD per 1M tokens) and context window.
pub fn candidate(
    model: &str,
    input: f64,
    cached: f64,
    output: f64,
    context: u64,
    images: bool,
) -> Candidate {
    Candidate {
        model: model.into(),
        upstream: "test-upstream".into(),
        input_usd_per_mtok: input,
        cached_input_usd_per_mtok: cached,
        output_usd_per_mtok: output,
        context_window: context,
        max_output_tokens: 384_000,
        supports_images: images,
        health: Health::Healthy,
    }
}

/// Builds a [`RequestSummary`] field by field.
#[derive(Debug, Clone)]
pub struct RequestBuilder(RequestSummary);

impl RequestBuilder {
    /// Sets the estimated prompt size.
    pub fn input_tokens(mut self, tokens: u64) -> Self {
        self.0.estimated_input_tokens = tokens;
        self
    }
    /// Sets the completion cap.
    pub fn max_output_tokens(mut self, tokens: u64) -> Self {
        self.0.max_output_tokens = Some(tokens);
        self
    }
    /// Marks the request as streaming.
    pub fn streaming(mut self) -> Self {
        self.0.streaming = true;
        self
    }
    /// Sets the number of messages.
    pub fn messages(mut self, count: u32) -> Self {
        self.0.message_count = count;
        self
    }
    /// Sets the number of tools offered.
    pub fn tools(mut self, count: u32) -> Self {
        self.0.tools_offered = count;
        self
    }
    /// Sets how many tool calls the assistant has made so far.
    pub fn tool_calls(mut self, count: u32) -> Self {
        self.0.tool_calls_so_far = count;
        self
    }
    /// Sets the requested reasoning effort.
    pub fn reasoning_effort(mut self, effort: &str) -> Self {
        self.0.reasoning_effort = Some(effort.into());
        self
    }
    /// Marks the request as carrying an image.
    pub fn with_image(mut self) -> Self {
        self.0.has_images = true;
        self
    }
    /// Sets the last user message excerpt.
    pub fn user_says(mut self, text: &str) -> Self {
        self.0.last_user_excerpt = text.into();
        self
    }
    /// Adds a routing hint.
    pub fn hint(mut self, key: &str, value: &str) -> Self {
        self.0.hints.push(Pair {
            key: key.into(),
            value: value.into(),
        });
        self
    }
    /// Replaces the candidate list.
    pub fn candidates(mut self, candidates: Vec<Candidate>) -> Self {
        self.0.candidates = candidates;
        self
    }
    /// Sets the health of one candidate.
    pub fn health(mut self, model: &str, health: Health) -> Self {
        for c in self.0.candidates.iter_mut().filter(|c| c.model == model) {
            c.health = health;
        }
        self
    }
    /// Sets today's spend and the daily budget.
    pub fn daily_budget(mut self, spent: f64, limit: f64) -> Self {
        self.0.budget.spent_today_usd = spent;
        self.0.budget.daily_limit_usd = Some(limit);
        self
    }
    /// Sets the tenant name.
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.0.tenant = tenant.into();
        self
    }
    /// The finished summary.
    pub fn build(self) -> RequestSummary {
        self.0
    }
}

impl From<RequestBuilder> for Request {
    fn from(b: RequestBuilder) -> Self {
        Request::new(b.0)
    }
}

/// Runs `P` on `request` with `config` (JSON, `""` for the defaults) the way the component export
/// does: the config is parsed on every call and a config that fails to parse becomes a rejection.
pub fn decide<P: Policy>(config: &str, request: impl Into<RequestSummaryInput>) -> Decision {
    let mut summary = request.into().0;
    summary.config = config.to_owned();
    crate::__decide::<P>(summary)
}

/// Runs `P`'s config validation on `config` (JSON) as the host does at load time.
pub fn validate<P: Policy>(config: &str) -> Result<(), String> {
    crate::__validate::<P>(config)
}

/// Returns and clears the lines the policy logged on this thread.
pub fn take_logs() -> Vec<(Level, String)> {
    crate::log::native::LINES.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// Anything [`decide`] accepts as a request.
pub struct RequestSummaryInput(RequestSummary);

impl From<RequestBuilder> for RequestSummaryInput {
    fn from(b: RequestBuilder) -> Self {
        RequestSummaryInput(b.0)
    }
}

impl From<RequestSummary> for RequestSummaryInput {
    fn from(s: RequestSummary) -> Self {
        RequestSummaryInput(s)
    }
}
