//! Policies that learn from outcomes, with the sandbox intact (contract 0.2): each tenant's
//! policy gets a small key-value store the host owns ([`store`]), readable while deciding and
//! writable in `on-outcome`, which the host calls off the request path, in the idle-class pool,
//! after each request whose decision asked for it ([`Learning::report`]).

mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use switchyard_policy::CallContext;
use switchyard_policy::types::Outcome;
use tokio::sync::mpsc;

pub(crate) use store::TenantStore;

use crate::config::StoreLimits;

use crate::live::tenant::Tenant;

/// Outcomes waiting for their `on-outcome` call; more are dropped (and counted), so that a burst
/// of traffic never queues unbounded work behind the request path.
const QUEUE: usize = 4096;

struct Job {
    tenant: Arc<Tenant>,
    outcome: Outcome,
}

/// The stores of every tenant, and the worker that runs `on-outcome`.
pub(crate) struct Learning {
    stores: Mutex<HashMap<Arc<str>, Arc<TenantStore>>>,
    limits: StoreLimits,
    redis: Option<store::RedisStore>,
    queue: mpsc::Sender<Job>,
    /// Outcomes dropped because the queue was full.
    pub dropped: AtomicU64,
    /// `on-outcome` calls made, and failed.
    pub calls: AtomicU64,
    pub failures: AtomicU64,
}

impl std::fmt::Debug for Learning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learning").finish_non_exhaustive()
    }
}

impl Learning {
    /// Starts the worker. With `redis_url`, stores are shared by every replica using it.
    pub fn start(limits: StoreLimits, redis_url: Option<&str>) -> Result<Arc<Self>, String> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let redis = redis_url.map(store::RedisStore::connect).transpose()?;
        let learning = Arc::new(Learning {
            stores: Mutex::default(),
            limits,
            redis,
            queue,
            dropped: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        });
        tokio::spawn(worker(Arc::downgrade(&learning), jobs));
        Ok(learning)
    }

    /// The store of `tenant`.
    pub fn store(&self, tenant: &Arc<str>) -> Arc<TenantStore> {
        let mut stores = self.stores.lock();
        if let Some(s) = stores.get(tenant) {
            return s.clone();
        }
        let s = TenantStore::new(tenant.clone(), self.limits, self.redis.clone());
        stores.insert(tenant.clone(), s.clone());
        s
    }

    /// Queues `outcome` for the tenant's `on-outcome`; never waits.
    pub fn report(&self, tenant: Arc<Tenant>, outcome: Outcome) {
        if self.queue.try_send(Job { tenant, outcome }).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn worker(learning: std::sync::Weak<Learning>, mut jobs: mpsc::Receiver<Job>) {
    while let Some(job) = jobs.recv().await {
        let Some(learning) = learning.upgrade() else {
            return;
        };
        let store = learning.store(&job.tenant.name);
        let tenant = job.tenant.clone();
        let ctx = CallContext {
            tenant: tenant.name.clone(),
            request_id: job.outcome.request_id.as_str().into(),
            limits: tenant.config.limits.sandbox.clone(),
            capture_logs: false,
            yield_each_tick: true,
            store: Some(store),
        };
        // On the idle-class pool, where slow decisions run: it never takes CPU from requests.
        let call = crate::sandbox::offload::run_slow(move || {
            tenant
                .policy
                .compiled
                .on_outcome(&ctx, &tenant.config.policy_config, &job.outcome)
                .map(|_| ())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|f| f.to_string()));
        learning.calls.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = call {
            learning.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tenant = %job.tenant.name, %error, "on-outcome failed");
        }
    }
}
