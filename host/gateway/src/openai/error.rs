//! OpenAI-style error bodies: `{"error": {"message", "type", "param", "code"}}`, which the official
//! client libraries turn into their matching exception classes.

use bytes::Bytes;
use serde::Serialize;

/// The `error` object.
#[derive(Debug, Serialize)]
pub struct ErrorObject<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: &'a str,
    /// Switchyard extension: what each upstream attempt did, when there were any.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub attempts: &'a [AttemptSummary],
}

/// One upstream attempt, as reported in an error body.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttemptSummary {
    pub model: String,
    pub upstream: String,
    pub outcome: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorObject<'a>,
}

/// Serialises an error object as the JSON response body.
pub fn error_body(error: ErrorObject<'_>) -> Bytes {
    // Serialising this struct of strings cannot fail.
    Bytes::from(serde_json::to_vec(&Envelope { error }).unwrap_or_default())
}
