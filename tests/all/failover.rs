//! Failover scenarios (issue 18): one provider fault per test, injected by a mock upstream on
//! loopback, each scored the way independent failover testing scores gateways:
//!
//! - **pass**: the client got a complete answer (and the recovery the fault called for);
//! - **partial**: a complete answer, but slow or without that recovery;
//! - **safe**: a clear error (an error status with an error body, or a stream ending with an
//!   error event and no `[DONE]`);
//! - **fail**: anything else: a cut answer presented as whole, content twice, an event that is
//!   not JSON, a bare status.
//!
//! Each scenario asserts its outcome and prints one `RESILIENCE` line (id, fault, outcome, score,
//! the time the client waited); `scripts/resilience-table.sh` runs them and prints the table in
//! `docs/resilience.md`. Nothing here asserts a time except the bounds the issue states.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FLASH: &str = "deepseek-v4-flash";
const PRO: &str = "deepseek-v4-pro";
const ANSWER: &str = "Hello, world! How are you today?";

// === scoring ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Score {
    Pass,
    Partial,
    Safe,
    Fail,
}

/// Prints the scenario's line for the table and asserts its score.
fn scored(id: &str, fault: &str, outcome: &str, score: Score, expected: Score, waited: Duration) {
    // Written to stderr directly: `scripts/resilience-table.sh` collects these lines.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "RESILIENCE\t{id}\t{fault}\t{outcome}\t{score:?}\t{}",
        waited.as_millis()
    );
    assert_eq!(score, expected, "{id} ({fault}): {outcome}");
}

/// A chat-completions stream as a strict client reads it.
#[derive(Debug, Default)]
struct ChatStream {
    content: String,
    /// `[DONE]` markers.
    done: usize,
    /// The error event that ended it, if one did.
    error: Option<Value>,
    /// Events that are not JSON (a strict client raises on the first).
    not_json: usize,
    /// Events after `[DONE]` or an error.
    after_end: usize,
    finish: Option<String>,
    ids: Vec<String>,
}

fn read_chat_stream(body: &[u8]) -> ChatStream {
    let mut s = ChatStream::default();
    for data in sse_data(body) {
        if s.done > 0 || s.error.is_some() {
            s.after_end += 1;
        }
        if data == "[DONE]" {
            s.done += 1;
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&data) else {
            s.not_json += 1;
            continue;
        };
        if v.get("error").is_some() {
            s.error = Some(v["error"].clone());
            continue;
        }
        if let Some(id) = v["id"].as_str()
            && !s.ids.iter().any(|i| i == id)
        {
            s.ids.push(id.to_owned());
        }
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            s.content.push_str(c);
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            s.finish = Some(f.to_owned());
        }
    }
    s
}

/// The score of a chat stream that should have said `expected`.
fn score_chat_stream(r: &TestResponse, expected: &str) -> (Score, String) {
    if r.status != 200 {
        return score_json(r, expected);
    }
    let s = read_chat_stream(&r.body);
    let score = if s.not_json > 0 || s.after_end > 0 {
        Score::Fail
    } else if s.error.is_some() && s.done == 0 {
        Score::Safe
    } else if s.done == 1 && s.error.is_none() && s.content == expected {
        Score::Pass
    } else {
        Score::Fail
    };
    let outcome = match (score, &s.error) {
        (Score::Pass, _) => "the whole answer, one [DONE]".to_owned(),
        (Score::Safe, Some(e)) => format!(
            "{} characters, then a `{}` error event, no [DONE]",
            s.content.len(),
            e["code"].as_str().unwrap_or("?")
        ),
        _ => format!(
            "{} characters, [DONE] x{}, {} events not JSON",
            s.content.len(),
            s.done,
            s.not_json
        ),
    };
    (score, outcome)
}

/// The score of a whole response that should have said `expected`.
fn score_json(r: &TestResponse, expected: &str) -> (Score, String) {
    let Ok(v) = serde_json::from_slice::<Value>(&r.body) else {
        return (
            Score::Fail,
            format!("HTTP {} without a JSON body", r.status),
        );
    };
    if r.status == 200 {
        let text = v["choices"][0]["message"]["content"].as_str().unwrap_or("");
        let score = if text == expected {
            Score::Pass
        } else {
            Score::Fail
        };
        let outcome = if score == Score::Pass {
            "HTTP 200, the whole answer".to_owned()
        } else {
            format!("HTTP 200, {} characters", text.len())
        };
        return (score, outcome);
    }
    let message = v["error"]["message"].as_str().unwrap_or_default();
    let score = if r.status >= 400 && !message.is_empty() {
        Score::Safe
    } else {
        Score::Fail
    };
    (
        score,
        format!(
            "HTTP {} {}",
            r.status,
            v["error"]["code"].as_str().unwrap_or("")
        ),
    )
}

/// A complete answer that lacked the recovery the fault called for counts as partial.
fn unless(score: Score, recovered: bool) -> Score {
    match score {
        Score::Pass if !recovered => Score::Partial,
        s => s,
    }
}

// === scripted upstreams ===

fn stream_body(text: &str) -> Value {
    json!({"model": "auto", "stream": true, "messages": [{"role": "user", "content": text}]})
}

fn role(model: &str) -> SseStep {
    SseStep::Data(chunk(model, json!({"role": "assistant", "content": ""}), None).to_string())
}

fn words(model: &str, text: &[&str]) -> Vec<SseStep> {
    text.iter()
        .map(|w| SseStep::Data(chunk(model, json!({"content": w}), None).to_string()))
        .collect()
}

/// The end of a complete stream: a finish reason, usage, `[DONE]`.
fn finish(model: &str) -> Vec<SseStep> {
    vec![
        SseStep::Data(chunk(model, json!({}), Some("stop")).to_string()),
        SseStep::Data(
            json!({"id": "c", "object": "chat.completion.chunk", "model": model, "choices": [],
                   "usage": usage_json()})
            .to_string(),
        ),
        SseStep::Raw("data: [DONE]\n\n".into()),
    ]
}

/// A whole stream of `parts`.
fn whole(model: &str, parts: &[&str]) -> Reply {
    let mut steps = vec![role(model)];
    steps.extend(words(model, parts));
    steps.extend(finish(model));
    Reply::Sse(steps)
}

/// The answer's first half, then `end` (a cut, a stall, a silent close...).
fn first_half(model: &str, end: Vec<SseStep>) -> Reply {
    let mut steps = vec![role(model)];
    steps.extend(words(model, &["Hello, ", "world! "]));
    steps.extend(end);
    Reply::Sse(steps)
}

/// A connection broken once what came before it has reached the gateway (a cut right after a
/// write can discard that write).
fn cut() -> Vec<SseStep> {
    vec![SseStep::Pause(Duration::from_millis(20)), SseStep::Cut]
}

/// Answers `r` in full, in the shape it asked for.
fn answer(r: &Recorded, text: &str) -> Reply {
    let model = r.body["model"].as_str().unwrap_or("?");
    if r.body["stream"] == true {
        whole(model, &[text])
    } else {
        Reply::completion(model, text)
    }
}

fn admin_toml() -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_sha256 = \"{}\"\n",
        key_hash(ADMIN_TOKEN)
    )
}

/// The sum of a metric's series that carry all `labels`.
fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_series(text, name, labels).sum()
}

/// Waits until no request is in flight (streams settle after their last byte).
async fn settled(gw: &TestGateway) {
    eventually(
        "every request to settle",
        Duration::from_secs(10),
        || async {
            metric_sum(
                &gw.metrics_text().await,
                "switchyard_in_flight_requests",
                &[],
            ) == 0.0
        },
    )
    .await;
}

