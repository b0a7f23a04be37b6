//! Talking to upstream providers: HTTP clients with TLS and connection pools, failure
//! classification, the fallback loop with its commit point, and the stream relay.

pub mod client;
pub mod failure;
pub mod fallback;
pub mod health;
pub mod relay;

pub use client::UpstreamClient;
pub use failure::{FailureClass, UpstreamFailure};
pub use fallback::{Delivered, DeliveredBody, PlannedTarget, execute};
