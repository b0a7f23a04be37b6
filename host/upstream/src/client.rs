//! One HTTP client per upstream: its own connect timeout, keep-alive pool, HTTP/2 where the
//! provider offers it (ALPN), rustls with the webpki roots for HTTPS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response, Uri, header};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::chat::rewrite::SplicedBody;
use crate::redact::Secret;

type HttpClient = Client<HttpsConnector<HttpConnector>, SplicedBody>;

/// Per-attempt time limits of one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending the request to the last byte of the response.
    pub request: Duration,
    /// Until the response head, and a stream's first real event.
    pub first_byte: Duration,
    /// Longest silence between stream events (keep-alive comments do not count).
    pub idle: Duration,
    /// The first-token deadline of targets whose decision sets none.
    pub first_token: Option<Duration>,
}

/// What a client needs to know about one upstream provider account.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSettings {
    pub name: String,
    /// Base URL of its OpenAI-compatible API (`.../v1`).
    pub base_url: String,
    pub api_key: Option<Secret>,
    /// Catalog model name -> the name this provider uses for it.
    pub models: BTreeMap<String, String>,
    /// Whether this is the gateway's built-in simulated provider.
    pub simulated: bool,
    pub timeouts: Timeouts,
}

/// A configured upstream, ready to send requests.
pub struct UpstreamClient {
    pub name: Arc<str>,
    pub settings: UpstreamSettings,
    chat_url: Uri,
    auth: Option<HeaderValue>,
    http: HttpClient,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("name", &self.name)
            .field("chat_url", &self.chat_url)
            .finish()
    }
}

impl UpstreamClient {
    /// Builds the client.
    pub fn new(settings: UpstreamSettings) -> Result<Self, String> {
        let config = &settings;
        let chat_url: Uri = format!(
            "{}/chat/completions",
            settings.base_url.trim_end_matches('/')
        )
        .parse()
        .map_err(|e| format!("upstream {}: bad URL: {e}", config.name))?;
        let auth = match &config.api_key {
            Some(key) => {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                        format!(
                            "upstream {}: the API key has characters a header cannot carry",
                            config.name
                        )
                    })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.timeouts.connect));
        http.set_keepalive(Some(std::time::Duration::from_secs(60)));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|e| format!("TLS setup: {e}"))?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(UpstreamClient {
            name: config.name.as_str().into(),
            chat_url,
            auth,
            http: client,
            settings,
        })
    }

    /// Whether this upstream is the built-in simulated provider.
    pub fn is_simulated(&self) -> bool {
        self.settings.simulated
    }

    /// Whether this upstream serves catalog model `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.settings.models.contains_key(model)
    }

    /// The name this provider uses for catalog model `model`.
    pub fn provider_model<'a>(&'a self, model: &'a str) -> &'a str {
        self.settings
            .models
            .get(model)
            .map_or(model, String::as_str)
    }

    /// Sends one chat-completions request; resolves when the response head arrives.
    pub async fn send(
        &self,
        body: SplicedBody,
        request_id: &str,
        trace_headers: &[(&'static str, HeaderValue)],
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        let mut req = Request::post(self.chat_url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header(
                header::USER_AGENT,
                concat!("switchyard/", env!("CARGO_PKG_VERSION")),
            )
            .body(body)
            .expect("a request built from a valid URI and static headers is valid");
        let headers = req.headers_mut();
        if let Ok(id) = HeaderValue::from_str(request_id) {
            headers.insert("x-request-id", id);
        }
        if let Some(auth) = &self.auth {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        for (name, value) in trace_headers {
            headers.insert(*name, value.clone());
        }
        self.http.request(req).await
    }
}
