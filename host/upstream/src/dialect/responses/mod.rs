//! OpenAI Responses (`POST /v1/responses`), stateless: requests to chat completions, the
//! Response object from a `chat.completion` and back, a stream encoder (chat chunks to Responses
//! events) and decoder (Responses events to chat chunks).

mod decoder;
mod echo;
mod encoder;
mod reasoning;
mod request;
mod response;

pub use decoder::Decoder;
pub use echo::Echo;
pub use encoder::Encoder;
pub use request::request_to_chat;
pub(crate) use response::counts;
pub use response::{response_from_chat, response_to_chat};
