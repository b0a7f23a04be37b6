//! The gateway's routing, offline: a tenant's policy deciding on recorded requests exactly as it
//! would in service (the host's summary, the policy in its sandbox, the host's checks), with no
//! listener and no upstream. What the requests' outcomes were is told back to it ([`OfflineTenant::
//! finish`]): the conversation records, the upstream signals and the policy's own store evolve as
//! in service, and `on-outcome` runs when a decision asks for it. Given the same trace, outcomes and
//! starting state, a replay makes the same decisions. `switchyard policy simulate` is built on it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use switchyard_policy::types::{Attempt, Budget, Endpoint, Outcome, Pair, RateLimits};
use switchyard_policy::{CallContext, EngineSettings, PolicyEngine, PolicyStore};
use switchyard_upstream::chat::ChatRequest;
use switchyard_upstream::{Breakers, UpstreamStats, Usage};

use crate::config::{Config, ModelInfo, PolicySource, StoreLimits};
use crate::conversations::{ConversationKey, Conversations};
use crate::learning::TenantStore;
use crate::live::snapshot::{Simulators, Snapshot};
use crate::live::tenant::Tenant;
use crate::routing::{self, Checked, Chooser};

/// One tenant of a config, with its policy replaced by a component file, ready to decide.
pub struct OfflineTenant {
    snapshot: Snapshot,
    tenant: Arc<Tenant>,
    breakers: Breakers,
    stats: UpstreamStats,
    conversations: Arc<Conversations>,
    store: Arc<TenantStore>,
    round_robin: AtomicU64,
}

/// A recorded request, as the host reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    pub input_tokens: u64,
    pub max_output_tokens: Option<u64>,
    pub has_images: bool,
    /// The conversation key the host routes by.
    pub conversation: u64,
}

/// What the policy decided for one request, as the host accepted it.
#[derive(Debug, Clone, PartialEq)]
pub enum OfflineDecision {
    /// Routed: the targets in the order they would be tried, and the decision's tags.
    Route {
        /// The targets in the host's order.
        targets: Vec<OfflineTarget>,
        tags: Vec<(String, String)>,
        /// The decision asked to be told how the request ended.
        report_outcome: bool,
    },
    /// The policy refused the request.
    Rejected { status: u16, code: String },
}

/// One target of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineTarget {
    pub model: String,
    pub upstream: String,
    /// Its first-token deadline: the decision's, or the upstream's default.
    pub first_token: Option<Duration>,
    /// Retries it gets: the decision's, or the upstream's default.
    pub retries: u8,
}

