//! Helpers over an [`Outcome`]: how a request whose decision set
//! [`crate::Decision::report_outcome`] ended, as [`crate::Policy::on_outcome`] sees it.

pub use crate::bindings::switchyard::policy::types::Outcome;

impl Outcome {
    /// Whether the client got a 2xx response.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The value of the decision's tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }

    /// The share of the input the provider served from its prompt cache (0 to 1); `None` when
    /// no input tokens were reported.
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        (self.input_tokens > 0)
            .then(|| f64::from(self.cached_input_tokens) / f64::from(self.input_tokens))
    }
}
