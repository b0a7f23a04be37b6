//! Upstream provider accounts: where each one is, its key, the models it serves and its time
//! limits; and how a model served by several of them is spread over them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::catalog::{ModelInfo, unknown_model};
use super::error::{ConfigError, duration, opt_duration};
use super::raw::{ProviderKindSetting, RawUpstream, ResumeSetting};
use switchyard_upstream::dialect::Api;
use switchyard_upstream::{ApiUrls, ProviderKind, ResumeVia, Secret};

/// How a model that several upstreams serve is spread over them. Whichever comes first, the
/// others follow as same-model fallbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamChoice {
    /// Conversations with the same opening (tenant, system prompt, first turn) go to the same
    /// upstream (rendezvous hashing), so the provider's prompt cache stays warm.
    #[default]
    PrefixAffinity,
    /// Rotate through the upstreams.
    RoundRobin,
    /// Always the first in name order.
    First,
}

/// Where an upstream's traffic goes.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamEndpoint {
    /// A real OpenAI-compatible API at this base URL (`.../v1`).
    Url(String),
    /// The built-in simulated provider, with this delay between streamed tokens.
    Simulated { token_delay: Duration },
}

/// One upstream provider account.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub name: String,
    pub endpoint: UpstreamEndpoint,
    pub kind: ProviderKind,
    /// The wire APIs it speaks, in order of preference.
    pub apis: Vec<Api>,
    pub urls: ApiUrls,
    pub api_key: Option<Secret>,
    /// Catalog model name -> the name this provider uses for it.
    pub models: BTreeMap<String, String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
    pub first_token_timeout: Option<Duration>,
    /// Retries of a target on it after a transient failure, when the decision sets none.
    pub retries: u8,
    /// How it continues an answer cut on another target.
    pub resume: Option<ResumeVia>,
}

/// Retries of one target when neither the upstream nor the decision says: one, so a 429 with a
/// short `Retry-After` or a lone 500 is answered by the same provider a moment later (timeouts
/// are never retried on the same target; every retry draws on the shared retry budget).
pub const DEFAULT_RETRIES: u8 = 1;
/// Most retries of one target an upstream's default (or a decision) may ask for; the retry
/// budget bounds them further.
pub(crate) const MAX_RETRIES: u8 = 5;

