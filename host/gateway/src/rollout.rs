//! Rolling a policy version out safely beside the live one (`[tenants.NAME.candidate]`).
//!
//! - Shadow: the candidate decides on the same summaries as the live policy, off the request path
//!   (on the idle-class pool), and only its decision is recorded next to the live one, with the
//!   projected cost of each, for the admin API.
//! - Canary: the candidate decides a configured share of the tenant's requests (chosen by the
//!   request's seed, so a replayed request id gets the same policy). Its requests are counted; when
//!   more than `max_error_rate` of them fail (once `min_requests` have been seen), or the candidate
//!   is quarantined, it is rolled back: the live policy decides everything again until a reload
//!   brings a new candidate.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use switchyard_policy::types::{Decision, RequestSummary};
use switchyard_policy::{CallContext, PolicyHash};

use crate::config::RolloutMode;
use crate::live::loader::LoadedPolicy;
use crate::live::tenant::Tenant;

/// Shadow comparisons kept per tenant.
const KEPT: usize = 200;

/// Which policy decides a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Live,
    Canary,
}

/// One shadow comparison.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Comparison {
    pub request_id: String,
    /// The first model each would try (`reject:<code>` or `failed:<kind>` otherwise).
    pub live: String,
    pub candidate: String,
    pub agree: bool,
    /// The request at each model's prices (input estimate plus its completion cap or 1,000
    /// tokens), USD.
    pub live_cost_usd: f64,
    pub candidate_cost_usd: f64,
}

#[derive(Debug, Default, Serialize)]
struct Record {
    candidate: String,
    hash: String,
    mode: Option<RolloutMode>,
    /// Shadow.
    compared: u64,
    agreed: u64,
    live_cost_usd: f64,
    candidate_cost_usd: f64,
    recent: VecDeque<Comparison>,
    /// Canary.
    served: u64,
    failed: u64,
    rolled_back: Option<String>,
}

/// Every tenant's rollout.
#[derive(Default)]
pub(crate) struct Rollouts {
    records: Mutex<HashMap<(Arc<str>, PolicyHash), Record>>,
}

impl std::fmt::Debug for Rollouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollouts").finish_non_exhaustive()
    }
}

fn key(tenant: &Tenant, policy: &LoadedPolicy) -> (Arc<str>, PolicyHash) {
    (tenant.name.clone(), policy.compiled.hash())
}

