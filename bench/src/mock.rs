//! The mock upstream: an OpenAI-compatible `POST /v1/chat/completions` that answers at once with a
//! fixed completion (about the size of the shared rig's, 0.7 KB, with DeepSeek-style `usage`), or,
//! when the body asks for `"stream": true`, with an SSE stream of 11 events and `[DONE]`, each a
//! separate write, optionally spaced by a delay (for open-stream and inter-chunk measurements).

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
        r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":1767225600,"model":"deepseek-v4-flash","choices":[{{"index":0,"message":{{"role":"assistant","content":"This is a fixed mock response used to measure proxy overhead only; it is about as long as a short answer from a model, with usage including prompt-cache hits."}},"finish_reason":"stop"}}],{USAGE},"system_fingerprint":"fp_bench"}}"#
    ))
}

fn events() -> Vec<Bytes> {
    let chunk = |delta: &str, finish: &str, usage: &str| {
        Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"deepseek-v4-flash\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]{usage}}}\n\n"
        ))
    };
    let mut out = vec![chunk(r#"{"role":"assistant","content":""}"#, "null", "")];
    for word in [
        "This ",
        "is ",
        "a ",
        "fixed ",
        "streamed ",
        "mock ",
        "response ",
        "for ",
        "benchmarks.",
    ] {
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
    let completion = completion();
    let events = events();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (completion, events) = (completion.clone(), events.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (completion, events) = (completion.clone(), events.clone());
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
