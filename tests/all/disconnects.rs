//! Clients that hang up at any moment: while the body is still arriving, while the policy
//! decides, while the upstream has not answered yet, in the middle of a stream. Whatever the
//! phase, the in-flight gauge comes back down, the request gets its access-log line, a circuit
//! probe is released, and a request whose upstream call went out is charged.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::*;
use tokio::io::AsyncWriteExt;

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";

/// Prices of $1,000 per 1M tokens: a request reserving 100 output tokens holds about $0.11.
const PRICEY: &str = "[models.\"deepseek-v4-flash\"]\ninput_usd_per_mtok = 1000.0\ncached_input_usd_per_mtok = 1000.0\noutput_usd_per_mtok = 1000.0\n";

/// The gateway binary on a config with an admin listener, a static route to a mock upstream that
/// behaves as each request's last user message says, and a tenant whose decisions are slow.
struct Rig {
    process: Process,
    mock: MockUpstream,
    admin: String,
    _dir: TempDir,
}

fn behaviour(r: &Recorded) -> Reply {
    let said = r.body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let model = r.body["model"].as_str().unwrap_or("?").to_owned();
    match said.as_str() {
        "slow" => Reply::Delayed(
            Duration::from_secs(3),
            Box::new(Reply::completion(&model, "late")),
        ),
        "stall-mid-stream" => Reply::Sse(vec![
            SseStep::Data(
                chunk(
                    &model,
                    json!({"role": "assistant", "content": "first"}),
                    None,
                )
                .to_string(),
            ),
            SseStep::Pause(Duration::from_secs(3)),
            SseStep::Data(chunk(&model, json!({}), Some("stop")).to_string()),
            SseStep::Raw("data: [DONE]\n\n".into()),
        ]),
        _ => Reply::completion(&model, "ok"),
    }
}

impl Rig {
    async fn start() -> Rig {
        let mock = MockUpstream::start(behaviour).await;
        let dir = TempDir::new("disconnects");
        let config = dir.path("config.toml");
        let toml = format!(
            "[server]\nwatch = false\nartifact_cache_dir = \"{}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_sha256 = \"{}\"\n\n",
            dir.path("cache").display(),
            key_hash(ADMIN_TOKEN)
        ) + PRICEY
            + &upstream_toml("main", &mock.url(), &[FLASH], "")
            + &policy_toml("sr", "static-route")
            + &policy_toml("hostile", "hostile")
            // $0.15 a day: one request's reservation of ~$0.11 fits, two do not.
            + &tenant_toml("a", KEY_A, "sr", &[FLASH], "daily_budget_usd = 0.15")
            + &tenant_toml(
                "b",
                KEY_B,
                "hostile",
                &[FLASH],
                "policy_config = { mode = \"slow\", spin = 400000000 }\nsandbox = { deadline_ms = 5000 }",
            );
        std::fs::write(&config, toml).unwrap();
        let process = Process::serve(&["--config", config.to_str().unwrap()], &[]);
        let admin = format!("http://{}", process.admin_addr().expect("admin listener"));
        Rig {
            process,
            mock,
            admin,
            _dir: dir,
        }
    }

    async fn metric(&self, name: &str) -> f64 {
        let r = request(
            "GET",
            &format!("{}/metrics", self.admin),
            Some(ADMIN_TOKEN),
            &[],
            "",
        )
        .await;
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    async fn in_flight(&self) -> f64 {
        self.metric("switchyard_in_flight_requests").await
    }

    /// Waits until `check` holds, or fails after `timeout` with `what`.
    async fn eventually<F: Future<Output = bool>>(&self, what: &str, mut check: impl FnMut() -> F) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !check().await {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}; gateway log:\n{}",
                self.process.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The access-log line of request `id`, once it is written.
    async fn access_line(&self, id: &str) -> Value {
        let find = || {
            self.process.logs().lines().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["target"] == "switchyard::access" && v["request_id"] == id).then_some(v)
            })
        };
        self.eventually(&format!("no access-log line for {id}"), || {
            let found = find().is_some();
            async move { found }
        })
        .await;
        find().unwrap()
    }

    fn chat_url(&self) -> String {
        format!("{}/v1/chat/completions", self.process.url())
    }
}