/// How a request ended, told back to the simulation.
#[derive(Debug, Clone)]
pub struct OfflineOutcome {
    /// The target that served it (`None`: every one failed).
    pub served_by: Option<(String, String)>,
    /// Attempts that failed before it, each with its target.
    pub failed: Vec<(String, String)>,
    pub status: u16,
    pub ttft: Option<Duration>,
    pub total: Duration,
    pub usage: Usage,
    pub cost_usd: f64,
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
        let limits = StoreLimits {
            max_keys: config.learning.max_keys,
            max_bytes: config.learning.max_bytes,
        };
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
        let store = TenantStore::new(tenant.name.clone(), limits, None);
        let breakers = Breakers::new(snapshot.config.resilience.breaker);
        Ok(OfflineTenant {
            snapshot,
            tenant,
            // The config's breakers: the simulation's clock is tokio's (run it paused and advance
            // it to each request's arrival), so circuits open and close as in service.
            breakers,
            stats: UpstreamStats::default(),
            conversations: Arc::default(),
            store,
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

    /// The upstreams that serve `model`, in config order.
    pub fn upstreams_of(&self, model: &str) -> Vec<String> {
        self.tenant
            .serving(model)
            .iter()
            .map(|u| u.to_string())
            .collect()
    }

    /// The catalog entry of `model`.
    pub fn price(&self, model: &str) -> Option<&ModelInfo> {
        self.snapshot.config.models.get(model)
    }

    /// Whether the circuit of `model` on `upstream` is open now (the host skips it).
    pub fn is_open(&self, model: &str, upstream: &str) -> bool {
        self.breakers.health(upstream, model) == switchyard_upstream::Health::Unavailable
    }

    /// The policy's store: every key and value.
    pub fn state(&self) -> Vec<(String, Vec<u8>)> {
        self.store.entries()
    }

    /// Starts the policy's store from `entries` (a snapshot taken by [`Self::state`]).
    pub fn restore_state(&self, entries: &[(String, Vec<u8>)]) -> Result<(), String> {
        for (k, v) in entries {
            self.store.set(k, v.clone())?;
        }
        Ok(())
    }

    /// Reads a recorded chat request; `None` if it is not one the gateway would accept.
    pub fn facts(&self, body: &[u8]) -> Option<RequestFacts> {
        let chat = ChatRequest::parse(Bytes::copy_from_slice(body), 100_000).ok()?;
        Some(RequestFacts {
            input_tokens: chat.stats.estimated_input_tokens,
            max_output_tokens: chat.max_output_tokens(),
            has_images: chat.stats.has_images,
            conversation: ConversationKey::of(chat.stats.user.as_deref(), chat.stats.prefix_key)
                .key,
        })
    }

    /// Runs the policy on a recorded chat request with request id `id`, as if it arrived at `at`.
    pub fn decide(&self, id: &str, body: &[u8], at: SystemTime) -> Result<OfflineDecision, String> {
        let chat =
            ChatRequest::parse(Bytes::copy_from_slice(body), 100_000).map_err(|e| e.to_string())?;
        let tenant = &self.tenant;
        let key = ConversationKey::of(chat.stats.user.as_deref(), chat.stats.prefix_key);
        let (seen, last_upstream) = self.conversations.view(&tenant.name, key);
        let context = routing::Context {
            request_id: id,
            seed: crate::pipeline::seed_of(id),
            endpoint: Endpoint::ChatCompletions,
            hints: routing::hints(&http::HeaderMap::new(), &chat),
            breakers: &self.breakers,
            stats: &self.stats,
            budget: Budget {
                spent_today_usd: 0.0,
                daily_limit_usd: None,
                spent_month_usd: 0.0,
                monthly_limit_usd: None,
            },
            rate_limits: RateLimits {
                requests_per_minute: None,
                requests_remaining: None,
                tokens_per_minute: None,
                tokens_remaining: None,
            },
            conversation: seen,
            received_at: at,
        };
        let mut summary = routing::summarise(tenant, &chat, context);
        summary.requested_model = self.snapshot.config.canonical(&chat.model.value).to_owned();
        let ctx = CallContext {
            tenant: tenant.name.clone(),
            request_id: Arc::from(id),
            limits: tenant.config.limits.sandbox.clone(),
            capture_logs: false,
            yield_each_tick: false,
            store: Some(self.store.clone()),
        };
        let chooser = Chooser {
            choice: self.snapshot.config.upstream_choice,
            prefix_key: chat.stats.prefix_key,
            tenant: &tenant.name,
            round_robin: &self.round_robin,
            breakers: &self.breakers,
            last_upstream,
        };
        let decision = tenant
            .policy
            .compiled
            .decide(&ctx, &summary)
            .map_err(|e| e.to_string())?
            .value;
        match routing::check(&self.snapshot, tenant, decision, &chooser) {
            Ok(Checked::Route(plan)) => Ok(OfflineDecision::Route {
                targets: plan
                    .targets
                    .iter()
                    .map(|t| OfflineTarget {
                        model: t.model.clone(),
                        upstream: t.upstream.name.to_string(),
                        first_token: t.limits.first_token.or(t
                            .upstream
                            .settings
                            .timeouts
                            .first_token),
                        retries: t.retries(),
                    })
                    .collect(),
                tags: plan.tags,
                report_outcome: plan.report_outcome,
            }),
            Ok(Checked::Reject { status, code, .. }) => {
                Ok(OfflineDecision::Rejected { status, code })
            }
            Err(f) => Err(format!("the host refused the decision: {f}")),
        }
    }

    /// Tells the simulation how request `id` (on `body`, decided as `decision`) ended: the
    /// upstream signals and the conversation's record move as in service, and the policy's
    /// `on-outcome` runs when the decision asked for it.
    pub fn finish(
        &self,
        id: &str,
        body: &[u8],
        decision: &OfflineDecision,
        outcome: &OfflineOutcome,
        at: SystemTime,
    ) -> Result<(), String> {
        let Some(facts) = self.facts(body) else {
            return Ok(());
        };
        let tenant = &self.tenant;
        let upstream = |name: &str| -> Arc<str> { name.into() };
        for (model, up) in &outcome.failed {
            self.stats.record(&upstream(up), model, None, true);
            self.breakers.record(up, model, true);
        }
        if let Some((model, up)) = &outcome.served_by {
            self.stats.record(&upstream(up), model, outcome.ttft, false);
            self.breakers.record(up, model, false);
            self.conversations.served(
                &tenant.name,
                facts.conversation,
                model,
                &upstream(up),
                Some(outcome.usage),
            );
        }
        let OfflineDecision::Route {
            tags,
            report_outcome: true,
            ..
        } = decision
        else {
            return Ok(());
        };
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let record = Outcome {
            request_id: id.to_owned(),
            endpoint: Endpoint::ChatCompletions,
            conversation_key: facts.conversation,
            model: outcome.served_by.as_ref().map(|(m, _)| m.clone()),
            upstream: outcome.served_by.as_ref().map(|(_, u)| u.clone()),
            status: outcome.status,
            ttft_ms: outcome.ttft.map(ms),
            total_ms: ms(outcome.total),
            input_tokens: routing::tokens(outcome.usage.prompt_tokens),
            cached_input_tokens: routing::tokens(outcome.usage.cached_prompt_tokens),
            output_tokens: routing::tokens(outcome.usage.completion_tokens),
            cost_usd: outcome.cost_usd,
            fallbacks: outcome.failed.len() as u32,
            attempts: outcome
                .failed
                .iter()
                .map(|(model, upstream)| Attempt {
                    model: model.clone(),
                    upstream: upstream.clone(),
                    ok: false,
                    failure: "failed".into(),
                })
                .chain(outcome.served_by.iter().map(|(model, upstream)| Attempt {
                    model: model.clone(),
                    upstream: upstream.clone(),
                    ok: true,
                    failure: String::new(),
                }))
                .collect(),
            tags: tags
                .iter()
                .map(|(k, v)| Pair {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            received_at_unix_ms: at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        let ctx = CallContext {
            tenant: tenant.name.clone(),
            request_id: Arc::from(id),
            limits: tenant.config.limits.sandbox.clone(),
            capture_logs: false,
            yield_each_tick: false,
            store: Some(self.store.clone()),
        };
        tenant
            .policy
            .compiled
            .on_outcome(&ctx, &tenant.config.policy_config, &record)
            .map(|_| ())
            .map_err(|e| format!("on-outcome: {e}"))
    }
}
