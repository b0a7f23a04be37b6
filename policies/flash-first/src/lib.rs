//! `flash-first`: the reference routing rule.
//!
//! DeepSeek V4 Flash serves bounded, high-volume work (reviews, single-file edits, classification,
//! retrieval answers, the inner loop of agents). DeepSeek V4 Pro takes the hard 10%: agents deep in
//! tool calls, very large inputs, `xhigh` reasoning, callers who hint at a hard task, and prompts that
//! read like a multi-file refactor or a whole-codebase synthesis. Requests with images go to a
//! multimodal model, since V4 is text-only. Fallbacks: Flash → Pro → frontier, Pro → frontier.
//!
//! Every threshold and model name comes from the tenant's policy config; the defaults are below.

use serde::Deserialize;
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
    pub cache: String,
    /// Cache TTL in seconds; unset uses the host's default.
    pub cache_ttl_seconds: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            flash_model: "deepseek-v4-flash".into(),
            pro_model: "deepseek-v4-pro".into(),
            frontier_model: "gpt-5.5".into(),
            vision_model: "gpt-5.5".into(),
            agent_depth_threshold: 10,
            large_input_tokens: 200_000,
            pro_reasoning_efforts: vec!["xhigh".into(), "max".into()],
            pro_hints: vec![
                "difficulty=hard".into(),
                "tier=pro".into(),
                "tier=strong".into(),
            ],
            flash_hints: vec!["tier=flash".into(), "tier=fast".into(), "tier=cheap".into()],
            pro_phrases: [
                "refactor across",
                "multi-file refactor",
                "across multiple files",
                "across all files",
                "across the codebase",
                "across the repo",
                "entire codebase",
                "whole codebase",
                "entire repository",
                "whole repository",
                "every module",
                "architecture review",
                "migrate the codebase",
            ]
            .map(String::from)
            .to_vec(),
            budget_guard: 0.9,
            honor_requested_model: true,
            cache: "off".into(),
            cache_ttl_seconds: None,
        }
    }
}

fn cache_mode(name: &str) -> Option<CacheMode> {
    Some(match name {
        "off" => CacheMode::Off,
        "read-only" => CacheMode::ReadOnly,
        "write-only" => CacheMode::WriteOnly,
        "read-write" => CacheMode::ReadWrite,
        _ => return None,
    })
}

/// Whether `text` contains any of `phrases`, ignoring case (as `str::to_lowercase` on both sides
/// would), in one pass over `text`.
///
/// Lowercasing 2 KiB of prompt and searching it once per phrase (a searcher set-up and a scan
/// each) made a long prompt's decision twice as slow as a short one's. Here the text is only
/// lowercased when it is not ASCII; two 256-entry tables say which phrases start with each byte
/// (either case) and have each byte second, so most positions are rejected with two lookups and
/// only real candidates are compared.
fn contains_any_ignoring_case<P: AsRef<str>>(text: &str, phrases: &[P]) -> bool {
    let folded;
    let text = if text.is_ascii() {
        text.as_bytes()
    } else {
        folded = text.to_lowercase();
        folded.as_bytes()
    };
    // Lowercased phrases hold no ASCII capitals, so an ASCII-case-insensitive comparison with
    // them equals an exact comparison with the lowercased text.
    let phrases: Vec<String> = phrases.iter().map(|p| p.as_ref().to_lowercase()).collect();
    for chunk in phrases.chunks(64) {
        let mut first = [0u64; 256];
        let mut second = [0u64; 256];
        for (i, phrase) in chunk.iter().enumerate() {
            match phrase.as_bytes() {
                [] => return true,
                [only] => {
                    if text.iter().any(|b| b.eq_ignore_ascii_case(only)) {
                        return true;
                    }
                }
                [a, b, ..] => {
                    for (table, byte) in [(&mut first, a), (&mut second, b)] {
                        table[byte.to_ascii_lowercase() as usize] |= 1 << i;
                        table[byte.to_ascii_uppercase() as usize] |= 1 << i;
                    }
                }
            }
        }
        for (at, pair) in text.windows(2).enumerate() {
            let mut candidates = first[pair[0] as usize] & second[pair[1] as usize];
            while candidates != 0 {
                let phrase = chunk[candidates.trailing_zeros() as usize].as_bytes();
                if text[at..]
                    .get(..phrase.len())
                    .is_some_and(|window| window.eq_ignore_ascii_case(phrase))
                {
                    return true;
                }
                candidates &= candidates - 1;
            }
        }
    }
    false
}

