//! A tenant as the request path uses it: validated config, its policy, and its candidate list.

use std::sync::Arc;

use switchyard_policy::types::{Candidate, Health, Pair};

use super::loader::LoadedPolicy;
use crate::config::{Config, TenantConfig};

/// A tenant in one config snapshot.
#[derive(Debug)]
pub struct Tenant {
    pub name: Arc<str>,
    pub config: TenantConfig,
    pub policy: Arc<LoadedPolicy>,
    /// The tenant's models with prices and limits, in configured order; health and the prices
    /// in force are filled in per request.
    pub candidates: Vec<Candidate>,
    /// Catalog entries of the tenant's models that have time-of-day prices.
    pub prices: std::collections::BTreeMap<String, crate::config::ModelInfo>,
    /// The upstreams that serve each of the tenant's models, in config order.
    pub serving: std::collections::BTreeMap<String, Vec<Arc<str>>>,
    /// A candidate policy rolled out beside the live one.
    pub rollout: Option<Rollout>,
}

/// A candidate policy and how it is rolled out.
#[derive(Debug)]
pub struct Rollout {
    pub policy: Arc<LoadedPolicy>,
    pub config: crate::config::CandidateConfig,
}

impl Tenant {
    /// Whether the tenant may be routed to `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.config.models.iter().any(|m| m == model)
    }

    /// The upstreams that serve `model`, in config order.
    pub fn serving(&self, model: &str) -> &[Arc<str>] {
        self.serving.get(model).map_or(&[], Vec::as_slice)
    }
}

/// The candidate list for a tenant: each allowed model with its catalog entry and the first
/// upstream (in config order) that serves it.
pub fn candidates(config: &Config, tenant: &TenantConfig) -> Vec<Candidate> {
    tenant
        .models
        .iter()
        .filter_map(|m| {
            let info = config.models.get(m)?;
            let upstream = config.upstreams_for(m).next()?;
            Some(Candidate {
                model: m.to_string(),
                upstream: upstream.name.clone(),
                input_usd_per_mtok: info.input_usd_per_mtok,
                cached_input_usd_per_mtok: info.cached_input_usd_per_mtok,
                output_usd_per_mtok: info.output_usd_per_mtok,
                price_window: None,
                context_window: info.context_window,
                max_output_tokens: info.max_output_tokens,
                supports_images: info.supports_images,
                health: Health::Healthy,
                labels: info
                    .labels
                    .iter()
                    .map(|(k, v)| Pair {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                // Filled in per request with what the host has seen of each.
                upstreams: Vec::new(),
            })
        })
        .collect()
}
