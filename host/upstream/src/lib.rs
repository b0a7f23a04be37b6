//! Talking to LLM providers: one HTTP client per upstream, the chat-completions wire format
//! (parsed once, spliced, never re-serialised), the fallback loop with its commit point, the
//! stream relay, and the health of each model on each upstream (circuit breakers, retry budget).
//!
//! This crate knows HTTP and the providers' wire formats, not the sandbox: it takes a list of
//! [`PlannedTarget`]s and returns what the first one that answered [`Delivered`], or an
//! [`ExecError`] listing every attempt. The gateway maps its errors and [`Health`] into its own
//! vocabulary.

mod attempt;
pub mod chat;
mod client;
pub mod dialect;
mod failure;
mod fallback;
mod health;
pub mod passthrough;
mod redact;
pub mod relay;
pub mod sse;
mod stats;
mod usage;

pub use client::{
    ANTHROPIC_VERSION, ApiUrls, ProviderKind, ResumeVia, Timeouts, UpstreamClient, UpstreamSettings,
};
pub use failure::{FailureClass, UpstreamFailure, retry_after};
pub use fallback::{
    AttemptObserver, AttemptSummary, Delivered, DeliveredBody, ExecError, ExecOptions, Outbound,
    PlannedTarget, Progress, ResumeContext, Resumer, TargetLimits, TracePropagation, execute,
};
pub use health::{
    Admission, BreakerSettings, BreakerState, Breakers, Health, Probe, RetryBudget,
    RetryBudgetSettings,
};
pub use redact::{Redactor, Secret};
pub use relay::{
    ClientStream, RelayLimits, Segment, StreamEnd, StreamFinish, StreamOutcome, StreamStart,
    completion_output_tokens, into_body,
};
pub use stats::{InFlight, Signals, UpstreamStats};
pub use usage::{Usage, usage_in_value, usage_of};
