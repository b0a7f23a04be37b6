//! Write Switchyard routing policies in Rust.
//!
//! A policy is a pure function from a summary of one request to a routing decision. The host (the
//! Switchyard proxy) runs it as a sandboxed WebAssembly component, in a fresh instance per request,
//! and checks every decision before acting on it. This crate hides the WIT bindings behind a typed
//! [`Policy`] trait, a [`Decision`] builder and [`Request`] helpers, and lets you unit-test policy
//! logic natively with `cargo test` through the [`testing`] module (feature `testing`).
//!
//! A complete policy:
//!
//! ```
//! use serde::Deserialize;
//! use switchyard_sdk::prelude::*;
//!
//! /// The tenant's settings, passed as JSON from the proxy's config and checked at load time.
//! #[derive(Deserialize)]
//! #[serde(default, deny_unknown_fields)]
//! struct Config {
//!     cheap: String,
//!     strong: String,
//!     long_prompt_tokens: u64,
//! }
//!
//! impl Default for Config {
//!     fn default() -> Self {
//!         Config { cheap: "deepseek-v4-flash".into(), strong: "deepseek-v4-pro".into(), long_prompt_tokens: 100_000 }
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
//!         Ok(())
//!     }
//!
//!     fn decide(config: &Config, request: &Request) -> Decision {
//!         if request.hint("tier") == Some("free") && request.requested_model() == config.strong {
//!             return Decision::reject(403, "model_not_allowed", "the strong model needs a paid plan");
//!         }
//!         if request.input_tokens() > config.long_prompt_tokens {
//!             return Decision::route(&config.strong).tag("reason", "long-prompt");
//!         }
//!         Decision::route(&config.cheap)
//!             .fallback(&config.strong) // tried only if the cheap model fails before the first byte
//!             .cache(CacheMode::ReadWrite)
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
pub mod bindings;
mod decision;
pub mod log;
mod policy;
mod request;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// On WebAssembly, with the default `arena` feature, policies allocate from a one-shot bump arena
/// (see [`arena`]): each instance makes one decision and is thrown away.
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
pub use policy::{__decide, __validate};
pub use request::{Candidates, Request};

/// Contract types, re-exported from the generated bindings.
pub mod types {
    pub use crate::bindings::switchyard::policy::types::{
        Budget, CacheMode, Candidate, Endpoint, Health, Pair, RequestSummary, Target,
    };
}

pub use types::{CacheMode, Health};

/// Everything a policy usually needs, in one import.
pub mod prelude {
    pub use crate::log::Level;
    pub use crate::types::{CacheMode, Candidate, Health};
    pub use crate::{Decision, Policy, Request};
}

/// Exports a [`Policy`] implementation as the component's `decide` and `validate-config`.
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
        }

        $crate::bindings::__export_policy_world!(
            __SwitchyardPolicyExport with_types_in $crate::bindings
        );
    };
}
