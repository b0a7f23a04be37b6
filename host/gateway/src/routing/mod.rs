//! From a parsed request to a checked route plan: the policy's summary of the request, the
//! host's check of what the policy decided, and the order of the upstreams that serve each
//! model. The policy proposes; the host decides. (The policy runs in [`crate::sandbox`].)

mod check;
mod chooser;
mod summary;

use switchyard_policy::FailureKind;
use switchyard_policy::types::CacheMode;
use switchyard_upstream::PlannedTarget;
use switchyard_upstream::chat::Overrides;

pub(crate) use check::{Checked, check, failure_route};
pub(crate) use chooser::Chooser;
pub(crate) use summary::{Context, hints, summarise, tokens};

/// Where a plan came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlanSource {
    /// The tenant's policy decided.
    Policy,
    /// The policy failed this way; the tenant's default route applies.
    FailureDefault(FailureKind),
}

/// A checked plan: resolved targets and what to change in the request.
#[derive(Debug, Clone)]
pub(crate) struct RoutePlan {
    pub targets: Vec<PlannedTarget>,
    pub overrides: Overrides,
    pub cache: CacheMode,
    pub cache_ttl_seconds: Option<u32>,
    pub tags: Vec<(String, String)>,
    pub source: PlanSource,
    /// Tell the policy how the request ended (`on-outcome`).
    pub report_outcome: bool,
}

impl RoutePlan {
    /// Whether a cached response may serve the request.
    pub fn cache_reads(&self) -> bool {
        matches!(self.cache, CacheMode::ReadOnly | CacheMode::ReadWrite)
    }

    /// Whether the response is stored.
    pub fn cache_writes(&self) -> bool {
        matches!(self.cache, CacheMode::WriteOnly | CacheMode::ReadWrite)
    }
}
