//! What can go wrong loading or calling a policy.

use std::fmt;

/// Why a policy could not be loaded. The policy in service (if any) stays in service.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component (truncated, a core module, not wasm at all).
    #[error("not a valid WebAssembly component: {0}")]
    NotAComponent(String),
    /// The component does not implement the `switchyard:policy/policy@0.1.0` world, or imports
    /// something the host does not provide.
    #[error("component does not match the switchyard:policy@0.1.0 contract: {0}")]
    WrongWorld(String),
    /// The engine could not be set up.
    #[error("policy engine: {0}")]
    Engine(String),
}

/// Which way a policy call failed; a label for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Ran past its CPU deadline.
    Deadline,
    /// Tried to grow memory beyond its cap.
    OutOfMemory,
    /// Overflowed its stack.
    StackOverflow,
    /// Called the log import more often than allowed.
    HostCallLimit,
    /// Any other trap: a panic, `unreachable`, a bad memory access...
    Trap,
    /// Returned a decision larger than allowed.
    OversizedDecision,
    /// Returned a decision the host refuses (a model outside the tenant's list, a bad status...).
    InvalidDecision,
    /// Could not be instantiated (limits too small for it, pool exhausted).
    Instantiation,
    /// Not called: quarantined after repeated failures.
    Quarantined,
    /// Not called: the tenant used up its share of policy CPU time (or decision slots).
    Throttled,
}

impl FailureKind {
    /// The label used in logs, metrics and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Deadline => "deadline",
            FailureKind::OutOfMemory => "out-of-memory",
            FailureKind::StackOverflow => "stack-overflow",
            FailureKind::HostCallLimit => "host-call-limit",
            FailureKind::Trap => "trap",
            FailureKind::OversizedDecision => "oversized-decision",
            FailureKind::InvalidDecision => "invalid-decision",
            FailureKind::Instantiation => "instantiation",
            FailureKind::Quarantined => "quarantined",
            FailureKind::Throttled => "throttled",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy call that produced no usable decision.
#[derive(Debug, Clone, thiserror::Error)]
#[error("policy failed ({kind}): {detail}")]
pub struct PolicyFailure {
    /// Which way it failed.
    pub kind: FailureKind,
    /// A one-line description, safe to log (never contains request content).
    pub detail: String,
}

impl PolicyFailure {
    /// A failure of `kind` with a description.
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        PolicyFailure {
            kind,
            detail: detail.into(),
        }
    }
}
