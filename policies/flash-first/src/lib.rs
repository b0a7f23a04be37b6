//! `flash-first`: the reference routing rule, as a component.
//!
//! DeepSeek V4 Flash serves bounded, high-volume work (reviews, single-file edits, classification,
//! retrieval answers, the inner loop of agents). DeepSeek V4 Pro takes the hard 10%: agents deep in
//! tool calls, very large inputs, `xhigh` reasoning, callers who hint at a hard task, and prompts that
//! read like a multi-file refactor or a whole-codebase synthesis. Requests with images go to a
//! multimodal model, since V4 is text-only. Fallbacks: Flash → Pro → frontier, Pro → frontier.
//!
//! The rule itself (its config and defaults, the classification, the chains) lives in
//! `policies/flash-first-rule`, a plain library that other policies build on (`cache-sticky`,
//! `adaptive`); this crate only exports it. Every threshold and model name comes from the tenant's
//! policy config. The same rule, with the same config and decisions, is written in Python
//! (`policies/flash-first-py`) and JavaScript (`policies/flash-first-js`);
//! `tests/conformance/flash-first.json` holds all three to it.

pub use flash_first_rule::{Config, FlashFirst, NoModel, Plan, Signals, plan, reason};

switchyard_sdk::export_policy!(FlashFirst);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use switchyard_sdk::prelude::*;
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
            .input_tokens(r["input_tokens"].as_u64().unwrap_or(1_000))
            .tool_calls(u32_of("tool_calls").unwrap_or(0))
            .user_says(str_of("excerpt").unwrap_or(""));
        if let Some(n) = r["max_output_tokens"].as_u64() {
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