/// A gateway whose tenant routes Flash on `primary`, then Pro on `backup` (static-route).
async fn primary_and_backup(
    primary: &MockUpstream,
    primary_extra: &str,
    backup: &MockUpstream,
    backup_extra: &str,
    tenant_extra: &str,
) -> TestGateway {
    let toml = admin_toml()
        + &upstream_toml("primary", &primary.url(), &[FLASH], primary_extra)
        + &upstream_toml("backup", &backup.url(), &[PRO], backup_extra)
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH, PRO],
            &format!(
                "policy_config = {{ model = \"{FLASH}\", upstream = \"primary\", fallbacks = [\"{PRO}\"] }}\n{tenant_extra}"
            ),
        );
    start_gateway(&toml).await
}

/// Sends `body` and reads the whole answer, timing it.
async fn timed_chat(gw: &TestGateway, body: &Value) -> (TestResponse, Duration) {
    let started = Instant::now();
    let r = chat(gw, KEY_A, body).await;
    (r, started.elapsed())
}

// === 1. retries on the same target ===

/// Answers the first call with `first`, every later one in full.
async fn fails_once(first: Reply) -> MockUpstream {
    let calls = AtomicUsize::new(0);
    MockUpstream::start(move |r| {
        if calls.fetch_add(1, Ordering::Relaxed) == 0 {
            first.clone()
        } else {
            answer(r, ANSWER)
        }
    })
    .await
}

#[tokio::test]
async fn f01_a_429_with_retry_after_is_retried_on_the_same_target_after_its_wait() {
    let primary = fails_once(Reply::Json {
        status: 429,
        body: json!({"error": {"message": "Rate limit reached", "code": "rate_limit"}}).to_string(),
        headers: vec![("retry-after", "2".into())],
    })
    .await;
    let backup = MockUpstream::start(|r| answer(r, "the fallback")).await;
    let gw = primary_and_backup(&primary, "retries = 1", &backup, "", "").await;
    let (r, waited) = timed_chat(&gw, &user_says("auto", "hi")).await;
    let (score, outcome) = score_json(&r, ANSWER);
    assert_eq!(r.header("x-switchyard-upstream"), Some("primary"));
    assert_eq!((primary.count(), backup.count()), (2, 0));
    assert!(waited >= Duration::from_secs(2), "Retry-After honoured");
    scored(
        "1a",
        "429 with Retry-After: 2, then OK",
        &format!("{outcome}, retried on the same target"),
        unless(score, primary.count() == 2),
        Score::Pass,
        waited,
    );
}

#[tokio::test]
async fn f02_a_single_500_is_retried_on_the_same_target() {
    let primary = fails_once(Reply::error(500, "internal error")).await;
    let backup = MockUpstream::start(|r| answer(r, "the fallback")).await;
    let gw = primary_and_backup(&primary, "retries = 1", &backup, "", "").await;
    let (r, waited) = timed_chat(&gw, &stream_body("hi")).await;
    let (score, outcome) = score_chat_stream(&r, ANSWER);
    assert_eq!(r.header("x-switchyard-attempts"), Some("2"));
    assert_eq!((primary.count(), backup.count()), (2, 0));
    scored(
        "1b",
        "a single 500, then OK (stream)",
        &format!("{outcome}, retried on the same target"),
        unless(score, primary.count() == 2),
        Score::Pass,
        waited,
    );
}

#[tokio::test]
async fn by_default_a_target_is_tried_once_more_after_a_transient_failure() {
    // A config that says nothing about retries, and no fallback: the provider's second answer is
    // the client's.
    let only = fails_once(Reply::error(500, "internal error")).await;
    let toml = format!(
        "[upstreams.only]\nbase_url = \"{}\"\nmodels = [\"deepseek-v4-flash\"]\n\n",
        only.url()
    ) + &policy_toml("static", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "static",
            &["deepseek-v4-flash"],
            "policy_config = { model = \"deepseek-v4-flash\" }",
        );
    let gw = start_gateway(&toml).await;
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-attempts"), Some("2"));
    assert_eq!(only.count(), 2);
}

#[tokio::test]
async fn f03_a_retry_after_longer_than_the_wait_allowed_moves_on_at_once() {
    let primary = MockUpstream::start(|_| Reply::Json {
        status: 429,
        body: json!({"error": {"message": "quota"}}).to_string(),
        headers: vec![("retry-after", "60".into())],
    })
    .await;
    let backup = MockUpstream::start(|r| answer(r, ANSWER)).await;
    let gw = primary_and_backup(&primary, "retries = 1", &backup, "", "").await;
    let (r, waited) = timed_chat(&gw, &user_says("auto", "hi")).await;
    let (score, outcome) = score_json(&r, ANSWER);
    assert_eq!(r.header("x-switchyard-upstream"), Some("backup"));
    assert_eq!(primary.count(), 1, "not retried: it asked for a minute");
    scored(
        "1c",
        "429 with Retry-After: 60",
        &format!("{outcome}, the fallback at once"),
        score,
        Score::Pass,
        waited,
    );
}

#[tokio::test]
async fn the_decisions_retries_override_the_upstreams_default() {
    // The upstream says no retries; the decision asks for one.
    let primary = fails_once(Reply::error(503, "busy")).await;
    let backup = MockUpstream::start(|r| answer(r, "the fallback")).await;
    let toml = upstream_toml("primary", &primary.url(), &[FLASH], "")
        + &upstream_toml("backup", &backup.url(), &[PRO], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH, PRO],
            &format!(
                "policy_config = {{ model = \"{FLASH}\", retries = 1, fallbacks = [\"{PRO}\"] }}"
            ),
        );
    let gw = start_gateway(&toml).await;
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-upstream"), Some("primary"));
    assert_eq!((primary.count(), backup.count()), (2, 0));

    // The upstream says one retry; the decision says none.
    let primary = fails_once(Reply::error(503, "busy")).await;
    let backup = MockUpstream::start(|r| answer(r, "the fallback")).await;
    let toml = upstream_toml("primary", &primary.url(), &[FLASH], "retries = 1")
        + &upstream_toml("backup", &backup.url(), &[PRO], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH, PRO],
            &format!(
                "policy_config = {{ model = \"{FLASH}\", retries = 0, fallbacks = [\"{PRO}\"] }}"
            ),
        );
    let gw = start_gateway(&toml).await;
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(r.header("x-switchyard-upstream"), Some("backup"));
    assert_eq!((primary.count(), backup.count()), (1, 1));

    // A timeout is not retried on the same target even with retries left: the next one gets the
    // time instead.
    let primary = MockUpstream::start(|_| Reply::Hang).await;
    let backup = MockUpstream::start(|r| answer(r, "the fallback")).await;
    let gw = primary_and_backup(
        &primary,
        "retries = 2\nfirst_byte_timeout = \"300ms\"",
        &backup,
        "",
        "",
    )
    .await;
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    assert_eq!(r.header("x-switchyard-upstream"), Some("backup"));
    assert_eq!(primary.count(), 1);
}

// === 2. circuit recovery ===

