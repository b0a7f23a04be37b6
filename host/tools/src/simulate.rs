//! `switchyard policy simulate`: replays a trace of chat requests offline through a policy, with
//! the host's own summary and checks, against simulated providers, and reports the model mix, the
//! cost at the catalog's prices, the prompt-cache hit ratio, latency, errors and model switches,
//! next to every single-model strategy (like for like) and, optionally, a second policy.
//!
//! The simulated providers keep a prompt cache per upstream and model, as DeepSeek does: a request
//! whose messages start with a prefix that upstream and model served before gets those tokens as
//! cache hits (in 64-token units). Faults (an upstream down, or slow to its first token, over a
//! time range) come from `--faults`. Time is simulated: the run uses a paused clock advanced to
//! each request's arrival, so circuit breakers, latency windows and conversation records behave
//! as in service, and the outcomes reach the policy (`on-outcome`), whose store can be saved and
//! restored: the same trace, faults and starting state give the same decisions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchyard_gateway::offline::{OfflineDecision, OfflineOutcome, OfflineTarget, OfflineTenant};
use switchyard_gateway::{Config, ModelInfo, Usage};

use crate::svg;

/// Options of `policy simulate`.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub policy: PathBuf,
    pub config: PathBuf,
    pub requests: PathBuf,
    pub tenant: Option<String>,
    /// A second policy to run on the same trace, reported beside the first.
    pub compare: Option<PathBuf>,
    /// Upstream faults over time (JSON, see [`Faults`]).
    pub faults: Option<PathBuf>,
    /// Output tokens assumed for a request that names no `max_tokens` and no `output_tokens`.
    pub default_output_tokens: u64,
    /// A share of input tokens assumed to hit the prompt cache, instead of the cache model.
    pub cache_hit_share: Option<f64>,
    /// Start the policy's store from this file (written by `state_out`).
    pub state_in: Option<PathBuf>,
    pub state_out: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub svg: Option<PathBuf>,
    /// Print nothing (the console's Playground reads the report).
    pub quiet: bool,
}

/// Requests and cost that went to one model.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ModelShare {
    pub requests: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// What sending everything to one model would cost, on the requests it can serve.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub model: String,
    pub cost_usd: f64,
    /// What the policy spent on the same requests.
    pub policy_cost_usd: f64,
    /// Requests the model cannot serve (the prompt does not fit its context window, or it carries
    /// images and the model is text-only): left out of both figures.
    pub cannot_serve: u64,
    pub cache_hit_ratio: f64,
}

/// One policy's run of the trace.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Run {
    pub policy: String,
    pub requests: u64,
    pub rejected: u64,
    pub invalid: u64,
    /// Requests no target could serve.
    pub errors: u64,
    /// Requests whose first byte came more than 2 s after they arrived.
    pub slow: u64,
    pub ttft_p50_ms: u64,
    pub ttft_p95_ms: u64,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_hit_ratio: f64,
    /// Conversations, and model changes between their consecutive turns.
    pub conversations: u64,
    pub model_switches: u64,
    pub switches_per_conversation: f64,
    pub mix: BTreeMap<String, ModelShare>,
    pub reasons: BTreeMap<String, u64>,
    /// Per request: what it cost (to compare like for like with the baselines).
    #[serde(skip)]
    costs: Vec<f64>,
}

/// The simulation's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tenant: String,
    pub trace: String,
    pub run: Run,
    pub compare: Option<Run>,
    pub baselines: Vec<Baseline>,
}

/// Upstream faults: `{"faults": [{"upstream": "a", "from_ms": 0, "to_ms": 60000, "kind": "down"},
/// {"upstream": "b", "from_ms": 0, "to_ms": 30000, "kind": "slow", "ttft_ms": 8000}]}`, times
/// from the trace's start. Outside faults, an upstream answers in its `base_ttft_ms` (300) plus
/// its prefill time.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Faults {
    #[serde(default)]
    pub faults: Vec<Fault>,
    #[serde(default)]
    pub base_ttft_ms: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    pub upstream: String,
    #[serde(default)]
    pub model: Option<String>,
    pub from_ms: u64,
    pub to_ms: u64,
    pub kind: FaultKind,
    #[serde(default)]
    pub ttft_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Refuses every request (a 503 within 50 ms).
    Down,
    /// Its first token comes after `ttft_ms`.
    Slow,
}

/// One line of the trace.
struct Entry {
    body: String,
    at_ms: u64,
    output: Option<u64>,
}

