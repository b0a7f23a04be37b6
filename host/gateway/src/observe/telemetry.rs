//! Logs and traces: the `tracing` subscriber the binary installs, OpenTelemetry export over
//! OTLP/HTTP when an endpoint is configured (off by default), and W3C trace-context propagation.
//!
//! With export on, every request is one span (`POST /v1/chat/completions`, kind server) whose
//! parent is the caller's `traceparent` when it sends one, with child spans for the policy
//! decision, the cache lookup and store, and each upstream attempt (kind client). Each attempt
//! sends its own span's context upstream as `traceparent`, so a provider that traces sees
//! Switchyard's attempt as the parent of its work. With export off, child spans are not created
//! at all (they would cost every request for nothing) and the caller's `traceparent` is passed
//! through to the upstream unchanged.
//!
//! The exporter sends protobuf over HTTP through a hyper client (rustls for `https://`
//! collectors) driven on the gateway's own Tokio runtime, from the SDK's batch thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// Whether spans are exported; child spans are only created when they are.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Largest response body read back from a collector (it is only checked for errors).
const MAX_COLLECTOR_RESPONSE: usize = 1 << 20;

/// How traces are exported.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); spans go to `/v1/traces`.
    pub endpoint: String,
    /// Share of new traces sampled (0 to 1); a caller's sampled flag is followed as is.
    pub sample_ratio: f64,
    /// `service.name` on every span.
    pub service_name: String,
    /// Timeout of one export request.
    pub timeout: Duration,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("OTLP exporter: {0}")]
    Exporter(String),
    #[error("installing the tracing subscriber: {0}")]
    Subscriber(String),
}

/// The installed telemetry. Call [`Telemetry::shutdown`] before exiting so buffered spans are
/// exported.
#[must_use = "shut telemetry down on exit to flush buffered spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports buffered spans and stops the exporter. Blocking: call it off the async workers.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.force_flush() {
                tracing::warn!(error = %e, "flushing spans at shutdown");
            }
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "stopping the span exporter");
            }
        }
    }
}

/// Whether spans are being exported (so child spans are worth creating).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Installs the global subscriber: logs to stderr (text or JSON, filtered by `filter`) and, with
/// `otlp`, span export. Must run inside the Tokio runtime that will carry the exports.
pub fn init(
    json_logs: bool,
    filter: EnvFilter,
    otlp: Option<&OtlpSettings>,
) -> Result<Telemetry, TelemetryError> {
    let logs = if json_logs {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    };
    let (traces, provider) = match otlp {
        Some(settings) => {
            let provider = tracer_provider(settings)?;
            let tracer = provider.tracer("switchyard");
            // Spans come from this crate at info level, whatever the log filter says.
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(Targets::new().with_target("switchyard", LevelFilter::INFO))
                .boxed();
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    let layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> =
        [Some(logs), traces].into_iter().flatten().collect();
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .map_err(|e| TelemetryError::Subscriber(e.to_string()))?;
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    Ok(Telemetry { provider })
}

fn tracer_provider(settings: &OtlpSettings) -> Result<SdkTracerProvider, TelemetryError> {
    let endpoint = format!("{}/v1/traces", settings.endpoint.trim_end_matches('/'));
    let bad = |reason: String| TelemetryError::Endpoint {
        endpoint: settings.endpoint.clone(),
        reason,
    };
    let uri: http::Uri = endpoint.parse().map_err(|e| bad(format!("{e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("must be an http:// or https:// URL".into()));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(CollectorClient::new(settings.timeout)?)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(settings.timeout)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let ratio = settings.sample_ratio.clamp(0.0, 1.0);
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build(),
        )
        .build())
}

/// Sends export requests through hyper on the gateway's runtime. The SDK's batch processor runs
/// on its own thread and polls the export future with a plain executor, so the request is
/// spawned onto the runtime captured at start-up and its result awaited through the join handle.
struct CollectorClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl std::fmt::Debug for CollectorClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorClient")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl CollectorClient {
    fn new(timeout: Duration) -> Result<Self, TelemetryError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            TelemetryError::Exporter("telemetry must start inside the Tokio runtime".into())
        })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .map_err(|e| TelemetryError::Exporter(format!("TLS setup: {e}")))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let http = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(https);
        Ok(CollectorClient {
            http,
            runtime,
            timeout,
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for CollectorClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let http = self.http.clone();
        let timeout = self.timeout;
        let task = self.runtime.spawn(async move {
            let exchange = async {
                let (parts, body) = request.into_parts();
                let response = http
                    .request(Request::from_parts(parts, Full::new(body)))
                    .await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_COLLECTOR_RESPONSE)
                    .collect()
                    .await?
                    .to_bytes();
                Ok::<_, HttpError>(Response::from_parts(parts, body))
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer from the collector within {timeout:?}").into()),
            }
        });
        task.await?
    }
}

/// Makes the caller's W3C trace context (`traceparent`, `tracestate`) the parent of `span`.
/// Without export, or without a valid header, `span` stays a root.
pub fn adopt_remote_parent(span: &Span, headers: &HeaderMap) {
    if !exporting() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent);
}

/// The trace-context headers to send upstream for an attempt running in `span`: that span's
/// context when exporting, otherwise the caller's own headers passed through.
pub fn upstream_trace_headers(
    span: &Span,
    incoming: &HeaderMap,
) -> Vec<(&'static str, HeaderValue)> {
    if exporting() {
        let mut out = HeaderMap::new();
        TraceContextPropagator::new()
            .inject_context(&span.context(), &mut HeaderInjector(&mut out));
        return ["traceparent", "tracestate"]
            .into_iter()
            .filter_map(|name| out.get(name).map(|v| (name, v.clone())))
            .collect();
    }
    ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| incoming.get(name).map(|v| (name, v.clone())))
        .collect()
}

/// How upstream attempts join the request's trace: a span each while exporting, and the
/// trace-context headers to send with them.
/// Holds the client's request headers, whose trace context is passed through when not exporting.
pub(crate) struct Propagation<'a>(pub &'a HeaderMap);

impl switchyard_upstream::TracePropagation for Propagation<'_> {
    fn spans(&self) -> bool {
        exporting()
    }

    fn headers(&self, span: &Span) -> Vec<(&'static str, HeaderValue)> {
        upstream_trace_headers(span, self.0)
    }
}

/// A child span for one stage of a request, or a disabled span when spans are not exported.
#[macro_export]
#[doc(hidden)]
macro_rules! stage_span {
    ($($span:tt)*) => {
        if $crate::observe::telemetry::exporting() {
            tracing::info_span!($($span)*)
        } else {
            tracing::Span::none()
        }
    };
}
