//! The gateway's live state: one immutable [`Snapshot`] of config, tenants, policies and upstream
//! clients, swapped atomically as a whole. A request loads the snapshot once and runs entirely on
//! it, so a reload never mixes two versions within one request, and requests in flight finish on
//! the version they started with.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use switchyard_policy::{InstanceReuse, PolicyEngine, PolicyHash};

use switchyard_upstream::{Redactor, Timeouts, UpstreamClient, UpstreamSettings};

use super::loader::{self, LoadedPolicy, PolicyLoadError};
use super::tenant::{self, Tenant};
use crate::auth::KeyIndex;
use crate::config::{Config, PolicySource, UpstreamEndpoint};
use crate::simulator::{self, SimulatorSettings};

/// Everything a request needs, for one version of the configuration.
pub struct Snapshot {
    pub config: Arc<Config>,
    pub keys: KeyIndex<Arc<Tenant>>,
    pub tenants: BTreeMap<String, Arc<Tenant>>,
    pub policies: BTreeMap<String, Arc<LoadedPolicy>>,
    pub upstreams: BTreeMap<String, Arc<UpstreamClient>>,
    pub redactor: Redactor,
}

/// Why a snapshot could not be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Policy(#[from] PolicyLoadError),
    #[error("upstreams.{name}: {message}")]
    Upstream { name: String, message: String },
}

/// What happened to one policy while building a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyOutcome {
    /// Same bytes as the version in service.
    Unchanged,
    /// A new version was compiled, checked, and put in service.
    Loaded,
    /// A new version failed (to read, compile, or pass its checks); the previous one stays.
    KeptPrevious { error: String },
}

/// Per-policy results of a build.
pub type PolicyReports = BTreeMap<String, PolicyOutcome>;

/// Simulated providers by upstream name, kept across reloads so their prefix caches survive.
#[derive(Default)]
pub struct Simulators {
    running: Mutex<BTreeMap<String, (SimulatorKey, SocketAddr)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SimulatorKey {
    models: Vec<String>,
    token_delay_ms: u128,
}

impl Simulators {
    /// The address of the simulator for upstream `name`, started if needed.
    async fn address(
        &self,
        name: &str,
        settings: SimulatorSettings,
    ) -> std::io::Result<SocketAddr> {
        let key = SimulatorKey {
            models: settings.models.clone(),
            token_delay_ms: settings.token_delay.as_millis(),
        };
        if let Some((k, addr)) = self.running.lock().get(name)
            && *k == key
        {
            return Ok(*addr);
        }
        let addr = simulator::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), settings).await?;
        self.running.lock().insert(name.to_owned(), (key, addr));
        Ok(addr)
    }
}

/// A policy file's bytes and content hash.
pub struct PolicyBytes {
    pub bytes: Arc<[u8]>,
    pub hash: PolicyHash,
}

/// Reads every policy the config's tenants use: what a reload compares to see if anything changed.
pub fn read_policies(config: &Config) -> BTreeMap<String, Result<PolicyBytes, PolicyLoadError>> {
    config
        .policies
        .iter()
        .filter(|(name, _)| config.tenants.values().any(|t| t.uses(name)))
        .map(|(name, source)| {
            let read = loader::read_source(name, source).map(|bytes| PolicyBytes {
                hash: PolicyHash::of(&bytes),
                bytes,
            });
            (name.clone(), read)
        })
        .collect()
}

impl Snapshot {
    /// Builds a snapshot. A policy whose bytes are unchanged from `previous` is reused without
    /// recompiling. A policy whose new version fails to read, compile or pass its per-tenant checks
    /// (config validation and one smoke decision) keeps `previous`'s version when that version
    /// still passes; otherwise the whole build fails and nothing changes.
    pub async fn build(
        config: Config,
        engine: &PolicyEngine,
        simulators: &Simulators,
        previous: Option<&Snapshot>,
    ) -> Result<(Snapshot, PolicyReports), SnapshotError> {
        let reads = read_policies(&config);
        Self::build_from(config, reads, engine, simulators, previous).await
    }

