//! Building routing decisions.

use crate::Request;
use crate::bindings::switchyard::policy::types::{
    self as raw, CacheMode, Pair, Rejection, Route, Target,
};

/// What a policy answers: send the request to a model (with fallbacks), or refuse it.
///
/// Start with [`Decision::route`], [`Decision::first_usable`] or [`Decision::reject`] and chain
/// the builder methods. Methods that shape a route do nothing on a rejection, so a chain never has
/// to branch. Per-target settings ([`Decision::via`], [`Decision::first_token_deadline_ms`],
/// [`Decision::attempt_timeout_ms`], [`Decision::retries`]) apply to the target added last: the
/// primary until a fallback is added.
///
/// ```
/// use switchyard_sdk::prelude::*;
///
/// let d = Decision::route("deepseek-v4-flash")
///     .first_token_deadline_ms(2_000) // the primary: move on if nothing came within 2 s
///     .fallback("deepseek-v4-pro")
///     .retries(1) // the fallback
///     .keep_conversation()
///     .report_outcome();
/// let route = d.as_route().unwrap();
/// assert_eq!(route.primary.first_token_deadline_ms, Some(2_000));
/// assert_eq!(route.fallbacks[0].retries, Some(1));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Decision(raw::Decision);

/// A target with no upstream pinned and no limits of its own.
fn target(model: String) -> Target {
    Target {
        model,
        upstream: None,
        first_token_deadline_ms: None,
        attempt_timeout_ms: None,
        retries: None,
    }
}

impl Decision {
    /// Route the request to `model`, with no fallbacks and the cache off.
    pub fn route(model: impl Into<String>) -> Self {
        Decision(raw::Decision::Route(Route {
            primary: target(model.into()),
            fallbacks: Vec::new(),
            reasoning_effort: None,
            max_output_tokens: None,
            cache: CacheMode::Off,
            cache_ttl_seconds: None,
            tags: Vec::new(),
            keep_conversation: false,
            report_outcome: false,
        }))
    }

    /// Route along the usable part of `chain` ([`Request::usable`]): the models the tenant may use
    /// whose context window holds the request, each once, unavailable ones last. The first is
    /// the primary, the rest fallbacks in order. When none is usable, a 400 rejection with code
    /// `no_suitable_model` (check with [`Decision::is_reject`] to try another chain).
    ///
    /// ```
    /// use switchyard_sdk::prelude::*;
    /// use switchyard_sdk::testing::{candidate, request};
    ///
    /// let r = request("auto")
    ///     .input_tokens(10_000)
    ///     .candidates([candidate("small").context_window(8_000), candidate("big")])
    ///     .into_request();
    /// let d = Decision::first_usable(&r, ["small", "not-allowed", "big"]);
    /// assert_eq!(d.primary(), Some("big"));
    /// ```
    pub fn first_usable<I>(request: &Request, chain: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let usable = request.usable(chain);
        match usable.split_first() {
            Some((primary, rest)) => {
                Decision::route(&primary.model).fallbacks(rest.iter().map(|c| c.model.as_str()))
            }
            None => Decision::reject(
                400,
                "no_suitable_model",
                format!(
                    "none of this tenant's models can serve this request ({} tokens needed)",
                    request.tokens_needed()
                ),
            ),
        }
    }

    /// Refuse the request with an error in the client's API shape: `status` is 400-499 or 503,
    /// `code` is a machine-readable word such as `budget_exhausted`.
    pub fn reject(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Decision(raw::Decision::Reject(Rejection {
            status,
            code: code.into(),
            message: message.into(),
        }))
    }

    fn map_route(mut self, f: impl FnOnce(&mut Route)) -> Self {
        if let raw::Decision::Route(route) = &mut self.0 {
            f(route);
        }
        self
    }

    fn map_last(self, f: impl FnOnce(&mut Target)) -> Self {
        self.map_route(|r| f(r.fallbacks.last_mut().unwrap_or(&mut r.primary)))
    }

    /// Pins the last added target to one upstream (by name) when several serve its model.
    pub fn via(self, upstream: impl Into<String>) -> Self {
        self.map_last(|t| t.upstream = Some(upstream.into()))
    }

    /// Moves on from the last added target when no content or tool call has come within `ms`
    /// milliseconds of sending (the late answer is dropped).
    pub fn first_token_deadline_ms(self, ms: u32) -> Self {
        self.map_last(|t| t.first_token_deadline_ms = Some(ms))
    }

    /// Bounds one attempt on the last added target to `ms` milliseconds.
    pub fn attempt_timeout_ms(self, ms: u32) -> Self {
        self.map_last(|t| t.attempt_timeout_ms = Some(ms))
    }

    /// Tries the last added target again up to `n` times after a retryable failure before
    /// moving on (within the host's retry budget and the request's deadline).
    pub fn retries(self, n: u8) -> Self {
        self.map_last(|t| t.retries = Some(n))
    }

    /// Adds a fallback, tried after the primary and any earlier fallbacks fail before the first
    /// byte reached the client.
    pub fn fallback(self, model: impl Into<String>) -> Self {
        self.map_route(|r| r.fallbacks.push(target(model.into())))
    }

