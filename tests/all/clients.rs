//! The official client libraries, unmodified, against the gateway: OpenAI's (chat completions
//! over a mock; Responses over the simulated provider) and Anthropic's (Messages over the
//! simulated provider), streaming and not, tool round trips, and errors surfacing as the
//! libraries' own exception classes.
//!
//! The Messages and Responses scripts each run twice: once with the simulated upstream speaking
//! all three APIs (the client's request passes through in its own dialect) and once with it
//! speaking chat completions only (the gateway translates both ways).

use std::process::Command;

use switchyard_tests::*;

async fn gateway() -> (MockUpstream, TestGateway) {
    let mock = MockUpstream::start(|r| {
        let model = r.body["model"].as_str().unwrap_or("?").to_owned();
        if r.body["stream"] == true {
            Reply::stream(&model, &["Hello", " from", " the", " stream"])
        } else {
            Reply::completion(&model, "Hello from the mock")
        }
    })
    .await;
    let toml = upstream_toml(
        "main",
        &mock.url(),
        &["deepseek-v4-flash", "deepseek-v4-pro"],
        "",
    ) + &policy_toml("ff", "flash-first")
        + &policy_toml("hostile", "hostile")
        + &tenant_toml("a", KEY_A, "ff", &["deepseek-v4-flash"], "")
        + &tenant_toml(
            "broken",
            KEY_B,
            "hostile",
            &["deepseek-v4-flash"],
            "policy_config = { mode = \"panic\" }",
        );
    (mock, start_gateway(&toml).await)
}

/// A key of a tenant allowed one request per minute.
const KEY_LIMITED: &str = "sk-test-tenant-limited";

/// A gateway over the simulated provider. `apis` is the upstream's `apis` setting: empty for
/// the simulated provider's default (all three APIs), `["chat"]` to make the gateway translate.
async fn simulated_gateway(apis: &[&str]) -> TestGateway {
    let apis = if apis.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = apis.iter().map(|a| format!("\"{a}\"")).collect();
        format!("apis = [{}]", list.join(", "))
    };
    let aliases = "model_aliases = [\"auto\", \"claude-*\"]";
    let toml = format!(
        "[upstreams.sim]\nsimulated = true\nsimulated_token_delay_ms = 1\n\
         models = [\"deepseek-v4-flash\", \"deepseek-v4-pro\"]\n{apis}\n\n"
    ) + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &["deepseek-v4-flash"], aliases)
        + &tenant_toml(
            "limited",
            KEY_LIMITED,
            "ff",
            &["deepseek-v4-flash"],
            &format!("{aliases}\nrequests_per_minute = 1"),
        );
    start_gateway(&toml).await
}

/// The two upstream set-ups the Messages and Responses scripts run against.
const MODES: [(&str, &[&str]); 2] = [
    ("passthrough (the upstream speaks all three APIs)", &[]),
    ("translated (the upstream speaks chat only)", &["chat"]),
];

/// The environment of the scripts run against [`simulated_gateway`].
fn simulated_env(gw: &TestGateway) -> Vec<(&'static str, String)> {
    vec![
        ("SWITCHYARD_ROOT", gw.url.clone()),
        ("SWITCHYARD_URL", format!("{}/v1", gw.url)),
        ("SWITCHYARD_KEY", KEY_A.to_owned()),
        ("SWITCHYARD_LIMITED_KEY", KEY_LIMITED.to_owned()),
    ]
}

/// The client virtualenv's Python, checked to have both libraries.
fn python() -> std::path::PathBuf {
    let python = repo_root().join("target/client-venv/bin/python");
    let ok = python.exists()
        && Command::new(&python)
            .args(["-c", "import openai, anthropic"])
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} is missing or lacks the openai and anthropic libraries: run scripts/install-toolchain.sh",
        python.display()
    );
    python
}

/// `node`, from PATH.
fn node() -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("node"))
                .find(|p| p.exists())
        })
        .expect("node is not on PATH: run scripts/install-toolchain.sh")
}

fn run(program: &std::path::Path, script: &std::path::Path, gw: &TestGateway) {
    let env = [
        ("SWITCHYARD_URL", format!("{}/v1", gw.url)),
        ("SWITCHYARD_KEY", KEY_A.to_owned()),
        ("SWITCHYARD_BROKEN_KEY", KEY_B.to_owned()),
    ];
    run_with(program, script, &env, "");
}

/// Runs `script` with `program` and `env`, and checks it passed; `label` names the set-up in a
/// failure.
fn run_with(
    program: &std::path::Path,
    script: &std::path::Path,
    env: &[(&str, String)],
    label: &str,
) {
    assert!(
        program.exists(),
        "{} is missing: run scripts/install-toolchain.sh",
        program.display()
    );
    let out = Command::new(program)
        .arg(script)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed {label}:\n{stdout}\n{stderr}",
        script.display()
    );
    assert!(
        stdout.contains("all client checks passed"),
        "{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_works_unmodified() {
    let (_mock, gw) = gateway().await;
    let root = repo_root();
    let python = python();
    let gw_ref = &gw;
    tokio::task::block_in_place(|| {
        run(
            &python,
            &root.join("tests/clients/python/check_openai.py"),
            gw_ref,
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_node_client_works_unmodified() {
    let (_mock, gw) = gateway().await;
    let root = repo_root();
    let gw_ref = &gw;
    let node = node();
    tokio::task::block_in_place(|| {
        run(
            &node,
            &root.join("tests/clients/node/check_openai.mjs"),
            gw_ref,
        )
    });
}

/// Runs `script` with `program` against a fresh simulated gateway in each of [`MODES`].
async fn run_in_both_modes(program: &std::path::Path, script: &str) {
    let script = repo_root().join(script);
    for (label, apis) in MODES {
        let gw = simulated_gateway(apis).await;
        let env = simulated_env(&gw);
        tokio::task::block_in_place(|| run_with(program, &script, &env, label));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_anthropic_python_client_works_unmodified() {
    run_in_both_modes(&python(), "tests/clients/python/check_anthropic.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_speaks_responses_unmodified() {
    run_in_both_modes(&python(), "tests/clients/python/check_responses.py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_node_client_speaks_responses_unmodified() {
    run_in_both_modes(&node(), "tests/clients/node/check_responses.mjs").await;
}
