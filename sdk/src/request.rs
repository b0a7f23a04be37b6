//! Read-only helpers over the request summary the host hands a policy, and over its candidates.

use crate::bindings::switchyard::policy::types::{
    Budget, Candidate, Conversation, Endpoint, Health, RateLimits, RequestSummary, UpstreamSignals,
};
use crate::contract::split_hint;
use crate::text::contains_any_ignoring_case;

/// One request, as the host summarised it. The raw body never reaches a policy.
#[derive(Debug, Clone)]
pub struct Request {
    summary: RequestSummary,
}

impl Request {
    /// Wraps a summary (the host's, or one built by [`crate::testing`]).
    pub fn new(summary: RequestSummary) -> Self {
        Request { summary }
    }

    /// The host-assigned request id.
    pub fn id(&self) -> &str {
        &self.summary.request_id
    }

    /// The tenant that sent the request.
    pub fn tenant(&self) -> &str {
        &self.summary.tenant
    }

    /// The front door it arrived on (chat completions, messages, responses).
    pub fn endpoint(&self) -> Endpoint {
        self.summary.endpoint
    }

    /// The `model` the client asked for.
    pub fn requested_model(&self) -> &str {
        &self.summary.requested_model
    }

    /// Whether the client asked for a stream.
    pub fn is_streaming(&self) -> bool {
        self.summary.streaming
    }

    /// The host's estimate of the prompt size, in tokens.
    pub fn input_tokens(&self) -> u64 {
        self.summary.estimated_input_tokens
    }