pub(super) fn upstream(
    name: &str,
    up: &RawUpstream,
    models: &BTreeMap<String, ModelInfo>,
) -> Result<UpstreamConfig, ConfigError> {
    let path = format!("upstreams.{name}");
    let endpoint = match (&up.base_url, up.simulated) {
        (Some(_), true) => {
            return Err(ConfigError::new(
                &path,
                "set either `base_url` or `simulated = true`, not both",
            ));
        }
        (None, false) => {
            return Err(ConfigError::new(
                &path,
                "needs `base_url` (or `simulated = true`)",
            ));
        }
        (None, true) => UpstreamEndpoint::Simulated {
            token_delay: opt_duration(
                up.simulated_token_delay,
                up.simulated_token_delay_ms,
                &format!("{path}.simulated_token_delay"),
            )?
            .unwrap_or(Duration::ZERO),
        },
        (Some(url), false) => {
            let url = url.trim_end_matches('/');
            check_url(url, &format!("{path}.base_url"))?;
            UpstreamEndpoint::Url(url.to_owned())
        }
    };
    let kind = match up.kind {
        Some(ProviderKindSetting::Anthropic) => ProviderKind::Anthropic,
        _ => ProviderKind::OpenAi,
    };
    let simulated = matches!(endpoint, UpstreamEndpoint::Simulated { .. });
    let apis = match &up.apis {
        Some(apis) if apis.is_empty() => {
            return Err(ConfigError::new(
                format!("{path}.apis"),
                "must list at least one of `chat`, `messages`, `responses`",
            ));
        }
        Some(apis) => {
            let mut unique = Vec::new();
            for api in apis {
                if !unique.contains(api) {
                    unique.push(*api);
                }
            }
            unique
        }
        None if simulated => vec![Api::Chat, Api::Messages, Api::Responses],
        None if kind == ProviderKind::Anthropic => vec![Api::Messages],
        None => vec![Api::Chat],
    };
    if !apis.iter().any(|a| matches!(a, Api::Chat | Api::Messages)) {
        // Requests in other dialects are translated through chat; a Responses-only upstream
        // could serve only Responses clients.
        return Err(ConfigError::new(
            format!("{path}.apis"),
            "must include `chat` or `messages`: requests in other dialects reach an upstream through one of them",
        ));
    }
    let url_setting = |value: &Option<String>, key: &str| -> Result<Option<String>, ConfigError> {
        match value {
            None => Ok(None),
            Some(url) => {
                check_url(url, &format!("{path}.{key}"))?;
                Ok(Some(url.clone()))
            }
        }
    };
    let urls = ApiUrls {
        chat: url_setting(&up.chat_url, "chat_url")?,
        messages: url_setting(&up.messages_url, "messages_url")?,
        responses: url_setting(&up.responses_url, "responses_url")?,
    };
    let api_key = match &up.api_key_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim())),
            _ => {
                return Err(ConfigError::new(
                    format!("{path}.api_key_env"),
                    format!("environment variable `{var}` is not set"),
                ));
            }
        },
    };
    if up.models.is_empty() {
        return Err(ConfigError::new(
            format!("{path}.models"),
            "must list at least one model",
        ));
    }
    let mut served = BTreeMap::new();
    for (i, entry) in up.models.iter().enumerate() {
        let (model, provider_name) = entry.split_once('=').unwrap_or((entry, entry));
        let (model, provider_name) = (model.trim(), provider_name.trim());
        if !models.contains_key(model) {
            return Err(ConfigError::new(
                format!("{path}.models[{i}]"),
                unknown_model(models, model),
            ));
        }
        served.insert(model.to_owned(), provider_name.to_owned());
    }
    let retries = up.retries.unwrap_or(DEFAULT_RETRIES);
    if retries > MAX_RETRIES {
        return Err(ConfigError::new(
            format!("{path}.retries"),
            format!("must be at most {MAX_RETRIES}"),
        ));
    }
    if up.resume_url.is_some() && up.resume != Some(ResumeSetting::ChatPrefix) {
        return Err(ConfigError::new(
            format!("{path}.resume_url"),
            "applies only with resume = \"chat-prefix\"",
        ));
    }
    let resume = match up.resume {
        None => None,
        Some(ResumeSetting::ChatPrefix) => {
            if !apis.contains(&Api::Chat) {
                return Err(ConfigError::new(
                    format!("{path}.resume"),
                    "`chat-prefix` needs an upstream that speaks `chat`",
                ));
            }
            Some(ResumeVia::ChatPrefix {
                url: url_setting(&up.resume_url, "resume_url")?,
            })
        }
        Some(ResumeSetting::MessagesPrefill) => {
            if !apis.contains(&Api::Messages) {
                return Err(ConfigError::new(
                    format!("{path}.resume"),
                    "`messages-prefill` needs an upstream that speaks `messages`",
                ));
            }
            Some(ResumeVia::MessagesPrefill)
        }
    };
    let first_token_timeout = opt_duration(
        up.first_token_timeout,
        up.first_token_timeout_ms,
        &format!("{path}.first_token_timeout"),
    )?;
    Ok(UpstreamConfig {
        first_token_timeout,
        retries,
        resume,
        name: name.to_owned(),
        endpoint,
        kind,
        apis,
        urls,
        api_key,
        models: served,
        connect_timeout: duration(
            up.connect_timeout,
            up.connect_timeout_ms,
            Duration::from_millis(5_000),
            &format!("{path}.connect_timeout"),
        )?,
        request_timeout: duration(
            up.request_timeout,
            up.request_timeout_ms,
            Duration::from_millis(600_000),
            &format!("{path}.request_timeout"),
        )?,
        first_byte_timeout: duration(
            up.first_byte_timeout,
            up.first_byte_timeout_ms,
            Duration::from_millis(300_000),
            &format!("{path}.first_byte_timeout"),
        )?,
        idle_timeout: duration(
            up.idle_timeout,
            up.idle_timeout_ms,
            Duration::from_millis(120_000),
            &format!("{path}.idle_timeout"),
        )?,
    })
}

/// An `http://` or `https://` URL with a host.
fn check_url(url: &str, path: &str) -> Result<(), ConfigError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| ConfigError::new(path, format!("`{url}` is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(()),
        _ => Err(ConfigError::new(
            path,
            format!("`{url}` must be an http:// or https:// URL"),
        )),
    }
}