fn split_hint(spec: &str) -> Option<(&str, &str)> {
    spec.split_once('=')
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
}

/// Why a request goes where it goes; recorded as the `reason` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Default,
    FlashHint,
    Images,
    AgentDepth,
    LargeInput,
    ReasoningEffort,
    ProHint,
    HardTask,
    BudgetGuard,
    Requested,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Default => "default",
            Reason::FlashHint => "flash-hint",
            Reason::Images => "images",
            Reason::AgentDepth => "agent-depth",
            Reason::LargeInput => "large-input",
            Reason::ReasoningEffort => "reasoning-effort",
            Reason::ProHint => "pro-hint",
            Reason::HardTask => "hard-task",
            Reason::BudgetGuard => "budget-guard",
            Reason::Requested => "requested",
        }
    }
}

/// The reference policy.
pub struct FlashFirst;

impl FlashFirst {
    /// Why this request needs the strong model, if it does.
    fn pro_reason(config: &Config, request: &Request) -> Option<Reason> {
        if request.tool_calls() > config.agent_depth_threshold {
            return Some(Reason::AgentDepth);
        }
        if request.input_tokens() > config.large_input_tokens {
            return Some(Reason::LargeInput);
        }
        if let Some(effort) = request.reasoning_effort()
            && config
                .pro_reasoning_efforts
                .iter()
                .any(|e| e.eq_ignore_ascii_case(effort))
        {
            return Some(Reason::ReasoningEffort);
        }
        if Self::any_hint(&config.pro_hints, request) {
            return Some(Reason::ProHint);
        }
        if contains_any_ignoring_case(request.last_user_message(), &config.pro_phrases) {
            return Some(Reason::HardTask);
        }
        None
    }

    fn any_hint(specs: &[String], request: &Request) -> bool {
        specs
            .iter()
            .filter_map(|s| split_hint(s))
            .any(|(key, value)| {
                request
                    .hint(key)
                    .is_some_and(|v| v.eq_ignore_ascii_case(value))
            })
    }

    /// The chain for `reason`, keeping only models the tenant may use and whose context holds
    /// `needed` tokens; failing upstreams go last (the host may still probe them), the rest keep
    /// their order.
    fn usable_chain<'c>(
        config: &'c Config,
        reason: Reason,
        request: &'c Request,
        needed: u64,
    ) -> Vec<(&'c str, Health)> {
        let candidates = request.candidates();
        let mut chain: Vec<(&str, Health)> = Vec::new();
        for model in Self::chain(config, reason, request.requested_model()) {
            if chain.iter().any(|(m, _)| *m == model) {
                continue;
            }
            if let Some(c) = candidates
                .find(model)
                .filter(|c| c.context_window >= needed)
            {
                chain.push((model, c.health));
            }
        }
        chain.sort_by_key(|(_, health)| *health == Health::Unavailable);
        chain
    }

    /// The ordered chain for a reason, before filtering by what the tenant may use.
    fn chain<'c>(config: &'c Config, reason: Reason, requested: &'c str) -> Vec<&'c str> {
        match reason {
            Reason::Requested => {
                // The requested model, then whatever is stronger on the default chain.
                let default = [
                    config.flash_model.as_str(),
                    &config.pro_model,
                    &config.frontier_model,
                ];
                match default.iter().position(|m| *m == requested) {
                    Some(i) => default[i..].to_vec(),
                    None => vec![requested, &config.frontier_model],
                }
            }
            Reason::Images => vec![&config.vision_model, &config.frontier_model],
            Reason::AgentDepth
            | Reason::LargeInput
            | Reason::ReasoningEffort
            | Reason::ProHint
            | Reason::HardTask => {
                vec![&config.pro_model, &config.frontier_model]
            }
            Reason::Default | Reason::FlashHint | Reason::BudgetGuard => {
                vec![
                    &config.flash_model,
                    &config.pro_model,
                    &config.frontier_model,
                ]
            }
        }
    }
}

impl Policy for FlashFirst {
    type Config = Config;

