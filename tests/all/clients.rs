//! The official OpenAI client libraries, unmodified, against the gateway: completions, streaming,
//! model listing, and errors surfacing as the libraries' own exception classes.

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

fn run(program: &std::path::Path, script: &std::path::Path, gw: &TestGateway) {
    assert!(
        program.exists(),
        "{} is missing: run scripts/install-toolchain.sh",
        program.display()
    );
    let out = Command::new(program)
        .arg(script)
        .env("SWITCHYARD_URL", format!("{}/v1", gw.url))
        .env("SWITCHYARD_KEY", KEY_A)
        .env("SWITCHYARD_BROKEN_KEY", KEY_B)
        .output()
        .expect("run the client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed:\n{stdout}\n{stderr}",
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
    let python = root.join("target/client-venv/bin/python");
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
    let node = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("node"))
                .find(|p| p.exists())
        })
        .expect("node is not on PATH: run scripts/install-toolchain.sh");
    tokio::task::block_in_place(|| {
        run(
            &node,
            &root.join("tests/clients/node/check_openai.mjs"),
            gw_ref,
        )
    });
}
