//! Native unit tests for policies: build a request summary, run the policy exactly as the
//! component export would (config parsed from JSON, then `decide`), inspect the decision; feed it
//! outcomes and look at the [`crate::state`] it keeps.
//!
//! Every builder starts from neutral defaults and names what a test changes, so a test reads as
//! the request it is about and keeps compiling when the contract gains fields:
//!
//! ```
//! use switchyard_sdk::prelude::*;
//! use switchyard_sdk::testing::{self, candidate, decide, outcome_of, request};
//!
//! struct Counting;
//! impl Policy for Counting {
//!     type Config = serde_json::Value;
//!     fn decide(_: &serde_json::Value, r: &Request) -> Decision {
//!         let seen: u64 = switchyard_sdk::state::get_json("seen").unwrap_or(0);
//!         Decision::first_usable(r, ["small", "big"]).tag("seen", seen.to_string()).report_outcome()
//!     }
//!     fn on_outcome(_: &serde_json::Value, _: &Outcome) {
//!         let seen: u64 = switchyard_sdk::state::get_json("seen").unwrap_or(0);
//!         switchyard_sdk::state::set_json("seen", &(seen + 1)).unwrap();
//!     }
//! }
//!
//! let req = || request("auto")
//!     .input_tokens(9_000)
//!     .candidates([candidate("small").context_window(8_000), candidate("big").label("tier", "strong")]);
//! let d = decide::<Counting>("{}", req());
//! assert_eq!(d.primary(), Some("big"));
//! assert_eq!(d.tag_value("seen"), Some("0"));
//! testing::on_outcome::<Counting>("{}", outcome_of(&d).ttft_ms(450));
//! assert_eq!(decide::<Counting>("{}", req()).tag_value("seen"), Some("1"));
//! ```

use std::collections::BTreeMap;

use crate::bindings::switchyard::policy::types::{
    Budget, Candidate, Conversation, ConversationSource, Endpoint, Health, Outcome, Pair,
    RateLimits, RequestSummary, UpstreamSignals,
};
use crate::log::Level;
use crate::{Decision, Policy, Request};

/// The arrival time of a test request unless set: 2026-12-01T12:00:00Z.
pub const RECEIVED_AT_UNIX_MS: u64 = 1_796_126_400_000;

/// Starts a request summary asking for `model`: no candidates (add them with
/// [`RequestBuilder::candidates`]), a 1,000-token prompt, one message, a new conversation (key 0,
/// from the prefix), no budgets or rate limits, arrived at [`RECEIVED_AT_UNIX_MS`], seed 0.
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
        messages_since_user: 0,
        reasoning_effort: None,
        has_images: false,
        last_user_excerpt: String::new(),
        hints: Vec::new(),
        candidates: Vec::new(),
        config: String::new(),
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
        received_at_unix_ms: RECEIVED_AT_UNIX_MS,
        seed: 0,
    })
}

/// An example catalog, not something the SDK knows: DeepSeek V4 Flash and Pro (text only, 1M
/// context, at their list prices) and `gpt-5.5` (images, 400K context), the models of the
/// reference policy `flash-first` and of `tests/conformance/flash-first.json`.
pub fn example_catalog() -> Vec<Candidate> {
    vec![
        candidate("deepseek-v4-flash")
            .prices(0.14, 0.0028, 0.28)
            .label("tier", "fast")
            .into(),
        candidate("deepseek-v4-pro")
            .prices(0.435, 0.003625, 0.87)
            .label("tier", "strong")
            .into(),
        candidate("gpt-5.5")
            .prices(5.0, 0.5, 30.0)
            .context_window(400_000)
            .images()
            .label("tier", "frontier")
            .into(),
    ]
}

/// Starts a candidate named `model`: healthy on upstream `test-upstream`, USD 1 / 0.1 / 2 per
/// million input, cached input and output tokens, a 1M-token context, 384K output tokens, text
/// only, no labels. Unless [`CandidateBuilder::signals`] adds some, its `upstreams` lists its one
/// upstream with the candidate's health and no samples.
pub fn candidate(model: &str) -> CandidateBuilder {
    CandidateBuilder(Candidate {
        model: model.into(),
        upstream: "test-upstream".into(),
        input_usd_per_mtok: 1.0,
        cached_input_usd_per_mtok: 0.1,
        output_usd_per_mtok: 2.0,
        price_window: None,
        context_window: 1_000_000,
        max_output_tokens: 384_000,
        supports_images: false,
        health: Health::Healthy,
        labels: Vec::new(),
        upstreams: Vec::new(),
    })
}

