//! The OpenAI wire format: parsing chat requests once, rewriting them for an upstream without
//! re-serialising, error bodies, and server-sent events.

pub mod error;
pub mod request;
pub mod rewrite;
pub mod sse;
pub mod usage;
