//! Quarantine for policies that keep failing: after `failures` failures within `window`, a
//! tenant's policy is not called for `cool_down` (the tenant's failure outcome applies at once),
//! so a broken or hostile policy stops costing CPU. A new version of the policy starts clean.
//! Failures are also counted per tenant and kind, for the admin API and metrics.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use switchyard_policy::{FailureKind, PolicyHash};
use tokio::time::Instant;

/// When a policy is quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineSettings {
    pub failures: u32,
    pub window: Duration,
    pub cool_down: Duration,
}

impl Default for QuarantineSettings {
    fn default() -> Self {
        QuarantineSettings {
            failures: 5,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Record {
    policy: PolicyHash,
    recent: VecDeque<Instant>,
    until: Option<Instant>,
    counts: BTreeMap<&'static str, u64>,
}

/// A tenant's policy health, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct TenantPolicyHealth {
    /// Failures by kind since the process started.
    pub failures: BTreeMap<&'static str, u64>,
    /// Seconds of quarantine left, if quarantined.
    pub quarantined_for_seconds: Option<f64>,
}

/// Failure tracking per tenant.
#[derive(Debug, Default)]
pub(crate) struct Quarantine {
    records: Mutex<HashMap<String, Record>>,
}

impl Quarantine {
    fn record<'a>(
        records: &'a mut HashMap<String, Record>,
        tenant: &str,
        policy: PolicyHash,
    ) -> &'a mut Record {
        let r = records.entry(tenant.to_owned()).or_insert_with(|| Record {
            policy,
            recent: VecDeque::new(),
            until: None,
            counts: BTreeMap::new(),
        });
        if r.policy != policy {
            // A new version of the policy: its predecessor's failures do not count against it.
            r.policy = policy;
            r.recent.clear();
            r.until = None;
        }
        r
    }

    /// Whether the tenant's policy (this version) is quarantined now.
    pub fn is_quarantined(&self, tenant: &str, policy: PolicyHash) -> bool {
        let mut records = self.records.lock();
        let r = Self::record(&mut records, tenant, policy);
        r.until.is_some_and(|until| Instant::now() < until)
    }

    /// Counts a failure; returns true when it puts the policy in quarantine.
    pub fn record_failure(
        &self,
        tenant: &str,
        policy: PolicyHash,
        kind: FailureKind,
        settings: &QuarantineSettings,
    ) -> bool {
        let now = Instant::now();
        let mut records = self.records.lock();
        let r = Self::record(&mut records, tenant, policy);
        *r.counts.entry(kind.as_str()).or_default() += 1;
        // Not being called is not the policy's failure.
        if matches!(kind, FailureKind::Quarantined | FailureKind::Throttled) {
            return false;
        }
        r.recent.push_back(now);
        while r
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > settings.window)
        {
            r.recent.pop_front();
        }
        if r.recent.len() as u32 >= settings.failures {
            r.recent.clear();
            r.until = Some(now + settings.cool_down);
            return true;
        }
        false
    }

    /// Every tenant with failures, for the admin API.
    pub fn report(&self) -> BTreeMap<String, TenantPolicyHealth> {
        let now = Instant::now();
        let records = self.records.lock();
        records
            .iter()
            .map(|(tenant, r)| {
                let left = r
                    .until
                    .filter(|u| now < *u)
                    .map(|u| (u - now).as_secs_f64());
                (
                    tenant.clone(),
                    TenantPolicyHealth {
                        failures: r.counts.clone(),
                        quarantined_for_seconds: left,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn repeated_failures_quarantine_until_the_cool_down_or_a_new_version() {
        let q = Quarantine::default();
        let s = QuarantineSettings {
            failures: 3,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(5),
        };
        let v1 = PolicyHash::of(b"v1");
        assert!(!q.record_failure("t", v1, FailureKind::Trap, &s));
        assert!(!q.record_failure("t", v1, FailureKind::Deadline, &s));
        assert!(!q.is_quarantined("t", v1));
        assert!(q.record_failure("t", v1, FailureKind::Trap, &s));
        assert!(q.is_quarantined("t", v1));
        assert!(!q.is_quarantined("other", v1), "per tenant");
        assert_eq!(q.report()["t"].failures["trap"], 2);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(!q.is_quarantined("t", v1), "the cool-down ended");
        // Failures spread wider than the window do not add up.
        for _ in 0..5 {
            assert!(!q.record_failure("t", v1, FailureKind::Trap, &s));
            tokio::time::advance(Duration::from_secs(6)).await;
        }
        assert!(!q.is_quarantined("t", v1));
        // A new version starts clean.
        tokio::time::advance(Duration::from_secs(11)).await;
        q.record_failure("t", v1, FailureKind::Trap, &s);
        q.record_failure("t", v1, FailureKind::Trap, &s);
        assert!(q.record_failure("t", v1, FailureKind::Trap, &s));
        assert!(!q.is_quarantined("t", PolicyHash::of(b"v2")));
    }
}