impl Rollouts {
    /// The policy that decides a request of `tenant` with `seed`, and in which role.
    pub fn pick<'t>(&self, tenant: &'t Tenant, seed: u64) -> (&'t Arc<LoadedPolicy>, Role) {
        let Some(r) = &tenant.rollout else {
            return (&tenant.policy, Role::Live);
        };
        if r.config.mode != RolloutMode::Canary
            || (seed % 10_000) as f64 >= r.config.share * 10_000.0
        {
            return (&tenant.policy, Role::Live);
        }
        let rolled_back = self
            .records
            .lock()
            .get(&key(tenant, &r.policy))
            .is_some_and(|rec| rec.rolled_back.is_some());
        if rolled_back {
            (&tenant.policy, Role::Live)
        } else {
            (&r.policy, Role::Canary)
        }
    }

    /// Counts how a canary's request ended; rolls the candidate back past its error rate, or when
    /// `quarantined`.
    pub fn canary_finished(&self, tenant: &Tenant, failed: bool, quarantined: bool) {
        let Some(r) = &tenant.rollout else { return };
        let mut records = self.records.lock();
        let rec = records.entry(key(tenant, &r.policy)).or_default();
        rec.candidate = r.policy.name.clone();
        rec.hash = r.policy.compiled.hash().to_string();
        rec.mode = Some(r.config.mode);
        rec.served += 1;
        rec.failed += u64::from(failed);
        if rec.rolled_back.is_some() {
            return;
        }
        let rate = rec.failed as f64 / rec.served as f64;
        let reason = if quarantined {
            Some("the candidate was quarantined after repeated failures".to_owned())
        } else if rec.served >= u64::from(r.config.min_requests) && rate > r.config.max_error_rate {
            Some(format!(
                "{:.0}% of its {} requests failed (more than {:.0}%)",
                rate * 100.0,
                rec.served,
                r.config.max_error_rate * 100.0
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            tracing::error!(tenant = %tenant.name, candidate = %r.policy.name, %reason, "canary rolled back");
            rec.rolled_back = Some(reason);
        }
    }

    /// Runs the shadow candidate on `summary` (off the request path) and records its decision
    /// next to the live one.
    pub fn shadow(self: &Arc<Self>, tenant: Arc<Tenant>, summary: RequestSummary, live: Decision) {
        let Some(r) = &tenant.rollout else { return };
        if r.config.mode != RolloutMode::Shadow {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let candidate = {
                let tenant = tenant.clone();
                let summary = summary.clone();
                crate::sandbox::offload::run_slow(move || {
                    let r = tenant.rollout.as_ref().expect("checked above");
                    let ctx = CallContext {
                        tenant: tenant.name.clone(),
                        request_id: summary.request_id.as_str().into(),
                        limits: tenant.config.limits.sandbox.clone(),
                        capture_logs: false,
                        yield_each_tick: true,
                        store: None,
                    };
                    r.policy
                        .compiled
                        .decide(&ctx, &summary)
                        .map(|o| o.value)
                        .map_err(|f| f.kind.as_str())
                })
                .await
            };
            let candidate = candidate.unwrap_or(Err("lost"));
            this.compare(&tenant, &summary, &live, &candidate);
        });
    }

    fn compare(
        &self,
        tenant: &Tenant,
        summary: &RequestSummary,
        live: &Decision,
        candidate: &Result<Decision, &'static str>,
    ) {
        let Some(r) = &tenant.rollout else { return };
        let first = |d: &Decision| match d {
            Decision::Route(route) => route.primary.model.clone(),
            Decision::Reject(rej) => format!("reject:{}", rej.code),
        };
        let cost = |model: &str| {
            summary
                .candidates
                .iter()
                .find(|c| c.model == model)
                .map_or(0.0, |c| {
                    let output = summary.max_output_tokens.unwrap_or(1000) as f64;
                    (summary.estimated_input_tokens as f64 * c.input_usd_per_mtok
                        + output * c.output_usd_per_mtok)
                        / 1e6
                })
        };
        let live_first = first(live);
        let candidate_first = match candidate {
            Ok(d) => first(d),
            Err(kind) => format!("failed:{kind}"),
        };
        let comparison = Comparison {
            request_id: summary.request_id.clone(),
            agree: live_first == candidate_first,
            live_cost_usd: cost(&live_first),
            candidate_cost_usd: cost(&candidate_first),
            live: live_first,
            candidate: candidate_first,
        };
        let mut records = self.records.lock();
        let rec = records.entry(key(tenant, &r.policy)).or_default();
        rec.candidate = r.policy.name.clone();
        rec.hash = r.policy.compiled.hash().to_string();
        rec.mode = Some(r.config.mode);
        rec.compared += 1;
        rec.agreed += u64::from(comparison.agree);
        rec.live_cost_usd += comparison.live_cost_usd;
        rec.candidate_cost_usd += comparison.candidate_cost_usd;
        rec.recent.push_back(comparison);
        while rec.recent.len() > KEPT {
            rec.recent.pop_front();
        }
    }

    /// Every tenant's rollout, for the admin API.
    pub fn report(&self) -> serde_json::Value {
        let records = self.records.lock();
        let mut out: Vec<serde_json::Value> = records
            .iter()
            .map(|((tenant, _), rec)| {
                serde_json::json!({
                    "tenant": &**tenant,
                    "candidate": rec.candidate,
                    "hash": rec.hash,
                    "mode": rec.mode,
                    "compared": rec.compared,
                    "agreed": rec.agreed,
                    "agreement": (rec.compared > 0).then(|| rec.agreed as f64 / rec.compared as f64),
                    "projected_live_cost_usd": rec.live_cost_usd,
                    "projected_candidate_cost_usd": rec.candidate_cost_usd,
                    "recent": rec.recent.iter().rev().take(50).collect::<Vec<_>>(),
                    "served": rec.served,
                    "failed": rec.failed,
                    "rolled_back": rec.rolled_back,
                })
            })
            .collect();
        out.sort_by(|a, b| a["tenant"].as_str().cmp(&b["tenant"].as_str()));
        serde_json::Value::Array(out)
    }
}