#[tokio::test]
async fn f04_a_flapping_primary_is_back_in_use_within_seconds_of_recovering() {
    // 503 for 8 s, then healthy; a request every 400 ms; the default breaker settings.
    let started = Instant::now();
    let outage = Duration::from_secs(8);
    let primary = MockUpstream::start(move |r| {
        if started.elapsed() < outage {
            Reply::error(503, "Server overloaded")
        } else {
            answer(r, ANSWER)
        }
    })
    .await;
    let backup = MockUpstream::start(|r| answer(r, ANSWER)).await;
    let gw = primary_and_backup(&primary, "", &backup, "", "").await;
    let mut back_after = None;
    let mut all_complete = true;
    while started.elapsed() < outage + Duration::from_secs(15) {
        let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
        all_complete &= score_json(&r, ANSWER).0 == Score::Pass;
        if started.elapsed() > outage && r.header("x-switchyard-upstream") == Some("primary") {
            back_after = Some(started.elapsed() - outage);
            break;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let back_after = back_after.expect("the primary was used again");
    assert!(all_complete, "every request got a whole answer meanwhile");
    assert!(
        back_after <= Duration::from_secs(10),
        "the recovered primary took traffic {back_after:?} after recovering"
    );
    scored(
        "2",
        "primary 503 for 8 s, then healthy; a request every 400 ms",
        "every answer whole (the fallback meanwhile); primary back in use",
        Score::Pass,
        Score::Pass,
        back_after,
    );
}

// === 3. slow first token ===

#[tokio::test]
async fn f05_a_slow_first_token_moves_to_the_next_target_at_the_deadline() {
    for (id, streaming) in [("3a", true), ("3b", false)] {
        let primary = MockUpstream::start(|r| {
            Reply::Delayed(Duration::from_secs(20), Box::new(answer(r, "too late")))
        })
        .await;
        let backup = MockUpstream::start(|r| answer(r, ANSWER)).await;
        let gw =
            primary_and_backup(&primary, "first_token_timeout = \"1s\"", &backup, "", "").await;
        let body = if streaming {
            stream_body("hi")
        } else {
            user_says("auto", "hi")
        };
        let (r, waited) = timed_chat(&gw, &body).await;
        let (score, outcome) = if streaming {
            score_chat_stream(&r, ANSWER)
        } else {
            score_json(&r, ANSWER)
        };
        assert_eq!(r.header("x-switchyard-upstream"), Some("backup"));
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        scored(
            id,
            if streaming {
                "first token after 20 s (stream)"
            } else {
                "whole response after 20 s"
            },
            &format!("{outcome}, the next target at the 1 s first-token deadline"),
            score,
            Score::Pass,
            waited,
        );
    }
}

// === 4. streams cut or stalled after they started: resumed ===

/// A backup that continues answers over DeepSeek's chat prefix completion at `/beta`, checking
/// what it was sent: the conversation, then the delivered text as an assistant prefix.
async fn prefix_backup(prefixes: Arc<std::sync::Mutex<Vec<Value>>>) -> MockUpstream {
    MockUpstream::start(move |r| {
        let model = r.body["model"].as_str().unwrap_or("?").to_owned();
        if r.path == "/beta/chat/completions" {
            prefixes.lock().unwrap().push(r.body.clone());
            let mut steps = vec![role(&model)];
            steps.extend(words(&model, &["How are ", "you today?"]));
            steps.extend(finish(&model));
            return Reply::Sse(steps);
        }
        answer(r, "not a resumption")
    })
    .await
}

fn resume_extra(backup: &MockUpstream) -> String {
    format!(
        "resume = \"chat-prefix\"\nresume_url = \"http://{}/beta/chat/completions\"",
        backup.addr
    )
}

/// Checks the resumption request: the client's conversation, then the delivered text as the
/// assistant's own prefix (never as the client's message).
fn assert_prefix_request(sent: &Value, delivered: &str) {
    let messages = sent["messages"].as_array().unwrap();
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "assistant", "{sent}");
    assert_eq!(last["prefix"], true);
    assert_eq!(last["content"], delivered);
    assert_eq!(messages[messages.len() - 2]["role"], "user");
    assert_eq!(sent["stream"], true);
}

#[tokio::test]
async fn f06_a_stream_cut_mid_answer_is_resumed_on_the_next_target() {
    let cases: [(&str, &str, Vec<SseStep>, &str); 3] = [
        ("4a", "stream cut after some content", cut(), ""),
        (
            "4b",
            "stream stalled after some content (no event for the idle timeout)",
            vec![SseStep::Pause(Duration::from_secs(30))],
            "idle_timeout = \"500ms\"",
        ),
        (
            "6r",
            "stream ends after some content, no finish reason, no [DONE]",
            vec![],
            "",
        ),
    ];
    for (id, fault, end, primary_extra) in cases {
        let primary = MockUpstream::start(move |r| {
            first_half(r.body["model"].as_str().unwrap_or("?"), end.clone())
        })
        .await;
        let prefixes = Arc::default();
        let backup = prefix_backup(Arc::clone(&prefixes)).await;
        let gw = primary_and_backup(
            &primary,
            primary_extra,
            &backup,
            &resume_extra(&backup),
            "resume_streams = true",
        )
        .await;
        let mut body = stream_body("hi");
        body["stream_options"] = json!({"include_usage": true});
        let (r, waited) = timed_chat(&gw, &body).await;
        let (score, outcome) = score_chat_stream(&r, ANSWER);
        let s = read_chat_stream(&r.body);
        assert_eq!(s.content, ANSWER, "one continuous answer, nothing twice");
        assert_eq!(s.done, 1, "one [DONE]");
        assert_eq!(s.ids.len(), 1, "one answer id: {:?}", s.ids);
        let sent = prefixes.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        assert_prefix_request(&sent[0], "Hello, world! ");
        settled(&gw).await;
        let m = gw.metrics_text().await;
        assert_eq!(
            metric_sum(
                &m,
                "switchyard_streams_total",
                &[("tenant", "a"), ("outcome", "resumed")]
            ),
            1.0,
            "{m}"
        );
        scored(
            id,
            fault,
            &format!("{outcome}, resumed on the next target"),
            score,
            Score::Pass,
            waited,
        );
    }
}

#[tokio::test]
async fn f07_without_opting_in_a_cut_stream_ends_with_an_error_event() {
    let primary =
        MockUpstream::start(|r| first_half(r.body["model"].as_str().unwrap_or("?"), cut())).await;
    let prefixes = Arc::default();
    let backup = prefix_backup(Arc::clone(&prefixes)).await;
    let gw = primary_and_backup(&primary, "", &backup, &resume_extra(&backup), "").await;
    let (r, waited) = timed_chat(&gw, &stream_body("hi")).await;
    let (score, outcome) = score_chat_stream(&r, ANSWER);
    assert_eq!(read_chat_stream(&r.body).content, "Hello, world! ");
    assert_eq!(backup.count(), 0);
    scored(
        "4c",
        "stream cut, resumption not opted in",
        &outcome,
        score,
        Score::Safe,
        waited,
    );
}

#[tokio::test]
async fn f08_when_the_next_target_refuses_the_prefix_the_stream_ends_with_the_error_event() {
    let primary =
        MockUpstream::start(|r| first_half(r.body["model"].as_str().unwrap_or("?"), cut())).await;
    let refusals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = refusals.clone();
    let backup = MockUpstream::start(move |r| {
        seen.lock().unwrap().push(r.body.clone());
        Reply::error(400, "prefix completion is not supported for this model")
    })
    .await;
    let gw = primary_and_backup(
        &primary,
        "",
        &backup,
        &resume_extra(&backup),
        "resume_streams = true",
    )
    .await;
    let (r, waited) = timed_chat(&gw, &stream_body("hi")).await;
    let (score, outcome) = score_chat_stream(&r, ANSWER);
    let s = read_chat_stream(&r.body);
    assert_eq!(s.content, "Hello, world! ", "only what was delivered, once");
    let error = s.error.expect("an error event");
    assert!(
        error["message"].as_str().unwrap().contains("not resumed"),
        "{error}"
    );
    let sent = refusals.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_prefix_request(&sent[0], "Hello, world! ");
    scored(
        "4d",
        "stream cut; the next target refuses the prefix",
        &outcome,
        score,
        Score::Safe,
        waited,
    );
}

#[tokio::test]
async fn f09_a_resumed_answer_reaches_a_messages_client_as_one_message() {
    let primary =
        MockUpstream::start(|r| first_half(r.body["model"].as_str().unwrap_or("?"), cut())).await;
    let prefixes = Arc::default();
    let backup = prefix_backup(Arc::clone(&prefixes)).await;
    let gw = primary_and_backup(
        &primary,
        "",
        &backup,
        &resume_extra(&backup),
        "resume_streams = true\nmodel_aliases = [\"auto\", \"claude-*\"]",
    )
    .await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 1000, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let started = Instant::now();
    let r = messages(&gw, KEY_A, &body).await;
    let waited = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    let events: Vec<Value> = sse_events(&r.body).iter().map(SseEvent::json).collect();
    let count = |t: &str| events.iter().filter(|e| e["type"] == t).count();
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, ANSWER, "{}", r.text());
    assert_eq!(count("message_start"), 1);
    assert_eq!(count("message_stop"), 1);
    assert_eq!(count("error"), 0);
    assert_eq!(prefixes.lock().unwrap().len(), 1);
    let score = if text == ANSWER && count("message_stop") == 1 {
        Score::Pass
    } else {
        Score::Fail
    };
    // The same answer to a Responses client: one response, its text once.
    let body = json!({"model": "auto", "stream": true, "input": "hi"});
    let r = request(
        "POST",
        &format!("{}/v1/responses", gw.url),
        Some(KEY_A),
        &[],
        body.to_string(),
    )
    .await;
    let events: Vec<Value> = sse_events(&r.body).iter().map(SseEvent::json).collect();
    let count = |t: &str| events.iter().filter(|e| e["type"] == t).count();
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(text, ANSWER, "{}", r.text());
    assert_eq!(
        (count("response.created"), count("response.completed")),
        (1, 1)
    );
    assert_eq!(count("error"), 0);
    scored(
        "4e",
        "stream cut, Anthropic Messages client",
        "one message: message_start once, the text once, message_stop (and one Responses response)",
        score,
        Score::Pass,
        waited,
    );
}