/// Builds a [`Candidate`]; pass it (or a `Candidate`) to [`RequestBuilder::candidates`].
#[derive(Debug, Clone)]
pub struct CandidateBuilder(Candidate);

impl CandidateBuilder {
    /// Sets the upstream the host would use now.
    pub fn upstream(mut self, name: &str) -> Self {
        self.0.upstream = name.into();
        self
    }
    /// Sets the prices (USD per million input, cached input and output tokens).
    pub fn prices(mut self, input: f64, cached_input: f64, output: f64) -> Self {
        self.0.input_usd_per_mtok = input;
        self.0.cached_input_usd_per_mtok = cached_input;
        self.0.output_usd_per_mtok = output;
        self
    }
    /// Names the price window in force (e.g. `off-peak`).
    pub fn price_window(mut self, name: &str) -> Self {
        self.0.price_window = Some(name.into());
        self
    }
    /// Sets the context window, in tokens.
    pub fn context_window(mut self, tokens: u64) -> Self {
        self.0.context_window = tokens;
        self
    }
    /// Sets the largest completion, in tokens.
    pub fn max_output_tokens(mut self, tokens: u64) -> Self {
        self.0.max_output_tokens = tokens;
        self
    }
    /// Makes it accept images.
    pub fn images(mut self) -> Self {
        self.0.supports_images = true;
        self
    }
    /// Sets its health.
    pub fn health(mut self, health: Health) -> Self {
        self.0.health = health;
        self
    }
    /// Adds a catalog label (kept sorted by key, as the host sends them).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.labels.push(Pair {
            key: key.into(),
            value: value.into(),
        });
        self.0.labels.sort_by(|a, b| a.key.cmp(&b.key));
        self
    }
    /// Adds what the host has seen of it on one upstream, in config order.
    pub fn signals(mut self, signals: SignalsBuilder) -> Self {
        self.0.upstreams.push(signals.0);
        self
    }
    /// The finished candidate.
    pub fn build(self) -> Candidate {
        self.into()
    }
}

impl From<CandidateBuilder> for Candidate {
    fn from(b: CandidateBuilder) -> Self {
        let mut c = b.0;
        if c.upstreams.is_empty() {
            c.upstreams.push(signals(&c.upstream).health(c.health).0);
        }
        c
    }
}

/// Starts the signals of a model on `upstream`: healthy, nothing in flight, no samples (so no
/// latency or error figures), no rate-limit headers seen.
pub fn signals(upstream: &str) -> SignalsBuilder {
    SignalsBuilder(UpstreamSignals {
        upstream: upstream.into(),
        health: Health::Healthy,
        ttft_p50_ms: None,
        ttft_p95_ms: None,
        error_rate: None,
        samples: 0,
        in_flight: 0,
        remaining_requests: None,
        remaining_tokens: None,
    })
}

/// Builds an [`UpstreamSignals`] for [`CandidateBuilder::signals`].
#[derive(Debug, Clone)]
pub struct SignalsBuilder(UpstreamSignals);

impl SignalsBuilder {
    /// Sets the circuit's state.
    pub fn health(mut self, health: Health) -> Self {
        self.0.health = health;
        self
    }
    /// Sets time to first token, p50 and p95 (and 100 samples, unless set).
    pub fn ttft_ms(mut self, p50: u32, p95: u32) -> Self {
        self.0.ttft_p50_ms = Some(p50);
        self.0.ttft_p95_ms = Some(p95);
        self.0.samples = self.0.samples.max(100);
        self
    }
    /// Sets the error rate, 0 to 1 (and 100 samples, unless set).
    pub fn error_rate(mut self, rate: f32) -> Self {
        self.0.error_rate = Some(rate);
        self.0.samples = self.0.samples.max(100);
        self
    }
    /// Sets the number of attempts in the window.
    pub fn samples(mut self, n: u32) -> Self {
        self.0.samples = n;
        self
    }
    /// Sets the requests in flight.
    pub fn in_flight(mut self, n: u32) -> Self {
        self.0.in_flight = n;
        self
    }
    /// Sets the rate-limit headroom the upstream reported (requests, tokens).
    pub fn remaining(mut self, requests: u32, tokens: u32) -> Self {
        self.0.remaining_requests = Some(requests);
        self.0.remaining_tokens = Some(tokens);
        self
    }
}

