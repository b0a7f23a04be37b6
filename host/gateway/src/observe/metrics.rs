//! Prometheus metrics (`prometheus-client`), served at `/metrics` on the admin listener.
//!
//! Labels are bounded by the configuration (tenants, models, upstreams) and by small fixed sets
//! (status codes, cache outcomes, failure classes), never by request content.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::RwLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub tenant: String,
    pub model: String,
    pub status: u16,
    pub cache: &'static str,
    /// The API the client spoke: `chat`, `messages` or `responses`.
    pub api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantModelLabels {
    pub tenant: String,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub tenant: String,
    pub model: String,
    /// `input` (cache misses), `cached_input` or `output`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub upstream: String,
    pub model: String,
    /// `ok` or the failure class (`connect`, `timeout`, `status_5xx`, ...).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CircuitLabels {
    pub upstream: String,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub tenant: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub tenant: String,
    /// `completed`, `resumed`, `failed`, `truncated`, `budget-exceeded` or `client-gone`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: &'static str,
}

type Usd = Counter<f64, AtomicU64>;

/// A tenant's [`Series`] by model.
type ModelSeries = HashMap<Box<str>, Arc<Series>>;

/// All of the gateway's metrics.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<TenantLabels, Histogram>,
    pub first_byte_seconds: Family<TenantLabels, Histogram>,
    pub added_latency_seconds: Family<TenantLabels, Histogram>,
    pub decision_seconds: Family<TenantLabels, Histogram>,
    pub upstream_attempts: Family<AttemptLabels, Counter>,
    pub fallbacks: Family<TenantLabels, Counter>,
    /// 0 closed, 1 half-open, 2 open.
    pub circuit_state: Family<CircuitLabels, Gauge>,
    pub tokens: Family<TokenLabels, Counter>,
    pub cost_usd: Family<TenantModelLabels, Usd>,
    pub saved_usd: Family<TenantModelLabels, Usd>,
    pub policy_failures: Family<FailureLabels, Counter>,
    pub policy_reloads: Family<ReloadLabels, Counter>,
    pub in_flight: Gauge,
    pub open_streams: Gauge,
    /// The console's ring of recent requests (filled as each request's context is dropped).
    pub(crate) recent: crate::observe::recent::Recent,
    /// Relayed streams by how they ended.
    pub streams: Family<StreamLabels, Counter>,
    /// Stream events dropped after the commit point because they were not JSON.
    pub stream_events_dropped: Family<TenantLabels, Counter>,
    /// The part of `cost_usd` that is the host's estimate (no usage from the provider).
    pub estimated_cost_usd: Family<TenantModelLabels, Usd>,
    /// Each (tenant, model)'s series, resolved once (see [`Series`]).
    series: RwLock<HashMap<Box<str>, ModelSeries>>,
}

/// The series a finished request of one tenant and model writes, looked up in their families
/// once instead of per request and metric (a label hash, a lock and the label strings' copies
/// each). Each is resolved when first written, so a series appears in `/metrics` exactly when it
/// would have without them.
#[derive(Default)]
pub(crate) struct Series {
    tenant: String,
    model: String,
    request_seconds: OnceLock<Histogram>,
    first_byte_seconds: OnceLock<Histogram>,
    added_latency_seconds: OnceLock<Histogram>,
    decision_seconds: OnceLock<Histogram>,
    tokens: [OnceLock<Counter>; 3],
    cost_usd: OnceLock<Usd>,
    estimated_cost_usd: OnceLock<Usd>,
    saved_usd: OnceLock<Usd>,
}

/// The kinds of [`Series::tokens`], in order.
pub(crate) const TOKEN_KINDS: [&str; 3] = ["input", "cached_input", "output"];

impl Series {
    fn tenant_labels(&self) -> TenantLabels {
        TenantLabels {
            tenant: self.tenant.clone(),
        }
    }

    fn tenant_model_labels(&self) -> TenantModelLabels {
        TenantModelLabels {
            tenant: self.tenant.clone(),
            model: self.model.clone(),
        }
    }

    /// Observes the request's total, first-byte and added latency.
    pub fn latencies(&self, m: &Metrics, total: Duration, first_byte: Duration, added: Duration) {
        for (cell, family, d) in [
            (&self.request_seconds, &m.request_seconds, total),
            (&self.first_byte_seconds, &m.first_byte_seconds, first_byte),
            (&self.added_latency_seconds, &m.added_latency_seconds, added),
        ] {
            cell.get_or_init(|| family.get_or_create(&self.tenant_labels()).clone())
                .observe(d.as_secs_f64());
        }
    }

    pub fn decision(&self, m: &Metrics, d: Duration) {
        self.decision_seconds
            .get_or_init(|| {
                m.decision_seconds
                    .get_or_create(&self.tenant_labels())
                    .clone()
            })
            .observe(d.as_secs_f64());
    }

    /// Counts tokens of `TOKEN_KINDS[kind]`.
    pub fn tokens(&self, m: &Metrics, kind: usize, n: u64) {
        self.tokens[kind]
            .get_or_init(|| {
                m.tokens
                    .get_or_create(&TokenLabels {
                        tenant: self.tenant.clone(),
                        model: self.model.clone(),
                        kind: TOKEN_KINDS[kind],
                    })
                    .clone()
            })
            .inc_by(n);
    }

