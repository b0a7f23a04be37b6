//! Request bodies, shaped like the shared peer rig's: a small chat (system + user, about 1.5 KB),
//! a long conversation (about 200 KB in 170 messages), the small one streamed, and bodies of any
//! size up to a 1M-token prompt for the body-size curve.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::{Value, json};

const SYSTEM: &str = "You are a careful senior engineer. Answer concisely, cite the files you \
change, and prefer small, reviewable diffs. When unsure, say what you would check first. Keep \
the tone neutral and technical; do not restate the question; do not invent APIs. If the user \
pastes logs, quote only the lines that matter. Use the project's existing conventions for \
naming, error handling and tests. Never include secrets in examples. If a request is ambiguous, \
state your assumption in one sentence and proceed with it. Respond in English unless asked \
otherwise.";

/// About 1 KB of ordinary prose: what a user asks.
fn paragraph(i: usize) -> String {
    format!(
        "Request {i}: the checkout service times out under load when the inventory call is slow. \
         Here is what we see: p99 latency jumps from 180 ms to 2.4 s when the inventory service \
         degrades, the connection pool saturates at 64 connections, and retries multiply the \
         load on the already slow dependency. We already tried raising the pool size, which only \
         moved the bottleneck. Please review the retry policy below and suggest a change that \
         bounds the extra load, keeps the happy path fast, and is easy to test. The policy \
         retries three times with a fixed 100 ms delay, on every error including 4xx, and has \
         no budget across requests. We would like to keep the change inside the client wrapper \
         and avoid touching the callers. What would you change first, and why?"
    )
}

fn chat(messages: Vec<Value>, stream: bool) -> Value {
    let mut body = json!({
        "model": "deepseek-v4-flash",
        "messages": messages,
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 1024,
        "user": "bench-user-0001",
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    } else {
        body["stream"] = json!(false);
    }
    body
}

/// A conversation of about `bytes` bytes (at least a system and a user message).
pub fn conversation(bytes: usize, stream: bool) -> Vec<u8> {
    let system = json!({"role": "system", "content": SYSTEM});
    // The fields around the messages take about 150 bytes.
    let mut size = 150 + system.to_string().len();
    let mut messages = vec![system];
    let mut i = 0;
    loop {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        let message = json!({"role": role, "content": paragraph(i)});
        size += message.to_string().len() + 1;
        messages.push(message);
        i += 1;
        if size >= bytes && role == "user" {
            break;
        }
    }
    serde_json::to_vec(&chat(messages, stream)).expect("serialisable")
}

/// The small conversation as an Anthropic Messages request (the system prompt at the top level).
pub fn messages(stream: bool) -> Vec<u8> {
    let body = json!({
        "model": "deepseek-v4-flash",
        "system": SYSTEM,
        "messages": [{"role": "user", "content": paragraph(0)}],
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 1024,
        "metadata": {"user_id": "bench-user-0001"},
        "stream": stream,
    });
    serde_json::to_vec(&body).expect("serialisable")
}

/// The small conversation as a Responses request (the system prompt as `instructions`).
pub fn responses(stream: bool) -> Vec<u8> {
    let body = json!({
        "model": "deepseek-v4-flash",
        "instructions": SYSTEM,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": paragraph(0)}]}],
        "temperature": 0.7,
        "top_p": 0.95,
        "max_output_tokens": 1024,
        "store": false,
        "user": "bench-user-0001",
        "stream": stream,
    });
    serde_json::to_vec(&body).expect("serialisable")
}

/// The fixed bodies, written under `dir`.
pub struct Bodies {
    pub small: PathBuf,
    pub large: PathBuf,
    pub sse: PathBuf,
    pub messages: PathBuf,
    pub messages_sse: PathBuf,
    pub responses: PathBuf,
    pub responses_sse: PathBuf,
}

pub fn write_fixed(dir: &Path) -> Result<Bodies> {
    std::fs::create_dir_all(dir)?;
    let write = |name: &str, body: Vec<u8>| -> Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, body)?;
        Ok(path)
    };
    Ok(Bodies {
        small: write("small.json", conversation(1, false))?,
        large: write("large.json", conversation(200 << 10, false))?,
        sse: write("sse.json", conversation(1, true))?,
        messages: write("messages.json", messages(false))?,
        messages_sse: write("messages-sse.json", messages(true))?,
        responses: write("responses.json", responses(false))?,
        responses_sse: write("responses-sse.json", responses(true))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_sizes_the_curves_are_labelled_with() {
        let small = conversation(1, false);
        assert!((1_400..2_500).contains(&small.len()), "{}", small.len());
        for target in [16_000, 200 << 10, 4_000_000] {
            let n = conversation(target, false).len();
            assert!(n >= target && n < target + 4096, "{target}: {n}");
        }
        let parsed: Value = serde_json::from_slice(&conversation(1, true)).unwrap();
        assert_eq!(parsed["stream"], json!(true));
        assert_eq!(
            parsed["messages"].as_array().unwrap().last().unwrap()["role"],
            "user"
        );
    }
}