#[tokio::test]
async fn f10_an_anthropic_upstream_continues_an_answer_from_an_assistant_prefill() {
    let primary =
        MockUpstream::start(|r| first_half(r.body["model"].as_str().unwrap_or("?"), cut())).await;
    let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = sent.clone();
    let anthropic = MockUpstream::start(move |r| {
        seen.lock().unwrap().push(r.body.clone());
        // The prefill ends in "world!" (its trailing space trimmed): the continuation starts
        // with the space.
        Reply::Sse(anthropic_stream_steps(
            "claude-sonnet-4-5",
            &[" How are ", "you today?"],
        ))
    })
    .await;
    let toml = upstream_toml("primary", &primary.url(), &[FLASH], "")
        + &upstream_toml(
            "claude",
            &anthropic.url(),
            &[PRO],
            "kind = \"anthropic\"\nresume = \"messages-prefill\"",
        )
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH, PRO],
            &format!(
                "policy_config = {{ model = \"{FLASH}\", fallbacks = [\"{PRO}\"] }}\nresume_streams = true"
            ),
        );
    let gw = start_gateway(&toml).await;
    let (r, waited) = timed_chat(&gw, &stream_body("hi")).await;
    let (score, outcome) = score_chat_stream(&r, ANSWER);
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let last = sent[0]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "assistant", "{}", sent[0]);
    let prefill = match &last["content"] {
        Value::String(s) => s.clone(),
        blocks => blocks[0]["text"].as_str().unwrap_or_default().to_owned(),
    };
    assert_eq!(prefill, "Hello, world!", "trailing whitespace trimmed");
    scored(
        "4f",
        "stream cut; the next target is Anthropic (assistant prefill)",
        &format!("{outcome}, resumed"),
        score,
        Score::Pass,
        waited,
    );
}

/// The access line of request `id` in a process's JSON log.
fn access_line(p: &Process, id: &str) -> Option<Value> {
    p.logs().lines().find_map(|l| {
        let v: Value = serde_json::from_str(l).ok()?;
        let fields = v.get("fields").unwrap_or(&v);
        (v["target"] == "switchyard::access" && fields["request_id"] == id).then(|| fields.clone())
    })
}

#[tokio::test]
async fn the_access_log_says_how_each_stream_ended() {
    // One primary, told by the prompt how to fail; tenant a resumes streams, tenant b does not.
    let primary = MockUpstream::start(|r| {
        let model = r.body["model"].as_str().unwrap_or("?");
        let prompt = r.body["messages"][0]["content"]
            .as_str()
            .unwrap_or_default();
        match prompt {
            "garbled" => {
                let mut steps = vec![role(model)];
                steps.extend(words(model, &["Hello, world! "]));
                steps.push(SseStep::Raw("data: {not json\n\n".into()));
                steps.extend(words(model, &["How are you today?"]));
                steps.extend(finish(model));
                Reply::Sse(steps)
            }
            "silent" => first_half(model, vec![]),
            _ => first_half(model, cut()),
        }
    })
    .await;
    let prefixes = Arc::default();
    let backup = prefix_backup(Arc::clone(&prefixes)).await;
    let dir = TempDir::new("failover-log");
    let config = dir.path("config.toml");
    let route = format!("policy_config = {{ model = \"{FLASH}\", fallbacks = [\"{PRO}\"] }}");
    let toml = upstream_toml("primary", &primary.url(), &[FLASH], "")
        + &upstream_toml("backup", &backup.url(), &[PRO], &resume_extra(&backup))
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH, PRO],
            &format!("{route}\nresume_streams = true"),
        )
        + &tenant_toml("b", KEY_B, "sr", &[FLASH, PRO], &route);
    std::fs::write(&config, toml).unwrap();
    let p = Process::serve(&["--config", config.to_str().unwrap()], &[]);
    let url = format!("{}/v1/chat/completions", p.url());
    for (id, key, prompt) in [
        ("log-resumed", KEY_A, "cut"),
        ("log-truncated", KEY_B, "silent"),
        ("log-garbled", KEY_B, "garbled"),
    ] {
        let r = request(
            "POST",
            &url,
            Some(key),
            &[("x-request-id", id)],
            stream_body(prompt).to_string(),
        )
        .await;
        assert_eq!(r.status, 200, "{id}: {}", r.text());
    }
    eventually("three access lines", Duration::from_secs(10), || async {
        ["log-resumed", "log-truncated", "log-garbled"]
            .iter()
            .all(|id| access_line(&p, id).is_some())
    })
    .await;
    let resumed = access_line(&p, "log-resumed").unwrap();
    assert_eq!(resumed["stream_outcome"], "resumed", "{resumed}");
    assert!(
        resumed["stream_resumed"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{FLASH} via primary: upstream stream broke")),
        "{resumed}"
    );
    assert!(
        resumed["tags"]
            .as_str()
            .unwrap()
            .contains(&format!("resumed-on={PRO}@backup"))
    );
    assert_eq!(resumed["attempts"], 2, "{resumed}");
    assert_eq!(
        resumed["cost_estimated"], true,
        "the cut part is an estimate: {resumed}"
    );
    let truncated = access_line(&p, "log-truncated").unwrap();
    assert_eq!(truncated["stream_outcome"], "truncated", "{truncated}");
    assert!(
        truncated["error"]
            .as_str()
            .unwrap()
            .contains("no finish reason")
    );
    let garbled = access_line(&p, "log-garbled").unwrap();
    assert_eq!(garbled["stream_outcome"], "completed", "{garbled}");
    assert_eq!(garbled["stream_malformed"], 1, "{garbled}");
}

// === 5. malformed events ===

