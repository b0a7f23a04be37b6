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
use crate::dialect::Api;
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

/// How a provider wants its key and which headers it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderKind {
    /// `Authorization: Bearer <key>` (OpenAI, DeepSeek and every OpenAI-compatible API; their
    /// Anthropic-compatible endpoints accept it too).
    #[default]
    OpenAi,
    /// Anthropic's own API: `x-api-key: <key>` and `anthropic-version`.
    Anthropic,
}

/// The `anthropic-version` sent to an Anthropic upstream.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Where one upstream serves each API it speaks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiUrls {
    pub chat: Option<String>,
    pub messages: Option<String>,
    pub responses: Option<String>,
}

/// How an upstream can continue an answer another target started and did not finish (a
/// stream cut or stalled after its commit point): the conversation is sent again with the text
/// already delivered as the start of the assistant's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeVia {
    /// DeepSeek's chat prefix completion: a last message
    /// `{"role": "assistant", "content": <prefix>, "prefix": true}`, sent over chat completions
    /// to `url` (DeepSeek serves it under its `/beta` base URL), or to the chat URL when `None`.
    ChatPrefix { url: Option<String> },
    /// Anthropic's assistant prefill: a trailing assistant message, sent over Messages.
    MessagesPrefill,
}

/// What a client needs to know about one upstream provider account.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSettings {
    pub name: String,
    /// Base URL of its API (`.../v1`); each API's path is appended unless `urls` names it.
    pub base_url: String,
    pub kind: ProviderKind,
    /// The wire APIs it speaks, in order of preference when the client's is not among them.
    pub apis: Vec<Api>,
    /// Full URLs overriding `base_url` + the API's path.
    pub urls: ApiUrls,
    pub api_key: Option<Secret>,
    /// Catalog model name -> the name this provider uses for it.
    pub models: BTreeMap<String, String>,
    /// Whether this is the gateway's built-in simulated provider.
    pub simulated: bool,
    pub timeouts: Timeouts,
    /// Times a target on this upstream is tried again after a transient failure, when the
    /// decision does not say.
    pub retries: u8,
    /// How it continues an answer cut on another target; `None`: it does not.
    pub resume: Option<ResumeVia>,
}

/// A configured upstream, ready to send requests.
pub struct UpstreamClient {
    pub name: Arc<str>,
    pub settings: UpstreamSettings,
    /// Indexed by [`Api::index`]; `None` where it does not speak that API.
    urls: [Option<Uri>; 3],
    /// Where a resumed answer is sent, when it resumes over chat prefix completion.
    prefix_url: Option<Uri>,
    auth: Option<(header::HeaderName, HeaderValue)>,
    http: HttpClient,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("name", &self.name)
            .field("apis", &self.settings.apis)
            .finish()
    }
}

impl UpstreamClient {
    /// Builds the client.
    pub fn new(settings: UpstreamSettings) -> Result<Self, String> {
        let config = &settings;
        let base = settings.base_url.trim_end_matches('/');
        let mut urls: [Option<Uri>; 3] = [None, None, None];
        for api in &config.apis {
            let explicit = match api {
                Api::Chat => &config.urls.chat,
                Api::Messages => &config.urls.messages,
                Api::Responses => &config.urls.responses,
            };
            let url = match explicit {
                Some(url) => url.clone(),
                None => format!("{base}{}", api.path()),
            };
            urls[api.index()] = Some(
                url.parse()
                    .map_err(|e| format!("upstream {}: bad URL `{url}`: {e}", config.name))?,
            );
        }
        let prefix_url = match &config.resume {
            Some(ResumeVia::ChatPrefix { url: Some(url) }) => Some(
                url.parse()
                    .map_err(|e| format!("upstream {}: bad URL `{url}`: {e}", config.name))?,
            ),
            _ => None,
        };
        let auth = match &config.api_key {
            Some(key) => {
                let (name, value) = match config.kind {
                    ProviderKind::OpenAi => {
                        (header::AUTHORIZATION, format!("Bearer {}", key.expose()))
                    }
                    ProviderKind::Anthropic => (
                        header::HeaderName::from_static("x-api-key"),
                        key.expose().to_owned(),
                    ),
                };
                let mut v = HeaderValue::from_str(&value).map_err(|_| {
                    format!(
                        "upstream {}: the API key has characters a header cannot carry",
                        config.name
                    )
                })?;
                v.set_sensitive(true);
                Some((name, v))
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
            urls,
            prefix_url,
            auth,
            http: client,
            settings,
        })
    }

    /// Whether this upstream is the built-in simulated provider.
    pub fn is_simulated(&self) -> bool {
        self.settings.simulated
    }

    /// Whether this upstream speaks `api`.
    pub fn speaks(&self, api: Api) -> bool {
        self.urls[api.index()].is_some()
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

    /// Sends one request in `api` (which it must speak); resolves when the response head arrives.
    pub async fn send(
        &self,
        api: Api,
        body: SplicedBody,
        request_id: &str,
        trace_headers: &[(&'static str, HeaderValue)],
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        let url = self.urls[api.index()]
            .clone()
            .or_else(|| self.urls.iter().flatten().next().cloned())
            .unwrap_or_default();
        self.send_to(url, body, request_id, trace_headers).await
    }

    /// Sends a chat prefix completion (a resumed answer) to where this upstream serves them.
    pub async fn send_prefix(
        &self,
        body: SplicedBody,
        request_id: &str,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        match self.prefix_url.clone() {
            Some(url) => self.send_to(url, body, request_id, &[]).await,
            None => self.send(Api::Chat, body, request_id, &[]).await,
        }
    }

    async fn send_to(
        &self,
        url: Uri,
        body: SplicedBody,
        request_id: &str,
        trace_headers: &[(&'static str, HeaderValue)],
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        // Static names and values: a string is parsed and copied into a new allocation on every
        // request.
        let mut req = Request::post(url)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(
                header::ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            )
            .header(
                header::USER_AGENT,
                HeaderValue::from_static(concat!("switchyard/", env!("CARGO_PKG_VERSION"))),
            )
            .body(body)
            .expect("a request built from a valid URI and static headers is valid");
        let headers = req.headers_mut();
        if let Ok(id) = HeaderValue::from_str(request_id) {
            headers.insert(header::HeaderName::from_static("x-request-id"), id);
        }
        if let Some((name, value)) = &self.auth {
            headers.insert(name.clone(), value.clone());
        }
        if self.settings.kind == ProviderKind::Anthropic {
            headers.insert(
                header::HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
        for (name, value) in trace_headers {
            headers.insert(*name, value.clone());
        }
        self.http.request(req).await
    }
}
