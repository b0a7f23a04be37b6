//! `flash-first`: the reference routing rule.
//!
//! DeepSeek V4 Flash serves bounded, high-volume work (reviews, single-file edits, classification,
//! retrieval answers, the inner loop of agents). DeepSeek V4 Pro takes the hard 10%: agents deep in
//! tool calls, very large inputs, `xhigh` reasoning, callers who hint at a hard task, and prompts that
//! read like a multi-file refactor or a whole-codebase synthesis. Requests with images go to a
//! multimodal model, since V4 is text-only. Fallbacks: Flash → Pro → frontier, Pro → frontier.
//!
//! Every threshold and model name comes from the tenant's policy config; the defaults are below.
//! The same rule, with the same config and decisions, is written in Python
//! (`policies/flash-first-py`) and JavaScript (`policies/flash-first-js`);
//! `tests/conformance/flash-first.json` holds all three to it.

use serde::Deserialize;
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

/// Why a request goes where it goes; recorded as the `reason` tag.
fn reason(c: &Config, r: &Request) -> &'static str {
    if r.has_images() {
        return "images";
    }
    if c.honor_requested_model && r.candidate(r.requested_model()).is_some() {
        return "requested";
    }
    if r.hint_matches_any(&c.flash_hints) {
        return "flash-hint";
    }
    let pro_effort = |e: &str| {
        c.pro_reasoning_efforts
            .iter()
            .any(|p| p.eq_ignore_ascii_case(e))
    };
    let hard = if r.tool_calls() > c.agent_depth_threshold {
        "agent-depth"
    } else if u64::from(r.input_tokens()) > c.large_input_tokens {
        "large-input"
    } else if r.reasoning_effort().is_some_and(pro_effort) {
        "reasoning-effort"
    } else if r.hint_matches_any(&c.pro_hints) {
        "pro-hint"
    } else if r.mentions_any(&c.pro_phrases) {
        "hard-task"
    } else {
        return "default";
    };
    match r.budget_used_fraction() {
        Some(used) if used >= c.budget_guard => "budget-guard",
        _ => hard,
    }
}

/// The reference policy.
pub struct FlashFirst;

impl Policy for FlashFirst {
    type Config = Config;

    fn validate(c: &Config) -> Result<(), String> {
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

    fn decide(c: &Config, r: &Request) -> Decision {
        let reason = reason(c, r);
        let default = [c.flash_model.as_str(), &c.pro_model, &c.frontier_model];
        let chain = match reason {
            "images" => vec![c.vision_model.as_str(), &c.frontier_model],
            // The requested model, then whatever is stronger on the default chain.
            "requested" => match default.iter().position(|m| *m == r.requested_model()) {
                Some(i) => default[i..].to_vec(),
                None => vec![r.requested_model(), &c.frontier_model],
            },
            "default" | "flash-hint" | "budget-guard" => default.to_vec(),
            _ => vec![c.pro_model.as_str(), &c.frontier_model],
        };
        // Allowed models whose context holds the request; failing upstreams last.
        let mut decision = Decision::first_usable(r, &chain);
        // The strong models are not allowed (or too small): serve it on the default chain.
        let downgraded = decision.is_reject() && reason != "images";
        if downgraded {
            decision = Decision::first_usable(r, default);
        }
        if decision.is_reject() {
            let needed = r.tokens_needed();
            switchyard_sdk::warn!("no allowed model fits a {needed}-token request ({reason})");
            return decision;
        }
        decision = decision.cache(c.cache).tag("reason", reason);
        if downgraded {
            decision = decision.tag("downgraded", "true");
        }
        match c.cache_ttl_seconds {
            Some(ttl) => decision.cache_ttl(ttl),
            None => decision,
        }
    }
}

switchyard_sdk::export_policy!(FlashFirst);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use switchyard_sdk::testing::{
        candidate, decide, example_catalog, request, take_logs, validate,
    };

    const FLASH: &str = "deepseek-v4-flash";
    const PRO: &str = "deepseek-v4-pro";
    const FRONTIER: &str = "gpt-5.5";