#[tokio::test]
async fn f11_a_stream_whose_first_events_are_not_json_is_a_failed_attempt() {
    let primary = MockUpstream::start(|_| {
        Reply::Sse(vec![
            SseStep::Raw("data: this is not json\n\n".into()),
            SseStep::Raw("data: [DONE]\n\n".into()),
        ])
    })
    .await;
    let backup = MockUpstream::start(|r| answer(r, ANSWER)).await;
    let gw = primary_and_backup(&primary, "", &backup, "", "").await;
    let (r, waited) = timed_chat(&gw, &stream_body("hi")).await;
    let (score, outcome) = score_chat_stream(&r, ANSWER);
    assert_eq!(r.header("x-switchyard-upstream"), Some("backup"));
    scored(
        "5a",
        "first events not JSON",
        &format!("{outcome}, the next target"),
        score,
        Score::Pass,
        waited,
    );
}

#[tokio::test]
async fn f12_a_malformed_event_after_the_commit_point_is_dropped_and_counted() {
    let primary = MockUpstream::start(|r| {
        let model = r.body["model"].as_str().unwrap_or("?");
        let mut steps = vec![role(model)];
        steps.extend(words(model, &["Hello, world! "]));
        steps.push(SseStep::Raw("data: this is not json\n\n".into()));
        steps.extend(words(model, &["How are you today?"]));
        steps.extend(finish(model));
        Reply::Sse(steps)
    })
    .await;
    let backup = MockUpstream::start(|r| answer(r, "unused")).await;
    let gw = primary_and_backup(&primary, "", &backup, "", "").await;
    let (r, waited) = timed_chat(&gw, &stream_body("hi")).await;
    let (score, outcome) = score_chat_stream(&r, ANSWER);
    assert!(!r.text().contains("this is not json"), "{}", r.text());
    settled(&gw).await;
    let m = gw.metrics_text().await;
    assert_eq!(
        metric_sum(
            &m,
            "switchyard_stream_events_dropped_total",
            &[("tenant", "a")]
        ),
        1.0,
        "{m}"
    );
    scored(
        "5b",
        "an event that is not JSON mid-stream",
        &format!("{outcome}, the event dropped and counted"),
        score,
        Score::Pass,
        waited,
    );
}

// === 6. a stream that ends early without saying so ===

#[tokio::test]
async fn f13_a_stream_that_stops_without_finish_or_done_is_truncated_not_completed() {
    let primary =
        MockUpstream::start(|r| first_half(r.body["model"].as_str().unwrap_or("?"), vec![])).await;
    let backup = MockUpstream::start(|r| answer(r, "unused")).await;
    let gw = primary_and_backup(&primary, "", &backup, "", "").await;
    let (r, waited) = timed_chat(&gw, &stream_body("hi")).await;
    let (score, outcome) = score_chat_stream(&r, ANSWER);
    let s = read_chat_stream(&r.body);
    assert_eq!(s.done, 0, "a truncated stream never looks finished");
    assert_eq!(s.error.unwrap()["code"], "stream_truncated");
    settled(&gw).await;
    let m = gw.metrics_text().await;
    assert_eq!(
        metric_sum(
            &m,
            "switchyard_streams_total",
            &[("tenant", "a"), ("outcome", "truncated")]
        ),
        1.0,
        "{m}"
    );
    scored(
        "6",
        "stream ends after some content, no finish reason, no [DONE]",
        &format!("{outcome}, logged truncated"),
        score,
        Score::Safe,
        waited,
    );
}

#[tokio::test]
async fn a_stream_with_a_finish_reason_but_no_done_is_whole() {
    let primary = MockUpstream::start(|r| {
        let model = r.body["model"].as_str().unwrap_or("?");
        let mut steps = vec![role(model)];
        steps.extend(words(model, &[ANSWER]));
        steps.push(SseStep::Data(
            chunk(model, json!({}), Some("stop")).to_string(),
        ));
        Reply::Sse(steps)
    })
    .await;
    let backup = MockUpstream::start(|r| answer(r, "unused")).await;
    let gw = primary_and_backup(&primary, "", &backup, "", "").await;
    let r = chat(&gw, KEY_A, &stream_body("hi")).await;
    let s = read_chat_stream(&r.body);
    assert_eq!((s.content.as_str(), s.done), (ANSWER, 1), "{}", r.text());
}

// === 7. accounting of broken and usage-less responses ===

/// Prices of $1,000 per 1M tokens, so each token costs $0.001.
const PRICEY: &str = "[models.\"deepseek-v4-flash\"]\ninput_usd_per_mtok = 1000.0\ncached_input_usd_per_mtok = 1000.0\noutput_usd_per_mtok = 1000.0\n\
                      [models.\"deepseek-v4-pro\"]\ninput_usd_per_mtok = 1000.0\ncached_input_usd_per_mtok = 1000.0\noutput_usd_per_mtok = 1000.0\n";

#[tokio::test]
async fn f14_usage_less_and_cut_responses_are_charged_the_estimate_of_what_was_delivered() {
    // 400 characters of answer: about 100 tokens.
    let text = "abcd".repeat(100);
    let t = text.clone();
    let primary = MockUpstream::start(move |r| {
        let model = r.body["model"].as_str().unwrap_or("?");
        if r.body["stream"] == true {
            let mut steps = vec![role(model)];
            steps.extend(words(model, &[&t]));
            steps.extend(cut());
            return Reply::Sse(steps);
        }
        let mut body = completion_body(model, &t);
        body.as_object_mut().unwrap().remove("usage");
        Reply::Json {
            status: 200,
            body: body.to_string(),
            headers: vec![],
        }
    })
    .await;
    let backup = MockUpstream::start(|r| answer(r, "unused")).await;
    let toml = PRICEY.to_string()
        + &admin_toml()
        + &upstream_toml("primary", &primary.url(), &[FLASH], "")
        + &upstream_toml("backup", &backup.url(), &[PRO], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH, PRO],
            &format!(
                "policy_config = {{ model = \"{FLASH}\", fallbacks = [\"{PRO}\"] }}\ndaily_budget_usd = 100.0"
            ),
        );
    let gw = start_gateway(&toml).await;
    let (r, waited) = timed_chat(&gw, &user_says("auto", "hi")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-switchyard-cost-estimated"), Some("true"));
    let cost: f64 = r.header("x-switchyard-cost-usd").unwrap().parse().unwrap();
    // The input (a few tokens) and the ~100 delivered, at $0.001: not zero, and not the
    // reservation's worst case (4096 output tokens, about $4).
    assert!((0.1..0.2).contains(&cost), "charged {cost}");
    let (r2, _) = timed_chat(&gw, &stream_body("hi")).await;
    assert_eq!(read_chat_stream(&r2.body).content, text);
    settled(&gw).await;
    let m = gw.metrics_text().await;
    let total = metric_sum(&m, "switchyard_cost_usd_total", &[("tenant", "a")]);
    let estimated = metric_sum(
        &m,
        "switchyard_estimated_cost_usd_total",
        &[("tenant", "a")],
    );
    assert!((0.2..0.4).contains(&total), "{total}: {m}");
    assert!((estimated - total).abs() < 1e-9, "all of it estimated: {m}");
    scored(
        "7",
        "answers without usage (whole, and cut mid-stream)",
        &format!("charged ${cost:.3} (estimated from ~100 delivered tokens), marked estimated"),
        Score::Pass,
        Score::Pass,
        waited,
    );
}