    /// Adds several fallbacks, in order.
    pub fn fallbacks<I, S>(self, models: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.map_route(|r| {
            r.fallbacks
                .extend(models.into_iter().map(|m| target(m.into())))
        })
    }

    /// Overrides the request's reasoning effort.
    pub fn reasoning_effort(self, effort: impl Into<String>) -> Self {
        self.map_route(|r| r.reasoning_effort = Some(effort.into()))
    }

    /// Caps the completion length.
    pub fn max_output_tokens(self, tokens: u64) -> Self {
        self.map_route(|r| r.max_output_tokens = Some(tokens))
    }

    /// Sets how the host's response cache applies.
    pub fn cache(self, mode: CacheMode) -> Self {
        self.map_route(|r| r.cache = mode)
    }

    /// Sets how long a cached response stays fresh.
    pub fn cache_ttl(self, seconds: u32) -> Self {
        self.map_route(|r| r.cache_ttl_seconds = Some(seconds))
    }

    /// Records a label with the request's usage and trace, e.g. `tag("reason", "agent-depth")`.
    pub fn tag(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.map_route(|r| {
            r.tags.push(Pair {
                key: key.into(),
                value: value.into(),
            })
        })
    }

    /// Keeps the conversation on the upstream that served its last turn (which holds its prompt
    /// cache), unless that upstream is unavailable.
    pub fn keep_conversation(self) -> Self {
        self.map_route(|r| r.keep_conversation = true)
    }

    /// Asks the host to call [`crate::Policy::on_outcome`] with how this request ended.
    pub fn report_outcome(self) -> Self {
        self.map_route(|r| r.report_outcome = true)
    }

    // === inspection, mostly for tests ===

    /// The primary model, or `None` for a rejection.
    pub fn primary(&self) -> Option<&str> {
        self.as_route().map(|r| r.primary.model.as_str())
    }

    /// The fallback models, in order (empty for a rejection).
    pub fn fallback_models(&self) -> Vec<&str> {
        self.as_route()
            .map(|r| r.fallbacks.iter().map(|t| t.model.as_str()).collect())
            .unwrap_or_default()
    }

    /// The value of tag `key`, if the route carries it.
    pub fn tag_value(&self, key: &str) -> Option<&str> {
        self.as_route()?
            .tags
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }

    /// Whether this refuses the request.
    pub fn is_reject(&self) -> bool {
        self.as_rejection().is_some()
    }

    /// The route, or `None` for a rejection.
    pub fn as_route(&self) -> Option<&Route> {
        match &self.0 {
            raw::Decision::Route(route) => Some(route),
            raw::Decision::Reject(_) => None,
        }
    }

    /// The rejection, or `None` for a route.
    pub fn as_rejection(&self) -> Option<&Rejection> {
        match &self.0 {
            raw::Decision::Reject(rejection) => Some(rejection),
            raw::Decision::Route(_) => None,
        }
    }

    /// The contract value handed back to the host.
    pub fn into_raw(self) -> raw::Decision {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Health;
    use crate::testing::{candidate, request};

    #[test]
    fn target_settings_apply_to_the_target_added_last() {
        let d = Decision::route("a")
            .via("u1")
            .attempt_timeout_ms(30_000)
            .fallbacks(["b", "c"])
            .via("u2")
            .first_token_deadline_ms(1_500)
            .retries(2)
            .max_output_tokens(4_096);
        let r = d.as_route().unwrap();
        assert_eq!(r.primary.upstream.as_deref(), Some("u1"));
        assert_eq!(r.primary.attempt_timeout_ms, Some(30_000));
        assert_eq!(r.primary.first_token_deadline_ms, None);
        assert_eq!(r.fallbacks[0], target("b".into()));
        let c = &r.fallbacks[1];
        assert_eq!(c.upstream.as_deref(), Some("u2"));
        assert_eq!(
            (c.first_token_deadline_ms, c.retries),
            (Some(1_500), Some(2))
        );
        assert_eq!(r.max_output_tokens, Some(4_096));
        assert!(!r.keep_conversation && !r.report_outcome);
    }

    #[test]
    fn a_rejection_ignores_route_settings() {
        let d = Decision::reject(429, "slow_down", "later")
            .fallback("b")
            .retries(3)
            .keep_conversation()
            .report_outcome()
            .tag("k", "v");
        assert!(d.is_reject());
        assert_eq!(d.primary(), None);
        assert_eq!(d.tag_value("k"), None);
    }

    #[test]
    fn first_usable_routes_along_the_usable_chain_or_refuses() {
        let r = request("auto")
            .candidates([
                candidate("a").health(Health::Unavailable),
                candidate("b"),
                candidate("c").context_window(1_000),
            ])
            .input_tokens(2_000)
            .into_request();
        let d = Decision::first_usable(&r, ["a", "b", "c"]).keep_conversation();
        assert_eq!(d.primary(), Some("b"));
        assert_eq!(d.fallback_models(), ["a"]);
        assert!(d.as_route().unwrap().keep_conversation);
        let d = Decision::first_usable(&r, ["c", "x"]);
        let rejection = d.as_rejection().unwrap();
        assert_eq!(
            (rejection.status, rejection.code.as_str()),
            (400, "no_suitable_model")
        );
        assert!(rejection.message.contains("2000 tokens needed"));
    }
}
