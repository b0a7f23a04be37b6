//! `switchyard policy simulate`: replays a trace of OpenAI chat requests offline through a policy
//! and reports the model mix, the projected cost at the catalog's prices, and what the same trace
//! would cost if every request went to one model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use switchyard_policy::CallContext;
use switchyard_policy::types::Budget;

use crate::config::{Config, ModelInfo, PolicySource};
use crate::openai::request::ChatRequest;
use crate::routing::{self, Checked};
use crate::state::{Simulators, Snapshot};
use crate::upstream::health::{BreakerSettings, Breakers};

/// Options of `policy simulate`.
pub struct SimulateOptions {
    pub policy: PathBuf,
    pub config: PathBuf,
    pub requests: PathBuf,
    pub tenant: Option<String>,
    /// Share of input tokens assumed to hit the provider's prompt cache.
    pub cache_hit_share: f64,
    /// Output tokens assumed for a request that names no `max_tokens` and no `output_tokens`.
    pub default_output_tokens: u64,
    pub json: Option<PathBuf>,
    pub svg: Option<PathBuf>,
}

/// Requests and cost that went to one model.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ModelShare {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// What one single-model strategy would cost.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub model: String,
    pub cost_usd: f64,
    /// Requests the model cannot serve: the prompt does not fit its context window, or it
    /// carries images and the model is text-only.
    pub cannot_serve: u64,
}

/// The simulation's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub policy: String,
    pub tenant: String,
    pub requests: u64,
    pub rejected: u64,
    pub invalid: u64,
    pub cache_hit_share: f64,
    pub mix: BTreeMap<String, ModelShare>,
    pub reasons: BTreeMap<String, u64>,
    pub policy_cost_usd: f64,
    pub baselines: Vec<Baseline>,
}

fn cost(model: &ModelInfo, input: u64, output: u64, hit_share: f64) -> f64 {
    let input = input as f64;
    (input * (1.0 - hit_share) * model.input_usd_per_mtok
        + input * hit_share * model.cached_input_usd_per_mtok
        + output as f64 * model.output_usd_per_mtok)
        / 1e6
}