/// Tokens per cache unit (DeepSeek keeps prefixes in 64-token units).
const CACHE_UNIT: u64 = 64;
/// What counts as a slow request.
const SLOW: Duration = Duration::from_secs(2);

/// A simulated provider's prompt caches: message-prefix hashes per (upstream, model).
#[derive(Default)]
struct PromptCaches {
    seen: HashMap<(String, String), HashSet<u64>>,
}

impl PromptCaches {
    /// Input tokens of `messages` served from the cache of `model` on `upstream`, and remembers
    /// every prefix of them there.
    fn serve(&mut self, upstream: &str, model: &str, messages: &[Value], total: u64) -> u64 {
        let seen = self
            .seen
            .entry((upstream.to_owned(), model.to_owned()))
            .or_default();
        let mut h = chain_hash(0, model.as_bytes());
        let (mut running, mut hit) = (0u64, 0u64);
        for m in messages {
            let text = m.to_string();
            h = chain_hash(h, text.as_bytes());
            running += tokens_of(&text);
            if !seen.insert(h) {
                hit = running;
            }
        }
        (hit / CACHE_UNIT * CACHE_UNIT).min(total)
    }
}

fn chain_hash(seed: u64, bytes: &[u8]) -> u64 {
    // Chained: each prefix's hash covers every message before it.
    let mut buf = seed.to_le_bytes().to_vec();
    buf.extend_from_slice(bytes);
    fnv(&buf)
}

/// FNV-1a, enough to tell message prefixes apart in a simulation.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn tokens_of(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

fn cost(model: &ModelInfo, usage: &Usage) -> f64 {
    model.cost(usage)
}

fn read_trace(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let value: Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), i + 1))?;
        let (request, output, at_ms) = match value.get("request") {
            Some(r) => (
                r.clone(),
                value.get("output_tokens").and_then(Value::as_u64),
                value.get("at_ms").and_then(Value::as_u64),
            ),
            None => (value, None, None),
        };
        out.push(Entry {
            body: request.to_string(),
            at_ms: at_ms.unwrap_or(i as u64 * 1000),
            output,
        });
    }
    out.sort_by_key(|e| e.at_ms);
    Ok(out)
}

/// Runs the simulation and prints the report to stdout.
pub async fn run(opts: &SimulateOptions) -> anyhow::Result<Report> {
    let opts = opts.clone();
    // The simulation's own runtime, on a paused clock that it advances to each arrival.
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()?;
        rt.block_on(simulate(&opts))
    })
    .await?
}

async fn simulate(opts: &SimulateOptions) -> anyhow::Result<Report> {
    let config = Config::load(&opts.config).map_err(anyhow::Error::msg)?;
    let tenant = match &opts.tenant {
        Some(t) => t.clone(),
        None => config
            .tenants
            .keys()
            .next()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the config has no tenant"))?,
    };
    let faults: Faults = match &opts.faults {
        Some(p) => serde_json::from_str(&std::fs::read_to_string(p)?)?,
        None => Faults::default(),
    };
    let trace = read_trace(&opts.requests)?;
    let run = run_policy(&config, &tenant, &opts.policy, &trace, &faults, opts).await?;
    let compare = match &opts.compare {
        Some(p) => Some(run_policy(&config, &tenant, p, &trace, &faults, opts).await?),
        None => None,
    };
    let baselines = baselines(&config, &tenant, &opts.policy, &trace, &run, opts).await?;
    let report = Report {
        tenant,
        trace: opts.requests.display().to_string(),
        run,
        compare,
        baselines,
    };
    if !opts.quiet {
        print(&report);
    }
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if let Some(path) = &opts.svg {
        std::fs::write(path, chart(&report))?;
    }
    Ok(report)
}

/// How one upstream answers at `at_ms` for `model`: `None` when it refuses, else its time to first
/// token before prefill.
fn behaviour(faults: &Faults, upstream: &str, model: &str, at_ms: u64) -> Option<Duration> {
    let base = faults.base_ttft_ms.get(upstream).copied().unwrap_or(300);
    let mut ttft = Duration::from_millis(base);
    for f in &faults.faults {
        if f.upstream == upstream
            && f.model.as_deref().is_none_or(|m| m == model)
            && (f.from_ms..f.to_ms).contains(&at_ms)
        {
            match f.kind {
                FaultKind::Down => return None,
                FaultKind::Slow => ttft = Duration::from_millis(f.ttft_ms.unwrap_or(10_000)),
            }
        }
    }
    Some(ttft)
}

