//! Claude Code and Codex, the CLIs from npm, run headless against `switchyard serve` on the
//! embedded default.
//!
//! Each run gets a fresh HOME, an environment holding only what the CLI needs, no stdin and a
//! time limit. It runs under `strace -f -e trace=connect`, and every connect() must go to
//! 127.0.0.1 or a Unix socket: nothing leaves the machine. The gateway's access log shows which
//! door each request came through. The CLIs are pinned in tests/clients/agents (installed by
//! scripts/install-toolchain.sh); without them these tests fail, they never skip.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_tests::*;

/// The demo tenant's key in the embedded default.
const DEMO_KEY: &str = "sk-switchyard-demo";
/// How long one CLI run may take (they take a few seconds; Codex starts slowly under strace).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// A CLI installed in tests/clients/agents.
fn agent(name: &str) -> PathBuf {
    let path = repo_root()
        .join("tests/clients/agents/node_modules/.bin")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-toolchain.sh (it installs Claude Code and Codex, pinned \
         in tests/clients/agents/package-lock.json)",
        path.display()
    );
    path
}

/// The directory holding `program` on PATH.
fn dir_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).find(|d| d.join(program).is_file())
}

/// What one CLI run did.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    /// The connect() lines strace saw.
    connects: Vec<String>,
    took: Duration,
}

impl Run {
    /// Everything it printed, for failure messages.
    fn output(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `program args` headless under strace, in `home/work`, with only `env` beyond PATH, HOME
/// and TERM, and waits for it (killing its process group after [`RUN_TIMEOUT`]).
fn run_agent(program: &Path, args: &[&str], home: &Path, env: &[(&str, String)]) -> Run {
    let strace = dir_on_path("strace")
        .map(|d| d.join("strace"))
        .expect("strace is not installed: run scripts/install-toolchain.sh");
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let trace = home.join("connect.strace");
    let (out_path, err_path) = (home.join("stdout"), home.join("stderr"));
    // The CLIs' own bin directory, node's (Codex's launcher is a node script) and the system's.
    let mut path = vec![program.parent().unwrap().to_path_buf()];
    path.extend(dir_on_path("node"));
    path.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(PathBuf::from));
    let started = Instant::now();
    let mut child = Command::new(strace)
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=connect",
            "-e",
            "signal=none",
            "-o",
        ])
        .arg(&trace)
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("HOME", home)
        .env("TERM", "dumb")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .expect("start strace");
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            // The whole group: strace, the CLI and whatever the CLI started.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!(
                "{} {args:?} did not finish within {RUN_TIMEOUT:?}\n--- stdout\n{}\n--- stderr\n{}",
                program.display(),
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let connects = std::fs::read_to_string(&trace)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("connect(") && !l.contains("resumed>"))
        .map(str::to_owned)
        .collect();
    Run {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        connects,
        took,
    }
}

/// Every connect() went to 127.0.0.1 (or ::1) or a Unix socket, and at least one reached the
/// gateway: the trace saw the run, and nothing left the machine.
fn assert_stayed_on_loopback(run: &Run, gateway: &Process) {
    let gateway_port = format!("htons({})", gateway.addr.port());
    let outside: Vec<&String> = run
        .connects
        .iter()
        .filter(|l| {
            !(l.contains("sa_family=AF_UNIX")
                || l.contains("inet_addr(\"127.0.0.1\")")
                || l.contains("\"::1\"")
                || l.contains("\"::ffff:127.0.0.1\""))
        })
        .collect();
    assert!(
        outside.is_empty(),
        "connections other than to 127.0.0.1 or Unix sockets:\n{outside:#?}\n{}",
        run.output()
    );
    assert!(
        run.connects
            .iter()
            .any(|l| l.contains("inet_addr(\"127.0.0.1\")") && l.contains(&gateway_port)),
        "strace saw no connection to the gateway (port {}): {:#?}\n{}",
        gateway.addr.port(),
        run.connects,
        run.output()
    );
}

/// The gateway's access-log lines, once there are `expected` of them (a line is written when a
/// request settles, which may be just after its response ended); exactly `expected`.
fn access_lines(gateway: &Process, expected: usize) -> Vec<Value> {
    let read = || -> Vec<Value> {
        gateway
            .logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "switchyard::access")
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while read().len() < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = read();
    assert_eq!(
        lines.len(),
        expected,
        "requests the gateway served: {lines:#?}"
    );
    lines
}

/// Each request came in through `path` (the `api` door), succeeded, streamed, and was served by
/// the simulated upstream for the demo tenant.
fn assert_door(lines: &[Value], api: &str, path: &str) {
    for line in lines {
        assert_eq!(line["api"], api, "{line:#}");
        assert_eq!(line["path"], path, "{line:#}");
        assert_eq!(line["status"], 200, "{line:#}");
        assert_eq!(line["stream"], true, "{line:#}");
        assert_eq!(line["tenant"], "demo", "{line:#}");
        assert_eq!(line["upstream"], "simulated", "{line:#}");
    }
}

/// A fresh HOME.
fn home(label: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("switchyard-{label}-"))
        .tempdir()
        .expect("create a home directory")
}

/// Claude Code's environment: the gateway as its Anthropic API, and no traffic of its own.
fn claude_env(gateway: &Process) -> Vec<(&'static str, String)> {
    vec![
        ("ANTHROPIC_BASE_URL", gateway.url()),
        ("ANTHROPIC_API_KEY", DEMO_KEY.to_owned()),
        ("DISABLE_TELEMETRY", "1".to_owned()),
        ("DISABLE_AUTOUPDATER", "1".to_owned()),
        ("DISABLE_ERROR_REPORTING", "1".to_owned()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_owned()),
    ]
}