    /// The completion cap the client set, if any.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.summary.max_output_tokens
    }

    /// The context a model needs for this request: the prompt plus the completion cap.
    pub fn tokens_needed(&self) -> u64 {
        self.input_tokens() + self.max_output_tokens().unwrap_or(0)
    }

    /// Number of messages in the conversation.
    pub fn message_count(&self) -> u32 {
        self.summary.message_count
    }

    /// Number of tools offered to the model.
    pub fn tools_offered(&self) -> u32 {
        self.summary.tools_offered
    }

    /// Tool calls the assistant has made so far in this conversation (the agent's depth).
    pub fn tool_calls(&self) -> u32 {
        self.summary.tool_calls_so_far
    }

    /// Messages since the user last spoke (assistant turns, tool results): 0 on a new user
    /// message, more inside an agent's tool loop.
    pub fn messages_since_user(&self) -> u32 {
        self.summary.messages_since_user
    }

    /// The reasoning effort the client asked for.
    pub fn reasoning_effort(&self) -> Option<&str> {
        self.summary.reasoning_effort.as_deref()
    }

    /// Whether any message carries an image.
    pub fn has_images(&self) -> bool {
        self.summary.has_images
    }

    /// The start of the last user message (at most 2 KiB).
    pub fn last_user_message(&self) -> &str {
        &self.summary.last_user_excerpt
    }

    /// Whether the last user message contains any of `phrases`, ignoring case. One pass over the
    /// text whatever the number of phrases (see [`crate::text::contains_any_ignoring_case`]).
    pub fn mentions_any<S: AsRef<str>>(&self, phrases: &[S]) -> bool {
        contains_any_ignoring_case(self.last_user_message(), phrases)
    }

    /// The first routing hint named `key` (an `x-switchyard-<key>` header or a `metadata` entry).
    /// Keys compare case-insensitively.
    pub fn hint(&self, key: &str) -> Option<&str> {
        self.summary
            .hints
            .iter()
            .find(|p| p.key.eq_ignore_ascii_case(key))
            .map(|p| p.value.as_str())
    }

    /// Whether a hint matches any of `specs`, each `key=value`: the hint named `key` (as
    /// [`Request::hint`] finds it) has that value, ignoring ASCII case. Specs that are not
    /// `key=value` never match; [`crate::contract::check_hints`] refuses them in a config.
    pub fn hint_matches_any<S: AsRef<str>>(&self, specs: &[S]) -> bool {
        specs
            .iter()
            .filter_map(|s| split_hint(s.as_ref()))
            .any(|(key, value)| {
                self.hint(key)
                    .is_some_and(|v| v.eq_ignore_ascii_case(value))
            })
    }

    /// All routing hints, header hints first.
    pub fn hints(&self) -> impl Iterator<Item = (&str, &str)> {
        self.summary
            .hints
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
    }

    /// The models this tenant may use, in configured order.
    pub fn candidates(&self) -> Candidates<'_> {
        Candidates(self.summary.candidates.iter().collect())
    }

    /// The candidate named `model`, if the tenant may use it.
    pub fn candidate(&self, model: &str) -> Option<&Candidate> {
        self.summary.candidates.iter().find(|c| c.model == model)
    }

    /// The usable part of `chain`, in order: models the tenant may use (each once) whose context
    /// window holds [`Request::tokens_needed`], with unavailable ones moved last (the host may
    /// still probe them) and the rest in their order. What [`crate::Decision::first_usable`]
    /// routes to.
    pub fn usable<I>(&self, chain: I) -> Vec<&Candidate>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let needed = self.tokens_needed();
        let mut usable: Vec<&Candidate> = Vec::new();
        for model in chain {
            let model = model.as_ref();
            if usable.iter().any(|c| c.model == model) {
                continue;
            }
            if let Some(c) = self.candidate(model).filter(|c| c.fits(needed)) {
                usable.push(c);
            }
        }
        usable.sort_by_key(|c| c.health == Health::Unavailable);
        usable
    }

    /// The tenant's spend and budgets.
    pub fn budget(&self) -> &Budget {
        &self.summary.budget
    }

    /// Share of the tightest budget already spent, from 0.0 up; `None` without budgets.
    pub fn budget_used_fraction(&self) -> Option<f64> {
        let b = &self.summary.budget;
        tightest(
            share(b.spent_today_usd, b.daily_limit_usd),
            share(b.spent_month_usd, b.monthly_limit_usd),
        )
    }

    /// The tenant's rate limits and what is left of them this minute.
    pub fn rate_limits(&self) -> &RateLimits {
        &self.summary.rate_limits
    }

    /// Share of the tightest rate limit still left this minute (1.0: untouched, 0.0: spent);
    /// `None` without rate limits.
    pub fn rate_limit_headroom(&self) -> Option<f64> {
        let r = &self.summary.rate_limits;
        let left = |remaining: Option<u32>, limit: Option<u32>| {
            share(f64::from(remaining?), limit.map(f64::from))
        };
        match (
            left(r.requests_remaining, r.requests_per_minute),
            left(r.tokens_remaining, r.tokens_per_minute),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The host's record of the conversation this request continues.
    pub fn conversation(&self) -> &Conversation {
        &self.summary.conversation
    }

    /// When the request arrived, milliseconds since the Unix epoch (data, not a clock: a decision
    /// stays a function of its input).
    pub fn received_at_unix_ms(&self) -> u64 {
        self.summary.received_at_unix_ms
    }

    /// A per-request value for reproducible sampling: derived from the request id, so a replayed
    /// `x-request-id` gets the same one.
    pub fn seed(&self) -> u64 {
        self.summary.seed
    }

    /// The underlying contract value.
    pub fn summary(&self) -> &RequestSummary {
        &self.summary
    }
}

/// `spent / limit` for a positive limit.
fn share(spent: f64, limit: Option<f64>) -> Option<f64> {
    limit.filter(|l| *l > 0.0).map(|l| spent / l)
}

fn tightest(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl Candidate {
    /// The catalog label `key` (`[models.NAME] labels = { tier = "strong" }`), compared
    /// case-insensitively.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|p| p.key.eq_ignore_ascii_case(key))
            .map(|p| p.value.as_str())
    }

    /// Whether label `key` is `value` (ignoring ASCII case).
    pub fn has_label(&self, key: &str, value: &str) -> bool {
        self.label(key)
            .is_some_and(|v| v.eq_ignore_ascii_case(value))
    }

    /// Whether the context window holds `tokens`.
    pub fn fits(&self, tokens: u64) -> bool {
        self.context_window >= tokens
    }

    /// What the host has seen of this model on `upstream`.
    pub fn upstream_signals(&self, upstream: &str) -> Option<&UpstreamSignals> {
        self.upstreams.iter().find(|s| s.upstream == upstream)
    }

    /// What the host has seen of this model on the upstream it would use now ([`Candidate::upstream`]).
    pub fn signals(&self) -> Option<&UpstreamSignals> {
        self.upstream_signals(&self.upstream)
    }
}

impl Conversation {
    /// Whether this is the conversation's first turn the host has seen.
    pub fn is_new(&self) -> bool {
        self.turns == 0
    }
}

/// A filtered view of the tenant's candidate models.
#[derive(Debug, Clone)]
pub struct Candidates<'a>(Vec<&'a Candidate>);

impl<'a> Candidates<'a> {
    /// Only candidates whose upstream is not failing (circuit closed or half-open).
    pub fn healthy(self) -> Self {
        self.filter(|c| c.health != Health::Unavailable)
    }

    /// Only candidates that accept images.
    pub fn with_images(self) -> Self {
        self.filter(|c| c.supports_images)
    }

    /// Only candidates whose context window holds `tokens`.
    pub fn fitting(self, tokens: u64) -> Self {
        self.filter(|c| c.fits(tokens))
    }

    /// Only candidates whose label `key` is `value`, e.g. `labelled("tier", "strong")`.
    pub fn labelled(self, key: &str, value: &str) -> Self {
        self.filter(|c| c.has_label(key, value))
    }

    /// Only candidates matching `keep`.
    pub fn filter(self, mut keep: impl FnMut(&Candidate) -> bool) -> Self {
        Candidates(self.0.into_iter().filter(|c| keep(c)).collect())
    }