    fn validate(config: &Config) -> Result<(), String> {
        for (field, model) in [
            ("flash_model", &config.flash_model),
            ("pro_model", &config.pro_model),
            ("frontier_model", &config.frontier_model),
            ("vision_model", &config.vision_model),
        ] {
            if model.trim().is_empty() {
                return Err(format!("{field} must name a model"));
            }
        }
        if cache_mode(&config.cache).is_none() {
            return Err(format!(
                "cache: unknown mode `{}` (expected off, read-only, write-only or read-write)",
                config.cache
            ));
        }
        if !(0.0..=1.0).contains(&config.budget_guard) {
            return Err(format!(
                "budget_guard must be between 0 and 1, got {}",
                config.budget_guard
            ));
        }
        for spec in config.pro_hints.iter().chain(&config.flash_hints) {
            if split_hint(spec).is_none() {
                return Err(format!("hint `{spec}` must look like key=value"));
            }
        }
        Ok(())
    }

    fn decide(config: &Config, request: &Request) -> Decision {
        let reason = if request.has_images() {
            Reason::Images
        } else if config.honor_requested_model
            && request.candidate(request.requested_model()).is_some()
        {
            Reason::Requested
        } else if Self::any_hint(&config.flash_hints, request) {
            Reason::FlashHint
        } else {
            match Self::pro_reason(config, request) {
                Some(_)
                    if request
                        .budget_used_fraction()
                        .is_some_and(|used| used >= config.budget_guard) =>
                {
                    Reason::BudgetGuard
                }
                Some(reason) => reason,
                None => Reason::Default,
            }
        };

        let needed = request.input_tokens() + request.max_output_tokens().unwrap_or(0);
        let mut chain = Self::usable_chain(config, reason, request, needed);
        let mut downgraded = false;
        if chain.is_empty() && reason != Reason::Images {
            // The strong models are not allowed (or too small): serve it on the default chain.
            chain = Self::usable_chain(config, Reason::Default, request, needed);
            downgraded = !chain.is_empty();
        }

        let Some(((primary, _), fallbacks)) = chain.split_first() else {
            switchyard_sdk::warn!(
                "no allowed model fits a {needed}-token request ({})",
                reason.as_str()
            );
            return Decision::reject(
                400,
                "no_suitable_model",
                format!(
                    "none of this tenant's models can serve this request ({needed} tokens needed)"
                ),
            );
        };
        let mode = cache_mode(&config.cache).unwrap_or(CacheMode::Off);
        let mut decision = Decision::route(*primary)
            .fallbacks(fallbacks.iter().map(|(m, _)| *m))
            .cache(mode)
            .tag("reason", reason.as_str());
        if downgraded {
            decision = decision.tag("downgraded", "true");
        }
        if let Some(ttl) = config.cache_ttl_seconds {
            decision = decision.cache_ttl(ttl);
        }
        decision
    }
}