/// A HOME for Codex, with `CODEX_HOME` inside it holding a config.toml that points it at the
/// gateway's Responses door: no analytics, feedback or plugins (they reach chatgpt.com and
/// github.com), no web search or sub-agents, no retries (a failure shows at once).
///
/// Made under /var/tmp where there is one: Codex warns about a CODEX_HOME under /tmp ("Refusing
/// to create helper binaries under temporary dir").
fn codex_home(gateway: &Process) -> (tempfile::TempDir, Vec<(&'static str, String)>) {
    let mut builder = tempfile::Builder::new();
    builder.prefix("switchyard-codex-");
    let var_tmp = Path::new("/var/tmp");
    let home = if var_tmp.is_dir() {
        builder.tempdir_in(var_tmp)
    } else {
        builder.tempdir()
    }
    .expect("create a home directory");
    let codex_home = home.path().join("codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    let config = format!(
        r#"model = "auto"
model_provider = "switchyard"
model_reasoning_effort = "low"
check_for_update_on_startup = false
web_search = "disabled"

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
goals = false

[agents]
enabled = false

[model_providers.switchyard]
name = "Switchyard"
base_url = "{}/v1"
env_key = "SWITCHYARD_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"#,
        gateway.url()
    );
    std::fs::write(codex_home.join("config.toml"), config).unwrap();
    let env = vec![
        ("CODEX_HOME", codex_home.display().to_string()),
        ("SWITCHYARD_API_KEY", DEMO_KEY.to_owned()),
    ];
    (home, env)
}

/// The simulated provider's reply, as the CLI printed it.
fn assert_simulated_reply(text: &str, run: &Run) {
    assert!(
        text.contains("[simulated deepseek-v4-") && text.contains("built-in simulated provider"),
        "no simulated reply in the output:\n{}",
        run.output()
    );
}

#[test]
fn claude_code_answers_through_the_messages_door() {
    let gateway = Process::serve(&[], &[]);
    let home = home("claude");
    let run = run_agent(
        &agent("claude"),
        &["-p", "say hi"],
        home.path(),
        &claude_env(&gateway),
    );
    assert!(run.status.success(), "{}", run.output());
    assert_simulated_reply(&run.stdout, &run);
    assert_stayed_on_loopback(&run, &gateway);
    let lines = access_lines(&gateway, 1);
    assert_door(&lines, "messages", "/v1/messages");
    eprintln!("claude -p \"say hi\": {:?}", run.took);
}

#[test]
fn claude_code_runs_a_tool_through_the_messages_door() {
    let gateway = Process::serve(&[], &[]);
    let home = home("claude-tool");
    let run = run_agent(
        &agent("claude"),
        &[
            "-p",
            "Use the Bash tool to run `echo hi-from-tool`",
            "--allowedTools",
            "Bash",
        ],
        home.path(),
        &claude_env(&gateway),
    );
    assert!(run.status.success(), "{}", run.output());
    assert_stayed_on_loopback(&run, &gateway);
    // The model's call to Bash, then Claude Code's tool_result: two requests.
    let lines = access_lines(&gateway, 2);
    assert_door(&lines, "messages", "/v1/messages");
    // The simulated model's answer quotes what the tool printed: the command ran.
    assert!(
        run.stdout.contains("The tool returned") && run.stdout.contains("hi-from-tool"),
        "the final answer does not quote the tool's output:\n{}",
        run.output()
    );
    eprintln!("claude -p with the Bash tool: {:?}", run.took);
}

#[test]
fn codex_answers_through_the_responses_door() {
    let gateway = Process::serve(&[], &[]);
    let (home, env) = codex_home(&gateway);
    let run = run_agent(
        &agent("codex"),
        &["exec", "--skip-git-repo-check", "say hi"],
        home.path(),
        &env,
    );
    assert!(run.status.success(), "{}", run.output());
    assert_simulated_reply(&run.stdout, &run);
    assert!(
        run.stdout.contains("You said: \"say hi\""),
        "{}",
        run.output()
    );
    assert_stayed_on_loopback(&run, &gateway);
    let lines = access_lines(&gateway, 1);
    assert_door(&lines, "responses", "/v1/responses");
    eprintln!("codex exec \"say hi\": {:?}", run.took);
}

#[test]
fn codex_runs_a_tool_through_the_responses_door() {
    let gateway = Process::serve(&[], &[]);
    let (home, env) = codex_home(&gateway);
    let run = run_agent(
        &agent("codex"),
        &[
            "exec",
            "--skip-git-repo-check",
            "-s",
            "read-only",
            "Use the exec_command tool to run `echo hi-from-tool`",
        ],
        home.path(),
        &env,
    );
    assert!(run.status.success(), "{}", run.output());
    assert_stayed_on_loopback(&run, &gateway);
    // The model's exec_command call, then Codex's function_call_output: two requests.
    let lines = access_lines(&gateway, 2);
    assert_door(&lines, "responses", "/v1/responses");
    // Codex shows the command's output, and the simulated model's answer quotes the start of
    // Codex's tool output (its header, the exit code).
    assert!(
        run.stderr.contains("echo hi-from-tool") && run.stderr.contains("hi-from-tool\n"),
        "Codex did not show the command running:\n{}",
        run.output()
    );
    assert!(
        run.stdout.contains("The tool returned") && run.stdout.contains("exited with code 0"),
        "the final answer does not quote the tool's output:\n{}",
        run.output()
    );
    eprintln!("codex exec with exec_command: {:?}", run.took);
}