/// Builds a [`RequestSummary`] field by field.
#[derive(Debug, Clone)]
pub struct RequestBuilder(RequestSummary);

impl RequestBuilder {
    /// Sets the request id (the host derives the seed from it; set that with [`Self::seed`]).
    pub fn id(mut self, id: &str) -> Self {
        self.0.request_id = id.into();
        self
    }
    /// Sets the tenant name.
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.0.tenant = tenant.into();
        self
    }
    /// Sets the front door.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.0.endpoint = endpoint;
        self
    }
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
    /// Sets how many messages came after the user's last one (an agent's loop).
    pub fn messages_since_user(mut self, count: u32) -> Self {
        self.0.messages_since_user = count;
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
    /// Replaces the candidate list: [`candidate`] builders, `Candidate`s, or
    /// [`example_catalog`].
    pub fn candidates<C: Into<Candidate>>(
        mut self,
        candidates: impl IntoIterator<Item = C>,
    ) -> Self {
        self.0.candidates = candidates.into_iter().map(Into::into).collect();
        self
    }
    /// Sets the health of one candidate (and of its upstreams).
    pub fn health(mut self, model: &str, health: Health) -> Self {
        for c in self.0.candidates.iter_mut().filter(|c| c.model == model) {
            c.health = health;
            for s in &mut c.upstreams {
                s.health = health;
            }
        }
        self
    }
    /// Sets today's spend and the daily budget.
    pub fn daily_budget(mut self, spent: f64, limit: f64) -> Self {
        self.0.budget.spent_today_usd = spent;
        self.0.budget.daily_limit_usd = Some(limit);
        self
    }
    /// Sets this month's spend and the monthly budget.
    pub fn monthly_budget(mut self, spent: f64, limit: f64) -> Self {
        self.0.budget.spent_month_usd = spent;
        self.0.budget.monthly_limit_usd = Some(limit);
        self
    }
    /// Sets the tenant's request rate limit and what is left of it this minute.
    pub fn requests_per_minute(mut self, limit: u32, remaining: u32) -> Self {
        self.0.rate_limits.requests_per_minute = Some(limit);
        self.0.rate_limits.requests_remaining = Some(remaining);
        self
    }
    /// Sets the tenant's token rate limit and what is left of it this minute.
    pub fn tokens_per_minute(mut self, limit: u32, remaining: u32) -> Self {
        self.0.rate_limits.tokens_per_minute = Some(limit);
        self.0.rate_limits.tokens_remaining = Some(remaining);
        self
    }
    /// Sets the conversation key and where it came from.
    pub fn conversation(mut self, key: u64, source: ConversationSource) -> Self {
        self.0.conversation.key = key;
        self.0.conversation.source = source;
        self
    }
    /// Makes this the next turn of a conversation with `turns` turns so far, the last one served
    /// by `model` on `upstream` `since_ms` milliseconds ago.
    pub fn last_turn(mut self, turns: u32, model: &str, upstream: &str, since_ms: u64) -> Self {
        let c = &mut self.0.conversation;
        c.turns = turns;
        c.last_model = Some(model.into());
        c.last_upstream = Some(upstream.into());
        c.since_last_ms = Some(since_ms);
        self
    }
    /// Sets the share of the last turn's input served from the provider's prompt cache.
    pub fn last_cache_hit_ratio(mut self, ratio: f32) -> Self {
        self.0.conversation.last_cache_hit_ratio = Some(ratio);
        self
    }
    /// Sets the arrival time, milliseconds since the Unix epoch.
    pub fn received_at(mut self, unix_ms: u64) -> Self {
        self.0.received_at_unix_ms = unix_ms;
        self
    }
    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
    /// The finished summary.
    pub fn build(self) -> RequestSummary {
        self.0
    }
    /// The finished summary as a [`Request`], to call helpers on.
    pub fn into_request(self) -> Request {
        Request::new(self.0)
    }
}

impl From<RequestBuilder> for Request {
    fn from(b: RequestBuilder) -> Self {
        Request::new(b.0)
    }
}

