//! `cache-sticky`: flash-first's rule, except that a conversation whose prompt cache is warm stays
//! on the model (and upstream) that holds it unless the task escalates.
//!
//! On DeepSeek a prompt-cache hit costs about 50 times less than a miss, and Pro costs about three
//! times Flash per token. flash-first moves an agent to Pro once it is deep in tool calls, which
//! throws away the whole cached prefix at the moment it is longest: the next turn reads all of it
//! again, at Pro's miss price, and every later turn pays Pro's prices. This rule keeps a
//! conversation where its prefix is cached, moves it up only for what the caller or the task says
//! (not for how long the session has run), and moves it back down only when that pays for the
//! cache miss.
//!
//! The rule, for each request (the conversation's record is the host's: its turns, its last model
//! and upstream, that turn's prompt-cache hit ratio, the time since):
//!
//! 1. **Cold**: a new conversation, or one whose last turn ended more than `warm_for_ms` ago
//!    (default 10 minutes): flash-first's decision (`sticky=cold`).
//! 2. **Pinned**: the caller chose, with an explicitly requested model or a Flash hint
//!    (flash-first's `requested` and `flash-hint`): flash-first's decision (`sticky=pinned`).
//! 3. **Escalated**: an explicit signal about the task that the last model cannot or should not
//!    keep serving: an image it cannot take, an input its context cannot hold, a Pro hint, a Pro
//!    reasoning effort, a hard-task phrase in a user message that has just arrived, or the last
//!    model is no longer usable (not allowed, or unavailable). A hard-task phrase speaks for the
//!    answer to its message (`hard_tasks = "turn"`, the default): in the tool loop after it the
//!    phrase is still the last user message but asks for nothing new, and the loop is weighed
//!    like any warm turn (step 4), so Pro plans and Flash carries the plan out, when that pays;
//!    `hard_tasks = "conversation"` keeps the whole loop escalated. Then flash-first's decision,
//!    which may move it to Pro (`sticky=escalated`, `escalation=unusable|images|too-large|
//!    pro-hint|reasoning-effort|hard-task`; `sticky=warm` when that decision is the last model
//!    anyway). flash-first's budget guard, which keeps hard requests on Flash, is not an
//!    escalation: step 4 weighs it.
//! 4. **Otherwise the conversation stays on its last model** (`sticky=warm`), with flash-first's
//!    chain after it as fallbacks: agent depth or a large input alone never move a warm
//!    conversation (`reason=warm` and `rule=<flash-first's reason>` when flash-first would have).
//!    One exception: when the model flash-first would pick for the task without those two signals
//!    (Flash, usually) is not the last model, the conversation moves there if that is cheaper over
//!    the turns it can be expected to have left, the move's cache miss included (`sticky=cheaper`).
//!    That is how a conversation goes back to Flash once the hard part that put it on Pro is done,
//!    and leaves the frontier model a fallback put it on.
//!
//! Whenever the primary is the conversation's last model, the decision asks the host to keep the
//! conversation on its last upstream (`keep-conversation`), which the host does unless that
//! upstream is unavailable.
//!
//! **Moving down pays when** `miss(to) + (H - 1) * turn(to) < H * turn(from)`, where a turn on a
//! model reads the prompt's new tokens at its miss price, the rest from its cache, and writes
//! `expected_output_tokens`; the move reads the whole prompt at the new model's miss price. The
//! new tokens per turn are the share the last turn did not find cached (`last-cache-hit-ratio`;
//! taken as none after a first turn, whose ratio is 0 though its prefix is now cached). `H`, the
//! turns still to come, is the turns so far: with nothing else known, a conversation that has run
//! `T` turns is as likely as not to run `T` more. On the example prices, a 20K-token conversation
//! twenty turns old leaves Pro for Flash; a 150K-token one five turns old stays on Pro.
//!
//! Why ten minutes: an agent's turns come seconds apart, and a developer reading a diff or a test
//! run comes back within minutes; that is the traffic the rule is for. DeepSeek keeps a prefix
//! cached far longer (hours), and a tenant on DeepSeek alone can raise `warm_for_ms` up to the
//! two hours the host remembers a conversation; but the OpenAI and Anthropic caches are gone after
//! 5-10 minutes, and a conversation resumed after a long pause is a new decision point (the next
//! turn may read the whole prefix again wherever it goes, so flash-first may as well choose).
//!
//! Config: flash-first's fields (see `flash_first_rule::Config`), plus `warm_for_ms`,
//! `expected_output_tokens`, `move_down` (default `true`; `false` never moves a warm
//! conversation down: the exception of step 4 is off, and Pro stays Pro) and `hard_tasks`
//! (`turn` or `conversation`, above).

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use switchyard_sdk::prelude::*;

