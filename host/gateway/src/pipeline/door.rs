//! The front doors: OpenAI chat completions, Anthropic Messages and OpenAI Responses. A request
//! that comes in through any of them becomes a chat-completions request for every phase after
//! parsing (the policy's summary, the cache key's canonical form, budgets), and its response goes
//! back out in the dialect it came in: passed through when the upstream spoke that dialect too,
//! translated otherwise. See `docs/dialects.md` for what each translation carries.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;
use switchyard_policy::types::Endpoint;
use switchyard_upstream::chat::{self, ChatRequest, ParseError, replay};
use switchyard_upstream::dialect::{self, Api, StreamEncoder, TranslateError};
use switchyard_upstream::passthrough::Original;
use switchyard_upstream::{ClientStream, Outbound};

use crate::error::GatewayError;

/// The API a request came in through, and what its response needs from the request.
pub(crate) struct Door {
    pub api: Api,
    /// The client's own body, when it is not chat completions: sent as it is to upstreams that
    /// speak its dialect, and the source of its cache key.
    pub original: Option<Original>,
    /// A Responses request as read, for what a translated reply echoes of it: made into that
    /// echo only when a reply is translated (a passed-through reply carries the upstream's, and
    /// the echo copies the request's instructions and tools).
    responses_request: Option<Value>,
}

impl Door {
    /// Reads `body` as a request in `api`, and the chat-completions request it stands for.
    pub fn open(
        api: Api,
        body: Bytes,
        max_messages: usize,
    ) -> Result<(Door, ChatRequest), GatewayError> {
        if api == Api::Chat {
            let chat = ChatRequest::parse(body, max_messages).map_err(invalid_request)?;
            let door = Door {
                api,
                original: None,
                responses_request: None,
            };
            return Ok((door, chat));
        }
        let value: Value =
            serde_json::from_slice(&body).map_err(|e| GatewayError::InvalidRequest {
                message: format!("request body is not valid JSON: {e}"),
                param: None,
            })?;
        if !value.is_object() {
            return Err(GatewayError::InvalidRequest {
                message: "request body must be a JSON object".into(),
                param: None,
            });
        }
        let translated = match api {
            Api::Messages => dialect::messages::request_to_chat(&value),
            _ => dialect::responses::request_to_chat(&value),
        }
        .map_err(untranslatable)?;
        // About the size of the request it translates: written without growing.
        let mut chat_body = Vec::with_capacity(body.len() + 256);
        serde_json::to_writer(&mut chat_body, &translated)
            .map_err(|e| GatewayError::Internal(format!("translated request: {e}")))?;
        let chat =
            ChatRequest::parse(Bytes::from(chat_body), max_messages).map_err(invalid_request)?;
        let original = Original::locate(api, body).map_err(invalid_request)?;
        let door = Door {
            api,
            original: Some(original),
            responses_request: (api == Api::Responses).then_some(value),
        };
        Ok((door, chat))
    }

    /// What a translated Responses reply echoes of its request.
    fn echo(&self) -> Option<dialect::responses::Echo> {
        self.responses_request
            .as_ref()
            .map(dialect::responses::Echo::from_request)
    }

    /// The request as the fallback loop sends it.
    pub fn outbound<'a>(&'a self, chat: &'a ChatRequest) -> Outbound<'a> {
        Outbound {
            chat,
            original: self.original.as_ref(),
        }
    }

    /// The contract's name for this front door.
    pub fn endpoint(&self) -> Endpoint {
        match self.api {
            Api::Chat => Endpoint::ChatCompletions,
            Api::Messages => Endpoint::Messages,
            Api::Responses => Endpoint::Responses,
        }
    }

    /// How a stream in the upstream's dialect `wire` reaches the client.
    pub fn stream(&self, wire: Api, id: &str, model: &str, include_usage: bool) -> ClientStream {
        if wire == self.api {
            return ClientStream::Pass { client: self.api };
        }
        ClientStream::Encode(self.encoder(id, model, include_usage))
    }

    fn encoder(&self, id: &str, model: &str, include_usage: bool) -> Box<dyn StreamEncoder> {
        match (self.api, self.echo()) {
            (Api::Messages, _) => Box::new(dialect::messages::Encoder::new(
                format!("msg_{id}"),
                model.to_owned(),
            )),
            (Api::Responses, Some(echo)) => Box::new(dialect::responses::Encoder::new(
                echo,
                format!("resp_{id}"),
                now(),
            )),
            _ => Box::new(chat::encode::Encoder::new(include_usage)),
        }
    }

    /// A whole upstream response in `wire` (with `completion`, its chat view, when `wire` is not
    /// chat), as the client's dialect says it.
    pub fn full(
        &self,
        wire: Api,
        body: Bytes,
        completion: Option<&Value>,
        id: &str,
        model: &str,
    ) -> Result<Bytes, GatewayError> {
        if wire == self.api {
            return Ok(body);
        }
        let parsed;
        let completion = match completion {
            Some(c) => c,
            None => {
                parsed = serde_json::from_slice::<Value>(&body)
                    .map_err(|e| GatewayError::Internal(format!("upstream response: {e}")))?;
                &parsed
            }
        };
        Ok(self.render(completion, id, model))
    }

    /// A `chat.completion` in the client's dialect.
    pub fn render(&self, completion: &Value, id: &str, model: &str) -> Bytes {
        let out = match (self.api, self.echo()) {
            (Api::Messages, _) => dialect::messages::response_from_chat(completion, model),
            (Api::Responses, Some(echo)) => dialect::responses::response_from_chat(
                completion,
                &echo,
                &format!("resp_{id}"),
                now(),
            ),
            _ => return dialect::json_bytes(completion),
        };
        dialect::json_bytes(&out)
    }

    /// A cached `chat.completion` replayed as a stream in the client's dialect.
    pub fn replay(
        &self,
        completion: &Value,
        id: &str,
        model: &str,
        include_usage: bool,
    ) -> Vec<Bytes> {
        if self.api == Api::Chat {
            return replay::sse_frames(completion, include_usage);
        }
        let mut encoder = self.encoder(id, model, include_usage);
        let mut out = Vec::new();
        for frame in replay::sse_frames(completion, true) {
            let data = switchyard_upstream::sse::payload(&frame);
            if let Ok(chunk) = serde_json::from_str::<Value>(&data) {
                encoder.push(&chunk, &mut out);
            }
        }
        encoder.finish(&mut out);
        out
    }
}

/// Seconds since the epoch, for `created_at`.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) fn invalid_request(e: ParseError) -> GatewayError {
    GatewayError::InvalidRequest {
        param: e.param().map(str::to_owned),
        message: match &e {
            ParseError::Malformed(m) => m.clone(),
            ParseError::Invalid { .. } => e.to_string(),
        },
    }
}

fn untranslatable(e: TranslateError) -> GatewayError {
    GatewayError::InvalidRequest {
        message: match &e.param {
            Some(p) => format!("{p}: {}", e.message),
            None => e.message.clone(),
        },
        param: e.param,
    }
}
