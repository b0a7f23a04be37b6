//! The mock upstream: an OpenAI-compatible `POST /v1/chat/completions` that answers at once with a
//! fixed completion (about the size of the shared rig's, 0.7 KB, with DeepSeek-style `usage`), or,
//! when the body asks for `"stream": true`, with an SSE stream of 11 events and `[DONE]`, each a
//! separate write, optionally spaced by a delay (for open-stream and inter-chunk measurements).
//! `POST /v1/messages` and `POST /v1/responses` give the same answer in Anthropic's and the
//! Responses API's shapes, so a gateway can pass those dialects through or translate them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// How the mock behaves.
#[derive(Debug, Clone, Copy)]
pub struct MockOptions {
    /// Delay before each SSE event after the first.
    pub chunk_delay: Duration,
}

const USAGE: &str = r#""usage":{"prompt_tokens":412,"completion_tokens":64,"total_tokens":476,"prompt_tokens_details":{"cached_tokens":384},"prompt_cache_hit_tokens":384,"prompt_cache_miss_tokens":28}"#;

fn completion() -> Bytes {
    Bytes::from(format!(
        r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":1767225600,"model":"deepseek-v4-flash","choices":[{{"index":0,"message":{{"role":"assistant","content":"{TEXT}"}},"finish_reason":"stop"}}],{USAGE},"system_fingerprint":"fp_bench"}}"#
    ))
}

const TEXT: &str = "This is a fixed mock response used to measure proxy overhead only; it is about as long as a short answer from a model, with usage including prompt-cache hits.";
const WORDS: [&str; 9] = [
    "This ",
    "is ",
    "a ",
    "fixed ",
    "streamed ",
    "mock ",
    "response ",
    "for ",
    "benchmarks.",
];

/// The answer in each dialect: whole, and as its stream's events.
#[derive(Clone)]
struct Answers {
    chat: (Bytes, Vec<Bytes>),
    messages: (Bytes, Vec<Bytes>),
    responses: (Bytes, Vec<Bytes>),
}

fn messages_answer() -> (Bytes, Vec<Bytes>) {
    let usage = r#"{"input_tokens":28,"cache_read_input_tokens":384,"cache_creation_input_tokens":0,"output_tokens":64}"#;
    let whole = Bytes::from(format!(
        r#"{{"id":"msg_bench","type":"message","role":"assistant","model":"deepseek-v4-flash","content":[{{"type":"text","text":"{TEXT}"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{usage}}}"#
    ));
    let event = |kind: &str, data: String| Bytes::from(format!("event: {kind}\ndata: {data}\n\n"));
    let mut events = vec![
        event(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"deepseek-v4-flash","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":28,"cache_read_input_tokens":384,"cache_creation_input_tokens":0,"output_tokens":1}}}"#.to_string(),
        ),
        event(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
                .into(),
        ),
    ];
    for word in WORDS {
        events.push(event(
            "content_block_delta",
            format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{word}"}}}}"#),
        ));
    }
    events.push(event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#.into(),
    ));
    events.push(event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":64}}"#.into()));
    events.push(event("message_stop", r#"{"type":"message_stop"}"#.into()));
    (whole, events)
}

fn responses_answer() -> (Bytes, Vec<Bytes>) {
    let usage = r#"{"input_tokens":412,"input_tokens_details":{"cached_tokens":384},"output_tokens":64,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":476}"#;
    let response = |status: &str, output: &str, usage: &str| {
        format!(
            r#"{{"id":"resp_bench","object":"response","created_at":1767225600,"status":"{status}","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"deepseek-v4-flash","output":[{output}],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{{"effort":null,"summary":null}},"store":false,"temperature":1.0,"text":{{"format":{{"type":"text"}}}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":{usage},"user":null,"metadata":{{}}}}"#
        )
    };
    let item = format!(
        r#"{{"id":"msg_bench","type":"message","status":"completed","role":"assistant","content":[{{"type":"output_text","text":"{TEXT}","annotations":[],"logprobs":[]}}]}}"#
    );
    let whole = Bytes::from(response("completed", &item, usage));
    let mut seq = 0;
    let mut event = |kind: &str, fields: String| {
        let b = Bytes::from(format!(
            "event: {kind}\ndata: {{\"type\":\"{kind}\",\"sequence_number\":{seq},{fields}}}\n\n"
        ));
        seq += 1;
        b
    };
    let started = response("in_progress", "", "null");
    let mut events = vec![
        event("response.created", format!(r#""response":{started}"#)),
        event("response.in_progress", format!(r#""response":{started}"#)),
        event("response.output_item.added", r#""output_index":0,"item":{"id":"msg_bench","type":"message","status":"in_progress","role":"assistant","content":[]}"#.into()),
        event("response.content_part.added", r#""item_id":"msg_bench","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[],"logprobs":[]}"#.into()),
    ];
    for word in WORDS {
        events.push(event(
            "response.output_text.delta",
            format!(r#""item_id":"msg_bench","output_index":0,"content_index":0,"delta":"{word}","logprobs":[]"#),
        ));
    }
    let text: String = WORDS.concat();
    events.push(event("response.output_text.done", format!(r#""item_id":"msg_bench","output_index":0,"content_index":0,"text":"{text}","logprobs":[]"#)));
    events.push(event(
        "response.output_item.done",
        format!(r#""output_index":0,"item":{item}"#),
    ));
    events.push(event(
        "response.completed",
        format!(r#""response":{}"#, response("completed", &item, usage)),
    ));
    (whole, events)
}

fn events() -> Vec<Bytes> {
    let chunk = |delta: &str, finish: &str, usage: &str| {
        Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"deepseek-v4-flash\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]{usage}}}\n\n"
        ))
    };
    let mut out = vec![chunk(r#"{"role":"assistant","content":""}"#, "null", "")];
    for word in WORDS {
        out.push(chunk(&format!(r#"{{"content":"{word}"}}"#), "null", ""));
    }
    out.push(chunk("{}", r#""stop""#, &format!(",{USAGE}")));
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

/// Binds and serves until the process exits.
pub async fn serve(listen: SocketAddr, options: MockOptions) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("mock listening on {}", listener.local_addr()?);
    let answers = Answers {
        chat: (completion(), events()),
        messages: messages_answer(),
        responses: responses_answer(),
    };
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let answers = answers.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (completion, events) = match req.uri().path() {
                    "/v1/messages" => answers.messages.clone(),
                    "/v1/responses" => answers.responses.clone(),
                    _ => answers.chat.clone(),
                };
                async move { Ok::<_, Infallible>(answer(req, completion, events, options).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    completion: Bytes,
    events: Vec<Bytes>,
    options: MockOptions,
) -> Response<Body> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let streaming = memchr::memmem::find(&body, b"\"stream\":true").is_some()
        || memchr::memmem::find(&body, b"\"stream\": true").is_some();
    if !streaming {
        return Response::builder()
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(completion).boxed_unsync())
            .expect("static response");
    }
    let delay = options.chunk_delay;
    let stream = futures_util::stream::iter(events.into_iter().enumerate()).then(
        move |(i, event)| async move {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, Infallible>(Frame::data(event))
        },
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(StreamBody::new(stream).boxed_unsync())
        .expect("static response")
}