#[tokio::test]
async fn cache_hit_tokens_are_billed_at_the_cache_hit_price() {
    // DeepSeek's prompt_cache_hit_tokens: 60 of 100 prompt tokens.
    let primary = MockUpstream::start(|r| answer(r, ANSWER)).await;
    let backup = MockUpstream::echo().await;
    let gw = primary_and_backup(&primary, "", &backup, "", "").await;
    let r = chat(&gw, KEY_A, &user_says("auto", "hi")).await;
    // 40 misses at $0.14/M, 60 hits at $0.0028/M, 20 output at $0.28/M.
    let expected = (40.0 * 0.14 + 60.0 * 0.0028 + 20.0 * 0.28) / 1e6;
    let cost: f64 = r.header("x-switchyard-cost-usd").unwrap().parse().unwrap();
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
    assert_eq!(r.header("x-switchyard-cost-estimated"), None);
}

// === 8. budgets under bursts without max_tokens ===

/// 60 concurrent streams without `max_tokens`, each of which would run to 2000 output tokens
/// ($2.10 with its 100 prompt tokens), against a $21 budget: one that fits 10 such answers.
/// Returns the spend as a share of the budget.
async fn burst(mode: &str) -> f64 {
    let capped = Arc::new(AtomicUsize::new(0));
    let c = capped.clone();
    let mock = MockUpstream::start(move |r| {
        if r.body["max_tokens"] == 200 {
            c.fetch_add(1, Ordering::Relaxed);
        }
        // This provider ignores max_tokens: the meter has to hold the line.
        let model = r.body["model"].as_str().unwrap_or("?");
        let mut steps = vec![SseStep::Pause(Duration::from_millis(300)), role(model)];
        for _ in 0..100 {
            steps.push(SseStep::Data(
                chunk(model, json!({"content": "x".repeat(80)}), None).to_string(),
            ));
        }
        steps.push(SseStep::Data(
            chunk(model, json!({}), Some("length")).to_string(),
        ));
        steps.push(SseStep::Data(
            json!({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 2000}})
                .to_string(),
        ));
        steps.push(SseStep::Raw("data: [DONE]\n\n".into()));
        Reply::Sse(steps)
    })
    .await;
    let budget = 21.0;
    let toml = format!("[server]\nreserve_output_tokens = 200\n{PRICEY}")
        + &admin_toml()
        + &upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH],
            &format!("daily_budget_usd = {budget}\nbudget_mode = \"{mode}\""),
        );
    let gw = Arc::new(start_gateway(&toml).await);
    let body = stream_body("hi");
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let (gw, body) = (gw.clone(), body.clone());
            tokio::spawn(async move { chat(&gw, KEY_A, &body).await })
        })
        .collect();
    let mut codes = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        let s = read_chat_stream(&r.body);
        codes.push(match (&s.error, r.status) {
            (Some(e), _) => e["code"].as_str().unwrap_or("?").to_owned(),
            (None, 200) => "ok".into(),
            (None, status) => status.to_string(),
        });
    }
    settled(&gw).await;
    let spent = metric_sum(
        &gw.metrics_text().await,
        "switchyard_cost_usd_total",
        &[("tenant", "a")],
    );
    if mode == "hard" {
        assert_eq!(
            capped.load(Ordering::Relaxed),
            mock.count(),
            "max_tokens was set"
        );
        assert!(
            codes.iter().all(|c| c == "budget_exceeded" || c == "429"),
            "{codes:?}"
        );
    }
    spent / budget
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f15_a_hard_budget_holds_under_a_burst_without_max_tokens() {
    let started = Instant::now();
    let hard = burst("hard").await;
    let waited = started.elapsed();
    let soft = burst("soft").await;
    assert!(hard <= 1.1, "hard mode spent {hard:.2}x the budget");
    scored(
        "8",
        "60 concurrent streams without max_tokens; budget fits 10",
        &format!(
            "hard mode spent {hard:.2}x the budget (soft mode {soft:.2}x); streams ended with budget_exceeded"
        ),
        Score::Pass,
        Score::Pass,
        waited,
    );
}

// === 9. upstream keys in errors ===

#[tokio::test]
async fn f16_no_piece_of_an_upstream_key_reaches_a_client_or_a_log() {
    const SECRET: &str = "sk-live-0123456789abcdefghijSECRETxyz";
    // The provider echoes pieces of the key (from its middle) in every way it can.
    let piece = &SECRET[9..21];
    let mock = MockUpstream::start(move |r| {
        let model = r.body["model"].as_str().unwrap_or("?");
        match (model, r.body["stream"] == true) {
            // Before the commit point: an error event; after it: an error event mid-answer.
            (FLASH, true) => Reply::Sse(vec![
                role(model),
                SseStep::Data(
                    chunk(model, json!({"content": format!("ok {piece} ")}), None).to_string(),
                ),
                SseStep::Data(
                    json!({"error": {"message": format!("overloaded, key ...{piece}...")}})
                        .to_string(),
                ),
            ]),
            (FLASH, false) => Reply::error(500, &format!("exploded handling key {piece}")),
            _ => Reply::error(
                401,
                &format!("Incorrect API key provided: {}", &SECRET[14..30]),
            ),
        }
    })
    .await;
    let dir = TempDir::new("failover-secret");
    let config = dir.path("config.toml");
    let toml = upstream_toml(
        "main",
        &mock.url(),
        &[FLASH, PRO],
        "api_key_env = \"SWITCHYARD_TEST_UPSTREAM_KEY\"",
    ) + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH, PRO],
            &format!("policy_config = {{ model = \"{FLASH}\", fallbacks = [\"{PRO}\"] }}"),
        );
    std::fs::write(&config, toml).unwrap();
    let p = Process::serve(
        &["--config", config.to_str().unwrap()],
        &[
            ("SWITCHYARD_TEST_UPSTREAM_KEY", SECRET),
            ("SWITCHYARD_LOG", "debug"),
        ],
    );
    let url = format!("{}/v1/chat/completions", p.url());
    let started = Instant::now();
    let whole = request(
        "POST",
        &url,
        Some(KEY_A),
        &[],
        user_says("auto", "hi").to_string(),
    )
    .await;
    let waited = started.elapsed();
    let streamed = request(
        "POST",
        &url,
        Some(KEY_A),
        &[],
        stream_body("hi").to_string(),
    )
    .await;
    assert_eq!(whole.status, 502, "{}", whole.text());
    assert_eq!(streamed.status, 200);
    eventually("both access lines", Duration::from_secs(10), || async {
        p.logs()
            .matches("\"target\":\"switchyard::access\"")
            .count()
            >= 2
    })
    .await;
    let logs = p.logs();
    let windows: Vec<&str> = (0..=SECRET.len() - 8).map(|i| &SECRET[i..i + 8]).collect();
    for (what, text) in [
        ("the error body", whole.text()),
        ("the stream", streamed.text()),
        (
            "the headers",
            format!("{:?} {:?}", whole.headers, streamed.headers),
        ),
        ("the logs", logs),
    ] {
        for w in &windows {
            assert!(!text.contains(w), "`{w}` of the key reached {what}: {text}");
        }
    }
    assert!(whole.text().contains("[redacted]"));
    assert!(streamed.text().contains("[redacted]"));
    scored(
        "9",
        "upstream errors (JSON, stream events) echo pieces of the key",
        "every 8-character piece redacted in bodies, stream events, headers and logs",
        Score::Pass,
        Score::Pass,
        waited,
    );
}

// === 10. errors hyper answers for us ===