    /// [`Snapshot::build`] with the policy files already read (by [`read_policies`]).
    pub async fn build_from(
        config: Config,
        reads: BTreeMap<String, Result<PolicyBytes, PolicyLoadError>>,
        engine: &PolicyEngine,
        simulators: &Simulators,
        previous: Option<&Snapshot>,
    ) -> Result<(Snapshot, PolicyReports), SnapshotError> {
        let config = Arc::new(config);
        let upstreams = build_upstreams(&config, simulators, previous).await?;

        let mut loaded: BTreeMap<String, Arc<LoadedPolicy>> = BTreeMap::new();
        let mut reports = PolicyReports::new();
        for (name, read) in reads {
            let source = config.policies[&name].clone();
            let prev = previous
                .and_then(|p| p.policies.get(&name))
                .filter(|p| p.source == source)
                .cloned();
            let (policy, outcome) = match read {
                Err(e) => (
                    prev.ok_or_else(|| e.clone())?,
                    PolicyOutcome::KeptPrevious {
                        error: e.to_string(),
                    },
                ),
                Ok(PolicyBytes { hash, .. })
                    if prev.as_ref().is_some_and(|p| p.compiled.hash() == hash) =>
                {
                    (prev.expect("checked above"), PolicyOutcome::Unchanged)
                }
                Ok(PolicyBytes { bytes, .. }) => {
                    match compile(engine, &name, source.clone(), bytes).await {
                        Ok(p) => (Arc::new(p), PolicyOutcome::Loaded),
                        Err(e) => (
                            prev.ok_or_else(|| e.clone())?,
                            PolicyOutcome::KeptPrevious {
                                error: e.to_string(),
                            },
                        ),
                    }
                }
            };
            // Every tenant that uses it must be able to run it: config accepted, smoke decision ok.
            let (policy, outcome) = match check_tenants(&config, &name, &policy, previous).await {
                Ok(()) => (policy, outcome),
                Err(e) => match (
                    &outcome,
                    previous
                        .and_then(|p| p.policies.get(&name))
                        .filter(|p| p.source == source),
                ) {
                    (PolicyOutcome::Loaded, Some(prev)) => {
                        check_tenants(&config, &name, prev, previous).await?;
                        (
                            prev.clone(),
                            PolicyOutcome::KeptPrevious {
                                error: e.to_string(),
                            },
                        )
                    }
                    _ => return Err(e.into()),
                },
            };
            loaded.insert(name.clone(), policy);
            reports.insert(name, outcome);
        }

        let mut tenants = BTreeMap::new();
        let mut keys = KeyIndex::default();
        for (name, t) in &config.tenants {
            let policy = loaded[&t.policy].clone();
            let candidates = tenant::candidates(&config, t);
            // Catalog entries whose prices change with the time of day.
            let prices = t
                .models
                .iter()
                .filter_map(|m| config.models.get(m))
                .filter(|m| !m.price_windows.is_empty())
                .map(|m| (m.name.clone(), m.clone()))
                .collect();
            let serving = t
                .models
                .iter()
                .map(|m| {
                    let ups = config
                        .upstreams_for(m)
                        .map(|u| u.name.as_str().into())
                        .collect();
                    (m.clone(), ups)
                })
                .collect();
            let rollout = t.candidate.as_ref().map(|c| super::tenant::Rollout {
                policy: loaded[&c.policy].clone(),
                config: c.clone(),
            });
            let tenant = Arc::new(Tenant {
                name: name.as_str().into(),
                config: t.clone(),
                policy,
                candidates,
                prices,
                serving,
                rollout,
            });
            for digest in &t.key_hashes {
                keys.insert(*digest, tenant.clone());
            }
            tenants.insert(name.clone(), tenant);
        }

        // Warm instances of tenants that left a policy, or went back to fresh instances, go.
        for (name, policy) in &loaded {
            policy.compiled.retain_warm(|tenant| {
                config.tenants.get(tenant).is_some_and(|t| {
                    t.limits.sandbox.instance == InstanceReuse::Warm
                        && (t.policy == *name
                            || t.candidate.as_ref().is_some_and(|c| c.policy == *name))
                })
            });
        }

        let snapshot = Snapshot {
            redactor: Redactor::new(config.secrets()),
            config,
            keys,
            tenants,
            policies: loaded,
            upstreams,
        };
        Ok((snapshot, reports))
    }
}

