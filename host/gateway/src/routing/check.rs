//! What the host accepts from a policy: only the tenant's models and upstreams that serve them, a
//! bounded number of fallbacks and tags, and rejections with a sane status, code and message;
//! and what a request gets when its policy failed or was refused.

use std::time::Duration;

use switchyard_policy::types::{CacheMode, Decision, Target};
use switchyard_policy::{FailureKind, PolicyFailure};
use switchyard_upstream::TargetLimits;
use switchyard_upstream::chat::Overrides;

use super::chooser::{Chooser, resolve};
use super::{PlanSource, RoutePlan};
use crate::config::{FailureOutcome, MAX_RETRIES};
use crate::error::GatewayError;
use crate::live::snapshot::Snapshot;
use crate::live::tenant::Tenant;

/// Most tags a decision may carry.
const MAX_TAGS: usize = 16;

/// A decision as the host accepted it.
pub(crate) enum Checked {
    Route(RoutePlan),
    Reject {
        status: u16,
        code: String,
        message: String,
    },
}

fn invalid(detail: impl Into<String>) -> PolicyFailure {
    PolicyFailure::new(FailureKind::InvalidDecision, detail)
}

/// What the host accepts from a policy: only the tenant's models and upstreams that serve them,
/// a bounded number of fallbacks and tags, and rejections with a sane status, code and message.
pub(crate) fn check(
    snapshot: &Snapshot,
    tenant: &Tenant,
    decision: Decision,
    chooser: &Chooser<'_>,
) -> Result<Checked, PolicyFailure> {
    match decision {
        Decision::Reject(r) => {
            if !((400..=499).contains(&r.status) || r.status == 503) {
                return Err(invalid(format!(
                    "rejection status {} is not 4xx or 503",
                    r.status
                )));
            }
            let code_ok = !r.code.is_empty()
                && r.code.len() <= 64
                && r.code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
            if !code_ok {
                return Err(invalid(
                    "rejection code must be 1-64 characters of [A-Za-z0-9_.-]",
                ));
            }
            if r.message.is_empty()
                || r.message.len() > 1024
                || r.message.chars().any(char::is_control)
            {
                return Err(invalid(
                    "rejection message must be 1-1024 characters without control characters",
                ));
            }
            Ok(Checked::Reject {
                status: r.status,
                code: r.code,
                message: r.message,
            })
        }
        Decision::Route(route) => {
            let max = tenant.config.limits.max_fallbacks;
            if route.fallbacks.len() > max {
                return Err(invalid(format!(
                    "{} fallbacks, more than the {max} allowed",
                    route.fallbacks.len()
                )));
            }
            if route.tags.len() > MAX_TAGS {
                return Err(invalid(format!(
                    "{} tags, more than the {MAX_TAGS} allowed",
                    route.tags.len()
                )));
            }
            let mut targets = Vec::with_capacity(1 + route.fallbacks.len());
            for t in std::iter::once(&route.primary).chain(&route.fallbacks) {
                if !tenant.allows(&t.model) {
                    return Err(invalid(format!(
                        "model `{}` is not allowed for tenant `{}`",
                        t.model, tenant.name
                    )));
                }
                let limits = target_limits(t)?;
                targets.extend(
                    resolve(
                        snapshot,
                        &t.model,
                        t.upstream.as_deref(),
                        chooser,
                        limits,
                        route.keep_conversation,
                    )
                    .map_err(invalid)?,
                );
            }
            if let Some(effort) = &route.reasoning_effort
                && (effort.is_empty()
                    || effort.len() > 16
                    || !effort.bytes().all(|b| b.is_ascii_lowercase()))
            {
                return Err(invalid("reasoning effort must be 1-16 lower-case letters"));
            }
            if route.max_output_tokens == Some(0) {
                return Err(invalid("max output tokens must be positive"));
            }
            Ok(Checked::Route(RoutePlan {
                targets,
                overrides: Overrides {
                    reasoning_effort: route.reasoning_effort,
                    max_output_tokens: route.max_output_tokens,
                    force_stream_usage: true,
                },
                cache: route.cache,
                cache_ttl_seconds: route.cache_ttl_seconds,
                tags: route.tags.into_iter().map(|p| (p.key, p.value)).collect(),
                source: PlanSource::Policy,
                report_outcome: route.report_outcome,
            }))
        }
    }
}

/// A target's own limits, as the decision set them.
fn target_limits(t: &Target) -> Result<TargetLimits, PolicyFailure> {
    let ms = |v: Option<u32>, what: &str| match v {
        Some(0) => Err(invalid(format!("{what} must be positive"))),
        v => Ok(v.map(|ms| Duration::from_millis(u64::from(ms)))),
    };
    // A decision that says nothing leaves the upstream's `retries` default in force.
    if let Some(retries) = t.retries.filter(|r| *r > MAX_RETRIES) {
        return Err(invalid(format!(
            "{retries} retries of one target, more than the {MAX_RETRIES} allowed"
        )));
    }
    Ok(TargetLimits {
        first_token: ms(t.first_token_deadline_ms, "a first-token deadline")?,
        attempt: ms(t.attempt_timeout_ms, "an attempt timeout")?,
        retries: t.retries,
    })
}

/// The tenant's configured outcome for a policy that failed (or whose decision was refused):
/// a 503, or its default route with the cache off.
pub(crate) fn failure_route(
    snapshot: &Snapshot,
    tenant: &Tenant,
    kind: FailureKind,
    chooser: &Chooser<'_>,
) -> Result<RoutePlan, GatewayError> {
    match &tenant.config.on_policy_failure {
        FailureOutcome::Reject => Err(GatewayError::PolicyFailed { kind }),
        FailureOutcome::Route(models) => {
            let targets = models
                .iter()
                .filter_map(|m| {
                    resolve(snapshot, m, None, chooser, TargetLimits::default(), false).ok()
                })
                .flatten()
                .collect::<Vec<_>>();
            if targets.is_empty() {
                return Err(GatewayError::PolicyFailed { kind });
            }
            Ok(RoutePlan {
                targets,
                overrides: Overrides::default(),
                cache: CacheMode::Off,
                cache_ttl_seconds: None,
                tags: vec![("policy-failure".into(), kind.as_str().into())],
                source: PlanSource::FailureDefault(kind),
                report_outcome: false,
            })
        }
    }
}
