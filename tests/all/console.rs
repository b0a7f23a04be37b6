//! The web console (`/console` on the admin listener), in a real browser: Debian's `chromium`
//! driven headless by `chromedriver` over the WebDriver protocol (a small client below, on the
//! harness's HTTP client). Every page must load without a console error, the charts must draw
//! the traffic that went through the gateway, the live view must update while requests flow, a
//! wrong token is refused, a write action without the CSRF token is refused, and a click rolls a
//! policy back to its previous version on disk. Screenshots go to `target/console-screenshots/`.
//!
//! Plus the same access rules over plain HTTP, and the console on the embedded default with the
//! demo admin token it prints.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::*;

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";

// === a WebDriver client ===

/// `chromedriver` on a free port, with one headless Chromium session.
struct Browser {
    driver: std::process::Child,
    base: String,
    session: String,
    _profile: TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn element_id(v: &Value) -> Option<String> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.starts_with("element-"))
        .and_then(|(_, id)| id.as_str().map(str::to_owned))
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver is not installed: run scripts/install-toolchain.sh (Debian's chromium and chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let ready = format!("{base}/status");
        eventually("chromedriver to listen", Duration::from_secs(30), || {
            let ready = ready.clone();
            async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                    && request("GET", &ready, None, &[], "").await.json()["value"]["ready"] == true
            }
        })
        .await;
        let profile = TempDir::new("chromium");
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1360,1000",
            "--no-first-run",
            "--no-default-browser-check",
            // Nothing but the gateway: no update checks, no safe browsing, no sync.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--disable-features=Translate,OptimizationHints,MediaRouter",
            &format!("--user-data-dir={}", profile.path("profile").display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium(), "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let r = request(
            "POST",
            &format!("{base}/session"),
            None,
            &[],
            caps.to_string(),
        )
        .await;
        let session = r.json()["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {}", r.text()))
            .to_owned();
        Browser {
            driver,
            base,
            session,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let body = if method == "GET" {
            String::new()
        } else {
            body.to_string()
        };
        let r = request(method, &url, None, &[], body).await;
        let v = r.json();
        assert!(
            r.status == 200,
            "WebDriver {method} {path}: {} {}",
            r.status,
            v["value"]
        );
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({"url": url})).await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    async fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Runs `script`, which calls `arguments[arguments.length - 1]` with its result.
    async fn js_async(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        element_id(&v).unwrap_or_else(|| panic!("no element {css}: {v}"))
    }

    /// Clicks `css`, again if the page redrew it between finding and clicking (the live pages
    /// redraw on their own).
    async fn click(&self, css: &str) {
        for _ in 0..5 {
            let id = self.find(css).await;
            let url = format!("{}/session/{}/element/{id}/click", self.base, self.session);
            let r = request("POST", &url, None, &[], "{}").await;
            if r.status == 200 {
                return;
            }
            assert!(
                r.text().contains("stale element"),
                "click {css}: {}",
                r.text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} kept being redrawn");
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    /// Waits until the JavaScript expression `expr` is true.
    async fn wait(&self, what: &str, expr: &str) {
        let script = format!("return Boolean({expr});");
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            if self.js(&script, json!([])).await == true {
                return;
            }
            if Instant::now() > deadline {
                let page = self
                    .js(
                        "return document.body ? document.body.innerText.slice(0, 2000) : ''",
                        json!([]),
                    )
                    .await;
                panic!("timed out waiting for {what} ({expr}); the page says:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The browser's console and network messages since the last call.
    async fn logs(&self) -> Vec<Value> {
        self.cmd("POST", "/se/log", json!({"type": "browser"}))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Errors and warnings among [`Self::logs`].
    async fn problems(&self) -> Vec<String> {
        self.logs()
            .await
            .iter()
            .filter(|l| matches!(l["level"].as_str(), Some("SEVERE" | "WARNING")))
            .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    async fn cookies(&self) -> Vec<Value> {
        self.cmd("GET", "/cookie", json!(null))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.cmd("GET", "/screenshot", json!(null)).await;
        let png = base64_decode(b64.as_str().expect("base64 PNG"));
        let dir = repo_root().join("target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Opens console page `page` (the hash route) and waits until it has drawn.
    async fn open(&self, admin: &str, page: &str) {
        self.goto(&format!("{admin}/console#{page}")).await;
        self.wait(
            &format!("the {page} page"),
            &format!("document.querySelector('#page[data-page=\"{page}\"][data-ready=\"true\"]')"),
        )
        .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (and Chromium with it) before the driver goes.
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://").to_owned();
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is not installed: run scripts/install-toolchain.sh")
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let digits: Vec<u8> = s.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

// === the gateway under test ===

/// The binary on a config file: two tenants on flash-first (a file, so its versions are kept), a
/// mock upstream that fails Flash for "flaky" prompts (Pro serves them as fallbacks).
struct Rig {
    process: Process,
    dir: TempDir,
    admin: String,
    policy_file: PathBuf,
    _mock: MockUpstream,
}

impl Rig {
    async fn start(first_policy: &str) -> Rig {
        let mock = MockUpstream::start(|r| {
            let model = r.body["model"].as_str().unwrap_or("?");
            if model == FLASH && String::from_utf8_lossy(&r.raw).contains("flaky") {
                Reply::error(503, "overloaded")
            } else {
                Reply::completion(model, "mock reply")
            }
        })
        .await;
        let dir = TempDir::new("console");
        let policy_file = dir.path("ff.wasm");
        std::fs::copy(component(first_policy), &policy_file).unwrap();
        let toml = format!(
            "[server]\nwatch_debounce_ms = 50\nartifact_cache_dir = \"{}\"\n\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken_sha256 = \"{}\"\n\n\
             [policies.ff]\npath = \"{}\"\n\n",
            dir.path("cache").display(),
            key_hash(ADMIN_TOKEN),
            policy_file.display(),
        ) + &upstream_toml("main", &mock.url(), &[FLASH, PRO], "")
            + &tenant_toml(
                "a",
                KEY_A,
                "ff",
                &[FLASH, PRO],
                "policy_config = { cache = \"read-write\" }",
            )
            + &tenant_toml("b", KEY_B, "ff", &[FLASH, PRO], "");
        let config = dir.path("switchyard.toml");
        std::fs::write(&config, toml).unwrap();
        let process = Process::serve(&["--config", config.to_str().unwrap()], &[]);
        let admin = format!("http://{}", process.admin_addr().expect("admin listener"));
        Rig {
            process,
            dir,
            admin,
            policy_file,
            _mock: mock,
        }
    }

    async fn chat(&self, key: &str, id: &str, text: &str) -> TestResponse {
        request(
            "POST",
            &format!("{}/v1/chat/completions", self.process.url()),
            Some(key),
            &[("x-request-id", id)],
            user_says("auto", text).to_string(),
        )
        .await
    }

    async fn admin_json(&self, path: &str) -> Value {
        let r = request(
            "GET",
            &format!("{}{path}", self.admin),
            Some(ADMIN_TOKEN),
            &[],
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    }

    async fn policy_hash(&self) -> String {
        self.admin_json("/admin/policies").await["policies"][0]["hash"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Waits until the console keeps version `hash` on disk.
    async fn wait_kept(&self, hash: &str) {
        let kept = self
            .dir
            .path("cache")
            .join("versions/ff")
            .join(format!("{hash}.wasm"));
        eventually(
            "the policy version to be kept on disk",
            Duration::from_secs(20),
            || {
                let exists = kept.exists();
                async move { exists }
            },
        )
        .await;
    }

    /// Mixed traffic for both tenants: Flash and Pro, fallbacks, response-cache hits, a 401.
    async fn traffic(&self, tag: &str) {
        for i in 0..4 {
            assert_eq!(
                self.chat(
                    KEY_A,
                    &format!("{tag}-flash-{i}"),
                    &format!("Review this diff {tag} {i}")
                )
                .await
                .status,
                200
            );
        }
        for i in 0..3 {
            let r = self
                .chat(
                    KEY_A,
                    &format!("{tag}-pro-{i}"),
                    &format!("Do a multi-file refactor of module {tag} {i}"),
                )
                .await;
            assert_eq!(r.header("x-switchyard-model"), Some(PRO), "{}", r.text());
        }
        for i in 0..2 {
            let r = self
                .chat(
                    KEY_A,
                    &format!("{tag}-flaky-{i}"),
                    &format!("Review this flaky diff {tag} {i}"),
                )
                .await;
            let attempts: u32 = r
                .header("x-switchyard-attempts")
                .unwrap_or("0")
                .parse()
                .unwrap();
            assert!(
                attempts >= 2 && r.header("x-switchyard-model") == Some(PRO),
                "a fallback to Pro: {}",
                r.text()
            );
        }
        for i in 0..3 {
            let r = self
                .chat(
                    KEY_A,
                    &format!("{tag}-same-{i}"),
                    "Review the same diff again",
                )
                .await;
            assert_eq!(r.status, 200);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        for i in 0..3 {
            assert_eq!(
                self.chat(
                    KEY_B,
                    &format!("{tag}-b-{i}"),
                    &format!("Summarise this log {tag} {i}")
                )
                .await
                .status,
                200
            );
        }
        assert_eq!(
            self.chat("sk-nobody", &format!("{tag}-401"), "hi")
                .await
                .status,
            401
        );
    }
}

/// The number in a chart's `data-sum` attribute.
fn chart_sum(css: &str) -> String {
    format!("Number((document.querySelector('{css}') || {{dataset: {{}}}}).dataset.sum || 0)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    // An earlier version of the policy served first: static-route, then flash-first replaced it.
    let rig = Rig::start("static-route").await;
    let old = rig.policy_hash().await;
    rig.wait_kept(&old).await;
    replace_file(
        &rig.policy_file,
        &std::fs::read(component("flash-first")).unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while rig.policy_hash().await == old {
        assert!(
            Instant::now() < deadline,
            "the new version never came into service"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new = rig.policy_hash().await;
    rig.wait_kept(&new).await;
    rig.traffic("before").await;

    let browser = Browser::start().await;
    let admin = rig.admin.clone();

    // A wrong token is refused: the form says so and no session cookie is set.
    browser.goto(&format!("{admin}/console")).await;
    browser
        .wait("the login form", "document.querySelector('#login-form')")
        .await;
    browser
        .type_into("#token", "not-the-admin-token-at-all")
        .await;
    browser.click("#login-submit").await;
    browser
        .wait("the refusal", "document.querySelector('#login-error')")
        .await;
    assert!(
        browser
            .cookies()
            .await
            .iter()
            .all(|c| c["name"] != "switchyard_console"),
        "no session for a wrong token"
    );
    let status = browser
        .js_async("fetch('/console/api/session').then(r => arguments[0](r.status))")
        .await;
    assert_eq!(status, 401, "the API refuses a browser without a session");
    browser.screenshot("0-login-refused").await;
    browser.logs().await; // the 401s above are expected

    // The right token opens a session: an HttpOnly, SameSite=Strict cookie that expires.
    browser.type_into("#token", ADMIN_TOKEN).await;
    browser.click("#login-submit").await;
    browser
        .wait("the console", "document.querySelector('#nav')")
        .await;
    let cookie = browser
        .cookies()
        .await
        .into_iter()
        .find(|c| c["name"] == "switchyard_console")
        .expect("a session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    assert!(cookie["expiry"].as_u64().is_some(), "it expires: {cookie}");
    assert_eq!(
        browser.js("return document.cookie", json!([])).await,
        "",
        "scripts cannot read it"
    );

    // Every page loads without a console error; the charts draw the traffic sent before.
    let pages: [(&str, &[&str]); 6] = [
        (
            "overview",
            &["#chart-rps", "#chart-spend", "#chart-latency"],
        ),
        ("routing", &["#chart-mix", "#chart-fallbacks"]),
        ("upstreams", &["#chart-attempts"]),
        ("policies", &[]),
        ("requests", &[]),
        ("playground", &[]),
    ];
    for (i, (page, charts)) in pages.iter().enumerate() {
        browser.open(&admin, page).await;
        for chart in *charts {
            browser
                .wait(
                    &format!("{chart} to draw the traffic"),
                    &format!("{} > 0", chart_sum(chart)),
                )
                .await;
        }
        let shot = browser.screenshot(&format!("{}-{page}", i + 1)).await;
        eprintln!("screenshot: {}", shot.display());
        let problems = browser.problems().await;
        assert!(problems.is_empty(), "the {page} page logged: {problems:#?}");
    }

    // The charts' data is the traffic's: two models in the mix, the fallbacks, both tenants.
    browser.open(&admin, "routing").await;
    browser
        .wait("both models in the mix", "document.querySelectorAll('#chart-mix rect.bar[data-name=\"deepseek-v4-pro\"]').length > 0 && document.querySelectorAll('#chart-mix rect.bar[data-name=\"deepseek-v4-flash\"]').length > 0")
        .await;
    let fallbacks = browser
        .js(
            &format!("return {}", chart_sum("#chart-fallbacks")),
            json!([]),
        )
        .await;
    assert!(
        fallbacks.as_f64().unwrap() >= 2.0,
        "two fallbacks: {fallbacks}"
    );
    browser
        .wait(
            "the response-cache hits",
            "parseFloat(document.querySelector('#response-cache-ratio').textContent) > 0",
        )
        .await;
    browser.open(&admin, "overview").await;
    browser
        .wait(
            "both tenants",
            "document.querySelectorAll('#tenants-table tbody tr').length >= 2",
        )
        .await;

    // Every asset came from the admin listener itself.
    let foreign = browser
        .js(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin))",
            json!([]),
        )
        .await;
    assert_eq!(foreign, json!([]), "nothing loaded from elsewhere");

    // The live view: requests sent now appear on the open Requests page, through the events.
    browser.open(&admin, "requests").await;
    let ticks = browser
        .js(
            "return Number(document.getElementById('live').dataset.ticks || 0)",
            json!([]),
        )
        .await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let id = format!("live-{i}");
        let text = if i % 2 == 0 {
            "Review this live diff"
        } else {
            "Do a multi-file refactor of the live module"
        };
        assert_eq!(
            rig.chat(KEY_A, &id, &format!("{text} {i}")).await.status,
            200
        );
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for id in &ids {
        browser
            .wait(
                &format!("{id} in the live table"),
                &format!("document.querySelector('#requests-table tr[data-id=\"{id}\"]')"),
            )
            .await;
    }
    let later = browser
        .js(
            "return Number(document.getElementById('live').dataset.ticks || 0)",
            json!([]),
        )
        .await;
    assert!(
        later.as_u64() > ticks.as_u64(),
        "ticks arrived: {ticks} then {later}"
    );
    browser.screenshot("7-requests-live").await;

    // A request's detail: the summary the policy saw (no prompt text) and the decision.
    browser
        .click("#requests-table tr[data-id=\"live-1\"]")
        .await;
    browser
        .wait("the detail", "document.querySelector('#detail-summary')")
        .await;
    let summary = browser
        .js(
            "return document.querySelector('#detail-summary').textContent",
            json!([]),
        )
        .await;
    let summary = summary.as_str().unwrap();
    assert!(summary.contains("\"estimated_input_tokens\""), "{summary}");
    assert!(
        summary.contains("not kept: server.log_prompts is off"),
        "{summary}"
    );
    assert!(
        !summary.contains("refactor of the live module"),
        "no prompt text: {summary}"
    );
    let decision = browser
        .js(
            "return document.querySelector('#detail-decision').textContent",
            json!([]),
        )
        .await;
    assert!(decision.as_str().unwrap().contains(PRO), "{decision}");
    browser.screenshot("8-request-detail").await;
    let problems = browser.problems().await;
    assert!(
        problems.is_empty(),
        "the live Requests page logged: {problems:#?}"
    );

    // The Playground: an uploaded component on the summaries just captured, beside the live one.
    browser.open(&admin, "playground").await;
    let upload = component("static-route");
    browser
        .type_into("#pg-wasm", upload.to_str().unwrap())
        .await;
    browser.click("#pg-run").await;
    browser
        .wait(
            "the simulation",
            "document.querySelector('#pg-done') || document.querySelector('#pg-status .error-box')",
        )
        .await;
    let done = browser
        .js(
            "return document.querySelector('#pg-status').textContent",
            json!([]),
        )
        .await;
    assert!(done.as_str().unwrap().starts_with("Simulated"), "{done}");
    browser
        .wait(
            "the cost chart",
            "Number(document.querySelector('#chart-pg-cost').dataset.bars) >= 4",
        )
        .await;
    assert!(
        browser
            .js(
                &format!("return {}", chart_sum("#chart-pg-cost")),
                json!([])
            )
            .await
            .as_f64()
            .unwrap()
            > 0.0,
        "costs drawn"
    );
    browser.screenshot("9-playground").await;
    let problems = browser.problems().await;
    assert!(problems.is_empty(), "the Playground logged: {problems:#?}");

    // A write action without the CSRF token is refused, from the console's own page.
    browser.open(&admin, "policies").await;
    let refused = browser
        .js_async(&format!(
            "fetch('/console/api/policies/ff/rollback', {{method: 'POST', headers: {{'content-type': 'application/json'}}, body: JSON.stringify({{hash: '{old}'}})}}).then(r => arguments[0](r.status))"
        ))
        .await;
    assert_eq!(refused, 403, "no CSRF token");
    let refused = browser
        .js_async(&format!(
            "fetch('/console/api/policies/ff/rollback', {{method: 'POST', headers: {{'content-type': 'application/json', 'x-csrf-token': 'forged'}}, body: JSON.stringify({{hash: '{old}'}})}}).then(r => arguments[0](r.status))"
        ))
        .await;
    assert_eq!(refused, 403, "a wrong CSRF token");
    browser.logs().await; // the two 403s above are expected
    assert_eq!(rig.policy_hash().await, new, "nothing was rolled back");

    // One click rolls the policy back to the previous version on disk.
    browser
        .click(&format!(
            "button.rollback[data-policy=\"ff\"][data-hash=\"{old}\"]"
        ))
        .await;
    browser
        .wait(
            "the rollback",
            "document.querySelector('#rollback-result.ok-box')",
        )
        .await;
    assert_eq!(rig.policy_hash().await, old, "the previous version serves");
    assert_eq!(
        std::fs::read(&rig.policy_file).unwrap(),
        std::fs::read(component("static-route")).unwrap(),
        "and is on disk where the config points"
    );
    browser
        .wait("the page to show it", &format!("document.querySelector('.policy[data-policy=\"ff\"] code.policy-hash').textContent === '{old}'"))
        .await;
    browser.screenshot("10-policies-rolled-back").await;
    let problems = browser.problems().await;
    assert!(
        problems.is_empty(),
        "the Policies page logged: {problems:#?}"
    );

    // The embedded default: its console opens with the demo token printed at start.
    let demo = Process::serve(&[], &[]);
    let token = demo_token(&demo).await;
    let demo_admin = format!(
        "http://{}",
        demo.admin_addr()
            .expect("the embedded default has an admin listener")
    );
    for i in 0..4 {
        let text = if i % 2 == 0 {
            "Review this diff"
        } else {
            "Do a multi-file refactor of the auth module"
        };
        let r = request(
            "POST",
            &format!("{}/v1/chat/completions", demo.url()),
            Some("sk-switchyard-demo"),
            &[],
            user_says("auto", text).to_string(),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    browser.goto(&format!("{demo_admin}/console")).await;
    browser
        .wait(
            "the demo's login form",
            "document.querySelector('#login-form')",
        )
        .await;
    browser.type_into("#token", &token).await;
    browser.click("#login-submit").await;
    browser
        .wait("the demo console", "document.querySelector('#nav')")
        .await;
    browser.open(&demo_admin, "overview").await;
    browser
        .wait(
            "the demo's traffic",
            &format!("{} > 0", chart_sum("#chart-rps")),
        )
        .await;
    browser.screenshot("11-embedded-default-overview").await;
    let problems = browser.problems().await;
    assert!(
        problems.is_empty(),
        "the embedded default's console logged: {problems:#?}"
    );
}

/// The demo admin token the embedded default prints at start (just after it says it listens).
async fn demo_token(p: &Process) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = p.logs();
        if let Some(token) = logs
            .lines()
            .find_map(|l| l.trim().strip_prefix("demo admin token: "))
        {
            return token.trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no demo admin token printed:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// === the same rules over plain HTTP ===

/// Logs in with `token`; returns the status and the session cookie (`name=value`), if any.
async fn login(admin: &str, token: &str) -> (u16, Option<String>) {
    let r = request(
        "POST",
        &format!("{admin}/console/login"),
        None,
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("token={token}"),
    )
    .await;
    let cookie = r
        .header("set-cookie")
        .map(|c| c.split(';').next().unwrap_or_default().to_owned());
    (r.status, cookie)
}

#[tokio::test]
async fn sessions_need_the_admin_token_and_writes_need_the_csrf_token() {
    let mock = MockUpstream::echo().await;
    let dir = TempDir::new("console-http");
    let toml = format!(
        "[server]\nartifact_cache_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_sha256 = \"{}\"\n",
        dir.path("cache").display(),
        key_hash(ADMIN_TOKEN)
    ) + &upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &[FLASH], "");
    let gw = start_gateway(&toml).await;
    let admin = format!("http://{}", gw.gateway.admin_addr().unwrap());

    // Without a session: the login page, and the API refuses.
    let page = request("GET", &format!("{admin}/console"), None, &[], "").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("id=\"login-form\""));
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(
        request(
            "GET",
            &format!("{admin}/console/api/overview"),
            None,
            &[],
            ""
        )
        .await
        .status,
        401
    );

    // A wrong token: no cookie.
    let (status, cookie) = login(&admin, "wrong-token-wrong-token").await;
    assert_eq!((status, cookie), (401, None));
    // A login form posted from another site is refused even with the right token.
    let r = request(
        "POST",
        &format!("{admin}/console/login"),
        None,
        &[
            ("origin", "http://evil.example"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        format!("token={ADMIN_TOKEN}"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());

    let (status, cookie) = login(&admin, ADMIN_TOKEN).await;
    assert_eq!(status, 303);
    let cookie = cookie.expect("a session cookie");
    let session = request(
        "GET",
        &format!("{admin}/console/api/session"),
        None,
        &[("cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(session.status, 200);
    let csrf = session.json()["csrf"].as_str().unwrap().to_owned();
    assert_eq!(csrf.len(), 64);
    assert!(
        request(
            "GET",
            &format!("{admin}/console"),
            None,
            &[("cookie", &cookie)],
            ""
        )
        .await
        .text()
        .contains("id=\"nav\""),
        "the console itself"
    );
    assert_eq!(
        request(
            "GET",
            &format!("{admin}/console/api/overview"),
            None,
            &[("cookie", "switchyard_console=forged")],
            ""
        )
        .await
        .status,
        401
    );

    // A write with the cookie but without (or with a wrong) CSRF token is refused...
    let rollback = format!("{admin}/console/api/policies/ff/rollback");
    for headers in [
        vec![("cookie", cookie.as_str())],
        vec![("cookie", cookie.as_str()), ("x-csrf-token", "0000")],
    ] {
        let r = request("POST", &rollback, None, &headers, "{}").await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "csrf_token_required");
    }
    // ...and so is one from another origin with the right token.
    let r = request(
        "POST",
        &rollback,
        None,
        &[
            ("cookie", &cookie),
            ("x-csrf-token", &csrf),
            ("origin", "http://evil.example"),
        ],
        "{}",
    )
    .await;
    assert_eq!(r.status, 403);
    // With it, the action runs (and says why there is nothing to roll back to yet).
    let r = request(
        "POST",
        &rollback,
        None,
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        "{}",
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "no_previous_version");
    // A bearer token needs no CSRF token (a browser never sends one by itself).
    let r = request("POST", &rollback, Some(ADMIN_TOKEN), &[], "{}").await;
    assert_eq!(r.status, 409);

    // Logging out ends the session.
    let r = request(
        "POST",
        &format!("{admin}/console/logout"),
        None,
        &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        "",
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        request(
            "GET",
            &format!("{admin}/console/api/session"),
            None,
            &[("cookie", &cookie)],
            ""
        )
        .await
        .status,
        401
    );
}

#[tokio::test]
async fn requests_are_kept_in_the_ring_and_details_only_while_watched() {
    let mock = MockUpstream::echo().await;
    let toml = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_sha256 = \"{}\"\n",
        key_hash(ADMIN_TOKEN)
    ) + &upstream_toml("main", &mock.url(), &[FLASH, PRO], "")
        + &policy_toml("ff", "flash-first")
        + &tenant_toml("a", KEY_A, "ff", &[FLASH, PRO], "");
    let gw = start_gateway(&toml).await;
    let admin = format!("http://{}", gw.gateway.admin_addr().unwrap());
    let body = user_says("auto", "Do a multi-file refactor of the billing module");
    let sent = chat_with(&gw, KEY_A, &[("x-request-id", "unwatched")], &body).await;
    assert_eq!(sent.status, 200);
    let get = |path: &str| {
        let url = format!("{admin}/console/api/{path}");
        async move {
            let r = request("GET", &url, Some(ADMIN_TOKEN), &[], "").await;
            (r.status, r.json())
        }
    };
    let (_, d) = get("requests/unwatched").await;
    assert_eq!(d["request"]["model"], PRO);
    assert_eq!(d["request"]["tags"][0], json!(["reason", "hard-task"]));
    assert_eq!(
        d["detail"],
        Value::Null,
        "no summary copied while nobody watches"
    );
    assert_eq!(
        d["request"]["prompt"],
        Value::Null,
        "no prompt text without log_prompts"
    );

    // An open event stream is a watcher: the next request's summary and decision are kept.
    let events = send(
        "GET",
        &format!(
            "http://{}/console/api/events",
            gw.gateway.admin_addr().unwrap()
        ),
        Some(ADMIN_TOKEN),
        &[],
        "",
    )
    .await;
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let sent = chat_with(&gw, KEY_A, &[("x-request-id", "watched")], &body).await;
    assert_eq!(sent.status, 200);
    let (_, d) = get("requests/watched").await;
    let detail = &d["detail"];
    assert_eq!(detail["summary"]["requested_model"], "auto");
    assert!(
        detail["summary"]["last_user_excerpt"]
            .as_str()
            .unwrap()
            .contains("not kept"),
        "{detail}"
    );
    assert!(!detail.to_string().contains("billing module"), "{detail}");
    assert_eq!(
        detail["decision"]["ok"]["Route"]["primary"]["model"], PRO,
        "{detail}"
    );
    // The stream's first event came at once, with the requests since it opened.
    let mut body = events.into_body();
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        http_body_util::BodyExt::frame(&mut body),
    )
    .await
    .expect("an event within 10 s")
    .expect("a frame")
    .expect("data");
    let text = String::from_utf8_lossy(first.data_ref().unwrap()).into_owned();
    assert!(text.contains("event: tick"), "{text}");
    drop(body);
    // Unknown ids are 404; the ring's listing names its capacity.
    assert_eq!(get("requests/nope").await.0, 404);
    let (_, list) = get("requests?limit=5").await;
    assert_eq!(list["capacity"], 2048);
    assert!(list["requests"].as_array().unwrap().len() >= 2);
}