/// Restores the native state's writability when a decision ends, panicking or not.
struct ReadOnly(bool);

impl ReadOnly {
    fn begin() -> Self {
        ReadOnly(crate::state::native::READ_ONLY.replace(true))
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        crate::state::native::READ_ONLY.set(self.0);
    }
}

/// Runs `P` on `request` with `config` (JSON, `""` for the defaults) the way the component export
/// does: the config is parsed on every call, a config that fails to parse becomes a rejection,
/// and [`crate::state`] can be read but not written.
pub fn decide<P: Policy>(config: &str, request: impl Into<RequestSummaryInput>) -> Decision {
    let mut summary = request.into().0;
    summary.config = config.to_owned();
    let _read_only = ReadOnly::begin();
    crate::__decide::<P>(summary)
}

/// Runs `P`'s config validation on `config` (JSON) as the host does at load time.
pub fn validate<P: Policy>(config: &str) -> Result<(), String> {
    crate::__validate::<P>(config)
}

/// Runs `P::on_outcome` with `config` (JSON) the way the component export does, with
/// [`crate::state`] writable.
pub fn on_outcome<P: Policy>(config: &str, outcome: impl Into<Outcome>) {
    crate::__on_outcome::<P>(config, outcome.into())
}

/// Starts an outcome: request `req_test` served by `model` on `test-upstream` with a 200, 300 ms
/// to the first byte and 1,000 in total, 1,000 input tokens (none cached), 100 output tokens,
/// USD 0.001, no fallbacks, no tags.
pub fn outcome(model: &str) -> OutcomeBuilder {
    OutcomeBuilder(Outcome {
        request_id: "req_test".into(),
        endpoint: Endpoint::ChatCompletions,
        conversation_key: 0,
        model: Some(model.into()),
        upstream: Some("test-upstream".into()),
        status: 200,
        ttft_ms: Some(300),
        total_ms: 1_000,
        input_tokens: 1_000,
        cached_input_tokens: 0,
        output_tokens: 100,
        cost_usd: 0.001,
        fallbacks: 0,
        attempts: Vec::new(),
        tags: Vec::new(),
        received_at_unix_ms: RECEIVED_AT_UNIX_MS,
    })
}

/// Starts the outcome of `decision` served by its primary (as [`outcome`]), with its tags and
/// its primary's upstream when it pinned one. A rejection gives an outcome that nothing served.
pub fn outcome_of(decision: &Decision) -> OutcomeBuilder {
    match decision.as_route() {
        Some(route) => {
            let mut o = outcome(&route.primary.model);
            o.0.tags = route.tags.clone();
            if let Some(upstream) = &route.primary.upstream {
                o.0.upstream = Some(upstream.clone());
            }
            o
        }
        None => {
            let r = decision.as_rejection().expect("a rejection");
            let mut o = outcome("").status(r.status);
            o.0.model = None;
            o.0.upstream = None;
            o.0.ttft_ms = None;
            o
        }
    }
}

/// Builds an [`Outcome`] field by field.
#[derive(Debug, Clone)]
pub struct OutcomeBuilder(Outcome);

