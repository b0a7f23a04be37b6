//! flash-first's routing rule, as a plain library: the [`Config`] with its defaults, the
//! classification of a request ([`Signals`], [`reason`]), the model chain it leads to ([`plan`])
//! and [`FlashFirst`], the [`Policy`] that routes along it.
//!
//! DeepSeek V4 Flash serves bounded, high-volume work (reviews, single-file edits, classification,
//! retrieval answers, the inner loop of agents). DeepSeek V4 Pro takes the hard 10%: agents deep in
//! tool calls, very large inputs, `xhigh` reasoning, callers who hint at a hard task, and prompts that
//! read like a multi-file refactor or a whole-codebase synthesis. Requests with images go to a
//! multimodal model, since V4 is text-only. Fallbacks: Flash → Pro → frontier, Pro → frontier.
//!
//! This crate exports no component: a policy crate calls `switchyard_sdk::export_policy!`, which
//! emits the component's exports, so one policy crate cannot depend on another. `policies/flash-first`
//! exports [`FlashFirst`] as it is; `policies/cache-sticky` and `policies/adaptive` build their own
//! rules on [`plan`], and read configs that extend [`Config`] with [`split_config`].

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};
use switchyard_sdk::contract::check_hints;
use switchyard_sdk::prelude::*;

/// The tenant's settings. Every field is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The cheap, fast default model.
    pub flash_model: String,
    /// The strong model for hard requests.
    pub pro_model: String,
    /// The last-resort fallback when the DeepSeek models fail.
    pub frontier_model: String,
    /// The model for requests that carry images.
    pub vision_model: String,
    /// Pro once the assistant has made more than this many tool calls.
    pub agent_depth_threshold: u32,
    /// Pro once the estimated prompt exceeds this many tokens.
    pub large_input_tokens: u64,
    /// Reasoning efforts that ask for Pro.
    pub pro_reasoning_efforts: Vec<String>,
    /// Hints (`key=value`, from `x-switchyard-<key>` headers or `metadata`) that ask for Pro.
    pub pro_hints: Vec<String>,
    /// Hints that pin the request to Flash, whatever else it looks like.
    pub flash_hints: Vec<String>,
    /// Phrases (matched case-insensitively in the last user message) that mark a multi-file
    /// refactor or a whole-codebase synthesis.
    pub pro_phrases: Vec<String>,
    /// Once this share of the tightest budget is spent, hard requests stay on Flash.
    pub budget_guard: f64,
    /// Serve an explicitly requested model (one of the tenant's, not an alias such as `auto`)
    /// instead of routing, keeping the fallbacks after it.
    pub honor_requested_model: bool,
    /// Response cache mode: `off`, `read-only`, `write-only` or `read-write`.
    pub cache: CacheMode,
    /// Cache TTL in seconds; unset uses the host's default.
    pub cache_ttl_seconds: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        let strings = |s: &[&str]| s.iter().map(|s| s.to_string()).collect();
        #[rustfmt::skip]
        let pro_phrases = strings(&[
            "refactor across", "multi-file refactor", "across multiple files", "across all files",
            "across the codebase", "across the repo", "entire codebase", "whole codebase",
            "entire repository", "whole repository", "every module", "architecture review",
            "migrate the codebase",
        ]);
        Config {
            flash_model: "deepseek-v4-flash".into(),
            pro_model: "deepseek-v4-pro".into(),
            frontier_model: "gpt-5.5".into(),
            vision_model: "gpt-5.5".into(),
            agent_depth_threshold: 10,
            large_input_tokens: 200_000,
            pro_reasoning_efforts: strings(&["xhigh", "max"]),
            pro_hints: strings(&["difficulty=hard", "tier=pro", "tier=strong"]),
            flash_hints: strings(&["tier=flash", "tier=fast", "tier=cheap"]),
            pro_phrases,
            budget_guard: 0.9,
            honor_requested_model: true,
            cache: CacheMode::Off,
            cache_ttl_seconds: None,
        }
    }
}