async fn run_policy(
    config: &Config,
    tenant: &str,
    policy: &Path,
    trace: &[Entry],
    faults: &Faults,
    opts: &SimulateOptions,
) -> anyhow::Result<Run> {
    let sim = OfflineTenant::load(config.clone(), tenant, policy.to_path_buf())
        .await
        .map_err(anyhow::Error::msg)?;
    if let Some(path) = &opts.state_in {
        let state: Vec<(String, Vec<u8>)> = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        sim.restore_state(&state).map_err(anyhow::Error::msg)?;
    }
    let start = tokio::time::Instant::now();
    let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000);
    let mut caches = PromptCaches::default();
    let mut run = Run {
        policy: policy.display().to_string(),
        ..Run::default()
    };
    let mut ttfts: Vec<u64> = Vec::new();
    let mut last_model: HashMap<u64, String> = HashMap::new();
    for (i, e) in trace.iter().enumerate() {
        let now = start + Duration::from_millis(e.at_ms);
        if now > tokio::time::Instant::now() {
            tokio::time::advance(now - tokio::time::Instant::now()).await;
        }
        let at = epoch + Duration::from_millis(e.at_ms);
        run.requests += 1;
        run.costs.push(0.0);
        let Some(facts) = sim.facts(e.body.as_bytes()) else {
            run.invalid += 1;
            continue;
        };
        let id = format!("sim_{i}");
        let decision = sim
            .decide(&id, e.body.as_bytes(), at)
            .map_err(|err| anyhow::anyhow!("request {}: {err}", i + 1))?;
        let OfflineDecision::Route { targets, tags, .. } = &decision else {
            run.rejected += 1;
            continue;
        };
        let reason = tags
            .iter()
            .find(|(k, _)| k == "reason")
            .map_or("-".into(), |(_, v)| v.clone());
        *run.reasons.entry(reason).or_default() += 1;
        let request: Value = serde_json::from_str(&e.body)?;
        let messages = request["messages"].as_array().cloned().unwrap_or_default();
        let output = e
            .output
            .or(facts.max_output_tokens)
            .unwrap_or(opts.default_output_tokens);
        let (outcome, served) = execute(
            &sim,
            &mut caches,
            faults,
            targets,
            &messages,
            &facts,
            output,
            e,
            opts,
        );
        if let Some((model, _)) = &outcome.served_by {
            let price = sim
                .price(model)
                .ok_or_else(|| anyhow::anyhow!("no price for {model}"))?;
            let c = cost(price, &outcome.usage);
            run.cost_usd += c;
            *run.costs.last_mut().expect("pushed above") = c;
            run.input_tokens += outcome.usage.prompt_tokens;
            run.cached_input_tokens += outcome.usage.cached_prompt_tokens;
            let share = run.mix.entry(model.clone()).or_default();
            share.requests += 1;
            share.input_tokens += outcome.usage.prompt_tokens;
            share.cached_input_tokens += outcome.usage.cached_prompt_tokens;
            share.output_tokens += outcome.usage.completion_tokens;
            share.cost_usd += c;
            match last_model.insert(facts.conversation, model.clone()) {
                None => run.conversations += 1,
                Some(prev) if prev != *model => run.model_switches += 1,
                Some(_) => {}
            }
        } else {
            run.errors += 1;
        }
        if let Some(t) = served {
            ttfts.push(t.as_millis() as u64);
            if t > SLOW {
                run.slow += 1;
            }
        }
        let outcome = OfflineOutcome {
            cost_usd: outcome
                .served_by
                .as_ref()
                .and_then(|(m, _)| sim.price(m))
                .map_or(0.0, |p| cost(p, &outcome.usage)),
            ..outcome
        };
        sim.finish(&id, e.body.as_bytes(), &decision, &outcome, at)
            .map_err(|err| anyhow::anyhow!("request {}: {err}", i + 1))?;
    }
    ttfts.sort_unstable();
    let pct = |p: f64| {
        ttfts
            .get(((ttfts.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    run.ttft_p50_ms = pct(0.5);
    run.ttft_p95_ms = pct(0.95);
    run.cache_hit_ratio = ratio(run.cached_input_tokens, run.input_tokens);
    run.switches_per_conversation = ratio(run.model_switches, run.conversations);
    if let Some(path) = &opts.state_out {
        std::fs::write(path, serde_json::to_string_pretty(&sim.state())?)?;
    }
    Ok(run)
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Tries the route's targets in order against the simulated providers, as the host's fallback
/// loop does: an open circuit is skipped, a refusing upstream costs 50 ms, a first token later
/// than the target's first-token deadline moves on at the deadline.
#[allow(
    clippy::too_many_arguments,
    reason = "the pieces of one simulated request"
)]
fn execute(
    sim: &OfflineTenant,
    caches: &mut PromptCaches,
    faults: &Faults,
    targets: &[OfflineTarget],
    messages: &[Value],
    facts: &switchyard_gateway::offline::RequestFacts,
    output: u64,
    e: &Entry,
    opts: &SimulateOptions,
) -> (OfflineOutcome, Option<Duration>) {
    let mut waited = Duration::ZERO;
    let mut failed = Vec::new();
    for t in targets {
        if sim.is_open(&t.model, &t.upstream) {
            continue;
        }
        for _ in 0..=t.retries {
            let at_ms = e.at_ms + waited.as_millis() as u64;
            let Some(base) = behaviour(faults, &t.upstream, &t.model, at_ms) else {
                waited += Duration::from_millis(50);
                failed.push((t.model.clone(), t.upstream.clone()));
                continue;
            };
            let input = facts.input_tokens;
            let cached = match opts.cache_hit_share {
                Some(share) => (input as f64 * share) as u64,
                None => caches.serve(&t.upstream, &t.model, messages, input),
            };
            // Prefill: 0.05 ms per uncached input token.
            let ttft = base + Duration::from_micros((input - cached) * 50);
            if let Some(deadline) = t.first_token
                && ttft > deadline
            {
                waited += deadline;
                failed.push((t.model.clone(), t.upstream.clone()));
                break;
            }
            let first_byte = waited + ttft;
            let total = first_byte + Duration::from_millis(output * 16);
            return (
                OfflineOutcome {
                    served_by: Some((t.model.clone(), t.upstream.clone())),
                    failed,
                    status: 200,
                    ttft: Some(first_byte),
                    total,
                    usage: Usage {
                        prompt_tokens: input,
                        cached_prompt_tokens: cached,
                        completion_tokens: output,
                    },
                    cost_usd: 0.0,
                },
                Some(first_byte),
            );
        }
    }
    (
        OfflineOutcome {
            served_by: None,
            failed,
            status: 502,
            ttft: None,
            total: waited,
            usage: Usage::default(),
            cost_usd: 0.0,
        },
        None,
    )
}

/// Every tenant model on its own, with the same cache model, on the requests it can serve, next
/// to what the policy spent on those same requests.
async fn baselines(
    config: &Config,
    tenant: &str,
    policy: &Path,
    trace: &[Entry],
    run: &Run,
    opts: &SimulateOptions,
) -> anyhow::Result<Vec<Baseline>> {
    let sim = OfflineTenant::load(config.clone(), tenant, policy.to_path_buf())
        .await
        .map_err(anyhow::Error::msg)?;
    let mut out = Vec::new();
    for model in sim.models().to_vec() {
        let Some(price) = sim.price(&model).cloned() else {
            continue;
        };
        let upstream = sim
            .upstreams_of(&model)
            .into_iter()
            .next()
            .unwrap_or_default();
        let mut caches = PromptCaches::default();
        let (mut c, mut policy_c, mut cannot, mut input, mut cached) = (0.0, 0.0, 0, 0, 0);
        for (i, e) in trace.iter().enumerate() {
            let Some(facts) = sim.facts(e.body.as_bytes()) else {
                continue;
            };
            let output = e
                .output
                .or(facts.max_output_tokens)
                .unwrap_or(opts.default_output_tokens);
            if facts.input_tokens + output > price.context_window
                || (facts.has_images && !price.supports_images)
            {
                cannot += 1;
                continue;
            }
            let request: Value = serde_json::from_str(&e.body)?;
            let messages = request["messages"].as_array().cloned().unwrap_or_default();
            let hit = match opts.cache_hit_share {
                Some(share) => (facts.input_tokens as f64 * share) as u64,
                None => caches.serve(&upstream, &model, &messages, facts.input_tokens),
            };
            input += facts.input_tokens;
            cached += hit;
            c += cost(
                &price,
                &Usage {
                    prompt_tokens: facts.input_tokens,
                    cached_prompt_tokens: hit,
                    completion_tokens: output,
                },
            );
            policy_c += run.costs.get(i).copied().unwrap_or(0.0);
        }
        out.push(Baseline {
            model,
            cost_usd: c,
            policy_cost_usd: policy_c,
            cannot_serve: cannot,
            cache_hit_ratio: ratio(cached, input),
        });
    }
    Ok(out)
}

fn print_run(r: &Run) {
    let name = Path::new(&r.policy)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(&r.policy);
    println!(
        "\n{name}: {} requests, {} rejected, {} not valid, {} errors, {} slow (> 2 s)",
        r.requests, r.rejected, r.invalid, r.errors, r.slow
    );
    println!(
        "  cost ${:.4}   prompt-cache hits {:.1}% of input   ttft p50 {} ms, p95 {} ms",
        r.cost_usd,
        r.cache_hit_ratio * 100.0,
        r.ttft_p50_ms,
        r.ttft_p95_ms
    );
    println!(
        "  {} conversations, {} model switches ({:.2} per conversation)",
        r.conversations, r.model_switches, r.switches_per_conversation
    );
    let routed: u64 = r.mix.values().map(|m| m.requests).sum();
    for (model, s) in &r.mix {
        println!(
            "  {model:<20} {:>5} requests ({:>5.1}%)  {:>10} in ({:>5.1}% cached)  {:>8} out  ${:.4}",
            s.requests,
            s.requests as f64 * 100.0 / routed.max(1) as f64,
            s.input_tokens,
            ratio(s.cached_input_tokens, s.input_tokens) * 100.0,
            s.output_tokens,
            s.cost_usd
        );
    }
    let reasons: Vec<String> = r.reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("  why: {}", reasons.join(", "));
}

fn print(r: &Report) {
    println!("simulated {} for tenant `{}`", r.trace, r.tenant);
    print_run(&r.run);
    if let Some(c) = &r.compare {
        print_run(c);
        println!(
            "\n  {} costs {:.1}% of {}; slow requests {} vs {}; errors {} vs {}",
            name(&r.run),
            r.run.cost_usd / c.cost_usd.max(1e-12) * 100.0,
            name(c),
            r.run.slow,
            c.slow,
            r.run.errors,
            c.errors
        );
    }
    println!("\nlike for like, on the requests each model can serve:");
    for b in &r.baselines {
        let note = if b.cannot_serve > 0 {
            format!(" ({} requests it cannot serve left out)", b.cannot_serve)
        } else {
            String::new()
        };
        println!(
            "  everything on {:<20} ${:.4} (cache hits {:.1}%); the policy on the same requests ${:.4} = {:.1}%{note}",
            b.model,
            b.cost_usd,
            b.cache_hit_ratio * 100.0,
            b.policy_cost_usd,
            b.policy_cost_usd / b.cost_usd.max(1e-12) * 100.0
        );
    }
}

fn name(r: &Run) -> String {
    Path::new(&r.policy)
        .file_stem()
        .and_then(|n| n.to_str())
        .unwrap_or(&r.policy)
        .to_owned()
}

/// The report as a bar chart: each policy's cost next to each single-model strategy, and the
/// first policy's model mix.
pub fn chart(r: &Report) -> String {
    let mut bars = vec![svg::Bar {
        label: name(&r.run),
        value: r.run.cost_usd,
        text: format!("${:.4}, {} slow", r.run.cost_usd, r.run.slow),
        colour: svg::PALETTE[0],
    }];
    if let Some(c) = &r.compare {
        bars.push(svg::Bar {
            label: name(c),
            value: c.cost_usd,
            text: format!("${:.4}, {} slow", c.cost_usd, c.slow),
            colour: svg::PALETTE[1],
        });
    }
    for b in &r.baselines {
        bars.push(svg::Bar {
            label: format!("all {}", b.model),
            value: b.cost_usd,
            text: format!("${:.4}", b.cost_usd),
            colour: "#8a8f98",
        });
    }
    let total: u64 = r.run.mix.values().map(|m| m.requests).sum::<u64>().max(1);
    svg::bars(&svg::BarChart {
        title: format!("Cost of {} requests, prompt cache modelled", r.run.requests),
        bars,
        shares_title: format!("Model mix of {}", name(&r.run)),
        shares: r
            .run
            .mix
            .iter()
            .map(|(m, s)| (m.clone(), s.requests as f64 / total as f64))
            .collect(),
    })
}
