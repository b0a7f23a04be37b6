//! `switchyard policy simulate`: replays a trace of OpenAI chat requests offline through a policy
//! and reports the model mix, the projected cost at the catalog's prices, and what the same trace
//! would cost if every request went to one model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use switchyard_gateway::offline::{OfflineDecision, OfflineTenant};
use switchyard_gateway::{Config, ModelInfo};

use crate::svg;

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
    let config = Config::load(&opts.config).map_err(anyhow::Error::msg)?;
    let tenant_name = match &opts.tenant {
        Some(t) => t.clone(),
        None => config
            .tenants
            .keys()
            .next()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the config has no tenant"))?,
    };
    let tenant = OfflineTenant::load(config, &tenant_name, opts.policy.clone())
        .await
        .map_err(anyhow::Error::msg)?;

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
        let body = request.to_string();
        let Some(facts) = tenant.facts(body.as_bytes()) else {
            report.invalid += 1;
            continue;
        };
        let output = output
            .or(facts.max_output_tokens)
            .unwrap_or(opts.default_output_tokens);
        let input = facts.input_tokens;
        totals.push((input, output, facts.has_images));
        let decision = tenant
            .decide(&format!("sim_{i}"), body.as_bytes())
            .map_err(|e| anyhow::anyhow!("request {}: {e}", i + 1))?;
        match decision {
            OfflineDecision::Route { models, tags } => {
                let model = models[0].clone();
                let reason = tags
                    .iter()
                    .find(|(k, _)| k == "reason")
                    .map_or("-".into(), |(_, v)| v.clone());
                *report.reasons.entry(reason).or_default() += 1;
                let price = tenant
                    .price(&model)
                    .ok_or_else(|| anyhow::anyhow!("no price for {model}"))?;
                let c = cost(price, input, output, opts.cache_hit_share);
                let share = report.mix.entry(model).or_default();
                share.requests += 1;
                share.input_tokens += input;
                share.output_tokens += output;
                share.cost_usd += c;
                report.policy_cost_usd += c;
            }
            OfflineDecision::Rejected { .. } => report.rejected += 1,
        }
    }
    for model in tenant.models() {
        let Some(price) = tenant.price(model) else {
            continue;
        };
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
        std::fs::write(path, chart(&report))?;
    }
    Ok(report)
}

/// The report as a bar chart: the policy's cost next to each single-model strategy, and its mix.
pub fn chart(r: &Report) -> String {
    let mut bars = vec![svg::Bar {
        label: "this policy".into(),
        value: r.policy_cost_usd,
        text: format!("${:.4}", r.policy_cost_usd),
        colour: svg::PALETTE[0],
    }];
    for b in &r.baselines {
        bars.push(svg::Bar {
            label: format!("all {}", b.model),
            value: b.cost_usd,
            text: format!("${:.4}", b.cost_usd),
            colour: "#8a8f98",
        });
    }
    let total: u64 = r.mix.values().map(|m| m.requests).sum::<u64>().max(1);
    svg::bars(&svg::BarChart {
        title: format!(
            "Projected cost of {} requests (cache-hit share {:.0}%)",
            r.requests,
            r.cache_hit_share * 100.0
        ),
        bars,
        shares_title: "Model mix of this policy".into(),
        shares: r
            .mix
            .iter()
            .map(|(m, s)| (m.clone(), s.requests as f64 / total as f64))
            .collect(),
    })
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