/// Everything the rule reads in a request, each signal on its own (several can hold at once;
/// [`Signals::reason`] says which one the rule acts on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// A message carries an image.
    pub images: bool,
    /// The client named one of the tenant's models and `honor_requested_model` is on.
    pub requested: bool,
    /// A hint from `flash_hints`.
    pub flash_hint: bool,
    /// More than `agent_depth_threshold` tool calls so far.
    pub agent_depth: bool,
    /// More than `large_input_tokens` estimated input tokens.
    pub large_input: bool,
    /// A reasoning effort from `pro_reasoning_efforts`.
    pub reasoning_effort: bool,
    /// A hint from `pro_hints`.
    pub pro_hint: bool,
    /// The last user message contains a `pro_phrases` entry.
    pub hard_task: bool,
    /// At least `budget_guard` of the tightest budget is spent.
    pub budget_spent: bool,
}

impl Signals {
    /// Reads every signal of `r` under `c`.
    pub fn of(c: &Config, r: &Request) -> Self {
        let pro_effort = |e: &str| {
            c.pro_reasoning_efforts
                .iter()
                .any(|p| p.eq_ignore_ascii_case(e))
        };
        Signals {
            images: r.has_images(),
            requested: c.honor_requested_model && r.candidate(r.requested_model()).is_some(),
            flash_hint: r.hint_matches_any(&c.flash_hints),
            agent_depth: r.tool_calls() > c.agent_depth_threshold,
            large_input: r.input_tokens() > c.large_input_tokens,
            reasoning_effort: r.reasoning_effort().is_some_and(pro_effort),
            pro_hint: r.hint_matches_any(&c.pro_hints),
            hard_task: r.mentions_any(&c.pro_phrases),
            budget_spent: r
                .budget_used_fraction()
                .is_some_and(|used| used >= c.budget_guard),
        }
    }

    /// Whether any signal of a hard task holds (agent depth, a large input, a Pro reasoning
    /// effort, a Pro hint, a hard-task phrase).
    pub fn hard(&self) -> bool {
        self.agent_depth
            || self.large_input
            || self.reasoning_effort
            || self.pro_hint
            || self.hard_task
    }

    /// The one the rule acts on, by its precedence: images, then an explicitly requested model,
    /// a Flash hint, then the hard signals in the order above (Pro, unless the budget guard
    /// keeps it on Flash), else `default`. Recorded as the `reason` tag.
    pub fn reason(&self) -> &'static str {
        if self.images {
            return "images";
        }
        if self.requested {
            return "requested";
        }
        if self.flash_hint {
            return "flash-hint";
        }
        let hard = if self.agent_depth {
            "agent-depth"
        } else if self.large_input {
            "large-input"
        } else if self.reasoning_effort {
            "reasoning-effort"
        } else if self.pro_hint {
            "pro-hint"
        } else if self.hard_task {
            "hard-task"
        } else {
            return "default";
        };
        if self.budget_spent {
            "budget-guard"
        } else {
            hard
        }
    }
}

/// Why a request goes where it goes; recorded as the `reason` tag.
pub fn reason(c: &Config, r: &Request) -> &'static str {
    Signals::of(c, r).reason()
}

/// The default chain: Flash, Pro, frontier.
pub fn default_chain(c: &Config) -> [&str; 3] {
    [c.flash_model.as_str(), &c.pro_model, &c.frontier_model]
}

/// The models the rule tries for `reason`, in order, before leaving out those the tenant may not
/// use or whose context cannot hold the request.
pub fn chain<'a>(c: &'a Config, r: &'a Request, reason: &str) -> Vec<&'a str> {
    let default = default_chain(c);
    match reason {
        "images" => vec![c.vision_model.as_str(), &c.frontier_model],
        // The requested model, then whatever is stronger on the default chain.
        "requested" => match default.iter().position(|m| *m == r.requested_model()) {
            Some(i) => default[i..].to_vec(),
            None => vec![r.requested_model(), &c.frontier_model],
        },
        "default" | "flash-hint" | "budget-guard" => default.to_vec(),
        _ => vec![c.pro_model.as_str(), &c.frontier_model],
    }
}

/// What the rule makes of one request it can serve.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// Every signal it read.
    pub signals: Signals,
    /// The one it acted on ([`Signals::reason`]).
    pub reason: &'static str,
    /// The usable part of its chain ([`Request::usable`]): never empty. The first is the rule's
    /// primary, the rest its fallbacks.
    pub models: Vec<&'a Candidate>,
    /// The strong models were not usable, so a hard request is served on the default chain.
    pub downgraded: bool,
}

