//! The OpenAI chat-completions dialect: a request parsed once (spans of the fields that may
//! change are kept), the upstream body spliced from the client's bytes, a stream reassembled
//! into one completion, and a stored completion replayed as a stream.

pub mod assemble;
pub mod encode;
pub mod replay;
pub mod request;
pub mod rewrite;

pub use request::{ChatRequest, ConversationStats, ParseError};
pub use rewrite::{Overrides, SplicedBody, rewrite};