use flash_first_rule::{Plan, Signals};

/// The tenant's settings: flash-first's, and this rule's own.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// flash-first's settings (models, thresholds, hints, phrases, budget guard, cache).
    pub rule: flash_first_rule::Config,
    /// This rule's own.
    pub sticky: Sticky,
}

/// The settings cache-sticky adds to flash-first's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Sticky {
    /// A conversation whose last turn ended at most this long ago (milliseconds) is warm.
    pub warm_for_ms: u64,
    /// Output tokens a turn is expected to write, when weighing a move to a cheaper model.
    pub expected_output_tokens: u32,
    /// Move a warm conversation to a cheaper model when that pays for the cache miss; `false`
    /// keeps every warm conversation on its model unless the task escalates (Pro stays Pro).
    pub move_down: bool,
    /// What a hard-task phrase in the user's message escalates: `turn`, the answer to that
    /// message (the user has just spoken; the tool loop that carries the plan out is weighed like
    /// any other warm turn), or `conversation`, every turn while it is the last user message.
    pub hard_tasks: HardTasks,
}

/// How long a hard-task phrase keeps a conversation escalated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HardTasks {
    /// The turn that answers the user's message.
    Turn,
    /// Every turn until the user says something else.
    Conversation,
}

impl Sticky {
    /// Its field names, as they appear in the tenant's config.
    pub const FIELDS: &'static [&'static str] = &[
        "warm_for_ms",
        "expected_output_tokens",
        "move_down",
        "hard_tasks",
    ];
}

impl Default for Sticky {
    fn default() -> Self {
        Sticky {
            warm_for_ms: 10 * 60 * 1000,
            expected_output_tokens: 500,
            move_down: true,
            hard_tasks: HardTasks::Turn,
        }
    }
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (rule, sticky) = flash_first_rule::split_config(d, Sticky::FIELDS)?;
        Ok(Config { rule, sticky })
    }
}

/// Where a decision leaves the conversation (the `sticky` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stick {
    Cold,
    Pinned,
    Escalated(&'static str),
    Cheaper,
    Warm,
}

impl Stick {
    fn tag(self) -> &'static str {
        match self {
            Stick::Cold => "cold",
            Stick::Pinned => "pinned",
            Stick::Escalated(_) => "escalated",
            Stick::Cheaper => "cheaper",
            Stick::Warm => "warm",
        }
    }
}

/// Why a warm conversation on `last` must be re-decided, if it must: the explicit signals, in
/// the order checked.
fn escalation(
    r: &Request,
    s: &Signals,
    hard_task: bool,
    last: Option<&Candidate>,
) -> Option<&'static str> {
    let Some(last) = last.filter(|c| c.health != Health::Unavailable) else {
        return Some("unusable");
    };
    if s.images && !last.supports_images {
        Some("images")
    } else if !last.fits(r.tokens_needed()) {
        Some("too-large")
    } else if s.pro_hint {
        Some("pro-hint")
    } else if s.reasoning_effort {
        Some("reasoning-effort")
    } else if hard_task {
        Some("hard-task")
    } else {
        None
    }
}

