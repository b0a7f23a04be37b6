//! The gateway's routing, offline: a tenant's policy deciding on recorded requests exactly as it
//! would in service (the host's summary, the policy in its sandbox, the host's checks), with no
//! listener and no upstream. `switchyard policy simulate` is built on it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::Bytes;
use switchyard_policy::types::Budget;
use switchyard_policy::{CallContext, EngineSettings, PolicyEngine};
use switchyard_upstream::chat::ChatRequest;
use switchyard_upstream::{BreakerSettings, Breakers};

use crate::config::{Config, ModelInfo, PolicySource};
use crate::live::snapshot::{Simulators, Snapshot};
use crate::live::tenant::Tenant;
use crate::routing::{self, Checked, Chooser};

/// One tenant of a config, with its policy replaced by a component file, ready to decide.
pub struct OfflineTenant {
    snapshot: Snapshot,
    tenant: Arc<Tenant>,
    breakers: Breakers,
    round_robin: AtomicU64,
}

/// A recorded request, as the host reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFacts {
    pub input_tokens: u64,
    pub max_output_tokens: Option<u64>,
    pub has_images: bool,
    /// The conversation key (the opening's hash) the host routes by.
    pub conversation: u64,
}

/// What the policy decided for one request, as the host accepted it.
#[derive(Debug, Clone, PartialEq)]
pub enum OfflineDecision {
    /// Routed: the models in the order they would be tried, and the decision's tags.
    Route {
        models: Vec<String>,
        tags: Vec<(String, String)>,
    },
    /// The policy refused the request.
    Rejected { status: u16, code: String },
}

impl OfflineTenant {
    /// Loads `config`, replaces tenant `tenant`'s policy with the component at `policy` (its
    /// limits raised: offline, time does not matter and interpreted policies need room).
    pub async fn load(mut config: Config, tenant: &str, policy: PathBuf) -> Result<Self, String> {
        config.server.watch = false;
        config.admin = None;
        let policy_name = config
            .tenants
            .get(tenant)
            .ok_or_else(|| format!("no tenant `{tenant}` in {}", config.origin))?
            .policy
            .clone();
        config
            .policies
            .insert(policy_name, PolicySource::File(policy));
        if let Some(t) = config.tenants.get_mut(tenant) {
            t.limits.sandbox.deadline = Duration::from_secs(2);
            t.limits.sandbox.memory_bytes = t.limits.sandbox.memory_bytes.max(256 << 20);
        }
        let engine = PolicyEngine::new(EngineSettings {
            max_memory_bytes: 256 << 20,
            concurrent_instances: 4,
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
        let (snapshot, _) = Snapshot::build(config, &engine, &Simulators::default(), None)
            .await
            .map_err(|e| e.to_string())?;
        let tenant = snapshot.tenants[tenant].clone();
        Ok(OfflineTenant {
            snapshot,
            tenant,
            breakers: Breakers::new(BreakerSettings {
                failures: u32::MAX,
                probe_after: Duration::from_secs(1),
                max_open: Duration::from_secs(1),
            }),
            round_robin: AtomicU64::new(0),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.snapshot.config
    }

    /// The tenant's allowed models, in configured order.
    pub fn models(&self) -> &[String] {
        &self.tenant.config.models
    }

    /// The catalog entry of `model`.
    pub fn price(&self, model: &str) -> Option<&ModelInfo> {
        self.snapshot.config.models.get(model)
    }

    /// Reads a recorded chat request; `None` if it is not one the gateway would accept.
    pub fn facts(&self, body: &[u8]) -> Option<RequestFacts> {
        let chat = ChatRequest::parse(Bytes::copy_from_slice(body), 100_000).ok()?;
        Some(RequestFacts {
            input_tokens: chat.stats.estimated_input_tokens,
            max_output_tokens: chat.max_output_tokens(),
            has_images: chat.stats.has_images,
            conversation: chat.stats.prefix_key,
        })
    }

    /// Runs the policy on a recorded chat request with request id `id`.
    pub fn decide(&self, id: &str, body: &[u8]) -> Result<OfflineDecision, String> {
        let chat =
            ChatRequest::parse(Bytes::copy_from_slice(body), 100_000).map_err(|e| e.to_string())?;
        let tenant = &self.tenant;
        let budget = Budget {
            spent_today_usd: 0.0,
            daily_limit_usd: None,
            spent_month_usd: 0.0,
            monthly_limit_usd: None,
        };
        let mut summary = routing::summarise(
            id,
            crate::pipeline::seed_of(id),
            tenant,
            &chat,
            routing::hints(&http::HeaderMap::new(), &chat),
            &self.breakers,
            budget,
        );
        summary.requested_model = self.snapshot.config.canonical(&chat.model.value).to_owned();
        let ctx = CallContext {
            tenant: tenant.name.clone(),
            request_id: Arc::from(id),
            limits: tenant.config.limits.sandbox.clone(),
            capture_logs: false,
            yield_each_tick: false,
        };
        let chooser = Chooser {
            choice: self.snapshot.config.upstream_choice,
            prefix_key: chat.stats.prefix_key,
            tenant: &tenant.name,
            round_robin: &self.round_robin,
            breakers: &self.breakers,
        };
        let decision = tenant
            .policy
            .compiled
            .decide(&ctx, &summary)
            .map_err(|e| e.to_string())?
            .value;
        match routing::check(&self.snapshot, tenant, decision, &chooser) {
            Ok(Checked::Route(plan)) => {
                let mut models: Vec<String> = Vec::new();
                for t in &plan.targets {
                    if !models.contains(&t.model) {
                        models.push(t.model.clone());
                    }
                }
                Ok(OfflineDecision::Route {
                    models,
                    tags: plan.tags,
                })
            }
            Ok(Checked::Reject { status, code, .. }) => {
                Ok(OfflineDecision::Rejected { status, code })
            }
            Err(f) => Err(format!("the host refused the decision: {f}")),
        }
    }
}
