//! The one place that sees the code generated from `wit/policy.wit`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "policy",
    imports: { default: trappable },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

/// The contract's types, as the rest of the host uses them.
pub mod types {
    pub use super::switchyard::policy::log::Level as LogLevel;
    pub use super::switchyard::policy::types::{
        Budget, CacheMode, Candidate, Decision, Endpoint, Health, Pair, Rejection, RequestSummary,
        Route, Target,
    };
}
