//! Harness for the integration tests: the gateway started in-process on an ephemeral loopback
//! port, programmable mock upstreams that are real HTTP servers, paths to the policy components
//! built from source, and a small HTTP client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use switchyard_gateway::{Config, Gateway};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The workspace root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Path of a policy component built by `scripts/build-policies.sh`. Panics with instructions when
/// it is missing: the tests never run against stale or stubbed components silently.
pub fn component(name: &str) -> PathBuf {
    let path = repo_root()
        .join("target/policies")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the components with scripts/build-policies.sh",
        path.display()
    );
    path
}

/// The demo key's SHA-256 and two more test keys.
pub const KEY_A: &str = "sk-test-tenant-a";
pub const KEY_B: &str = "sk-test-tenant-b";
/// The values of metric `name`'s series that carry all `labels`, in a Prometheus text exposition.
pub fn metric_series<'a>(
    text: &'a str,
    name: &'a str,
    labels: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = f64> + 'a {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(move |line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
}

/// The value of the first series of metric `name` that carries all `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric_series(text, name, labels).next()
}

/// The hex SHA-256 of a key.
pub fn key_hash(key: &str) -> String {
    switchyard_gateway::hash_key(key)
}

// === waiting ===

/// Polls `check` every 20 ms until it holds; panics naming `what` once `timeout` has passed. For
/// waiting on an effect the test can observe, instead of sleeping for a guessed while.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// === mock upstreams ===

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request's path (no query), e.g. `/v1/chat/completions` or `/v1/messages`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body exactly as it arrived.
    pub raw: Bytes,
}

/// A step of a scripted SSE response.
#[derive(Clone)]
pub enum SseStep {
    /// Send this `data:` payload as one event.
    Data(String),
    /// Send raw bytes (comments, partial frames).
    Raw(String),
    /// Wait this long.
    Pause(Duration),
    /// Wait until the test notifies.
    WaitFor(Arc<Notify>),
    /// Break the connection (the body errors, so the client sees it cut).
    Cut,
}

/// How the mock answers one request.
#[derive(Clone)]
pub enum Reply {
    /// A complete response.
    Json {
        status: u16,
        body: String,
        headers: Vec<(&'static str, String)>,
    },
    /// A server-sent event stream.
    Sse(Vec<SseStep>),
    /// Never answer (hold the connection open).
    Hang,
    /// Answer with the inner reply after a delay.
    Delayed(Duration, Box<Reply>),
}

impl Reply {
    /// A 200 chat completion for `model` with the given usage.
    pub fn completion(model: &str, text: &str) -> Reply {
        Reply::Json {
            status: 200,
            body: completion_body(model, text).to_string(),
            headers: vec![],
        }
    }

    /// An error status with an OpenAI-style body.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::Json {
            status,
            body: json!({"error": {"message": message, "type": "api_error", "code": null}})
                .to_string(),
            headers: vec![],
        }
    }

    /// A normal stream of `words` for `model`, ending with usage and `[DONE]`.
    pub fn stream(model: &str, words: &[&str]) -> Reply {
        let mut steps = vec![SseStep::Data(
            chunk(model, json!({"role": "assistant", "content": ""}), None).to_string(),
        )];
        for w in words {
            steps.push(SseStep::Data(
                chunk(model, json!({"content": w}), None).to_string(),
            ));
        }
        steps.push(SseStep::Data(
            chunk(model, json!({}), Some("stop")).to_string(),
        ));
        steps.push(SseStep::Data(json!({"id": "c", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage_json()}).to_string()));
        steps.push(SseStep::Raw("data: [DONE]\n\n".into()));
        Reply::Sse(steps)
    }
}

/// A usage object with DeepSeek's cache fields: 100 prompt tokens (60 cache hits), 20 output.
pub fn usage_json() -> Value {
    json!({"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
           "prompt_cache_hit_tokens": 60, "prompt_cache_miss_tokens": 40})
}

