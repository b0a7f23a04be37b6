//! Read-only helpers over the request summary the host hands a policy.

use crate::bindings::switchyard::policy::types::{Budget, Candidate, Health, RequestSummary};

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

    /// The `reasoning_effort` the client asked for.
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

    /// The first routing hint named `key` (an `x-switchyard-<key>` header or a `metadata` entry).
    /// Keys compare case-insensitively.
    pub fn hint(&self, key: &str) -> Option<&str> {
        self.summary
            .hints
            .iter()
            .find(|p| p.key.eq_ignore_ascii_case(key))
            .map(|p| p.value.as_str())
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

    /// The tenant's spend and budgets.
    pub fn budget(&self) -> &Budget {
        &self.summary.budget
    }

    /// Share of the tightest budget already spent, from 0.0 up; `None` without budgets.
    pub fn budget_used_fraction(&self) -> Option<f64> {
        let b = &self.summary.budget;
        let daily = b
            .daily_limit_usd
            .filter(|l| *l > 0.0)
            .map(|l| b.spent_today_usd / l);
        let monthly = b
            .monthly_limit_usd
            .filter(|l| *l > 0.0)
            .map(|l| b.spent_month_usd / l);
        match (daily, monthly) {
            (Some(d), Some(m)) => Some(d.max(m)),
            (d, m) => d.or(m),
        }
    }

    /// A per-request value for reproducible sampling.
    pub fn seed(&self) -> u64 {
        self.summary.seed
    }

    /// The underlying contract value.
    pub fn summary(&self) -> &RequestSummary {
        &self.summary
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
        self.filter(|c| c.context_window >= tokens)
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