    /// `tests/conformance/flash-first.json`: the cases every language's build must decide alike.
    fn fixture() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/conformance/flash-first.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// A fixture case's request, from the defaults its `about` names.
    fn fixture_request(r: &Value) -> switchyard_sdk::testing::RequestBuilder {
        let str_of = |key: &str| r[key].as_str();
        let u32_of = |key: &str| r[key].as_u64().map(|n| u32::try_from(n).unwrap());
        let mut catalog = example_catalog();
        if let Some(names) = r["candidates"].as_array() {
            catalog.retain(|c| names.iter().any(|n| n == c.model.as_str()));
        }
        let mut b = request(str_of("requested_model").unwrap_or("auto"))
            .candidates(catalog)
            .input_tokens(u32_of("input_tokens").unwrap_or(1_000))
            .tool_calls(u32_of("tool_calls").unwrap_or(0))
            .user_says(str_of("excerpt").unwrap_or(""));
        if let Some(n) = u32_of("max_output_tokens") {
            b = b.max_output_tokens(n);
        }
        if let Some(effort) = str_of("reasoning_effort") {
            b = b.reasoning_effort(effort);
        }
        if r["images"] == true {
            b = b.with_image();
        }
        for pair in r["hints"].as_array().into_iter().flatten() {
            b = b.hint(pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        }
        for (model, health) in r["health"].as_object().into_iter().flatten() {
            b = b.health(model, health.as_str().unwrap().parse().unwrap());
        }
        if let Some(budget) = r["budget"].as_array() {
            b = b.daily_budget(budget[0].as_f64().unwrap(), budget[1].as_f64().unwrap());
        }
        b
    }

    /// A decision in the fixture's terms (as `tests/all/conformance.rs` describes it).
    fn describe(d: &Decision) -> Value {
        let Some(route) = d.as_route() else {
            let r = d.as_rejection().unwrap();
            return json!({"reject": {"status": r.status, "code": r.code}});
        };
        let mut v = json!({"primary": d.primary(), "fallbacks": d.fallback_models()});
        if let Some(reason) = d.tag_value("reason") {
            v["reason"] = reason.into();
        }
        if d.tag_value("downgraded") == Some("true") {
            v["downgraded"] = true.into();
        }
        if route.cache != CacheMode::Off {
            v["cache"] = route.cache.as_str().into();
        }
        if let Some(ttl) = route.cache_ttl_seconds {
            v["ttl"] = ttl.into();
        }
        v
    }

    /// Runs the fixture's cases whose names start with one of `names` (all with `&[""]`), and
    /// checks that each name picked at least one.
    fn check_cases(names: &[&str]) {
        let fixture = fixture();
        let cases = fixture["cases"].as_array().unwrap();
        for name in names {
            let picked: Vec<&Value> = cases
                .iter()
                .filter(|c| c["name"].as_str().unwrap().starts_with(name))
                .collect();
            assert!(!picked.is_empty(), "no fixture case named {name:?}");
            for case in picked {
                let config = case.get("config").map_or("{}".into(), Value::to_string);
                let got = describe(&decide::<FlashFirst>(
                    &config,
                    fixture_request(&case["request"]),
                ));
                assert_eq!(got, case["expect"], "{}", case["name"]);
            }
        }
    }

    #[test]
    fn every_fixture_case_and_config_check() {
        check_cases(&[""]);
        for case in fixture()["config_validation"].as_array().unwrap() {
            let verdict = validate::<FlashFirst>(&case["config"].to_string());
            match case["error_contains"].as_str() {
                None => assert_eq!(verdict, Ok(()), "{}", case["config"]),
                Some(needle) => assert!(
                    verdict.as_ref().is_err_and(|e| e.contains(needle)),
                    "{}: {verdict:?}",
                    case["config"]
                ),
            }
        }
    }

    #[test]
    fn bounded_work_goes_to_flash_with_the_full_fallback_chain() {
        check_cases(&[
            "bounded work goes to Flash",
            "a degraded primary keeps its place",
        ]);
    }

    #[test]
    fn an_explicitly_requested_model_is_served_with_stronger_fallbacks() {
        check_cases(&[
            "an explicit Pro request",
            "an explicit Flash request",
            "with pinning off",
        ]);
        let d = decide::<FlashFirst>("", request("gpt-4o").candidates(example_catalog()));
        assert_eq!(
            d.primary(),
            Some(FLASH),
            "a model the tenant cannot use is routed, not pinned"
        );
        assert_eq!(d.tag_value("reason"), Some("default"));
    }

    #[test]
    fn deep_agents_large_inputs_and_xhigh_reasoning_go_to_pro() {
        check_cases(&[
            "ten tool calls",
            "eleven tool calls",
            "a very large input",
            "the large-input threshold",
            "xhigh reasoning",
            "high reasoning",
        ]);
    }

    #[test]
    fn hard_hints_and_refactor_prompts_go_to_pro() {
        check_cases(&[
            "a hard-task hint",
            "a refactor prompt",
            "a codebase synthesis prompt",
        ]);
    }

    #[test]
    fn images_go_to_the_vision_model_or_are_refused() {
        check_cases(&[
            "images go to the vision model",
            "images without an image model",
        ]);
    }

    #[test]
    fn a_flash_hint_wins_over_hard_signals() {
        check_cases(&["a flash hint wins"]);
    }

    #[test]
    fn a_nearly_spent_budget_keeps_hard_requests_on_flash() {
        check_cases(&["a nearly spent budget", "half a budget"]);
    }

    #[test]
    fn only_usable_models_are_named() {
        check_cases(&[
            "a hard request without the strong models",
            "models whose context is too small",
            "an unavailable primary moves to the end",
        ]);
    }

    #[test]
    fn thresholds_models_and_cache_come_from_config() {
        check_cases(&[
            "thresholds, models and cache",
            "a config that no longer parses",
        ]);
        // Models outside the example catalog, with labels and prices of their own.
        let config = r#"{"flash_model":"small","pro_model":"big","frontier_model":"huge","agent_depth_threshold":2}"#;
        let models = || {
            [
                candidate("small"),
                candidate("big"),
                candidate("huge").images(),
            ]
        };
        let d = decide::<FlashFirst>(config, request("auto").tool_calls(3).candidates(models()));
        assert_eq!(
            (d.primary(), d.fallback_models()),
            (Some("big"), vec!["huge"])
        );
        let d = decide::<FlashFirst>(config, request("auto").tool_calls(2).candidates(models()));
        assert_eq!(d.primary(), Some("small"));
    }

    #[test]
    fn a_request_no_model_can_serve_is_rejected_and_logged() {
        let _ = take_logs();
        check_cases(&["nothing fits a 2M-token request"]);
        let logs = take_logs();
        assert_eq!(logs.len(), 1);
        assert!(
            logs[0].1.contains("2000000-token request (large-input)"),
            "{logs:?}"
        );
    }

    #[test]
    fn decisions_leave_the_0_2_knobs_to_the_host() {
        let d = decide::<FlashFirst>("", request("auto").candidates(example_catalog()));
        let route = d.as_route().unwrap();
        assert!(!route.keep_conversation && !route.report_outcome);
        assert_eq!(route.primary.first_token_deadline_ms, None);
        assert_eq!(
            (d.primary(), d.fallback_models()),
            (Some(FLASH), vec![PRO, FRONTIER])
        );
    }
}
