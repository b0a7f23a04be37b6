//! The gateway's live state: one immutable [`Snapshot`] of config, tenants, policies and upstream
//! clients, swapped atomically as a whole. A request loads the snapshot once and runs entirely on
//! it, so a reload never mixes two versions within one request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use switchyard_policy::PolicyEngine;

use crate::auth::KeyIndex;
use crate::config::{Config, UpstreamEndpoint};
use crate::policies::{self, LoadedPolicy, PolicyLoadError};
use crate::redact::Redactor;
use crate::simulator::{self, SimulatorSettings};
use crate::tenant::{self, Tenant};
use crate::upstream::UpstreamClient;

/// Everything a request needs, for one version of the configuration.
pub struct Snapshot {
    pub config: Arc<Config>,
    pub keys: KeyIndex<Arc<Tenant>>,
    pub tenants: BTreeMap<String, Arc<Tenant>>,
    pub policies: BTreeMap<String, Arc<LoadedPolicy>>,
    pub upstreams: BTreeMap<String, Arc<UpstreamClient>>,
    pub redactor: Redactor,
    pub loaded_at: SystemTime,
}

/// Why a snapshot could not be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Policy(#[from] PolicyLoadError),
    #[error("upstreams.{name}: {message}")]
    Upstream { name: String, message: String },
}

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
        if let Some((k, addr)) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            && *k == key
        {
            return Ok(*addr);
        }
        let addr = simulator::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), settings).await?;
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), (key, addr));
        Ok(addr)
    }
}

impl Snapshot {
    /// Builds a snapshot: compiles every policy (reusing `previous`'s compiled policies whose
    /// bytes are unchanged), checks every tenant's config against its policy, and prepares the
    /// upstream clients.
    pub async fn build(
        config: Config,
        engine: &PolicyEngine,
        simulators: &Simulators,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, SnapshotError> {
        let config = Arc::new(config);
        let mut upstreams = BTreeMap::new();
        for (name, up) in &config.upstreams {
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
            let client = UpstreamClient::new(up.clone(), &base).map_err(|message| {
                SnapshotError::Upstream {
                    name: name.clone(),
                    message,
                }
            })?;
            upstreams.insert(name.clone(), Arc::new(client));
        }

        let mut loaded: BTreeMap<String, Arc<LoadedPolicy>> = BTreeMap::new();
        for (name, source) in &config.policies {
            if !config.tenants.values().any(|t| &t.policy == name) {
                continue; // unused policies are not loaded
            }
            let bytes = policies::read_source(name, source)?;
            let hash = switchyard_policy::PolicyHash::of(&bytes);
            let reused = previous
                .and_then(|p| p.policies.get(name))
                .filter(|p| p.compiled.hash() == hash && p.source == *source)
                .cloned();
            let policy = match reused {
                Some(p) => p,
                None => {
                    let (engine, name, source) = (engine.clone(), name.clone(), source.clone());
                    let compiled = tokio::task::spawn_blocking(move || {
                        policies::compile(&engine, &name, source, &bytes)
                    })
                    .await
                    .map_err(|e| PolicyLoadError::Invalid {
                        name: "?".into(),
                        message: format!("compile task: {e}"),
                    })??;
                    Arc::new(compiled)
                }
            };
            loaded.insert(name.clone(), policy);
        }

        let mut tenants = BTreeMap::new();
        let mut keys = KeyIndex::default();
        for (name, t) in &config.tenants {
            let policy = loaded[&t.policy].clone();
            let candidates = tenant::candidates(&config, t);
            let (p, tc, c) = (policy.clone(), t.clone(), candidates.clone());
            tokio::task::spawn_blocking(move || policies::check_for_tenant(&p, &tc, c))
                .await
                .map_err(|e| PolicyLoadError::Invalid {
                    name: t.policy.clone(),
                    message: format!("check task: {e}"),
                })??;
            let tenant = Arc::new(Tenant {
                name: name.as_str().into(),
                config: t.clone(),
                policy,
                candidates,
            });
            for digest in &t.key_hashes {
                keys.insert(*digest, tenant.clone());
            }
            tenants.insert(name.clone(), tenant);
        }

        Ok(Snapshot {
            redactor: Redactor::new(config.secrets()),
            config,
            keys,
            tenants,
            policies: loaded,
            upstreams,
            loaded_at: SystemTime::now(),
        })
    }
}