impl<'a> Plan<'a> {
    /// The rule's primary model.
    pub fn primary(&self) -> &'a Candidate {
        self.models[0]
    }

    /// The rule's route: its usable chain, primary first (as [`Decision::first_usable`] gives it).
    pub fn route(&self) -> Decision {
        let (primary, rest) = self.models.split_first().expect("a plan names a model");
        Decision::route(&primary.model).fallbacks(rest.iter().map(|c| c.model.as_str()))
    }

    /// `decision` with what the rule adds to every route: the response-cache mode and TTL, the
    /// `reason` tag (`reason`) and `downgraded=true` when the plan was downgraded.
    pub fn finish(&self, c: &Config, decision: Decision, reason: &str) -> Decision {
        let mut decision = decision.cache(c.cache).tag("reason", reason);
        if self.downgraded {
            decision = decision.tag("downgraded", "true");
        }
        match c.cache_ttl_seconds {
            Some(ttl) => decision.cache_ttl(ttl),
            None => decision,
        }
    }
}

/// No allowed model can serve the request (the rule has logged it): answer
/// [`NoModel::decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoModel;

impl NoModel {
    /// The rejection: a 400 with code `no_suitable_model`, as [`Decision::first_usable`] gives it.
    pub fn decision(self, r: &Request) -> Decision {
        Decision::first_usable(r, std::iter::empty::<&str>())
    }
}

/// The rule's plan for `r`, or [`NoModel`] (logged) when no allowed model can serve it.
pub fn plan<'a>(c: &'a Config, r: &'a Request) -> Result<Plan<'a>, NoModel> {
    plan_for(c, r, Signals::of(c, r))
}

/// The rule's plan for `r` as if it read `signals` (say, [`Signals::of`] with some left out).
pub fn plan_for<'a>(c: &'a Config, r: &'a Request, signals: Signals) -> Result<Plan<'a>, NoModel> {
    let reason = signals.reason();
    // Allowed models whose context holds the request; failing upstreams last.
    let mut models = r.usable(chain(c, r, reason));
    // The strong models are not allowed (or too small): serve it on the default chain.
    let downgraded = models.is_empty() && reason != "images";
    if downgraded {
        models = r.usable(default_chain(c));
    }
    if models.is_empty() {
        let needed = r.tokens_needed();
        switchyard_sdk::warn!("no allowed model fits a {needed}-token request ({reason})");
        return Err(NoModel);
    }
    Ok(Plan {
        signals,
        reason,
        models,
        downgraded,
    })
}

/// Checks the rule's config beyond what deserialising it checks.
pub fn validate(c: &Config) -> Result<(), String> {
    for (field, model) in [
        ("flash_model", &c.flash_model),
        ("pro_model", &c.pro_model),
        ("frontier_model", &c.frontier_model),
        ("vision_model", &c.vision_model),
    ] {
        if model.trim().is_empty() {
            return Err(format!("{field} must name a model"));
        }
    }
    if !(0.0..=1.0).contains(&c.budget_guard) {
        return Err(format!(
            "budget_guard must be between 0 and 1, got {}",
            c.budget_guard
        ));
    }
    check_hints(&c.pro_hints)?;
    check_hints(&c.flash_hints)
}

/// Reads a config that extends the rule's: the fields named in `own` (the policy's own, read as
/// a `T`) and the rest as a [`Config`], as strictly as flash-first reads it (an unknown field is
/// refused). For a `Deserialize` impl: `let (rule, own) = split_config::<_, Own>(d, Own::FIELDS)?`.
pub fn split_config<'de, D, T>(d: D, own: &[&str]) -> Result<(Config, T), D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let mut rule = serde_json::Map::deserialize(d)?;
    let mine: serde_json::Map<String, serde_json::Value> =
        own.iter().filter_map(|k| rule.remove_entry(*k)).collect();
    let rule = Config::deserialize(serde_json::Value::Object(rule)).map_err(D::Error::custom)?;
    let mine = T::deserialize(serde_json::Value::Object(mine)).map_err(D::Error::custom)?;
    Ok((rule, mine))
}

/// The reference policy.
pub struct FlashFirst;

impl Policy for FlashFirst {
    type Config = Config;

    fn validate(c: &Config) -> Result<(), String> {
        validate(c)
    }

