//! The trait a policy implements, and the adapters the export macro calls.

use serde::de::DeserializeOwned;

use crate::bindings::switchyard::policy::types::{Outcome, RequestSummary};
use crate::{Decision, Request};

/// A routing policy.
///
/// The host calls [`Policy::validate`] once per tenant at load time, [`Policy::decide`] once per
/// request and [`Policy::on_outcome`] after a request whose decision asked for it
/// ([`Decision::report_outcome`]), each in a fresh instance. What a policy learns outlives an
/// instance only in [`crate::state`], which it can write in `on_outcome` alone.
pub trait Policy {
    /// The tenant's policy configuration, deserialised from the JSON in the proxy's config.
    /// An empty configuration is read as `{}`, so `#[serde(default)]` gives every field a default.
    type Config: DeserializeOwned;

    /// Checks a configuration beyond what deserialising it checks. The default accepts it.
    fn validate(config: &Self::Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// Decides where one request goes.
    fn decide(config: &Self::Config, request: &Request) -> Decision;

    /// Learns from how a request ended, off the request's path: the place to update
    /// [`crate::state`]. The default does nothing.
    fn on_outcome(config: &Self::Config, outcome: &Outcome) {
        let _ = (config, outcome);
    }
}

fn parse_config<P: Policy>(config: &str) -> Result<P::Config, String> {
    let json = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    serde_json::from_str(json).map_err(|e| format!("invalid policy config: {e}"))
}

/// What `validate-config` runs: parse, then [`Policy::validate`].
#[doc(hidden)]
pub fn __validate<P: Policy>(config: &str) -> Result<(), String> {
    P::validate(&parse_config::<P>(config)?)
}

/// What `decide` runs: parse the config, then [`Policy::decide`]. A config that no longer parses
/// (the host validated it at load time, so this means a host bug) becomes a 503 rejection.
#[doc(hidden)]
pub fn __decide<P: Policy>(summary: RequestSummary) -> Decision {
    match parse_config::<P>(&summary.config) {
        Ok(config) => P::decide(&config, &Request::new(summary)),
        Err(reason) => Decision::reject(503, "policy_config_invalid", reason),
    }
}

/// What `on-outcome` runs: parse the config, then [`Policy::on_outcome`]. A config that does not
/// parse is logged and the outcome dropped.
#[doc(hidden)]
pub fn __on_outcome<P: Policy>(config: &str, outcome: Outcome) {
    match parse_config::<P>(config) {
        Ok(config) => P::on_outcome(&config, &outcome),
        Err(reason) => crate::warn!("outcome of {} dropped: {reason}", outcome.request_id),
    }
}
