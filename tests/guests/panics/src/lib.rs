//! A policy file that must never replace a working one: it accepts any config, then traps on
//! every decision, including the host's load-time smoke decision.

use switchyard_sdk::prelude::*;

struct Panics;

impl Policy for Panics {
    type Config = serde_json::Value;

    fn decide(_: &serde_json::Value, request: &Request) -> Decision {
        panic!("this policy always fails (request {})", request.id())
    }
}

switchyard_sdk::export_policy!(Panics);