/// Sends a chat request with request id `id` and hangs up once `hang_up_when` resolves.
async fn hang_up<F: Future<Output = ()>>(
    rig: &Rig,
    key: &str,
    id: &str,
    said: &str,
    stream: bool,
    hang_up_when: F,
) {
    let body = json!({"model": "auto", "stream": stream, "max_tokens": 100,
                      "messages": [{"role": "user", "content": said}]});
    let url = rig.chat_url();
    let request = async {
        let response = send(
            "POST",
            &url,
            Some(key),
            &[("x-request-id", id)],
            body.to_string(),
        )
        .await;
        // A stream's head arrives; then wait in the body, as a client reading the stream does.
        let mut body = response.into_body();
        use http_body_util::BodyExt;
        while let Some(Ok(_)) = body.frame().await {}
    };
    tokio::select! {
        _ = request => panic!("request {id} finished before the client hung up"),
        _ = hang_up_when => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_in_any_phase_is_logged_counted_and_charged() {
    let rig = Rig::start().await;

    // While its body is still arriving (the tenant is authenticated, the body is not complete).
    let mut socket = tokio::net::TcpStream::connect(rig.process.addr)
        .await
        .unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY_A}\r\nx-request-id: gone-in-body\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"model\":"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    rig.eventually("the partial request never showed as in flight", || async {
        rig.in_flight().await == 1.0
    })
    .await;
    drop(socket);
    let line = rig.access_line("gone-in-body").await;
    assert_eq!(line["tenant"], "a");
    assert_eq!(line["status"], 499, "{line}");
    rig.eventually(
        "the gauge stayed up after a hang-up in the body",
        || async { rig.in_flight().await == 0.0 },
    )
    .await;

    // While the policy decides: tenant b's decisions take hundreds of milliseconds. After the
    // first one the scheduler knows it is slow and runs its decisions off the async workers,
    // where the request waits for them (and can be dropped meanwhile).
    let r = request(
        "POST",
        &rig.chat_url(),
        Some(KEY_B),
        &[],
        user_says("auto", "warm up").to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let before = rig.mock.count();
    hang_up(
        &rig,
        KEY_B,
        "gone-in-decision",
        "hi",
        false,
        // 100 ms into a decision that takes hundreds: the scenario, not a wait for an effect.
        tokio::time::sleep(Duration::from_millis(100)),
    )
    .await;
    let line = rig.access_line("gone-in-decision").await;
    assert_eq!(line["status"], 499, "{line}");
    assert_eq!(rig.mock.count(), before, "nothing went upstream");
    rig.eventually(
        "the gauge stayed up after a hang-up in the decision",
        || async { rig.in_flight().await == 0.0 },
    )
    .await;

    // While the upstream has the request and has not answered.
    hang_up(&rig, KEY_A, "gone-waiting", "slow", false, async {
        while rig.mock.count() < before + 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let line = rig.access_line("gone-waiting").await;
    assert_eq!(line["status"], 499, "{line}");
    assert_eq!(line["model"], FLASH);
    let charged = line["cost_usd"].as_f64().unwrap();
    assert!(
        charged > 0.05,
        "the provider started work: the reservation is charged ({line})"
    );
    assert_eq!(line["cost_estimated"], true, "{line}");
    rig.eventually(
        "the gauge stayed up after a hang-up while waiting",
        || async { rig.in_flight().await == 0.0 },
    )
    .await;
    // The day's budget ($0.15) now holds that charge: the next reservation does not fit.
    let r = request(
        "POST",
        &rig.chat_url(),
        Some(KEY_A),
        &[],
        user_says("auto", "hi").to_string(),
    )
    .await;
    assert_eq!(
        r.status,
        429,
        "the abandoned request was charged: {}",
        r.text()
    );
    assert_eq!(r.json()["error"]["code"], "budget_exceeded");

    // In the middle of a stream (tenant b: its budget is unlimited).
    let before = rig.mock.count();
    hang_up(
        &rig,
        KEY_B,
        "gone-mid-stream",
        "stall-mid-stream",
        true,
        // Once the stream is open: the upstream has the request and the gateway relays it.
        rig.eventually("the stream never opened", || async {
            rig.mock.count() > before && rig.metric("switchyard_open_streams").await == 1.0
        }),
    )
    .await;
    let line = rig.access_line("gone-mid-stream").await;
    assert_eq!(line["stream_outcome"], "client-gone", "{line}");
    assert!(line["cost_usd"].as_f64().unwrap() > 0.0, "{line}");
    rig.eventually(
        "the gauges stayed up after a hang-up mid-stream",
        || async {
            rig.in_flight().await == 0.0 && rig.metric("switchyard_open_streams").await == 0.0
        },
    )
    .await;
}

#[tokio::test]
async fn a_probe_abandoned_by_its_client_or_its_deadline_leaves_the_circuit_usable() {
    let up = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
    let state = up.clone();
    // 0: failing; 1: hanging; 2: healthy.
    let flaky = MockUpstream::start(move |r| {
        let model = r.body["model"].as_str().unwrap_or("?").to_owned();
        match state.load(std::sync::atomic::Ordering::SeqCst) {
            0 => Reply::error(503, "overloaded"),
            1 => Reply::Hang,
            _ => Reply::completion(&model, "ok"),
        }
    })
    .await;
    let hanging = MockUpstream::start(|_| Reply::Hang).await;
    let toml = "[server]\nrequest_deadline_ms = 600\n[resilience]\nbreaker_failures = 1\nbreaker_open_ms = 200\n".to_string()
        + &upstream_toml("flaky", &flaky.url(), &[FLASH], "")
        + &upstream_toml("hanging", &hanging.url(), &[PRO], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml("a", KEY_A, "sr", &[FLASH], "")
        + &tenant_toml(
            "b",
            KEY_B,
            "sr",
            &[FLASH, PRO],
            "policy_config = { model = \"deepseek-v4-pro\", fallbacks = [\"deepseek-v4-flash\"] }",
        );
    let gw = start_gateway(&toml).await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let open_the_circuit = || async {
        up.store(0, std::sync::atomic::Ordering::SeqCst);
        let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
        assert_eq!(r.status, 502, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(300)).await; // past the open period: half-open
    };
    // A recovered upstream takes traffic again within a few open periods, however the last
    // probe ended.
    let served_after_recovery = || async {
        up.store(2, std::sync::atomic::Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
            if r.status == 200 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the circuit stayed wedged: {}",
                r.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    // The client leaves while the probe waits for its answer.
    open_the_circuit().await;
    up.store(1, std::sync::atomic::Ordering::SeqCst);
    let before = flaky.count();
    let probe = send(
        "POST",
        &url,
        Some(KEY_A),
        &[],
        user_says("auto", "probe").to_string(),
    );
    tokio::select! {
        _ = probe => panic!("the hanging probe answered"),
        _ = async { while flaky.count() == before { tokio::time::sleep(Duration::from_millis(10)).await } } => {}
    }
    served_after_recovery().await;

    // The request's deadline passes before the probe is sent: tenant b's primary (Pro) hangs
    // until the deadline, then Flash, half-open, is admitted as the probe with no time left.
    open_the_circuit().await;
    let r = chat(&gw, KEY_B, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 504, "{}", r.text());
    served_after_recovery().await;
}