async fn build_upstreams(
    config: &Config,
    simulators: &Simulators,
    previous: Option<&Snapshot>,
) -> Result<BTreeMap<String, Arc<UpstreamClient>>, SnapshotError> {
    let mut upstreams = BTreeMap::new();
    for (name, up) in &config.upstreams {
        // Keep the client (and its warm connection pool) when nothing about the upstream changed.
        if let Some(prev) = previous
            .filter(|p| p.config.upstreams.get(name) == Some(up))
            .and_then(|p| p.upstreams.get(name))
        {
            upstreams.insert(name.clone(), prev.clone());
            continue;
        }
        let base = match &up.endpoint {
            UpstreamEndpoint::Url(url) => url.clone(),
            UpstreamEndpoint::Simulated { token_delay } => {
                let settings = SimulatorSettings {
                    models: up.models.values().cloned().collect(),
                    token_delay: *token_delay,
                };
                let addr = simulators.address(name, settings).await.map_err(|e| {
                    SnapshotError::Upstream {
                        name: name.clone(),
                        message: format!("simulator: {e}"),
                    }
                })?;
                format!("http://{addr}/v1")
            }
        };
        let settings = UpstreamSettings {
            name: name.clone(),
            base_url: base,
            kind: up.kind,
            apis: up.apis.clone(),
            urls: up.urls.clone(),
            api_key: up.api_key.clone(),
            models: up.models.clone(),
            simulated: matches!(up.endpoint, UpstreamEndpoint::Simulated { .. }),
            timeouts: Timeouts {
                connect: up.connect_timeout,
                request: up.request_timeout,
                first_byte: up.first_byte_timeout,
                idle: up.idle_timeout,
                first_token: up.first_token_timeout,
            },
            retries: up.retries,
            resume: up.resume.clone(),
        };
        let client = UpstreamClient::new(settings).map_err(|message| SnapshotError::Upstream {
            name: name.clone(),
            message,
        })?;
        upstreams.insert(name.clone(), Arc::new(client));
    }
    Ok(upstreams)
}

async fn compile(
    engine: &PolicyEngine,
    name: &str,
    source: PolicySource,
    bytes: Arc<[u8]>,
) -> Result<LoadedPolicy, PolicyLoadError> {
    let (engine, task_name) = (engine.clone(), name.to_owned());
    tokio::task::spawn_blocking(move || loader::compile(&engine, &task_name, source, &bytes))
        .await
        .map_err(|e| PolicyLoadError::Invalid {
            name: name.to_owned(),
            message: format!("compile task: {e}"),
        })?
}

/// Runs `policy`'s load-time checks for every tenant of `config` that uses policy `name`, skipping
/// tenants whose config and policy version are exactly what `previous` already checked.
async fn check_tenants(
    config: &Config,
    name: &str,
    policy: &Arc<LoadedPolicy>,
    previous: Option<&Snapshot>,
) -> Result<(), PolicyLoadError> {
    for t in config.tenants.values().filter(|t| t.uses(name)) {
        let already = previous
            .and_then(|p| p.tenants.get(&t.name))
            .is_some_and(|old| {
                old.config == *t
                    && (Arc::ptr_eq(&old.policy, policy)
                        || old
                            .rollout
                            .as_ref()
                            .is_some_and(|r| Arc::ptr_eq(&r.policy, policy)))
                    && old.candidates == tenant::candidates(config, t)
            });
        if already {
            continue;
        }
        // The candidate is checked with the config it will decide with.
        let mut tc = t.clone();
        tc.policy_config = t.config_for(name).to_owned();
        let (p, c) = (policy.clone(), tenant::candidates(config, t));
        tokio::task::spawn_blocking(move || loader::check_for_tenant(&p, &tc, c))
            .await
            .map_err(|e| PolicyLoadError::Invalid {
                name: name.to_owned(),
                message: format!("check task: {e}"),
            })??;
    }
    Ok(())
}
