//! One upstream attempt as reported: shared by the fallback loop and the relay (which resumes
//! cut streams), so neither imports the other for it.

/// One upstream attempt, as reported in error bodies and logs.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct AttemptSummary {
    pub model: String,
    pub upstream: String,
    pub outcome: String,
}