/// Sends raw bytes and reads the whole answer: status and body.
async fn raw_exchange(addr: &str, request: &[u8]) -> (u16, Vec<u8>) {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before it has read everything.
    let _ = socket.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.as_bytes().to_vec())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn f17_errors_hyper_answers_before_any_handler_have_a_json_body() {
    let mock = MockUpstream::echo().await;
    let toml = upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml("a", KEY_A, "sr", &[FLASH], "");
    let gw = start_gateway(&toml).await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let head = |path: &str, extra: &str| {
        format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra}\r\n")
            .into_bytes()
    };
    let huge = format!("x-big: {}\r\n", "a".repeat(64 << 10));
    let many: String = (0..10_000).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a 64 KiB header",
            head("/v1/chat/completions", &huge),
            431,
            "request_header_too_large",
        ),
        (
            "10,000 headers",
            head("/v1/chat/completions", &many),
            431,
            "request_header_too_large",
        ),
        (
            "a NUL in a header",
            head("/v1/chat/completions", "x-bad: a\0b\r\n"),
            400,
            "invalid_request",
        ),
        (
            "two Content-Lengths",
            head(
                "/v1/chat/completions",
                "content-length: 2\r\ncontent-length: 3\r\n",
            ),
            400,
            "invalid_request",
        ),
    ];
    let started = Instant::now();
    for (what, bytes, status, code) in &cases {
        let (got, body) = raw_exchange(&addr, bytes).await;
        assert_eq!(got, *status, "{what}: {}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{what}: no JSON body ({e}): {body:?}"));
        assert_eq!(v["error"]["code"], *code, "{what}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(v["error"]["type"].as_str().is_some());
    }
    // On the Anthropic front door, Anthropic's shape.
    let (got, body) = raw_exchange(&addr, &head("/v1/messages", &huge)).await;
    assert_eq!(got, 431);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert!(v["error"]["type"].is_string());
    // The server is still up, and its own answers are untouched.
    assert_eq!(chat(&gw, KEY_A, &user_says("auto", "hi")).await.status, 200);
    scored(
        "10",
        "a 64 KiB header, 10,000 headers, a NUL in a header, two Content-Lengths",
        "431 / 400 with a JSON error body (Anthropic's shape on /v1/messages)",
        Score::Safe,
        Score::Safe,
        started.elapsed() / cases.len() as u32,
    );
}

// === 11. memory of refused uploads ===

/// A field of `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// Starts the peak RSS count again (`VmHWM`) from the current RSS.
fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
}

/// Sends a chunked upload of `total` bytes (64 KiB chunks); returns the status and body.
async fn chunked_upload(addr: std::net::SocketAddr, path: &str, total: usize) -> (u16, Vec<u8>) {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY_A}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'a'; 64 << 10];
    let framed = [
        format!("{:x}\r\n", chunk.len()).into_bytes(),
        chunk,
        b"\r\n".to_vec(),
    ]
    .concat();
    let (mut read, mut write) = socket.into_split();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = read.read_to_end(&mut out).await;
        out
    });
    let mut sent = 0;
    while sent < total {
        if write.write_all(&framed).await.is_err() {
            break; // refused: the server stopped reading
        }
        sent += 64 << 10;
    }
    let _ = write.write_all(b"0\r\n\r\n").await;
    let out = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.as_bytes().to_vec())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f18_a_refused_upload_holds_at_most_the_cap_and_all_uploads_the_budget() {
    let mock = MockUpstream::echo().await;
    let dir = TempDir::new("failover-uploads");
    let config = dir.path("config.toml");
    // The default 32 MiB cap; a 64 MiB budget for all bodies in flight.
    let toml = "[server]\nmax_inflight_body_bytes = 67108864\n".to_string()
        + &upstream_toml("main", &mock.url(), &[FLASH], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml("a", KEY_A, "sr", &[FLASH], "");
    std::fs::write(&config, toml).unwrap();
    let p = Process::serve(&["--config", config.to_str().unwrap()], &[]);
    let pid = p.child.id();
    // Warm up: the first request's allocations are not the upload's.
    let r = request(
        "POST",
        &format!("{}/v1/chat/completions", p.url()),
        Some(KEY_A),
        &[],
        user_says("auto", "hi").to_string(),
    )
    .await;
    assert_eq!(r.status, 200);

    let mib = |kib: u64| kib as f64 / 1024.0;
    let before = status_kib(pid, "VmRSS:");
    reset_peak(pid);
    let started = Instant::now();
    let (status, body) = chunked_upload(p.addr, "/v1/chat/completions", 50 << 20).await;
    let waited = started.elapsed();
    let one = mib(status_kib(pid, "VmHWM:").saturating_sub(before));
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert!(
        one <= 32.0 + 8.0,
        "one refused upload grew the peak RSS by {one:.1} MiB"
    );

    let before = status_kib(pid, "VmRSS:");
    reset_peak(pid);
    let uploads: Vec<_> = (0..4)
        .map(|_| tokio::spawn(chunked_upload(p.addr, "/v1/chat/completions", 50 << 20)))
        .collect();
    let mut statuses = Vec::new();
    for u in uploads {
        let (status, body) = u.await.unwrap();
        if status == 503 {
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["code"], "server_busy");
        }
        statuses.push(status);
    }
    let four = mib(status_kib(pid, "VmHWM:").saturating_sub(before));
    assert!(
        statuses.iter().all(|s| *s == 413 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "the budget refused some: {statuses:?}"
    );
    assert!(
        four <= 64.0 + 16.0,
        "four uploads at once grew the peak RSS by {four:.1} MiB"
    );
    scored(
        "11",
        "a chunked 50 MB upload against the 32 MiB cap; then 4 at once (64 MiB budget)",
        &format!("413; peak RSS +{one:.1} MiB for one, +{four:.1} MiB for four ({statuses:?})"),
        Score::Safe,
        Score::Safe,
        waited,
    );
}

// === 12. smaller ones ===

#[tokio::test]
async fn f19_request_timeout_bounds_a_stream_once_started() {
    // An event every 100 ms forever: never idle, but far past the 1 s request timeout.
    let primary = MockUpstream::start(|r| {
        let model = r.body["model"].as_str().unwrap_or("?");
        let mut steps = vec![role(model)];
        for _ in 0..200 {
            steps.extend(words(model, &["tick "]));
            steps.push(SseStep::Pause(Duration::from_millis(100)));
        }
        Reply::Sse(steps)
    })
    .await;
    let backup = MockUpstream::start(|r| answer(r, "unused")).await;
    let gw = primary_and_backup(&primary, "request_timeout = \"1s\"", &backup, "", "").await;
    let (r, waited) = timed_chat(&gw, &stream_body("hi")).await;
    let (score, outcome) = score_chat_stream(&r, ANSWER);
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let s = read_chat_stream(&r.body);
    assert!(
        s.error.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("request timeout")
    );
    scored(
        "12a",
        "a stream that never ends (an event every 100 ms), request_timeout 1 s",
        &format!("{outcome}, ended at the request timeout"),
        score,
        Score::Safe,
        waited,
    );
}

#[tokio::test]
async fn f20_a_content_policy_refusal_stays_an_error_with_the_providers_code() {
    let refusal = json!({"error": {"message": "Your request was flagged by the safety system",
                                   "type": "invalid_request_error", "code": "content_policy_violation"}});
    let body = refusal.to_string();
    let primary = MockUpstream::start(move |_| Reply::Json {
        status: 400,
        body: body.clone(),
        headers: vec![],
    })
    .await;
    let backup = MockUpstream::start(|r| answer(r, "must not be asked")).await;
    let gw = primary_and_backup(
        &primary,
        "apis = [\"chat\"]",
        &backup,
        "",
        "model_aliases = [\"auto\", \"claude-*\"]",
    )
    .await;
    let (r, waited) = timed_chat(&gw, &user_says("auto", "something")).await;
    let (score, outcome) = score_json(&r, ANSWER);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], "content_policy_violation");
    // The Anthropic front door: its shape, with the provider's code.
    let m = messages(
        &gw,
        KEY_A,
        &json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
                "messages": [{"role": "user", "content": "something"}]}),
    )
    .await;
    assert_eq!(m.status, 400, "{}", m.text());
    assert_eq!(m.json()["type"], "error");
    assert_eq!(m.json()["error"]["type"], "invalid_request_error");
    assert_eq!(m.json()["error"]["code"], "content_policy_violation");
    // The Responses front door: OpenAI's shape.
    let resp = responses(&gw, KEY_A, &json!({"model": "auto", "input": "something"})).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["error"]["code"], "content_policy_violation");
    assert_eq!(backup.count(), 0, "a refusal is not tried elsewhere");
    scored(
        "12b",
        "content-policy refusal (400 content_policy_violation)",
        &format!("{outcome} in each front door's shape"),
        score,
        Score::Safe,
        waited,
    );
}

