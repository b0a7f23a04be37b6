//! The Switchyard gateway: an LLM gateway whose routing policies are sandboxed WebAssembly
//! components, one per tenant.
//!
//! Map of the crate, in the order a request meets it:
//! - `http`: the accept loop (HTTP/1.1 and HTTP/2) with its graceful drain, and the admin API;
//! - `pipeline`: the request path, phase by phase (read this first), and the request context
//!   that settles every request exactly once;
//! - `auth`: API keys, stored as SHA-256 digests, compared in constant time;
//! - `routing`: the policy's summary of a request, the host's check of its decision, the order
//!   of the upstreams;
//! - `sandbox`: CPU isolation of decisions (scheduling, the idle-class pool, quarantine,
//!   teardown), with its own README;
//! - `accounts`: spend reservations, budgets and rate limits (local, or shared through Redis);
//! - `cache`: the exact response cache (memory or Redis), streams included;
//! - `config`, `live`: the configuration, and the swappable snapshot with its reload and watcher;
//! - `observe`: logs, traces and metrics;
//! - `console`: the web console on the admin listener (`/console`);
//! - `simulator`: the built-in simulated provider of the offline default.
//!
//! The sandbox itself is the `switchyard-policy` crate; talking to providers (wire formats,
//! fallback loop, relay, circuit breakers) is `switchyard-upstream`. This crate composes them.

mod accounts;
mod app;
mod auth;
mod cache;
mod config;
mod console;
mod conversations;
mod error;
mod http;
mod learning;
mod live;
pub mod observe;
pub mod offline;
mod pipeline;
mod reports;
mod response;
mod rollout;
mod routing;
mod sandbox;
mod services;
mod simulator;

pub use app::{Gateway, Reloader, StartError};
pub use auth::hash_key;
pub use config::{AdminSettings, Config, ConfigError, ModelInfo, PolicySource, builtin_models};
pub use console::{Simulate, SimulateJob};
pub use live::reload::{ReloadReport, Trigger};
pub use sandbox::testing as sandbox_testing;
pub use switchyard_upstream::Usage;
