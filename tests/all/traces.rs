//! OpenTelemetry traces: the real binary exports spans over OTLP/HTTP to an in-process
//! collector, with the request's shape (decision, cache, each upstream attempt) and the W3C
//! trace context carried from the caller to the upstream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use serde_json::json;
use switchyard_tests::*;
use tokio::net::TcpListener;

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: i32,
    error: bool,
    attributes: HashMap<String, String>,
    service: String,
}

/// An OTLP/HTTP collector on loopback that decodes and keeps every span it is sent.
struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    content_types: Arc<Mutex<Vec<String>>>,
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

impl Collector {
    async fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans: Arc<Mutex<Vec<ReceivedSpan>>> = Arc::default();
        let content_types: Arc<Mutex<Vec<String>>> = Arc::default();
        let (sink, types) = (spans.clone(), content_types.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (sink, types) = (sink.clone(), types.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (sink, types) = (sink.clone(), types.clone());
                        async move {
                            assert_eq!(req.uri().path(), "/v1/traces");
                            if let Some(ct) = req.headers().get("content-type") {
                                types
                                    .lock()
                                    .unwrap()
                                    .push(ct.to_str().unwrap_or("").to_owned());
                            }
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let export = ExportTraceServiceRequest::decode(body).unwrap();
                            let mut out = sink.lock().unwrap();
                            for resource in export.resource_spans {
                                let service = resource
                                    .resource
                                    .iter()
                                    .flat_map(|r| &r.attributes)
                                    .find(|a| a.key == "service.name")
                                    .map(|a| text(&a.value))
                                    .unwrap_or_default();
                                for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                                    out.push(ReceivedSpan {
                                        trace_id: hex(&span.trace_id),
                                        span_id: hex(&span.span_id),
                                        parent_span_id: hex(&span.parent_span_id),
                                        name: span.name.clone(),
                                        kind: span.kind,
                                        error: span
                                            .status
                                            .as_ref()
                                            .is_some_and(|s| s.code == StatusCode::Error as i32),
                                        attributes: span
                                            .attributes
                                            .iter()
                                            .map(|a| (a.key.clone(), text(&a.value)))
                                            .collect(),
                                        service: service.clone(),
                                    });
                                }
                            }
                            let reply = ExportTraceServiceResponse::default().encode_to_vec();
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("content-type", "application/x-protobuf")
                                    .body(Full::new(Bytes::from(reply)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Collector {
            addr,
            spans,
            content_types,
        }
    }

    fn spans_of(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn a_request_is_one_trace_with_decision_cache_and_attempt_spans_continued_upstream() {
    let collector = Collector::start().await;
    // Flash fails, so the request takes two attempts: Flash (500), then Pro.
    let mock = MockUpstream::start(|r| {
        if r.body["model"] == "deepseek-v4-flash" {
            Reply::error(500, "flash is down")
        } else {
            Reply::completion(r.body["model"].as_str().unwrap_or("?"), "from pro")
        }
    })
    .await;
    let dir = TempDir::new("traces");
    let config = dir.path("switchyard.toml");
    std::fs::write(
        &config,
        upstream_toml(
            "main",
            &mock.url(),
            &["deepseek-v4-flash", "deepseek-v4-pro"],
            "",
        ) + &policy_toml("ff", "flash-first")
            + &tenant_toml(
                "acme",
                KEY_A,
                "ff",
                &["deepseek-v4-flash", "deepseek-v4-pro"],
                "policy_config = { cache = \"read-write\" }",
            ),
    )
    .unwrap();
    let endpoint = format!("http://{}", collector.addr);
    let p = Process::serve(
        &[
            "--config",
            config.to_str().unwrap(),
            "--otlp-endpoint",
            &endpoint,
        ],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );

    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let r = request(
        "POST",
        &format!("{}/v1/chat/completions", p.url()),
        Some(KEY_A),
        &[("traceparent", traceparent.as_str())],
        user_says("auto", "Review this function.").to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-switchyard-attempts"), Some("2"));

    // Spans arrive in batches; wait for the request span and the cache write.
    let started = Instant::now();
    let spans = loop {
        let spans = collector.spans_of(TRACE_ID);
        let has = |name: &str| spans.iter().any(|s| s.name == name);
        if has("POST /v1/chat/completions") && has("cache.store") {
            break spans;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "spans received so far: {spans:#?}\nlogs:\n{}",
            p.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let named =
        |name: &str| -> Vec<&ReceivedSpan> { spans.iter().filter(|s| s.name == name).collect() };

    // The request span continues the caller's trace and carries the access-log fields.
    let root = named("POST /v1/chat/completions");
    assert_eq!(root.len(), 1, "{spans:#?}");
    let root = root[0];
    assert_eq!(root.parent_span_id, CALLER_SPAN);
    assert_eq!(root.kind, SpanKind::Server as i32);
    assert_eq!(root.service, "switchyard");
    assert_eq!(root.attributes["tenant"], "acme");
    assert_eq!(root.attributes["model"], "deepseek-v4-pro");
    assert_eq!(root.attributes["status"], "200");
    assert_eq!(root.attributes["attempts"], "2");
    assert!(!root.error);

    // Its children: one decision, a cache lookup that missed, two attempts, one cache write.
    for name in [
        "policy.decide",
        "cache.lookup",
        "upstream.attempt",
        "cache.store",
    ] {
        let children = named(name);
        assert!(!children.is_empty(), "no {name} span: {spans:#?}");
        for child in children {
            assert_eq!(
                child.parent_span_id, root.span_id,
                "{name} is not a child of the request span"
            );
        }
    }
    assert_eq!(named("policy.decide").len(), 1);
    assert_eq!(named("policy.decide")[0].attributes["policy"], "ff");
    assert_eq!(named("cache.lookup")[0].attributes["outcome"], "miss");
    assert_eq!(named("cache.store").len(), 1);
    assert_eq!(
        named("cache.store")[0].attributes["model"],
        "deepseek-v4-pro"
    );

    let mut attempts = named("upstream.attempt");
    attempts.sort_by_key(|s| s.attributes["attempt"].clone());
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    let (first, second) = (attempts[0], attempts[1]);
    assert_eq!(first.kind, SpanKind::Client as i32);
    assert_eq!(first.attributes["model"], "deepseek-v4-flash");
    assert_eq!(first.attributes["upstream"], "main");
    assert_ne!(first.attributes["outcome"], "ok");
    assert!(first.error, "a failed attempt is marked as an error");
    assert_eq!(second.attributes["model"], "deepseek-v4-pro");
    assert_eq!(second.attributes["outcome"], "ok");
    assert!(!second.error);

    // Each upstream request carried the trace, with its own attempt span as the parent.
    let sent = mock.requests();
    assert_eq!(sent.len(), 2);
    for (request, attempt) in sent.iter().zip([first, second]) {
        let header = request.headers["traceparent"].to_str().unwrap();
        assert_eq!(
            header,
            format!("00-{TRACE_ID}-{}-01", attempt.span_id),
            "the upstream's parent is the attempt span"
        );
    }
    assert!(
        collector
            .content_types
            .lock()
            .unwrap()
            .iter()
            .all(|t| t == "application/x-protobuf")
    );
    // Keys never reach the spans.
    let everything = format!("{spans:?}");
    assert!(!everything.contains(KEY_A));
}

#[tokio::test]
async fn without_an_exporter_the_callers_trace_context_is_passed_through() {
    let mock = MockUpstream::echo().await;
    let gw = start_gateway(
        &(upstream_toml("main", &mock.url(), &["deepseek-v4-flash"], "")
            + &policy_toml("ff", "flash-first")
            + &tenant_toml("acme", KEY_A, "ff", &["deepseek-v4-flash"], "")),
    )
    .await;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let r = chat_with(
        &gw,
        KEY_A,
        &[
            ("traceparent", traceparent.as_str()),
            ("tracestate", "vendor=value"),
        ],
        &json!({"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = &mock.requests()[0];
    assert_eq!(sent.headers["traceparent"], traceparent.as_str());
    assert_eq!(sent.headers["tracestate"], "vendor=value");
}
