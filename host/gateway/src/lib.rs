//! Switchyard: an OpenAI-compatible LLM gateway whose routing policies are sandboxed WebAssembly
//! components.
//!
//! Map of the crate, in the order a request meets it:
//! - [`server`]: accept loop (HTTP/1.1 and HTTP/2), graceful drain;
//! - [`pipeline`]: the request path, phase by phase (read this first);
//! - [`auth`]: API keys, stored as SHA-256 digests, compared in constant time;
//! - [`openai`]: parsing a chat request once, splicing the upstream body, SSE, usage, errors;
//! - [`routing`]: the policy's request summary, the policy call, and the host's check of its
//!   decision;
//! - [`upstream`]: HTTP clients, the fallback loop and its commit point, the stream relay;
//! - [`cache`]: the exact response cache (memory or Redis), streams included;
//! - [`budget`]: spend reservations, budgets and rate limits per tenant;
//! - [`accounting`]: cost and the access log;
//! - [`config`], [`state`], [`app`]: configuration, the swappable snapshot, the running gateway;
//! - [`reload`], [`watch`], [`admin`]: live reload (files, `SIGHUP`, admin API) and the admin
//!   listener;
//! - [`simulator`]: the built-in simulated provider used by the offline default.
//!
//! The policy sandbox itself lives in the `switchyard-policy` crate.

pub mod accounting;
pub mod admin;
pub mod app;
pub mod auth;
pub mod budget;
pub mod cache;
pub mod config;
pub mod error;
pub mod metrics;
pub mod offload;
pub mod openai;
pub mod pipeline;
pub mod policies;
pub mod quarantine;
pub mod redact;
pub mod reload;
pub mod routing;
pub mod scheduler;
pub mod server;
pub mod shared_state;
pub mod simulator;
pub mod state;
pub mod telemetry;
pub mod tenant;
pub mod tools;
pub mod upstream;
pub mod watch;

pub use app::Gateway;
pub use config::Config;