    fn decide(c: &Config, r: &Request) -> Decision {
        match plan(c, r) {
            Ok(plan) => plan.finish(c, plan.route(), plan.reason),
            Err(none) => none.decision(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{example_catalog, request};

    #[test]
    fn signals_hold_together_and_the_reason_follows_the_rules_precedence() {
        let c = Config::default();
        let r = request("auto")
            .candidates(example_catalog())
            .tool_calls(11)
            .input_tokens(300_000)
            .reasoning_effort("XHIGH")
            .hint("difficulty", "hard")
            .user_says("a multi-file refactor")
            .into_request();
        let s = Signals::of(&c, &r);
        assert!(s.agent_depth && s.large_input && s.reasoning_effort && s.pro_hint && s.hard_task);
        assert!(s.hard() && !s.images && !s.requested && !s.flash_hint && !s.budget_spent);
        assert_eq!(s.reason(), "agent-depth");
        assert_eq!(reason(&c, &r), "agent-depth");
        let only = |f: fn(&mut Signals)| {
            let mut s = Signals::default();
            f(&mut s);
            s.reason()
        };
        assert_eq!(only(|_| {}), "default");
        assert_eq!(only(|s| s.budget_spent = true), "default");
        assert_eq!(only(|s| s.hard_task = true), "hard-task");
        assert_eq!(
            only(|s| {
                s.pro_hint = true;
                s.budget_spent = true
            }),
            "budget-guard"
        );
        assert_eq!(
            only(|s| {
                s.flash_hint = true;
                s.agent_depth = true
            }),
            "flash-hint"
        );
        assert_eq!(
            only(|s| {
                s.requested = true;
                s.flash_hint = true
            }),
            "requested"
        );
        assert_eq!(
            only(|s| {
                s.images = true;
                s.requested = true
            }),
            "images"
        );
    }

    #[test]
    fn a_plan_names_the_usable_chain_and_finishes_the_route() {
        let c: Config =
            serde_json::from_str(r#"{"cache": "read-write", "cache_ttl_seconds": 60}"#).unwrap();
        let r = request("auto")
            .candidates(example_catalog())
            .tool_calls(12)
            .into_request();
        let p = plan(&c, &r).unwrap();
        assert_eq!(p.reason, "agent-depth");
        assert_eq!(p.primary().model, "deepseek-v4-pro");
        let d = p.finish(&c, p.route(), "elsewhere");
        assert_eq!(
            (d.primary(), d.fallback_models()),
            (Some("deepseek-v4-pro"), vec!["gpt-5.5"])
        );
        assert_eq!(d.tag_value("reason"), Some("elsewhere"));
        let route = d.as_route().unwrap();
        assert_eq!(
            (route.cache, route.cache_ttl_seconds),
            (CacheMode::ReadWrite, Some(60))
        );
        let r = request("auto").input_tokens(2_000_000).into_request();
        assert!(plan(&c, &r).unwrap_err().decision(&r).is_reject());
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Own {
        extra_ms: u64,
    }

    struct Extended(Config, Own);

    impl<'de> Deserialize<'de> for Extended {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let (rule, own) = split_config(d, &["extra_ms"])?;
            Ok(Extended(rule, own))
        }
    }

    #[test]
    fn an_extended_config_splits_into_the_rules_fields_and_its_own() {
        let Extended(rule, own) =
            serde_json::from_str(r#"{"agent_depth_threshold": 3, "extra_ms": 5}"#).unwrap();
        assert_eq!((rule.agent_depth_threshold, own.extra_ms), (3, 5));
        assert_eq!(rule.flash_model, "deepseek-v4-flash");
        let Extended(rule, own) = serde_json::from_str("{}").unwrap();
        assert_eq!((rule.agent_depth_threshold, own), (10, Own::default()));
        let typo = serde_json::from_str::<Extended>(r#"{"agent_depth_treshold": 3}"#);
        assert!(
            typo.as_ref().is_err_and(|e| e
                .to_string()
                .contains("unknown field `agent_depth_treshold`")),
            "{:?}",
            typo.err()
        );
        let wrong = serde_json::from_str::<Extended>(r#"{"extra_ms": "soon"}"#);
        assert!(wrong.is_err());
        assert!(serde_json::from_str::<Extended>("[1]").is_err());
    }
}
