//! A deliberately broken policy for the host's sandbox tests. Its config picks the misbehaviour:
//!
//! | mode | what `decide` does |
//! |---|---|
//! | `ok` | routes to `model` (a well-behaved control) |
//! | `panic` | panics (a trap) |
//! | `loop` | spins forever |
//! | `memory-bomb` | allocates 1 MiB blocks until the host refuses to grow memory |
//! | `recursion` | recurses without bound until the stack overflows |
//! | `huge-string` | returns a tag holding a 100 MB string |
//! | `many-fallbacks` | returns a route with `count` fallbacks (default 1,000,000) |
//! | `bad-model` | routes to `model`, which the test makes a model the tenant may not use |
//! | `log-spam` | calls the log import in a tight loop |
//! | `slow` | burns `spin` iterations of arithmetic, then routes to `model` |
//! | `snoop` | reports in tag `leak` whether its static buffer held anything, then writes the tenant's name into it |
//! | `bad-config` | refuses every config at validation |
//! | `seed` | routes to `model` with tag `seed=<the summary's seed>` (a replayed request id replays it) |
//! | `learn` | routes to `model` with tag `outcomes=<the counter in state>` and asks for the outcome; `on_outcome` adds one to the counter (key `outcomes`, a u64 as decimal text) |
//!
//! During the host's load-time smoke decision (request id `switchyard-smoke`) every mode behaves.
//! `on_outcome` does nothing outside mode `learn`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Deserialize;
use switchyard_sdk::prelude::*;
use switchyard_sdk::state;

#[derive(Deserialize)]
#[serde(default)]
struct Config {
    mode: String,
    model: String,
    spin: u64,
    count: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: "ok".into(),
            model: "deepseek-v4-flash".into(),
            spin: 0,
            count: 1_000_000,
        }
    }
}

/// Static memory that a snooping decision inspects and then dirties.
static SNOOP: [AtomicU8; 64] = [const { AtomicU8::new(0) }; 64];

/// Recursion that never ends: `stop` comes from the request, so the compiler cannot prove it
/// unreachable, and the frames hold only scalars, so they live on the wasm stack itself.
#[inline(never)]
fn recurse(n: u64, stop: u64) -> u64 {
    if n == stop {
        n
    } else {
        recurse(n + 1, stop).wrapping_mul(3).wrapping_add(n)
    }
}

/// The `learn` counter: how many outcomes `on_outcome` has seen.
fn outcomes_seen() -> u64 {
    state::get("outcomes")
        .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0)
}

struct Hostile;

impl Policy for Hostile {
    type Config = Config;

    fn validate(config: &Config) -> Result<(), String> {
        if config.mode == "bad-config" {
            Err("this policy refuses every config".into())
        } else {
            Ok(())
        }
    }

    fn decide(config: &Config, request: &Request) -> Decision {
        // Behave during the host's load-time smoke decision, misbehave on real traffic: what a
        // policy that means harm would do.
        if request.id() == "switchyard-smoke" {
            return Decision::route(&config.model).tag("mode", "smoke");
        }
        match config.mode.as_str() {
            "panic" => panic!("hostile policy panics on purpose"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "memory-bomb" => {
                let mut blocks: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut block = vec![0u8; 1 << 20];
                    block[0] = 1;
                    blocks.push(black_box(block));
                }
            }
            "recursion" => {
                let n = recurse(0, request.seed() | 1 << 63);
                Decision::route(format!("{n}"))
            }
            "huge-string" => Decision::route(&config.model).tag("blob", "x".repeat(100_000_000)),
            "many-fallbacks" => Decision::route(&config.model)
                .fallbacks(std::iter::repeat_n(config.model.as_str(), config.count)),
            "log-spam" => {
                let mut i: u64 = 0;
                loop {
                    switchyard_sdk::info!("spam {i}");
                    i += 1;
                }
            }
            "slow" => {
                let mut x: u64 = request.seed() | 1;
                for _ in 0..config.spin {
                    x = black_box(
                        x.wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407),
                    );
                }
                Decision::route(&config.model).tag("spin", (x % 10).to_string())
            }
            "snoop" => {
                let dirty = SNOOP.iter().any(|b| b.load(Ordering::Relaxed) != 0);
                for (slot, byte) in SNOOP
                    .iter()
                    .zip(request.tenant().bytes().chain(std::iter::repeat(b'!')))
                {
                    slot.store(byte, Ordering::Relaxed);
                }
                Decision::route(&config.model).tag("leak", if dirty { "yes" } else { "no" })
            }
            "seed" => Decision::route(&config.model).tag("seed", request.seed().to_string()),
            "learn" => Decision::route(&config.model)
                .tag("outcomes", outcomes_seen().to_string())
                .report_outcome(),
            _ => Decision::route(&config.model).tag("mode", "ok"),
        }
    }

    fn on_outcome(config: &Config, _: &Outcome) {
        if config.mode == "learn"
            && let Err(e) = state::set("outcomes", (outcomes_seen() + 1).to_string().as_bytes())
        {
            switchyard_sdk::warn!("outcome not counted: {e}");
        }
    }
}

switchyard_sdk::export_policy!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{self, decide, outcome_of, request};

    #[test]
    fn seed_mode_tags_the_seed() {
        let d = decide::<Hostile>(r#"{"mode":"seed","model":"m"}"#, request("m").seed(42));
        assert_eq!((d.primary(), d.tag_value("seed")), (Some("m"), Some("42")));
    }

    #[test]
    fn learn_mode_counts_outcomes_in_state() {
        let config = r#"{"mode":"learn","model":"m"}"#;
        let d = decide::<Hostile>(config, request("m"));
        assert_eq!(d.tag_value("outcomes"), Some("0"));
        assert!(d.as_route().unwrap().report_outcome);
        testing::on_outcome::<Hostile>(config, outcome_of(&d));
        testing::on_outcome::<Hostile>(config, outcome_of(&d).failed(502));
        assert_eq!(testing::state()["outcomes"], b"2");
        assert_eq!(
            decide::<Hostile>(config, request("m")).tag_value("outcomes"),
            Some("2")
        );
        // Other modes learn nothing.
        testing::on_outcome::<Hostile>(r#"{"mode":"ok"}"#, outcome_of(&d));
        assert_eq!(testing::state()["outcomes"], b"2");
    }
}