/// USD of one turn on `m` that reads `prompt` tokens, `new` of them not cached, and writes
/// `output`.
fn turn_usd(m: &Candidate, prompt: f64, new: f64, output: f64) -> f64 {
    (new * m.input_usd_per_mtok
        + (prompt - new) * m.cached_input_usd_per_mtok
        + output * m.output_usd_per_mtok)
        / 1e6
}

/// Whether moving the conversation from `from` to `to` now costs less over the turns it can be
/// expected to have left (as many as it has had), the move's full cache miss included.
fn worth_moving(c: &Sticky, r: &Request, from: &Candidate, to: &Candidate) -> bool {
    let conversation = r.conversation();
    let prompt = r.input_tokens() as f64;
    let new = match conversation.last_cache_hit_ratio {
        Some(hit) if conversation.turns >= 2 => prompt * (1.0 - f64::from(hit).clamp(0.0, 1.0)),
        _ => 0.0,
    };
    let output = f64::from(c.expected_output_tokens);
    let turns = f64::from(conversation.turns.max(1));
    let stay = turns * turn_usd(from, prompt, new, output);
    let moved =
        turn_usd(to, prompt, prompt, output) + (turns - 1.0) * turn_usd(to, prompt, new, output);
    moved < stay
}

/// The reference cache-sticky policy.
pub struct CacheSticky;

impl Policy for CacheSticky {
    type Config = Config;

    fn validate(c: &Config) -> Result<(), String> {
        flash_first_rule::validate(&c.rule)?;
        // More than the host remembers a conversation would only read as "forever".
        const MAX: u64 = 24 * 3600 * 1000;
        if c.sticky.warm_for_ms > MAX {
            return Err(format!(
                "warm_for_ms must be at most {MAX} (a day), got {}",
                c.sticky.warm_for_ms
            ));
        }
        Ok(())
    }

    fn decide(c: &Config, r: &Request) -> Decision {
        let plan = match flash_first_rule::plan(&c.rule, r) {
            Ok(plan) => plan,
            Err(none) => return none.decision(r),
        };
        let conversation = r.conversation();
        let warm_last = conversation.last_model.as_deref().filter(|_| {
            conversation
                .since_last_ms
                .is_some_and(|ms| ms <= c.sticky.warm_for_ms)
        });
        let Some(last) = warm_last else {
            return finish(c, r, &plan, plan.route(), plan.reason, Stick::Cold);
        };
        if matches!(plan.reason, "requested" | "flash-hint") {
            return finish(c, r, &plan, plan.route(), plan.reason, Stick::Pinned);
        }
        let candidate = r.candidate(last);
        // A hard-task phrase speaks for the answer to the message that has it.
        let hard_task = plan.signals.hard_task
            && (c.sticky.hard_tasks == HardTasks::Conversation || r.messages_since_user() == 0);
        let escalated = match escalation(r, &plan.signals, hard_task, candidate) {
            // What the last model cannot do always moves it; what the task asks for gives way
            // to the budget guard.
            Some(why @ ("unusable" | "images" | "too-large")) => Some(why),
            Some(why) if plan.reason != "budget-guard" => Some(why),
            _ => None,
        };
        let last = match (candidate, escalated) {
            (Some(last), None) => last,
            // flash-first's decision, which may be the last model anyway.
            (_, why) => {
                let stick = match why {
                    Some(why) if plan.primary().model != last => Stick::Escalated(why),
                    _ => Stick::Warm,
                };
                return finish(c, r, &plan, plan.route(), plan.reason, stick);
            }
        };
        // The model for the task, leaving out what does not move a warm conversation.
        let task = Signals {
            agent_depth: false,
            large_input: false,
            hard_task,
            ..plan.signals
        };
        if c.sticky.move_down
            && let Ok(task) = flash_first_rule::plan_for(&c.rule, r, task)
            && task.primary().model != last.model
            && worth_moving(&c.sticky, r, last, task.primary())
        {
            return finish(c, r, &task, task.route(), task.reason, Stick::Cheaper);
        }
        stay(c, r, &plan, last)
    }
}

