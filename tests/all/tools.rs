//! `switchyard policy check` and `switchyard policy simulate` on every language's build of the
//! reference rule, through the real binary.

use std::process::Command;

use serde_json::Value;
use switchyard_tests::*;

fn switchyard(args: &[&str]) -> (bool, String) {
    let out = Command::new(binary())
        .args(args)
        .env("SWITCHYARD_LOG", "warn")
        .output()
        .expect("run switchyard");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn policy_check_validates_and_prints_each_sample_decision() {
    for name in ["flash-first", "flash-first-py", "flash-first-js"] {
        let path = component(name);
        let (ok, out) = switchyard(&["policy", "check", path.to_str().unwrap(), "--runs", "3"]);
        assert!(ok, "{name}: {out}");
        assert!(
            out.contains("contract switchyard:policy@0.2.0: ok"),
            "{name}: {out}"
        );
        assert!(out.contains("config   {}: accepted"), "{name}: {out}");
        let line = |label: &str| {
            out.lines()
                .find(|l| l.trim_start().starts_with(label))
                .unwrap_or_else(|| panic!("{name}: no `{label}` in {out}"))
                .to_owned()
        };
        assert!(line("code review").contains("deepseek-v4-flash"), "{name}");
        assert!(
            line("agent, 14 tool calls").contains("deepseek-v4-pro")
                && line("agent, 14 tool calls").contains("reason=agent-depth"),
            "{name}"
        );
        assert!(line("screenshot").contains("gpt-5.5"), "{name}");
        assert!(
            line("code review").contains(" us "),
            "{name}: the time of each decision is printed"
        );
    }
    // A refused config and a file that is not a policy both fail the check.
    let (ok, out) = switchyard(&[
        "policy",
        "check",
        component("flash-first").to_str().unwrap(),
        "--config",
        r#"{"cache":"sometimes"}"#,
    ]);
    assert!(!ok && out.contains("REFUSED"), "{out}");
    let (ok, out) = switchyard(&[
        "policy",
        "check",
        repo_root().join("README.md").to_str().unwrap(),
    ]);
    assert!(!ok && out.contains("not a WebAssembly file"), "{out}");
}

#[test]
fn policy_simulate_reports_the_same_mix_for_every_language() {
    let dir = TempDir::new("simulate");
    let trace = repo_root().join("policies/traces/coding-assistant.jsonl");
    let config = repo_root().join("host/gateway/assets/default.toml");
    let mut reports = Vec::new();
    for name in ["flash-first", "flash-first-py", "flash-first-js"] {
        let json = dir.path(&format!("{name}.json"));
        let svg = dir.path(&format!("{name}.svg"));
        let (ok, out) = switchyard(&[
            "policy",
            "simulate",
            "--policy",
            component(name).to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--requests",
            trace.to_str().unwrap(),
            "--cache-hit-share",
            "0.5",
            "--json",
            json.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ]);
        assert!(ok, "{name}: {out}");
        assert!(
            out.contains("like for like") && out.contains("everything on deepseek-v4-pro"),
            "{name}: {out}"
        );
        let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let svg = std::fs::read_to_string(&svg).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}: an SVG document"
        );
        reports.push(report);
    }
    let r = &reports[0]["run"];
    assert_eq!(r["requests"], 87);
    let flash = r["mix"]["deepseek-v4-flash"]["requests"].as_u64().unwrap();
    let pro = r["mix"]["deepseek-v4-pro"]["requests"].as_u64().unwrap();
    assert!(
        flash > pro && pro > 0,
        "most traffic on Flash, the hard part on Pro: {}",
        r["mix"]
    );
    // Like for like: the policy's cost on the requests the frontier model can serve.
    let frontier = reports[0]["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["model"] == "gpt-5.5")
        .unwrap();
    let (policy_cost, all_frontier) = (
        frontier["policy_cost_usd"].as_f64().unwrap(),
        frontier["cost_usd"].as_f64().unwrap(),
    );
    assert!(
        policy_cost < all_frontier / 5.0,
        "{policy_cost} vs {all_frontier}"
    );
    for other in &reports[1..] {
        assert_eq!(
            other["run"]["mix"], r["mix"],
            "every language routes the trace the same way"
        );
        assert_eq!(other["run"]["reasons"], r["reasons"]);
    }
}