    pub fn cost(&self, m: &Metrics, usd: f64, estimated: bool) {
        self.cost_usd
            .get_or_init(|| {
                m.cost_usd
                    .get_or_create(&self.tenant_model_labels())
                    .clone()
            })
            .inc_by(usd);
        if estimated {
            self.estimated_cost_usd
                .get_or_init(|| {
                    m.estimated_cost_usd
                        .get_or_create(&self.tenant_model_labels())
                        .clone()
                })
                .inc_by(usd);
        }
    }

    pub fn saved(&self, m: &Metrics, usd: f64) {
        self.saved_usd
            .get_or_init(|| {
                m.saved_usd
                    .get_or_create(&self.tenant_model_labels())
                    .clone()
            })
            .inc_by(usd);
    }
}

fn latency_histograms() -> Family<TenantLabels, Histogram> {
    // 50 us to about 13 min, doubling.
    Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_05, 2.0, 24)))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchyard");
        let m = Metrics {
            requests: Family::default(),
            request_seconds: latency_histograms(),
            first_byte_seconds: latency_histograms(),
            added_latency_seconds: latency_histograms(),
            decision_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_002, 2.0, 20))
            }),
            upstream_attempts: Family::default(),
            fallbacks: Family::default(),
            circuit_state: Family::default(),
            tokens: Family::default(),
            cost_usd: Family::default(),
            saved_usd: Family::default(),
            policy_failures: Family::default(),
            policy_reloads: Family::default(),
            in_flight: Gauge::default(),
            open_streams: Gauge::default(),
            recent: crate::observe::recent::Recent::default(),
            streams: Family::default(),
            stream_events_dropped: Family::default(),
            estimated_cost_usd: Family::default(),
            series: RwLock::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests by tenant, model, HTTP status and cache outcome",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Total request time, until the last byte",
            m.request_seconds.clone(),
        );
        registry.register(
            "time_to_first_byte_seconds",
            "Time until the response (or the first stream event) is sent",
            m.first_byte_seconds.clone(),
        );
        registry.register(
            "added_latency_seconds",
            "Time to first byte spent in the gateway rather than waiting on upstreams",
            m.added_latency_seconds.clone(),
        );
        registry.register(
            "policy_decision_seconds",
            "Time a policy decision took",
            m.decision_seconds.clone(),
        );
        registry.register(
            "upstream_attempts",
            "Upstream attempts by outcome (`ok` or the failure class)",
            m.upstream_attempts.clone(),
        );
        registry.register(
            "fallbacks",
            "Requests served by a target after the first",
            m.fallbacks.clone(),
        );
        registry.register(
            "circuit_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            m.circuit_state.clone(),
        );
        registry.register(
            "tokens",
            "Tokens by kind: input (cache miss), cached_input, output",
            m.tokens.clone(),
        );
        registry.register("cost_usd", "Upstream cost in USD", m.cost_usd.clone());
        registry.register(
            "saved_usd",
            "Cost avoided by response-cache hits, USD",
            m.saved_usd.clone(),
        );
        registry.register(
            "policy_failures",
            "Policy failures by tenant and kind",
            m.policy_failures.clone(),
        );
        registry.register(
            "policy_reloads",
            "Reload attempts by result",
            m.policy_reloads.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests being handled",
            m.in_flight.clone(),
        );
        registry.register(
            "open_streams",
            "Streams being relayed",
            m.open_streams.clone(),
        );
        registry.register(
            "streams",
            "Relayed streams by how they ended: completed, resumed, failed, truncated, budget-exceeded, client-gone",
            m.streams.clone(),
        );
        registry.register(
            "stream_events_dropped",
            "Stream events dropped after the commit point because they were not JSON",
            m.stream_events_dropped.clone(),
        );
        registry.register(
            "estimated_cost_usd",
            "The part of cost_usd charged at the host's estimate (the provider reported no usage)",
            m.estimated_cost_usd.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Counts each upstream attempt by outcome, as the fallback loop reports them.
pub(crate) struct AttemptCounter<'a>(pub &'a Metrics);

impl switchyard_upstream::AttemptObserver for AttemptCounter<'_> {
    fn attempt(&self, upstream: &str, model: &str, outcome: &'static str) {
        self.0.attempt(upstream, model, outcome);
    }
}

/// [`AttemptCounter`] owning its metrics, for attempts a stream makes after its request's
/// future is gone (resuming a cut stream).
pub(crate) struct OwnedAttemptCounter(pub std::sync::Arc<Metrics>);

impl switchyard_upstream::AttemptObserver for OwnedAttemptCounter {
    fn attempt(&self, upstream: &str, model: &str, outcome: &'static str) {
        self.0.attempt(upstream, model, outcome);
    }
}

impl Metrics {
    fn attempt(&self, upstream: &str, model: &str, outcome: &'static str) {
        self.upstream_attempts
            .get_or_create(&AttemptLabels {
                upstream: upstream.to_owned(),
                model: model.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Counts a request that a target after the first served.
    pub fn fallback(&self, tenant: &str) {
        self.fallbacks
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .inc();
    }

    /// The series of `tenant` and `model` (a new entry the first time: the pairs are bounded by
    /// the configuration, as the families' label sets are).
    pub(crate) fn series(&self, tenant: &str, model: &str) -> Arc<Series> {
        if let Some(s) = self.series.read().get(tenant).and_then(|m| m.get(model)) {
            return s.clone();
        }
        self.series
            .write()
            .entry(tenant.into())
            .or_default()
            .entry(model.into())
            .or_insert_with(|| {
                Arc::new(Series {
                    tenant: tenant.to_owned(),
                    model: model.to_owned(),
                    ..Series::default()
                })
            })
            .clone()
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