// === faults users reported against other gateways (ANCHORS) ===

#[tokio::test]
async fn a01_an_overloaded_error_as_a_streams_first_event_falls_back() {
    // LiteLLM #6957: no fallback for streaming requests ("Overloaded" mid-stream).
    let primary = MockUpstream::start(|r| {
        Reply::Sse(vec![
            role(r.body["model"].as_str().unwrap_or("?")),
            SseStep::Data(
                json!({"error": {"message": "Overloaded", "type": "overloaded_error"}}).to_string(),
            ),
        ])
    })
    .await;
    let backup = MockUpstream::start(|r| answer(r, ANSWER)).await;
    let gw = primary_and_backup(&primary, "", &backup, "", "").await;
    let (r, waited) = timed_chat(&gw, &stream_body("hi")).await;
    let (score, outcome) = score_chat_stream(&r, ANSWER);
    assert!(
        !r.text().contains("Overloaded"),
        "nothing of the failed attempt leaks"
    );
    scored(
        "A1",
        "\"Overloaded\" error as a stream's first event",
        &format!("{outcome}, the next target"),
        score,
        Score::Pass,
        waited,
    );
}

/// A gateway whose Flash `primary` speaks Messages, with Pro on `backup` as the fallback, and a
/// streamed Messages request for a Claude model through it: the gateway, the response, and how
/// long it took.
async fn claude_stream_through(
    primary: &MockUpstream,
    backup: &MockUpstream,
) -> (TestGateway, TestResponse, std::time::Duration) {
    let toml = admin_toml()
        + &upstream_toml("primary", &primary.url(), &[FLASH], "apis = [\"messages\"]")
        + &upstream_toml("backup", &backup.url(), &[PRO], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH, PRO],
            &format!(
                "policy_config = {{ model = \"{FLASH}\", fallbacks = [\"{PRO}\"] }}\nmodel_aliases = [\"claude-*\"]"
            ),
        );
    let gw = start_gateway(&toml).await;
    let started = Instant::now();
    let r = messages(
        &gw,
        KEY_A,
        &json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
                "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let waited = started.elapsed();
    (gw, r, waited)
}

#[tokio::test]
async fn a02_no_200_or_message_start_leaks_when_every_target_fails_before_content() {
    // LiteLLM #38610: a 200 and message_start leaked, then an SSE error.
    let primary = MockUpstream::start(|_| {
        let mut steps = anthropic_stream_steps("claude-sonnet-4-5", &[]);
        steps.truncate(2); // message_start, ping
        steps.push(sse_event(
            "error",
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ));
        Reply::Sse(steps)
    })
    .await;
    let backup = MockUpstream::start(|_| Reply::error(500, "down too")).await;
    let (_gw, r, waited) = claude_stream_through(&primary, &backup).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["type"], "error");
    assert!(!r.text().contains("message_start"));
    scored(
        "A2",
        "Messages stream: message_start then an error, and the fallback fails too",
        "HTTP 502 in Anthropic's shape; no 200, no message_start leaked",
        Score::Safe,
        Score::Safe,
        waited,
    );
}

#[tokio::test]
async fn a03_a_messages_error_event_mid_stream_is_logged_failed_not_success() {
    // LiteLLM #24004: an SSE error on /v1/messages passed through and was logged as success.
    let primary = MockUpstream::start(|_| {
        let mut steps = anthropic_stream_steps("claude-sonnet-4-5", &["Hello"]);
        steps.truncate(4); // message_start, ping, block start, one delta
        steps.push(sse_event(
            "error",
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ));
        Reply::Sse(steps)
    })
    .await;
    let backup = MockUpstream::echo().await;
    let (gw, r, waited) = claude_stream_through(&primary, &backup).await;
    let events: Vec<Value> = sse_events(&r.body).iter().map(SseEvent::json).collect();
    assert_eq!(events.last().unwrap()["type"], "error", "{}", r.text());
    settled(&gw).await;
    let m = gw.metrics_text().await;
    assert_eq!(
        metric_sum(&m, "switchyard_streams_total", &[("outcome", "failed")]),
        1.0,
        "{m}"
    );
    scored(
        "A3",
        "Messages stream: an error event after content",
        "the error event reaches the client; logged failed",
        Score::Safe,
        Score::Safe,
        waited,
    );
}

#[tokio::test]
async fn a04_a_same_model_fallback_goes_to_another_upstream_not_the_one_that_failed() {
    // Higress #1776: a retry re-picked the key that had just failed.
    let broken = MockUpstream::start(|_| Reply::error(503, "overloaded")).await;
    let working = MockUpstream::start(|r| answer(r, ANSWER)).await;
    let toml = "[routing]\nupstream_choice = \"first\"\n".to_string()
        + &upstream_toml("a-broken", &broken.url(), &[FLASH], "")
        + &upstream_toml("b-working", &working.url(), &[FLASH], "")
        + &policy_toml("sr", "static-route")
        + &tenant_toml(
            "a",
            KEY_A,
            "sr",
            &[FLASH],
            &format!("policy_config = {{ model = \"{FLASH}\" }}"),
        );
    let gw = start_gateway(&toml).await;
    let (r, waited) = timed_chat(&gw, &user_says("auto", "hi")).await;
    let (score, outcome) = score_json(&r, ANSWER);
    assert_eq!(r.header("x-switchyard-upstream"), Some("b-working"));
    scored(
        "A4",
        "the model's first upstream fails (503), a second serves it",
        &format!("{outcome} from the other upstream"),
        score,
        Score::Pass,
        waited,
    );
}

#[tokio::test]
async fn a05_no_response_at_all_and_a_refused_connection_fall_back() {
    // FailoverBench S06: a provider that never answers held a gateway for 130 s.
    for (id, fault, hang) in [
        ("A5", "the provider never answers", true),
        ("A6", "connection refused", false),
    ] {
        let hung = MockUpstream::start(|_| Reply::Hang).await;
        let url = if hang {
            hung.url()
        } else {
            format!("http://{}/v1", refused_addr().await)
        };
        let backup = MockUpstream::start(|r| answer(r, ANSWER)).await;
        let toml = upstream_toml("primary", &url, &[FLASH], "first_byte_timeout = \"1s\"")
            + &upstream_toml("backup", &backup.url(), &[PRO], "")
            + &policy_toml("sr", "static-route")
            + &tenant_toml(
                "a",
                KEY_A,
                "sr",
                &[FLASH, PRO],
                &format!("policy_config = {{ model = \"{FLASH}\", fallbacks = [\"{PRO}\"] }}"),
            );
        let gw = start_gateway(&toml).await;
        let (r, waited) = timed_chat(&gw, &stream_body("hi")).await;
        let (score, outcome) = score_chat_stream(&r, ANSWER);
        scored(
            id,
            fault,
            &format!("{outcome}, the next target"),
            score,
            Score::Pass,
            waited,
        );
    }
}
