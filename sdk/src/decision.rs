//! Building routing decisions.

use crate::bindings::switchyard::policy::types::{
    self as raw, CacheMode, Pair, Rejection, Route, Target,
};

/// What a policy answers: send the request to a model (with fallbacks), or refuse it.
///
/// Start with [`Decision::route`] or [`Decision::reject`] and chain the builder methods. Methods that
/// shape a route do nothing on a rejection, so a chain never has to branch.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision(raw::Decision);

impl Decision {
    /// Route the request to `model`, with no fallbacks and the cache off.
    pub fn route(model: impl Into<String>) -> Self {
        Decision(raw::Decision::Route(Route {
            primary: Target {
                model: model.into(),
                upstream: None,
            },
            fallbacks: Vec::new(),
            reasoning_effort: None,
            max_output_tokens: None,
            cache: CacheMode::Off,
            cache_ttl_seconds: None,
            tags: Vec::new(),
        }))
    }

    /// Refuse the request with an OpenAI-style error: `status` is 400-499 or 503, `code` is a
    /// machine-readable word such as `budget_exhausted`.
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

    /// Pins the primary target to one upstream (by name) when several serve its model.
    pub fn via(self, upstream: impl Into<String>) -> Self {
        self.map_route(|r| r.primary.upstream = Some(upstream.into()))
    }

    /// Adds a fallback, tried after the primary and any earlier fallbacks fail before the first
    /// byte reached the client.
    pub fn fallback(self, model: impl Into<String>) -> Self {
        self.map_route(|r| {
            r.fallbacks.push(Target {
                model: model.into(),
                upstream: None,
            })
        })
    }

    /// Adds several fallbacks, in order.
    pub fn fallbacks<I, S>(self, models: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.map_route(|r| {
            r.fallbacks.extend(models.into_iter().map(|m| Target {
                model: m.into(),
                upstream: None,
            }))
        })
    }

    /// Overrides the request's `reasoning_effort`.
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
