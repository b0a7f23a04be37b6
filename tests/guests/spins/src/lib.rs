//! A policy file that must never replace a working one: it accepts any config, then never
//! finishes a decision, including the host's load-time smoke decision.

use std::hint::black_box;

use switchyard_sdk::prelude::*;

struct Spins;

impl Policy for Spins {
    type Config = serde_json::Value;

    fn decide(_: &serde_json::Value, _: &Request) -> Decision {
        let mut n: u64 = 0;
        loop {
            n = black_box(n.wrapping_add(1));
        }
    }
}

switchyard_sdk::export_policy!(Spins);