/// Runs the simulation and prints the report to stdout.
pub async fn run(opts: &SimulateOptions) -> anyhow::Result<Report> {
    let mut config = Config::load(&opts.config).map_err(anyhow::Error::msg)?;
    config.server.watch = false;
    config.admin = None;
    let tenant_name = match &opts.tenant {
        Some(t) => t.clone(),
        None => config
            .tenants
            .keys()
            .next()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the config has no tenant"))?,
    };
    let policy_name = config
        .tenants
        .get(&tenant_name)
        .ok_or_else(|| anyhow::anyhow!("no tenant `{tenant_name}` in {}", opts.config.display()))?
        .policy
        .clone();
    config
        .policies
        .insert(policy_name, PolicySource::File(opts.policy.clone()));
    // Offline, time does not matter: give interpreted-language policies room to run.
    if let Some(t) = config.tenants.get_mut(&tenant_name) {
        t.limits.sandbox.deadline = std::time::Duration::from_secs(2);
        t.limits.sandbox.memory_bytes = t.limits.sandbox.memory_bytes.max(256 << 20);
    }
    let engine = switchyard_policy::PolicyEngine::new(switchyard_policy::EngineSettings {
        max_memory_bytes: 256 << 20,
        concurrent_instances: 4,
        ..Default::default()
    })
    .map_err(anyhow::Error::msg)?;
    let (snapshot, _) = Snapshot::build(config, &engine, &Simulators::default(), None)
        .await
        .map_err(anyhow::Error::msg)?;
    let tenant = snapshot.tenants[&tenant_name].clone();
    let breakers = Breakers::new(BreakerSettings {
        failures: u32::MAX,
        open_for: std::time::Duration::from_secs(1),
    });
    let round_robin = std::sync::atomic::AtomicU64::new(0);

    let text = std::fs::read_to_string(&opts.requests)?;
    let mut report = Report {
        policy: opts.policy.display().to_string(),
        tenant: tenant_name.clone(),
        requests: 0,
        rejected: 0,
        invalid: 0,
        cache_hit_share: opts.cache_hit_share,
        mix: BTreeMap::new(),
        reasons: BTreeMap::new(),
        policy_cost_usd: 0.0,
        baselines: Vec::new(),
    };
    // (input, output, has images) per request, for the baselines.
    let mut totals: Vec<(u64, u64, bool)> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        report.requests += 1;
        let value: Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", opts.requests.display(), i + 1))?;
        let (request, output) = match value.get("request") {
            Some(r) => (
                r.clone(),
                value.get("output_tokens").and_then(Value::as_u64),
            ),
            None => (value, None),
        };
        let Ok(chat) = ChatRequest::parse(Bytes::from(request.to_string()), 100_000) else {
            report.invalid += 1;
            continue;
        };
        let output = output
            .or(chat.max_output_tokens())
            .unwrap_or(opts.default_output_tokens);
        let input = chat.stats.estimated_input_tokens;
        totals.push((input, output, chat.stats.has_images));
        let budget = Budget {
            spent_today_usd: 0.0,
            daily_limit_usd: None,
            spent_month_usd: 0.0,
            monthly_limit_usd: None,
        };
        let mut summary = routing::summarise(
            &format!("sim_{i}"),
            i as u64,
            &tenant,
            &chat,
            routing::hints(&http::HeaderMap::new(), &chat),
            &breakers,
            budget,
        );
        summary.requested_model = snapshot.config.canonical(&chat.model.value).to_owned();
        let ctx = CallContext {
            tenant: tenant.name.clone(),
            request_id: Arc::from(format!("sim_{i}")),
            limits: tenant.config.limits.sandbox.clone(),
            capture_logs: false,
            yield_each_tick: false,
        };
        let chooser = routing::Chooser {
            choice: snapshot.config.upstream_choice,
            prefix_key: chat.stats.prefix_key,
            tenant: &tenant.name,
            round_robin: &round_robin,
            breakers: &breakers,
        };
        let decision = tenant
            .policy
            .compiled
            .decide(&ctx, &summary)
            .map_err(|e| anyhow::anyhow!("request {}: {e}", i + 1))?
            .value;
        match routing::check(&snapshot, &tenant, decision, &chooser) {
            Ok(Checked::Route(plan)) => {
                let model = plan.targets[0].model.clone();
                let reason = plan
                    .tags
                    .iter()
                    .find(|(k, _)| k == "reason")
                    .map_or("-".into(), |(_, v)| v.clone());
                *report.reasons.entry(reason).or_default() += 1;
                let price = &snapshot.config.models[&model];
                let c = cost(price, input, output, opts.cache_hit_share);
                let share = report.mix.entry(model).or_default();
                share.requests += 1;
                share.input_tokens += input;
                share.output_tokens += output;
                share.cost_usd += c;
                report.policy_cost_usd += c;
            }
            Ok(Checked::Reject { .. }) => report.rejected += 1,
            Err(f) => {
                return Err(anyhow::anyhow!(
                    "request {}: the host refused the decision: {f}",
                    i + 1
                ));
            }
        }
    }
    for model in &tenant.config.models {
        let price = &snapshot.config.models[model];
        let (mut c, mut cannot_serve) = (0.0, 0);
        for (input, output, images) in &totals {
            c += cost(price, *input, *output, opts.cache_hit_share);
            if input + output > price.context_window || (*images && !price.supports_images) {
                cannot_serve += 1;
            }
        }
        report.baselines.push(Baseline {
            model: model.clone(),
            cost_usd: c,
            cannot_serve,
        });
    }
    print(&report);
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if let Some(path) = &opts.svg {
        std::fs::write(path, super::svg::chart(&report))?;
    }
    Ok(report)
}

fn print(r: &Report) {
    println!(
        "simulated {} requests through {} for tenant `{}` (prompt-cache hit share {:.0}%)",
        r.requests,
        Path::new(&r.policy)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&r.policy),
        r.tenant,
        r.cache_hit_share * 100.0
    );
    if r.rejected + r.invalid > 0 {
        println!(
            "  {} rejected by the policy, {} not valid chat requests",
            r.rejected, r.invalid
        );
    }
    println!("\nmodel mix:");
    let routed: u64 = r.mix.values().map(|m| m.requests).sum();
    for (model, s) in &r.mix {
        println!(
            "  {model:<20} {:>5} requests ({:>5.1}%)  {:>10} in  {:>8} out  ${:.4}",
            s.requests,
            s.requests as f64 * 100.0 / routed.max(1) as f64,
            s.input_tokens,
            s.output_tokens,
            s.cost_usd
        );
    }
    println!("\nwhy:");
    for (reason, n) in &r.reasons {
        println!("  {reason:<20} {n:>5}");
    }
    println!("\ncost of the trace:");
    println!("  {:<34} ${:.4}", "with this policy", r.policy_cost_usd);
    for b in &r.baselines {
        let note = if b.cannot_serve > 0 {
            format!("  ({} requests it cannot serve)", b.cannot_serve)
        } else {
            String::new()
        };
        let ratio = if b.cost_usd > 0.0 {
            r.policy_cost_usd / b.cost_usd * 100.0
        } else {
            0.0
        };
        println!(
            "  {:<34} ${:.4}  policy = {ratio:.0}% of this{note}",
            format!("everything on {}", b.model),
            b.cost_usd
        );
    }
}