switchyard_sdk::export_policy!(FlashFirst);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{candidate, decide, request, validate};

    const FLASH: &str = "deepseek-v4-flash";
    const PRO: &str = "deepseek-v4-pro";
    const FRONTIER: &str = "gpt-5.5";

    fn run(req: switchyard_sdk::testing::RequestBuilder) -> Decision {
        decide::<FlashFirst>("", req)
    }

    #[test]
    fn contains_any_agrees_with_lowercasing_and_searching_each_phrase() {
        // A small deterministic generator over a tiny alphabet, so matches are frequent.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        fn word(next: &mut impl FnMut(u64) -> u64, max: u64) -> String {
            let len = next(max + 1);
            (0..len)
                .map(|_| ["a", "B", "b", " ", "é", "É", "K"][next(7) as usize])
                .collect()
        }
        for _ in 0..20_000 {
            let text = word(&mut next, 40);
            let count = next(5);
            let phrases: Vec<String> = (0..count).map(|_| word(&mut next, 4)).collect();
            let expected = phrases
                .iter()
                .any(|p| text.to_lowercase().contains(&p.to_lowercase()));
            assert_eq!(
                contains_any_ignoring_case(&text, &phrases),
                expected,
                "{text:?} {phrases:?}"
            );
        }
        // More phrases than one table chunk holds.
        let many: Vec<String> = (0..150).map(|i| format!("phrase number {i}")).collect();
        assert!(contains_any_ignoring_case(
            "... see Phrase Number 149 here",
            &many
        ));
        assert!(!contains_any_ignoring_case("phrase number", &many));
        assert!(contains_any_ignoring_case("ÜBER ALLES", &["über"]));
    }

    #[test]
    fn bounded_work_goes_to_flash_with_the_full_fallback_chain() {
        let d = run(request("auto").user_says("Review this function for off-by-one errors."));
        assert_eq!(d.primary(), Some(FLASH));
        assert_eq!(d.fallback_models(), vec![PRO, FRONTIER]);
        assert_eq!(d.tag_value("reason"), Some("default"));
    }

    #[test]
    fn an_explicitly_requested_model_is_served_with_stronger_fallbacks() {
        let d = run(request(PRO).tool_calls(0));
        assert_eq!(d.primary(), Some(PRO));
        assert_eq!(d.fallback_models(), vec![FRONTIER]);
        assert_eq!(d.tag_value("reason"), Some("requested"));
        let d = run(request(FLASH).tool_calls(50));
        assert_eq!(
            d.primary(),
            Some(FLASH),
            "an explicit Flash request is not escalated"
        );
        assert_eq!(d.fallback_models(), vec![PRO, FRONTIER]);
        let d = decide::<FlashFirst>(
            r#"{"honor_requested_model":false}"#,
            request(FLASH).tool_calls(50),
        );
        assert_eq!(d.primary(), Some(PRO), "with pinning off, the rule routes");
        let d = run(request("gpt-4o"));
        assert_eq!(
            d.primary(),
            Some(FLASH),
            "a model the tenant cannot use is routed, not pinned"
        );
    }

    #[test]
    fn deep_agents_go_to_pro() {
        let shallow = run(request("auto").tool_calls(10));
        assert_eq!(
            shallow.primary(),
            Some(FLASH),
            "10 tool calls is not past the threshold"
        );
        let deep = run(request("auto").tool_calls(11));
        assert_eq!(deep.primary(), Some(PRO));
        assert_eq!(deep.fallback_models(), vec![FRONTIER]);
        assert_eq!(deep.tag_value("reason"), Some("agent-depth"));
    }

    #[test]
    fn very_large_inputs_go_to_pro() {
        assert_eq!(
            run(request("auto").input_tokens(200_000)).primary(),
            Some(FLASH)
        );
        let d = run(request("auto").input_tokens(200_001));
        assert_eq!(d.primary(), Some(PRO));
        assert_eq!(d.tag_value("reason"), Some("large-input"));
    }

    #[test]
    fn xhigh_reasoning_goes_to_pro_but_high_does_not() {
        assert_eq!(
            run(request("auto").reasoning_effort("high")).primary(),
            Some(FLASH)
        );
        let d = run(request("auto").reasoning_effort("XHIGH"));
        assert_eq!(d.primary(), Some(PRO));
        assert_eq!(d.tag_value("reason"), Some("reasoning-effort"));
    }

    #[test]
    fn a_hard_hint_goes_to_pro() {
        let d = run(request("auto").hint("difficulty", "Hard"));
        assert_eq!(d.primary(), Some(PRO));
        assert_eq!(d.tag_value("reason"), Some("pro-hint"));
    }

    #[test]
    fn refactor_and_synthesis_prompts_go_to_pro() {
        for text in [
            "Please do a multi-file refactor of the storage layer",
            "Summarise how auth works across the WHOLE CODEBASE",
        ] {
            let d = run(request("auto").user_says(text));
            assert_eq!(d.primary(), Some(PRO), "{text}");
            assert_eq!(d.tag_value("reason"), Some("hard-task"));
        }
    }

    #[test]
    fn images_go_to_the_vision_model() {
        let d = run(request("auto").with_image().tool_calls(50));
        assert_eq!(d.primary(), Some(FRONTIER));
        assert!(d.fallback_models().is_empty());
        assert_eq!(d.tag_value("reason"), Some("images"));
    }

    #[test]
    fn a_flash_hint_wins_over_hard_signals() {
        let d = run(request("auto").tool_calls(40).hint("tier", "flash"));
        assert_eq!(d.primary(), Some(FLASH));
        assert_eq!(d.tag_value("reason"), Some("flash-hint"));
    }

    #[test]
    fn a_nearly_spent_budget_keeps_hard_requests_on_flash() {
        let d = run(request("auto").tool_calls(40).daily_budget(9.5, 10.0));
        assert_eq!(d.primary(), Some(FLASH));
        assert_eq!(d.tag_value("reason"), Some("budget-guard"));
        let d = run(request("auto").tool_calls(40).daily_budget(5.0, 10.0));
        assert_eq!(d.primary(), Some(PRO));
    }

    #[test]
    fn only_models_the_tenant_may_use_are_named() {
        let only_flash = vec![candidate(FLASH, 0.14, 0.0028, 0.28, 1_000_000, false)];
        // Pro and the frontier model are not allowed: the hard request is served by Flash.
        let d = run(request("auto")
            .tool_calls(40)
            .candidates(only_flash.clone()));
        assert_eq!(d.primary(), Some(FLASH));
        assert!(d.fallback_models().is_empty());
        assert_eq!(d.tag_value("reason"), Some("agent-depth"));
        assert_eq!(d.tag_value("downgraded"), Some("true"));
        // No allowed model reads images: refused rather than sent to a text-only model.
        let d = run(request("auto").with_image().candidates(only_flash));
        assert_eq!(d.as_rejection().map(|r| r.status), Some(400));
    }

    #[test]
    fn models_whose_context_is_too_small_are_skipped() {
        let d = run(request("auto")
            .input_tokens(500_000)
            .max_output_tokens(1_000));
        // Pro holds 1M tokens; the 400K frontier model is dropped from the chain.
        assert_eq!(d.primary(), Some(PRO));
        assert!(d.fallback_models().is_empty());
    }

    #[test]
    fn an_unavailable_primary_moves_to_the_end() {
        let d = run(request("auto").health(FLASH, Health::Unavailable));
        assert_eq!(d.primary(), Some(PRO));
        assert_eq!(d.fallback_models(), vec![FRONTIER, FLASH]);
    }

    #[test]
    fn thresholds_and_models_come_from_config() {
        let config = r#"{"flash_model":"small","pro_model":"big","frontier_model":"huge",
                         "agent_depth_threshold":2,"cache":"read-write","cache_ttl_seconds":60}"#;
        let cands = vec![
            candidate("small", 0.1, 0.01, 0.2, 100_000, false),
            candidate("big", 1.0, 0.1, 2.0, 100_000, false),
            candidate("huge", 5.0, 0.5, 10.0, 100_000, true),
        ];
        let d = decide::<FlashFirst>(
            config,
            request("auto").tool_calls(3).candidates(cands.clone()),
        );
        assert_eq!(d.primary(), Some("big"));
        assert_eq!(d.fallback_models(), vec!["huge"]);
        let route = d.as_route().unwrap();
        assert_eq!(route.cache, CacheMode::ReadWrite);
        assert_eq!(route.cache_ttl_seconds, Some(60));
        let d = decide::<FlashFirst>(config, request("auto").tool_calls(2).candidates(cands));
        assert_eq!(d.primary(), Some("small"));
    }

    #[test]
    fn config_validation_names_the_problem() {
        assert_eq!(validate::<FlashFirst>(""), Ok(()));
        assert!(
            validate::<FlashFirst>(r#"{"cache":"sometimes"}"#)
                .unwrap_err()
                .contains("cache")
        );
        assert!(
            validate::<FlashFirst>(r#"{"budget_guard":2}"#)
                .unwrap_err()
                .contains("budget_guard")
        );
        assert!(
            validate::<FlashFirst>(r#"{"pro_hints":["hard"]}"#)
                .unwrap_err()
                .contains("key=value")
        );
        assert!(
            validate::<FlashFirst>(r#"{"pro_model":""}"#)
                .unwrap_err()
                .contains("pro_model")
        );
        assert!(
            validate::<FlashFirst>(r#"{"typo_field":1}"#)
                .unwrap_err()
                .contains("typo_field")
        );
    }

    #[test]
    fn a_request_no_model_can_serve_is_rejected_and_logged() {
        let _ = switchyard_sdk::testing::take_logs();
        let d = run(request("auto").input_tokens(2_000_000));
        assert_eq!(
            d.as_rejection().map(|r| r.code.as_str()),
            Some("no_suitable_model")
        );
        assert_eq!(switchyard_sdk::testing::take_logs().len(), 1);
    }
}