/// `route` with the rule's additions, the `sticky` (and `escalation`) tags, and
/// `keep-conversation` when its primary is the conversation's last model.
fn finish(
    c: &Config,
    r: &Request,
    plan: &Plan<'_>,
    route: Decision,
    reason: &str,
    stick: Stick,
) -> Decision {
    let last = r.conversation().last_model.as_deref();
    let keep = last.is_some() && route.primary() == last;
    let mut d = plan.finish(&c.rule, route, reason);
    if keep {
        d = d.keep_conversation();
    }
    d = d.tag("sticky", stick.tag());
    if let Stick::Escalated(why) = stick {
        d = d.tag("escalation", why);
    }
    d
}

/// The conversation stays on `last`, with the rule's chain after it.
fn stay(c: &Config, r: &Request, plan: &Plan<'_>, last: &Candidate) -> Decision {
    let rest = plan
        .models
        .iter()
        .filter(|m| m.model != last.model)
        .map(|m| m.model.as_str());
    let route = Decision::route(&last.model).fallbacks(rest);
    let agrees = plan.primary().model == last.model;
    let d = finish(
        c,
        r,
        plan,
        route,
        if agrees { plan.reason } else { "warm" },
        Stick::Warm,
    );
    if agrees {
        d
    } else {
        d.tag("rule", plan.reason)
    }
}

