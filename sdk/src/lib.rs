//! Write Switchyard routing policies in Rust, against contract `switchyard:policy@0.2.0`
//! (`wit/policy.wit`).
//!
//! A policy is a pure function from a summary of one request (and the statistics it keeps in
//! [`state`]) to a routing decision. The host (the Switchyard proxy) runs it as a sandboxed
//! WebAssembly component, in a fresh instance per call, and checks every decision before acting
//! on it. This crate hides the WIT bindings behind a typed [`Policy`] trait, a [`Decision`]
//! builder and [`Request`] helpers, and lets you unit-test policy logic natively with
//! `cargo test` through the [`testing`] module (feature `testing`).
//!
//! A complete policy, which also learns from outcomes:
//!
//! ```
//! use serde::Deserialize;
//! use switchyard_sdk::prelude::*;
//! use switchyard_sdk::{contract, state};
//!
//! /// The tenant's settings, passed as JSON from the proxy's config and checked at load time.
//! #[derive(Deserialize)]
//! #[serde(default, deny_unknown_fields)]
//! struct Config {
//!     cheap: String,
//!     strong: String,
//!     long_prompt_tokens: u64,
//!     strong_hints: Vec<String>, // `key=value`
//!     cache: CacheMode,          // "off", "read-only", "write-only" or "read-write"
//! }
//!
//! impl Default for Config {
//!     fn default() -> Self {
//!         Config {
//!             cheap: "deepseek-v4-flash".into(),
//!             strong: "deepseek-v4-pro".into(),
//!             long_prompt_tokens: 100_000,
//!             strong_hints: vec!["difficulty=hard".into()],
//!             cache: CacheMode::Off,
//!         }
//!     }
//! }
//!
//! struct CostAware;
//!
//! impl Policy for CostAware {
//!     type Config = Config;
//!
//!     fn validate(config: &Config) -> Result<(), String> {
//!         if config.long_prompt_tokens == 0 {
//!             return Err("long_prompt_tokens must be positive".into());
//!         }
//!         contract::check_hints(&config.strong_hints)
//!     }
//!
//!     fn decide(config: &Config, request: &Request) -> Decision {
//!         if request.hint("tier") == Some("free") && request.requested_model() == config.strong {
//!             return Decision::reject(403, "model_not_allowed", "the strong model needs a paid plan");
//!         }
//!         let hard = request.input_tokens() > config.long_prompt_tokens
//!             || request.hint_matches_any(&config.strong_hints);
//!         // Learned in on_outcome: the strong model's failures in a row.
//!         let failing = state::get_json::<u32>("strong-failures").unwrap_or(0) >= 3;
//!         let chain = if hard && !failing {
//!             [&config.strong, &config.cheap]
//!         } else {
//!             [&config.cheap, &config.strong]
//!         };
//!         // Allowed models that hold the request, unavailable ones last; a 400 if none.
//!         Decision::first_usable(request, chain)
//!             .cache(config.cache)
//!             .tag("reason", if hard { "hard" } else { "default" })
//!             .report_outcome()
//!     }
//!
//!     fn on_outcome(config: &Config, outcome: &Outcome) {
//!         if outcome.model.as_deref() == Some(config.strong.as_str()) {
//!             let failures = state::get_json::<u32>("strong-failures").unwrap_or(0);
//!             let now = if outcome.succeeded() { 0 } else { failures + 1 };
//!             if let Err(e) = state::set_json("strong-failures", &now) {
//!                 switchyard_sdk::warn!("not recorded: {e}");
//!             }
//!         }
//!     }
//! }
//!
//! switchyard_sdk::export_policy!(CostAware);
//! # fn main() {}
//! ```
//!
//! Build it for `wasm32-unknown-unknown` (or `wasm32-wasip2`) as a `cdylib` and turn the module into
//! a component; the repository's `scripts/build-policies.sh` does both.

pub mod arena;
#[doc(hidden)]
pub mod bindings;
pub mod contract;
mod decision;
pub mod log;
mod outcome;
mod policy;
mod request;
pub mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod text;

/// On WebAssembly, with the default `arena` feature, policies allocate from a one-shot bump arena
/// (see [`arena`]): each instance makes one call and is thrown away.
#[cfg(all(
    feature = "arena",
    target_arch = "wasm32",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: arena::OneShotArena = arena::OneShotArena::new();

pub use decision::Decision;
pub use policy::Policy;
#[doc(hidden)]
pub use policy::{__decide, __on_outcome, __validate};
pub use request::{Candidates, Request};

/// Contract types, re-exported from the generated bindings.
pub mod types {
    pub use crate::bindings::switchyard::policy::types::{
        Budget, CacheMode, Candidate, Conversation, ConversationSource, Endpoint, Health, Outcome,
        Pair, RateLimits, Rejection, RequestSummary, Route, Target, UpstreamSignals,
    };
}

pub use types::{CacheMode, Endpoint, Health, Outcome};

/// Everything a policy usually needs, in one import.
pub mod prelude {
    pub use crate::log::Level;
    pub use crate::types::{CacheMode, Candidate, Endpoint, Health, Outcome};
    pub use crate::{Decision, Policy, Request};
}

/// Exports a [`Policy`] implementation as the component's `validate-config`, `decide` and
/// `on-outcome`.
///
/// Use it once per policy crate, at the crate root: `switchyard_sdk::export_policy!(MyPolicy);`
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        #[doc(hidden)]
        pub struct __SwitchyardPolicyExport;

        impl $crate::bindings::Guest for __SwitchyardPolicyExport {
            fn validate_config(config: String) -> Result<(), String> {
                $crate::__validate::<$policy>(&config)
            }

            fn decide(
                request: $crate::bindings::switchyard::policy::types::RequestSummary,
            ) -> $crate::bindings::switchyard::policy::types::Decision {
                $crate::__decide::<$policy>(request).into_raw()
            }

            fn on_outcome(
                config: String,
                outcome: $crate::bindings::switchyard::policy::types::Outcome,
            ) {
                $crate::__on_outcome::<$policy>(&config, outcome)
            }
        }

        $crate::bindings::__export_policy_world!(
            __SwitchyardPolicyExport with_types_in $crate::bindings
        );
    };
}