/// A chat completion body.
pub fn completion_body(model: &str, text: &str) -> Value {
    json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
           "usage": usage_json()})
}

/// One stream chunk.
pub fn chunk(model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": model,
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A mock OpenAI-compatible upstream: a real HTTP server on loopback.
pub struct MockUpstream {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    /// The accept loop, stopped when the mock is dropped (connections already open finish).
    accept: tokio::task::AbortHandle,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl MockUpstream {
    /// Starts a mock answering each request with `handler`.
    pub async fn start(
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> MockUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let addr = listener.local_addr().expect("mock addr");
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let recorded = requests.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (handler, recorded) = (handler.clone(), recorded.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (handler, recorded) = (handler.clone(), recorded.clone());
                        async move {
                            let headers = req.headers().clone();
                            let path = req.uri().path().to_owned();
                            let bytes = req
                                .into_body()
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                            let probe = headers
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .is_some_and(|id| id.starts_with(CACHE_PROBE));
                            let rec = Recorded {
                                path,
                                headers,
                                body,
                                raw: bytes,
                            };
                            let reply = handler(&rec);
                            if !probe {
                                recorded.lock().unwrap().push(rec);
                            }
                            Ok::<_, Infallible>(respond(reply).await)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        MockUpstream {
            addr,
            requests,
            accept: accept.abort_handle(),
        }
    }

    /// A mock that answers every request with a completion naming the model it was sent.
    pub async fn echo() -> MockUpstream {
        Self::start(|r| Reply::completion(r.body["model"].as_str().unwrap_or("?"), "mock reply"))
            .await
    }

    /// The base URL to put in a config (`http://127.0.0.1:PORT/v1`).
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests received so far (not counting the cache probes of
    /// [`TestGateway::wait_until_cached`]).
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// How many requests it received (not counting cache probes).
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

type MockBody = UnsyncBoxBody<Bytes, std::io::Error>;

async fn respond(mut reply: Reply) -> Response<MockBody> {
    while let Reply::Delayed(delay, inner) = reply {
        tokio::time::sleep(delay).await;
        reply = *inner;
    }
    match reply {
        Reply::Delayed(..) => unreachable!("unwrapped above"),
        Reply::Json {
            status,
            body,
            headers,
        } => {
            let mut r = Response::new(
                Full::new(Bytes::from(body))
                    .map_err(|e: Infallible| match e {})
                    .boxed_unsync(),
            );
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            for (k, v) in headers {
                r.headers_mut().insert(k, v.parse().unwrap());
            }
            r
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Reply::Sse(steps) => {
            let body = StreamBody::new(stream::unfold(steps.into_iter(), |mut steps| async move {
                loop {
                    match steps.next()? {
                        SseStep::Data(d) => {
                            return Some((
                                Ok(Frame::data(Bytes::from(format!("data: {d}\n\n")))),
                                steps,
                            ));
                        }
                        SseStep::Raw(r) => return Some((Ok(Frame::data(Bytes::from(r))), steps)),
                        SseStep::Pause(d) => tokio::time::sleep(d).await,
                        SseStep::WaitFor(n) => n.notified().await,
                        SseStep::Cut => return Some((Err(std::io::Error::other("cut")), steps)),
                    }
                }
            }));
            let mut r = Response::new(body.boxed_unsync());
            r.headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            r
        }
    }
}

/// An address where nothing listens (connections are refused).
pub async fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

// === the gateway ===

/// A gateway running in-process on an ephemeral port.
pub struct TestGateway {
    pub gateway: Gateway,
    pub url: String,
}

/// Starts a gateway on `toml` (relative paths resolve against the repository root).
pub async fn start_gateway(toml: &str) -> TestGateway {
    try_start_gateway(toml)
        .await
        .unwrap_or_else(|e| panic!("gateway failed to start: {e}"))
}

/// Starts a gateway, or returns why it could not start.
pub async fn try_start_gateway(toml: &str) -> Result<TestGateway, String> {
    let mut config = Config::parse(toml, "test.toml", &repo_root()).map_err(|e| e.to_string())?;
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.watch = false;
    let gateway = Gateway::start(config, None)
        .await
        .map_err(|e| e.to_string())?;
    let url = format!("http://{}", gateway.local_addr());
    Ok(TestGateway { gateway, url })
}

/// The `x-request-id` of [`TestGateway::wait_until_cached`]'s probes. The gateway passes a
/// request's id on to the upstream, and mock upstreams leave requests with this id out of
/// [`MockUpstream::requests`] and [`MockUpstream::count`]: a probe that misses goes upstream, and
/// must not change the counts a test asserts.
pub const CACHE_PROBE: &str = "switchyard-test-cache-probe";

impl TestGateway {
    /// Waits until tenant `key`'s cache entry for `body` is in the gateway's cache: a response is
    /// stored off its path, after it is sent. The probes are read-only look-ups (the
    /// `x-switchyard-cache-mode` hint, which the `static-route` test policy follows), so they
    /// store nothing, and they are invisible to mock upstreams ([`CACHE_PROBE`]).
    pub async fn wait_until_cached(&self, key: &str, body: &Value) {
        let probe = [
            ("x-switchyard-cache-mode", "read-only"),
            ("x-request-id", CACHE_PROBE),
        ];
        eventually(
            "the response to be stored in the cache",
            Duration::from_secs(10),
            || async {
                chat_with(self, key, &probe, body)
                    .await
                    .header("x-switchyard-cache")
                    == Some("hit")
            },
        )
        .await;
    }
}

/// A TOML `[upstreams.NAME]` section pointing at `url`.
///
/// Each target is tried once (`retries = 0`) unless `extra` sets `retries`: most tests count
/// attempts per target, and the default of one retry has tests of its own.
pub fn upstream_toml(name: &str, url: &str, models: &[&str], extra: &str) -> String {
    let models = models
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let retries = if extra.contains("retries") {
        ""
    } else {
        "retries = 0\n"
    };
    format!("[upstreams.{name}]\nbase_url = \"{url}\"\nmodels = [{models}]\n{retries}{extra}\n")
}

/// A TOML `[tenants.NAME]` section with `key`, `policy`, the given models and extra lines.
pub fn tenant_toml(name: &str, key: &str, policy: &str, models: &[&str], extra: &str) -> String {
    let models = models
        .iter()
        .map(|m| format!("\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[tenants.{name}]\napi_keys_sha256 = [\"{}\"]\npolicy = \"{policy}\"\nmodels = [{models}]\n{extra}\n",
        key_hash(key)
    )
}

/// A TOML `[policies.NAME]` section for a component built from source.
pub fn policy_toml(name: &str, component_name: &str) -> String {
    format!(
        "[policies.{name}]\npath = \"{}\"\n",
        component(component_name).display()
    )
}

// === a small client ===

/// A response read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A client that keeps its connections open between requests, as an SDK does (the helpers here
/// open a connection per request, which suits tests but would dominate a latency measurement).
/// Use it on one runtime: its idle connections belong to the runtime that opened them.
pub struct KeepAliveClient(Client<HttpConnector, Full<Bytes>>);

impl Default for KeepAliveClient {
    fn default() -> Self {
        KeepAliveClient(client())
    }
}

impl KeepAliveClient {
    /// `POST {base_url}/v1/chat/completions` with `body`, read whole.
    pub async fn chat(&self, base_url: &str, key: &str, body: Bytes) -> TestResponse {
        let url = format!("{base_url}/v1/chat/completions");
        let req = build_request("POST", &url, Some(key), &[], body);
        let response = self
            .0
            .request(req)
            .await
            .expect("request reaches the gateway");
        read_whole(response).await
    }
}

/// A JSON request with an optional bearer key and extra headers.
fn build_request(
    method: &str,
    url: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(body.into())).unwrap()
}

/// Reads a response's body whole.
async fn read_whole(response: Response<Incoming>) -> TestResponse {
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    TestResponse {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// Sends a request and returns its head with the body still streaming.
pub async fn send(
    method: &str,
    url: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<Incoming> {
    client()
        .request(build_request(method, url, key, headers, body))
        .await
        .expect("request reaches the gateway")
}

/// Sends a request and reads the whole response.
pub async fn request(
    method: &str,
    url: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> TestResponse {
    read_whole(send(method, url, key, headers, body).await).await
}

/// `POST /v1/chat/completions` with `body`.
pub async fn chat(gw: &TestGateway, key: &str, body: &Value) -> TestResponse {
    chat_with(gw, key, &[], body).await
}

/// `POST /v1/chat/completions` with extra headers.
pub async fn chat_with(
    gw: &TestGateway,
    key: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> TestResponse {
    request(
        "POST",
        &format!("{}/v1/chat/completions", gw.url),
        Some(key),
        headers,
        body.to_string(),
    )
    .await
}

/// A simple chat body.
pub fn user_says(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// Reads a whole SSE body and returns its frames' data payloads.
pub fn sse_data(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|frame| {
            let data: Vec<&str> = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

// === the Anthropic Messages and Responses front doors ===

/// `POST /v1/messages` with `body`.
pub async fn messages(gw: &TestGateway, key: &str, body: &Value) -> TestResponse {
    messages_with(gw, key, &[], body).await
}

/// `POST /v1/messages` with extra headers.
pub async fn messages_with(
    gw: &TestGateway,
    key: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> TestResponse {
    request(
        "POST",
        &format!("{}/v1/messages", gw.url),
        Some(key),
        headers,
        body.to_string(),
    )
    .await
}

/// `POST /v1/responses` with `body`.
pub async fn responses(gw: &TestGateway, key: &str, body: &Value) -> TestResponse {
    request(
        "POST",
        &format!("{}/v1/responses", gw.url),
        Some(key),
        &[],
        body.to_string(),
    )
    .await
}

/// One server-sent event: its `event:` name, if it had one, and its `data:` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    /// The payload as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", self.data))
    }
}

/// Reads a whole SSE body into its events, keeping `event:` names. Comment-only frames
/// (keep-alives) are left out.
pub fn sse_events(body: &[u8]) -> Vec<SseEvent> {
    String::from_utf8_lossy(body)
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|frame| {
            let mut event = None;
            let mut data = Vec::new();
            for line in frame.lines() {
                let field = |name: &str| {
                    line.strip_prefix(name)
                        .map(|v| v.strip_prefix(' ').unwrap_or(v).to_owned())
                };
                if let Some(v) = field("event:") {
                    event = Some(v);
                } else if let Some(v) = field("data:") {
                    data.push(v);
                }
            }
            (event.is_some() || !data.is_empty()).then(|| SseEvent {
                event,
                data: data.join("\n"),
            })
        })
        .collect()
}

/// One SSE frame with an `event:` line, as Anthropic and Responses servers send them.
pub fn sse_event(event: &str, data: &Value) -> SseStep {
    SseStep::Raw(format!("event: {event}\ndata: {data}\n\n"))
}

/// Anthropic usage: 10 uncached input tokens, 90 read from the prompt cache, 5 written to it, 42
/// output tokens (in chat terms: 105 prompt tokens, 90 of them cache hits).
pub fn anthropic_usage_json() -> Value {
    json!({"input_tokens": 10, "cache_read_input_tokens": 90,
           "cache_creation_input_tokens": 5, "output_tokens": 42})
}

/// A whole Anthropic Message from `model` saying `text`.
pub fn anthropic_message(model: &str, text: &str) -> Value {
    json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
           "content": [{"type": "text", "text": text}],
           "stop_reason": "end_turn", "stop_sequence": null, "usage": anthropic_usage_json()})
}

/// An Anthropic Messages stream of `words` for `model`, every frame with its `event:` line:
/// message_start, ping, one text block, message_delta (with [`anthropic_usage_json`]'s output
/// tokens), message_stop.
pub fn anthropic_stream_steps(model: &str, words: &[&str]) -> Vec<SseStep> {
    let start_usage = json!({"input_tokens": 10, "cache_read_input_tokens": 90,
                             "cache_creation_input_tokens": 5, "output_tokens": 1});
    let mut steps = vec![
        sse_event(
            "message_start",
            &json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message",
                "role": "assistant", "model": model, "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": start_usage}}),
        ),
        sse_event("ping", &json!({"type": "ping"})),
        sse_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for w in words {
        steps.push(sse_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": w}}),
        ));
    }
    steps.push(sse_event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    steps.push(sse_event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": 42}}),
    ));
    steps.push(sse_event("message_stop", &json!({"type": "message_stop"})));
    steps
}

/// Responses usage: 100 input tokens (60 cached), 20 output tokens.
pub fn responses_usage_json() -> Value {
    json!({"input_tokens": 100, "input_tokens_details": {"cached_tokens": 60},
           "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0},
           "total_tokens": 120})
}

/// A whole Response object from `model` saying `text` (`usage: null` when `usage` is false, as
/// in a stream's lifecycle events).
pub fn response_object(model: &str, status: &str, output: Vec<Value>, usage: bool) -> Value {
    json!({"id": "resp_mock", "object": "response", "created_at": 1, "status": status,
           "error": null, "incomplete_details": null, "instructions": null,
           "max_output_tokens": null, "model": model, "output": output,
           "parallel_tool_calls": true, "previous_response_id": null, "store": false,
           "tool_choice": "auto", "tools": [], "text": {"format": {"type": "text"}},
           "usage": if usage { responses_usage_json() } else { Value::Null }})
}

/// A Responses message output item saying `text`.
pub fn response_message_item(text: &str) -> Value {
    json!({"id": "msg_mock", "type": "message", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

/// The canonical Responses event sequence for `words` from `model` (event lines and sequence
/// numbers from 0): created, in_progress, one message item, completed with usage.
pub fn responses_stream_steps(model: &str, words: &[&str]) -> Vec<SseStep> {
    let text: String = words.concat();
    let mut events = vec![
        json!({"type": "response.created", "response": response_object(model, "in_progress", vec![], false)}),
        json!({"type": "response.in_progress", "response": response_object(model, "in_progress", vec![], false)}),
        json!({"type": "response.output_item.added", "output_index": 0,
               "item": {"id": "msg_mock", "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
        json!({"type": "response.content_part.added", "item_id": "msg_mock", "output_index": 0,
               "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
    ];
    for w in words {
        events.push(
            json!({"type": "response.output_text.delta", "item_id": "msg_mock",
                           "output_index": 0, "content_index": 0, "delta": w}),
        );
    }
    events.push(
        json!({"type": "response.output_text.done", "item_id": "msg_mock",
                       "output_index": 0, "content_index": 0, "text": text}),
    );
    events.push(
        json!({"type": "response.output_item.done", "output_index": 0,
                       "item": response_message_item(&text)}),
    );
    events.push(json!({"type": "response.completed",
                       "response": response_object(model, "completed", vec![response_message_item(&text)], true)}));
    events
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e["sequence_number"] = json!(i);
            let ty = e["type"].as_str().unwrap_or_default().to_owned();
            sse_event(&ty, &e)
        })
        .collect()
}

impl TestGateway {
    /// [`TestGateway::wait_until_cached`] for a request to `path` (`/v1/messages`,
    /// `/v1/responses`...).
    pub async fn wait_until_cached_at(&self, path: &str, key: &str, body: &Value) {
        let probe = [
            ("x-switchyard-cache-mode", "read-only"),
            ("x-request-id", CACHE_PROBE),
        ];
        let url = format!("{}{path}", self.url);
        eventually(
            "the response to be stored in the cache",
            Duration::from_secs(10),
            || async {
                request("POST", &url, Some(key), &probe, body.to_string())
                    .await
                    .header("x-switchyard-cache")
                    == Some("hit")
            },
        )
        .await;
    }
}

// === the real binary ===

/// The gateway binary under test: `switchyard-under-test`, host/cli's source built as a binary
/// target of this package, so that Cargo builds it, from the sources of this very build, before
/// it builds the integration tests and benches that run it.
///
/// Cargo names it in `CARGO_BIN_EXE_switchyard-under-test` when it compiles those targets and in
/// the environment it runs them in; not when it compiles this library, so `env!` cannot be used
/// here and the variable is read at run time. A test executable started by hand, without Cargo,
/// finds the binary beside it (`target/<profile>/deps/..`).
pub fn binary() -> PathBuf {
    const NAME: &str = "switchyard-under-test";
    if let Some(path) = std::env::var_os(format!("CARGO_BIN_EXE_{NAME}")) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps")
        .join(NAME);
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test -p switchyard-tests`, which builds it",
        bin.display()
    );
    bin
}

/// A `switchyard` process with its stderr captured.
pub struct Process {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<String>>,
}

impl Process {
    /// Starts `switchyard serve` with `args` (JSON logs) and waits until it listens. Both
    /// listeners get ephemeral ports (the embedded default's admin listener too).
    pub fn serve(args: &[&str], envs: &[(&str, &str)]) -> Process {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(binary());
        cmd.args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(args);
        cmd.env_remove("SWITCHYARD_CONFIG");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn switchyard");
        let stderr = child.stderr.take().unwrap();
        let logs: Arc<Mutex<String>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == "switchyard listening"
                    && let Some(addr) = v["addr"]
                        .as_str()
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                {
                    let _ = tx.send(addr);
                }
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "switchyard did not start; its log:\n{}",
                    logs.lock().unwrap()
                );
            }
        };
        Process { child, addr, logs }
    }

    /// The base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Sends a signal (`TERM`, `INT`, `HUP`...).
    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{name}");
    }

    /// Waits up to `timeout` for the process to exit; returns whether it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The admin listener's address, from the log line that announces it.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.logs().lines().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["message"] == "admin listener")
                .then(|| v["admin"].as_str()?.parse().ok())
                .flatten()
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === gateways run from files on disk (reload tests) ===

/// The admin token used by tests, and its hash for `[admin] token_sha256`.
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

/// A scratch directory under the system temp dir (`tempfile`), removed on drop.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// A fresh, empty directory named `switchyard-<label>-<random>`.
    pub fn new(label: &str) -> TempDir {
        TempDir(
            tempfile::Builder::new()
                .prefix(&format!("switchyard-{label}-"))
                .tempdir()
                .expect("create temp dir"),
        )
    }

    /// A path inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// Replaces `path` atomically: write a temporary file next to it, then rename over it.
pub fn replace_file(path: &std::path::Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The `[server]` and `[admin]` lines for a watched, file-based test gateway.
pub fn watched_server_toml(cache_dir: &std::path::Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nwatch_debounce_ms = 50\nartifact_cache_dir = \"{}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_sha256 = \"{}\"\n\n",
        cache_dir.display(),
        key_hash(ADMIN_TOKEN)
    )
}

/// Starts a gateway from the config file at `path`, watching it and its policies.
pub async fn start_gateway_from_file(path: &std::path::Path) -> TestGateway {
    let config = Config::load(path).unwrap_or_else(|e| panic!("config: {e}"));
    let gateway = Gateway::start(config, Some(path.to_path_buf()))
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let url = format!("http://{}", gateway.local_addr());
    TestGateway { gateway, url }
}

impl TestGateway {
    /// `GET` an admin endpoint with the test admin token; the status must be 200.
    async fn admin_ok(&self, path: &str) -> TestResponse {
        let addr = self
            .gateway
            .admin_addr()
            .expect("admin listener configured");
        let r = request(
            "GET",
            &format!("http://{addr}{path}"),
            Some(ADMIN_TOKEN),
            &[],
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r
    }

    /// `GET /metrics` on the admin listener: the Prometheus text.
    pub async fn metrics_text(&self) -> String {
        self.admin_ok("/metrics").await.text()
    }

    /// `GET` an admin endpoint with the test admin token: its JSON.
    pub async fn admin_get(&self, path: &str) -> Value {
        self.admin_ok(path).await.json()
    }

    /// The snapshot generation (effective reloads so far).
    pub async fn generation(&self) -> u64 {
        self.admin_get("/admin/config").await["generation"]
            .as_u64()
            .unwrap()
    }

    /// The `x-switchyard-policy` header the gateway currently sends for `policy`.
    pub async fn policy_header(&self, policy: &str) -> String {
        let v = self.admin_get("/admin/policies").await;
        v["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == policy)
            .unwrap()["header"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Waits up to `timeout` until `check` holds for the admin view of `policy`.
    pub async fn wait_for_policy(
        &self,
        policy: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let v = self.admin_get("/admin/policies").await;
            let p = v["policies"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == policy)
                .cloned()
                .unwrap_or(Value::Null);
            if check(&p) {
                return p;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting on policy {policy}: {p}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// === a real Redis ===

/// A `redis-server` on a free loopback port, stopped on drop.
pub struct RedisServer {
    child: std::process::Child,
    pub port: u16,
}

impl RedisServer {
    /// Starts one (installed by `scripts/install-toolchain.sh`).
    pub fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run scripts/install-toolchain.sh");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, port }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one command on a new connection and returns the reply: enough of a client to look
    /// at what the gateways stored.
    pub fn command(&self, args: &[&str]) -> Resp {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("connect to redis on port {}: {e}", self.port));
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request += &format!("${}\r\n{arg}\r\n", arg.len());
        }
        stream.write_all(request.as_bytes()).expect("send to redis");
        read_resp(&mut std::io::BufReader::new(stream)).expect("read redis's reply")
    }

    /// The keys matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        match self.command(&["KEYS", pattern]) {
            Resp::Array(Some(items)) => items
                .into_iter()
                .filter_map(|item| match item {
                    Resp::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                    _ => None,
                })
                .collect(),
            other => panic!("KEYS {pattern}: {other:?}"),
        }
    }

    /// The number of fields of the hash at `key` (0 if there is none).
    pub fn hlen(&self, key: &str) -> i64 {
        match self.command(&["HLEN", key]) {
            Resp::Int(n) => n,
            other => panic!("HLEN {key}: {other:?}"),
        }
    }

    /// Stops it now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis reply (RESP2).
#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

fn read_resp(r: &mut impl std::io::BufRead) -> std::io::Result<Resp> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{line:?}"));
    let (kind, rest) = (line.get(..1).ok_or_else(invalid)?, &line[1..]);
    let number = || rest.parse::<i64>().map_err(|_| invalid());
    Ok(match kind {
        "+" => Resp::Simple(rest.to_owned()),
        "-" => Resp::Error(rest.to_owned()),
        ":" => Resp::Int(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Resp::Bulk(None),
            Ok(n) => {
                let mut bytes = vec![0; n + 2];
                r.read_exact(&mut bytes)?;
                bytes.truncate(n);
                Resp::Bulk(Some(bytes))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Resp::Array(None),
            Ok(n) => Resp::Array(Some(
                (0..n)
                    .map(|_| read_resp(r))
                    .collect::<std::io::Result<_>>()?,
            )),
        },
        _ => return Err(invalid()),
    })
}