switchyard_sdk::export_policy!(CacheSticky);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{
        RequestBuilder, candidate, decide, example_catalog, request, validate,
    };

    const FLASH: &str = "deepseek-v4-flash";
    const PRO: &str = "deepseek-v4-pro";
    const FRONTIER: &str = "gpt-5.5";

    /// A turn of a conversation whose last turn `model` served on `flash-a` `since_ms` ago.
    fn turn(model: &str, since_ms: u64) -> RequestBuilder {
        request("auto")
            .candidates(example_catalog())
            .last_turn(12, model, "flash-a", since_ms)
            .last_cache_hit_ratio(0.95)
    }

    /// `(primary, fallbacks, sticky tag, keep-conversation)`.
    fn summary(d: &Decision) -> (&str, Vec<&str>, &str, bool) {
        let route = d.as_route().expect("a route");
        (
            d.primary().unwrap(),
            d.fallback_models(),
            d.tag_value("sticky").unwrap(),
            route.keep_conversation,
        )
    }

    #[test]
    fn a_new_or_idle_conversation_gets_flash_firsts_decision() {
        let d = decide::<CacheSticky>("", request("auto").candidates(example_catalog()));
        assert_eq!(summary(&d), (FLASH, vec![PRO, FRONTIER], "cold", false));
        assert_eq!(d.tag_value("reason"), Some("default"));
        // Deep in tool calls, eleven minutes after its last turn on Flash: cold, so Pro.
        let d = decide::<CacheSticky>("", turn(FLASH, 11 * 60_000).tool_calls(14));
        assert_eq!(summary(&d), (PRO, vec![FRONTIER], "cold", false));
        assert_eq!(d.tag_value("reason"), Some("agent-depth"));
        // Cold, and flash-first's choice is the last model anyway: keep its upstream.
        let d = decide::<CacheSticky>(r#"{"warm_for_ms": 1000}"#, turn(FLASH, 5_000));
        assert_eq!(summary(&d), (FLASH, vec![PRO, FRONTIER], "cold", true));
    }

    #[test]
    fn agent_depth_and_large_inputs_do_not_move_a_warm_conversation() {
        for req in [
            turn(FLASH, 4_000).tool_calls(30),
            turn(FLASH, 4_000).input_tokens(300_000),
        ] {
            let d = decide::<CacheSticky>("", req);
            assert_eq!(summary(&d), (FLASH, vec![PRO, FRONTIER], "warm", true));
            assert_eq!(d.tag_value("reason"), Some("warm"));
            assert!(matches!(
                d.tag_value("rule"),
                Some("agent-depth" | "large-input")
            ));
        }
        // Warm, and flash-first agrees: its own reason, no `rule` tag.
        let d = decide::<CacheSticky>("", turn(FLASH, 4_000));
        assert_eq!(summary(&d), (FLASH, vec![PRO, FRONTIER], "warm", true));
        assert_eq!(
            (d.tag_value("reason"), d.tag_value("rule")),
            (Some("default"), None)
        );
        // Exactly at the limit is still warm.
        let d = decide::<CacheSticky>("", turn(FLASH, 600_000).tool_calls(30));
        assert_eq!(d.tag_value("sticky"), Some("warm"));
    }

    /// A turn of a conversation on Pro with a `ktokens`K-token prompt, `turns` turns old, 95% of
    /// its last turn cached.
    fn on_pro(ktokens: u32, turns: u32) -> RequestBuilder {
        request("auto")
            .candidates(example_catalog())
            .input_tokens((ktokens * 1_000) as _)
            .last_turn(turns, PRO, "pro", 4_000)
            .last_cache_hit_ratio(0.95)
    }

    #[test]
    fn pro_stays_pro_unless_moving_down_pays_for_the_cache_miss() {
        // 150K tokens cached on Pro, five turns old: re-reading them on Flash costs more than
        // five more turns on Pro save.
        let d = decide::<CacheSticky>("", on_pro(150, 5));
        assert_eq!(summary(&d), (PRO, vec![FLASH, FRONTIER], "warm", true));
        assert_eq!(
            (d.tag_value("reason"), d.tag_value("rule")),
            (Some("warm"), Some("default"))
        );
        // Deep in tool calls too: flash-first agrees with staying.
        let d = decide::<CacheSticky>("", on_pro(150, 5).tool_calls(20));
        assert_eq!(summary(&d), (PRO, vec![FRONTIER], "warm", true));
        assert_eq!(
            (d.tag_value("reason"), d.tag_value("rule")),
            (Some("agent-depth"), None)
        );
        // 20K tokens, twenty turns old: Flash pays for the miss within the turns to come.
        for req in [on_pro(20, 20), on_pro(20, 20).tool_calls(20)] {
            let d = decide::<CacheSticky>("", req);
            assert_eq!(summary(&d), (FLASH, vec![PRO, FRONTIER], "cheaper", false));
            assert_eq!(d.tag_value("reason"), Some("default"));
        }
        // After a first turn its hit ratio is 0, but its prefix is now cached on Pro: not all new.
        let d = decide::<CacheSticky>("", on_pro(100, 1).last_cache_hit_ratio(0.0));
        assert_eq!(d.tag_value("sticky"), Some("warm"));
        // A small prompt moves even then: Pro's output price outweighs the miss on Flash.
        let d = decide::<CacheSticky>("", on_pro(2, 1).last_cache_hit_ratio(0.0));
        assert_eq!(d.tag_value("sticky"), Some("cheaper"));
        // Unless moving down is off.
        let d = decide::<CacheSticky>(r#"{"move_down": false}"#, on_pro(20, 20));
        assert_eq!(summary(&d), (PRO, vec![FLASH, FRONTIER], "warm", true));
        let d = decide::<CacheSticky>(r#"{"move_down": false}"#, turn(FRONTIER, 4_000));
        assert_eq!(summary(&d), (FRONTIER, vec![FLASH, PRO], "warm", true));
        // More output per turn makes Pro's turns dearer: the 150K conversation moves.
        let d = decide::<CacheSticky>(r#"{"expected_output_tokens": 20000}"#, on_pro(150, 5));
        assert_eq!(d.tag_value("sticky"), Some("cheaper"));
        // The budget guard keeps a hard request on Flash: weighed the same way.
        let guarded = |r: RequestBuilder| r.hint("tier", "pro").daily_budget(9.5, 10.0);
        let d = decide::<CacheSticky>("", guarded(on_pro(150, 5)));
        assert_eq!(summary(&d), (PRO, vec![FLASH, FRONTIER], "warm", true));
        assert_eq!(d.tag_value("rule"), Some("budget-guard"));
        let d = decide::<CacheSticky>("", guarded(on_pro(20, 20)));
        assert_eq!(d.tag_value("sticky"), Some("cheaper"));
        assert_eq!(d.tag_value("reason"), Some("budget-guard"));
    }

    #[test]
    fn explicit_task_signals_escalate_a_warm_conversation() {
        let cases: [(RequestBuilder, &str, &str); 5] = [
            (
                turn(FLASH, 4_000).hint("difficulty", "hard"),
                "pro-hint",
                PRO,
            ),
            (
                turn(FLASH, 4_000).reasoning_effort("xhigh"),
                "reasoning-effort",
                PRO,
            ),
            (
                turn(FLASH, 4_000).user_says("Now do a multi-file refactor of the errors"),
                "hard-task",
                PRO,
            ),
            (turn(FLASH, 4_000).with_image(), "images", FRONTIER),
            (
                turn(FRONTIER, 4_000).input_tokens(500_000),
                "too-large",
                PRO,
            ),
        ];
        for (req, why, to) in cases {
            let d = decide::<CacheSticky>("", req);
            assert_eq!(d.primary(), Some(to), "{why}");
            assert_eq!(d.tag_value("sticky"), Some("escalated"), "{why}");
            assert_eq!(d.tag_value("escalation"), Some(why));
            assert!(!d.as_route().unwrap().keep_conversation, "{why}");
        }
        // Escalated to where it already is: warm, on its upstream.
        let d = decide::<CacheSticky>(
            "",
            turn(PRO, 4_000).user_says("plan a migration across the codebase"),
        );
        assert_eq!(summary(&d), (PRO, vec![FRONTIER], "warm", true));
        assert_eq!(d.tag_value("reason"), Some("hard-task"));
        // The budget guard keeps an escalating request on Flash, as in flash-first.
        let d = decide::<CacheSticky>(
            "",
            turn(FLASH, 4_000)
                .hint("tier", "pro")
                .daily_budget(9.5, 10.0),
        );
        assert_eq!(summary(&d), (FLASH, vec![PRO, FRONTIER], "warm", true));
        assert_eq!(d.tag_value("reason"), Some("budget-guard"));
    }

    #[test]
    fn a_hard_task_escalates_the_answer_to_its_message_not_the_loop_after_it() {
        let hard = "Now do a multi-file refactor of the errors";
        // The user has just asked: the answer goes to Pro.
        let d = decide::<CacheSticky>("", turn(FLASH, 4_000).user_says(hard));
        assert_eq!(d.tag_value("escalation"), Some("hard-task"));
        // Twenty turns on Pro later, inside the tool loop that carries the plan out, the phrase is
        // still the last user message but speaks for nothing new: the loop is weighed like any
        // warm turn, and Flash pays for its cache miss.
        let loop_turn = || {
            on_pro(20, 20)
                .user_says(hard)
                .messages_since_user(6)
                .tool_calls(3)
        };
        let d = decide::<CacheSticky>("", loop_turn());
        assert_eq!(summary(&d), (FLASH, vec![PRO, FRONTIER], "cheaper", false));
        // On a warm Flash conversation the loop stays where it is.
        let d = decide::<CacheSticky>(
            "",
            turn(FLASH, 4_000).user_says(hard).messages_since_user(4),
        );
        assert_eq!(summary(&d), (FLASH, vec![PRO, FRONTIER], "warm", true));
        // `hard_tasks = "conversation"`: the phrase holds the whole loop on Pro.
        let config = r#"{"hard_tasks": "conversation"}"#;
        let d = decide::<CacheSticky>(config, loop_turn());
        assert_eq!(summary(&d), (PRO, vec![FRONTIER], "warm", true));
        assert_eq!(d.tag_value("reason"), Some("hard-task"));
    }

    #[test]
    fn a_last_model_that_is_no_longer_usable_is_left() {
        let unavailable = on_pro(150, 5).health(PRO, Health::Unavailable);
        let d = decide::<CacheSticky>("", unavailable);
        // flash-first's chain: Flash first, Pro (still probed) last.
        assert_eq!(
            summary(&d),
            (FLASH, vec![FRONTIER, PRO], "escalated", false)
        );
        assert_eq!(d.tag_value("escalation"), Some("unusable"));
        let not_allowed = request("auto")
            .candidates(
                example_catalog()
                    .into_iter()
                    .filter(|c| c.model != PRO)
                    .collect::<Vec<_>>(),
            )
            .last_turn(3, PRO, "pro", 1_000);
        let d = decide::<CacheSticky>("", not_allowed);
        assert_eq!(d.primary(), Some(FLASH));
        assert_eq!(d.tag_value("escalation"), Some("unusable"));
        // A degraded last model is still used: the host probes it, and keeps or moves it.
        let d = decide::<CacheSticky>("", on_pro(150, 5).health(PRO, Health::Degraded));
        assert_eq!(summary(&d), (PRO, vec![FLASH, FRONTIER], "warm", true));
    }

    #[test]
    fn the_callers_choice_wins_and_expensive_fallbacks_are_left() {
        let d = decide::<CacheSticky>("", on_pro(150, 5).hint("tier", "flash"));
        assert_eq!(summary(&d), (FLASH, vec![PRO, FRONTIER], "pinned", false));
        let requested = request(PRO)
            .candidates(example_catalog())
            .last_turn(12, FLASH, "flash-a", 4_000);
        let d = decide::<CacheSticky>("", requested);
        assert_eq!(summary(&d), (PRO, vec![FRONTIER], "pinned", false));
        // A conversation that landed on the frontier model by fallback: re-reading the prompt on
        // Flash ($0.14/M) costs less than reading it from the frontier model's cache ($0.50/M).
        let d = decide::<CacheSticky>("", turn(FRONTIER, 4_000));
        assert_eq!(summary(&d), (FLASH, vec![PRO, FRONTIER], "cheaper", false));
        // A model the rule does not know, dearer than Flash on input, cheaper on output: stays.
        let other = request("auto")
            .candidates([
                candidate(FLASH).prices(0.14, 0.0028, 0.28),
                candidate("other").prices(0.2, 0.02, 0.2),
            ])
            .last_turn(5, "other", "u", 10);
        let d = decide::<CacheSticky>("", other);
        assert_eq!(summary(&d), ("other", vec![FLASH], "warm", true));
    }

    #[test]
    fn rejections_and_config() {
        let d = decide::<CacheSticky>("", turn(FLASH, 10).input_tokens(2_000_000));
        assert!(d.is_reject());
        assert_eq!(validate::<CacheSticky>(""), Ok(()));
        assert_eq!(
            validate::<CacheSticky>(r#"{"warm_for_ms": 60000, "agent_depth_threshold": 4}"#),
            Ok(())
        );
        let too_long = validate::<CacheSticky>(r#"{"warm_for_ms": 100000000000}"#);
        assert!(too_long.is_err_and(|e| e.contains("warm_for_ms")));
        let typo = validate::<CacheSticky>(r#"{"warm_for": 1}"#);
        assert!(typo.is_err_and(|e| e.contains("unknown field `warm_for`")));
        let rule = validate::<CacheSticky>(r#"{"budget_guard": 2}"#);
        assert!(rule.is_err_and(|e| e.contains("budget_guard")));
        // The field list names every field.
        let fields = serde_json::to_value(Sticky::default()).unwrap();
        let mut names: Vec<&str> = fields
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort();
        let mut expected = Sticky::FIELDS.to_vec();
        expected.sort();
        assert_eq!(names, expected);
        // Thresholds still come from flash-first's config.
        let d = decide::<CacheSticky>(
            r#"{"agent_depth_threshold": 2}"#,
            request("auto").candidates(example_catalog()).tool_calls(3),
        );
        assert_eq!(d.primary(), Some(PRO));
    }
}