    /// The candidate with the lowest cache-miss input price.
    pub fn cheapest(&self) -> Option<&'a Candidate> {
        self.0
            .iter()
            .copied()
            .min_by(|a, b| a.input_usd_per_mtok.total_cmp(&b.input_usd_per_mtok))
    }

    /// The first candidate in this view.
    pub fn first(&self) -> Option<&'a Candidate> {
        self.0.first().copied()
    }

    /// The candidate named `model`.
    pub fn find(&self, model: &str) -> Option<&'a Candidate> {
        self.0.iter().copied().find(|c| c.model == model)
    }

    /// Whether a candidate named `model` is in this view.
    pub fn contains(&self, model: &str) -> bool {
        self.find(model).is_some()
    }

    /// The candidates in this view.
    pub fn iter(&self) -> impl Iterator<Item = &'a Candidate> + '_ {
        self.0.iter().copied()
    }

    /// How many candidates are in this view.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use crate::Health;
    use crate::testing::{candidate, request, signals};

    #[test]
    fn usable_keeps_allowed_models_that_fit_once_with_unavailable_ones_last() {
        let r = request("auto")
            .input_tokens(90_000)
            .max_output_tokens(20_000)
            .candidates([
                candidate("a").health(Health::Unavailable),
                candidate("b").context_window(100_000),
                candidate("c"),
                candidate("d").health(Health::Degraded),
            ])
            .into_request();
        let names = |chain: &[&str]| {
            r.usable(chain)
                .iter()
                .map(|c| c.model.as_str())
                .collect::<Vec<_>>()
        };
        // b cannot hold 110K tokens, x is not allowed, a is unavailable, c is listed twice.
        assert_eq!(names(&["a", "b", "x", "c", "d", "c"]), ["c", "d", "a"]);
        assert!(names(&["b", "x"]).is_empty());
    }

    #[test]
    fn hints_phrases_and_labels() {
        let r = request("auto")
            .hint("Tier", "Pro")
            .user_says("Please REFACTOR ACROSS the repo")
            .candidates([candidate("m").label("tier", "strong")])
            .into_request();
        assert!(r.hint_matches_any(&["difficulty=hard", "tier=pro"]));
        assert!(!r.hint_matches_any(&["tier=flash", "tier", "=pro"]));
        assert!(r.mentions_any(&["refactor across"]));
        assert!(!r.mentions_any(&["whole codebase"]));
        let m = r.candidate("m").unwrap();
        assert_eq!(m.label("TIER"), Some("strong"));
        assert!(m.has_label("tier", "Strong"));
        assert_eq!(r.candidates().labelled("tier", "strong").len(), 1);
        assert!(r.candidates().labelled("tier", "cheap").is_empty());
    }

    #[test]
    fn candidate_views_filter_in_order() {
        let r = request("auto")
            .candidates([
                candidate("a").prices(3.0, 0.3, 6.0).images(),
                candidate("b").prices(0.5, 0.05, 1.0).context_window(8_000),
                candidate("c")
                    .prices(1.0, 0.1, 2.0)
                    .health(Health::Unavailable),
            ])
            .into_request();
        let names =
            |v: crate::Candidates<'_>| v.iter().map(|c| c.model.clone()).collect::<Vec<_>>();
        assert_eq!(names(r.candidates().healthy()), ["a", "b"]);
        assert_eq!(names(r.candidates().with_images()), ["a"]);
        assert_eq!(names(r.candidates().fitting(10_000)), ["a", "c"]);
        assert_eq!(
            r.candidates().cheapest().map(|c| c.model.as_str()),
            Some("b")
        );
        assert_eq!(
            r.candidates()
                .healthy()
                .fitting(10_000)
                .first()
                .map(|c| c.model.as_str()),
            Some("a")
        );
        assert!(!r.is_streaming() && request("m").streaming().into_request().is_streaming());
    }

    #[test]
    fn budget_and_rate_limit_shares() {
        let r = request("m").into_request();
        assert_eq!(r.budget_used_fraction(), None);
        assert_eq!(r.rate_limit_headroom(), None);
        let r = request("m")
            .daily_budget(5.0, 10.0)
            .monthly_budget(80.0, 100.0)
            .requests_per_minute(100, 50)
            .tokens_per_minute(10_000, 1_000)
            .into_request();
        assert_eq!(r.budget_used_fraction(), Some(0.8));
        assert_eq!(r.rate_limit_headroom(), Some(0.1));
    }

    #[test]
    fn per_upstream_signals() {
        let r = request("m")
            .candidates([candidate("m")
                .upstream("b")
                .signals(signals("a").ttft_ms(900, 4_000).error_rate(0.5))
                .signals(signals("b").ttft_ms(300, 600))])
            .into_request();
        let m = r.candidate("m").unwrap();
        assert_eq!(m.signals().and_then(|s| s.ttft_p95_ms), Some(600));
        assert_eq!(
            m.upstream_signals("a").and_then(|s| s.error_rate),
            Some(0.5)
        );
        assert!(m.upstream_signals("c").is_none());
    }
}