impl OutcomeBuilder {
    /// Sets the request id.
    pub fn request_id(mut self, id: &str) -> Self {
        self.0.request_id = id.into();
        self
    }
    /// Sets the conversation key.
    pub fn conversation_key(mut self, key: u64) -> Self {
        self.0.conversation_key = key;
        self
    }
    /// Sets the upstream that served it.
    pub fn upstream(mut self, name: &str) -> Self {
        self.0.upstream = Some(name.into());
        self
    }
    /// Sets the status the client got.
    pub fn status(mut self, status: u16) -> Self {
        self.0.status = status;
        self
    }
    /// Makes it a failure nothing served: `status`, no model or upstream, no first byte.
    pub fn failed(mut self, status: u16) -> Self {
        self.0.status = status;
        self.0.model = None;
        self.0.upstream = None;
        self.0.ttft_ms = None;
        self
    }
    /// Sets the time to the first byte.
    pub fn ttft_ms(mut self, ms: u32) -> Self {
        self.0.ttft_ms = Some(ms);
        self
    }
    /// Sets the total time.
    pub fn total_ms(mut self, ms: u32) -> Self {
        self.0.total_ms = ms;
        self
    }
    /// Sets the tokens: input, of which served from the prompt cache, output.
    pub fn tokens(mut self, input: u32, cached_input: u32, output: u32) -> Self {
        self.0.input_tokens = input;
        self.0.cached_input_tokens = cached_input;
        self.0.output_tokens = output;
        self
    }
    /// Sets the cost in USD.
    pub fn cost_usd(mut self, usd: f64) -> Self {
        self.0.cost_usd = usd;
        self
    }
    /// Sets the attempts before the one that served it.
    pub fn fallbacks(mut self, n: u32) -> Self {
        self.0.fallbacks = n;
        self
    }
    /// Adds an attempt: `failure` empty for the one that served it.
    pub fn attempt(mut self, model: &str, upstream: &str, failure: &str) -> Self {
        self.0
            .attempts
            .push(crate::bindings::switchyard::policy::types::Attempt {
                model: model.into(),
                upstream: upstream.into(),
                ok: failure.is_empty(),
                failure: failure.into(),
            });
        self
    }
    /// Adds a tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.tags.push(Pair {
            key: key.into(),
            value: value.into(),
        });
        self
    }
    /// Sets the arrival time.
    pub fn received_at(mut self, unix_ms: u64) -> Self {
        self.0.received_at_unix_ms = unix_ms;
        self
    }
    /// The finished outcome.
    pub fn build(self) -> Outcome {
        self.0
    }
}

impl From<OutcomeBuilder> for Outcome {
    fn from(b: OutcomeBuilder) -> Self {
        b.0
    }
}

/// Stores `value` under `key` in this thread's native state, as earlier outcomes would have.
pub fn set_state(key: &str, value: impl AsRef<[u8]>) {
    crate::state::native::STORE.with(|s| {
        s.borrow_mut()
            .insert(key.to_owned(), value.as_ref().to_owned())
    });
}

/// This thread's native state, sorted by key.
pub fn state() -> BTreeMap<String, Vec<u8>> {
    crate::state::native::STORE.with(|s| s.borrow().clone())
}

/// Empties this thread's native state.
pub fn clear_state() {
    crate::state::native::STORE.with(|s| s.borrow_mut().clear());
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Learner;
    impl Policy for Learner {
        type Config = serde_json::Value;
        fn decide(_: &serde_json::Value, _: &Request) -> Decision {
            let wrote = crate::state::set("k", b"from decide");
            Decision::route("m").tag("write", if wrote.is_ok() { "ok" } else { "refused" })
        }
        fn on_outcome(_: &serde_json::Value, o: &Outcome) {
            crate::state::set("k", o.model.as_deref().unwrap_or("-").as_bytes()).unwrap();
        }
    }

    #[test]
    fn state_is_read_only_while_deciding_and_writable_in_on_outcome() {
        clear_state();
        let d = decide::<Learner>("", request("m"));
        assert_eq!(d.tag_value("write"), Some("refused"));
        assert!(state().is_empty());
        on_outcome::<Learner>("", outcome_of(&d));
        assert_eq!(state().get("k").map(Vec::as_slice), Some(&b"m"[..]));
        // Writable again outside a decision.
        crate::state::remove("k");
        assert!(state().is_empty());
    }

    #[test]
    fn an_outcome_with_a_bad_config_is_dropped_and_logged() {
        let _ = take_logs();
        on_outcome::<Learner>("[1", outcome("m"));
        assert!(state().is_empty());
        let logs = take_logs();
        assert_eq!(logs.len(), 1);
        assert!(logs[0].1.contains("invalid policy config"), "{logs:?}");
    }

    #[test]
    fn a_candidate_lists_its_upstream_unless_signals_are_given() {
        let c: Candidate = candidate("m").health(Health::Degraded).into();
        assert_eq!(c.upstreams.len(), 1);
        assert_eq!(c.upstreams[0].upstream, "test-upstream");
        assert_eq!(c.upstreams[0].health, Health::Degraded);
        let c = candidate("m")
            .signals(signals("a").samples(3))
            .signals(signals("b"))
            .build();
        assert_eq!(c.upstreams.len(), 2);
        let r = request("auto")
            .candidates(example_catalog())
            .health("deepseek-v4-flash", Health::Unavailable)
            .into_request();
        let flash = r.candidate("deepseek-v4-flash").unwrap();
        assert_eq!(flash.signals().map(|s| s.health), Some(Health::Unavailable));
    }
}
