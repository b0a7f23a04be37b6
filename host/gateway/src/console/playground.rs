//! The Playground: a policy version (kept on disk, or an uploaded `.wasm`) replayed through
//! `policy simulate` on the recent summaries or an uploaded trace, beside the live policy.
//!
//! `policy simulate` lives in `switchyard-tools`, which depends on this crate, so the binary
//! installs it ([`Simulate`], `Gateway::set_playground`). The recent summaries become a trace of
//! chat requests with the same shape as the ones the policy saw (model asked for, size, messages,
//! tools, agent depth, images, completion cap, hints, conversation, arrival times, and the output
//! tokens each got); their prompt text is filler of the same length unless `server.log_prompts`
//! kept the excerpt.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};
use switchyard_policy::PolicyHash;

use crate::observe::recent::Detail;

/// Largest upload (a componentize-py policy is about 20 MB).
pub(crate) const MAX_UPLOAD: usize = 64 << 20;
/// Uploads kept at once.
const KEEP_UPLOADS: usize = 8;

/// One run of `policy simulate` for the Playground.
#[derive(Debug, Clone)]
pub struct SimulateJob {
    /// The config file (the one in service, or the embedded default written out).
    pub config: PathBuf,
    pub tenant: String,
    /// The component tried.
    pub policy: PathBuf,
    /// The live policy, run on the same trace beside it.
    pub compare: PathBuf,
    /// The trace: one chat request per line, or `{"request", "output_tokens", "at_ms"}`.
    pub requests: PathBuf,
}

/// What runs `policy simulate` (the binary installs `switchyard_tools::playground`).
pub trait Simulate: Send + Sync + 'static {
    /// Runs the job; the report is `policy simulate`'s JSON report.
    fn simulate(
        &self,
        job: SimulateJob,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;
}

/// An uploaded file.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub id: String,
    pub kind: &'static str,
    pub name: String,
    pub path: PathBuf,
    pub bytes: usize,
    pub hash: String,
}

impl Upload {
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "kind": self.kind, "name": self.name, "bytes": self.bytes, "hash": &self.hash[..12]})
    }
}

/// The Playground's state: the simulator, a private scratch directory, the uploads.
pub(crate) struct Playground {
    pub simulator: Mutex<Option<Arc<dyn Simulate>>>,
    dir: Mutex<Option<PathBuf>>,
    uploads: Mutex<VecDeque<Upload>>,
    /// One simulation at a time.
    pub busy: tokio::sync::Semaphore,
}

impl Default for Playground {
    fn default() -> Self {
        Playground {
            simulator: Mutex::new(None),
            dir: Mutex::new(None),
            uploads: Mutex::new(VecDeque::new()),
            busy: tokio::sync::Semaphore::new(1),
        }
    }
}

impl Drop for Playground {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.get_mut().take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Playground {
    /// The scratch directory (created 0700 under the system temp dir on first use).
    pub fn dir(&self) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        let mut dir = self.dir.lock();
        if let Some(d) = dir.as_ref() {
            return Ok(d.clone());
        }
        let d = std::env::temp_dir().join(format!(
            "switchyard-console-{}-{}",
            std::process::id(),
            &super::session::random_hex(6)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&d)?;
        *dir = Some(d.clone());
        Ok(d)
    }

    /// Keeps an uploaded file: a component (`wasm`) or a trace (`trace`).
    pub fn upload(&self, kind: &str, name: &str, bytes: &[u8]) -> Result<Upload, String> {
        let kind = match kind {
            "wasm" => {
                if !bytes.starts_with(b"\0asm") {
                    return Err("not a WebAssembly component (no \\0asm header)".into());
                }
                "wasm"
            }
            "trace" => {
                let text = std::str::from_utf8(bytes).map_err(|_| "the trace is not UTF-8")?;
                for (i, line) in text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                {
                    serde_json::from_str::<Value>(line)
                        .map_err(|e| format!("trace line {}: {e}", i + 1))?;
                }
                "trace"
            }
            _ => return Err("kind must be `wasm` or `trace`".into()),
        };
        let hash = PolicyHash::of(bytes).to_string();
        let id = format!("{kind}-{}", &hash[..16]);
        let dir = self.dir().map_err(|e| e.to_string())?;
        let path = dir.join(format!(
            "{id}.{}",
            if kind == "wasm" { "wasm" } else { "jsonl" }
        ));
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        let name: String = name.chars().filter(|c| !c.is_control()).take(120).collect();
        let upload = Upload {
            id: id.clone(),
            kind,
            name,
            path,
            bytes: bytes.len(),
            hash,
        };
        let mut uploads = self.uploads.lock();
        uploads.retain(|u| u.id != id);
        uploads.push_back(upload.clone());
        while uploads.len() > KEEP_UPLOADS {
            if let Some(old) = uploads.pop_front() {
                let _ = std::fs::remove_file(old.path);
            }
        }
        Ok(upload)
    }

    pub fn uploads(&self) -> Vec<Upload> {
        self.uploads.lock().iter().cloned().collect()
    }

    pub fn find(&self, id: &str, kind: &str) -> Option<Upload> {
        self.uploads
            .lock()
            .iter()
            .find(|u| u.id == id && u.kind == kind)
            .cloned()
    }

    /// Writes `bytes` to the scratch directory as `name`.
    pub fn scratch(&self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.dir()?.join(name);
        std::fs::write(&path, bytes)?;
        Ok(path)
    }
}

/// A trace of chat requests shaped like the captured summaries (oldest first), as JSON lines.
pub(crate) fn trace_of(details: &[(Detail, Option<u64>)]) -> String {
    let first = details
        .iter()
        .map(|(d, _)| d.summary.received_at_unix_ms)
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for (d, output) in details {
        let mut line = json!({
            "request": request_like(d),
            "at_ms": d.summary.received_at_unix_ms.saturating_sub(first),
        });
        if let Some(o) = output {
            line["output_tokens"] = json!(o);
        }
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// Text of `bytes` bytes: the kept excerpt, padded with filler.
fn text(seed: &str, bytes: usize) -> String {
    let mut s = seed.to_owned();
    let filler = "lorem ipsum dolor sit amet ";
    while s.len() < bytes {
        s.push_str(filler);
    }
    let mut cut = bytes.max(seed.len().min(bytes));
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s
}

/// A chat request the host summarises as `d.summary` (the same counts; the size within a token).
fn request_like(d: &Detail) -> Value {
    let s = &d.summary;
    let wanted = s.message_count.max(1) as usize;
    let depth = s.tool_calls_so_far as usize;
    let mut messages: Vec<Value> = Vec::new();
    if wanted >= 2 {
        // The conversation's opening, shared by its turns (what providers' prompt caches key on).
        messages.push(json!({"role": "system", "content": format!("conversation {:016x}", s.conversation.key)}));
    }
    if depth > 0 && wanted >= messages.len() + 3 {
        let calls: Vec<Value> = (0..depth)
            .map(|i| {
                json!({"id": format!("call_{i}"), "type": "function",
                            "function": {"name": "tool_0", "arguments": "{}"}})
            })
            .collect();
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": calls}));
        messages.push(json!({"role": "tool", "tool_call_id": "call_0", "content": "ok"}));
    }
    while messages.len() + 1 < wanted {
        let role = if messages.len() % 2 == 1 {
            "user"
        } else {
            "assistant"
        };
        messages.push(json!({"role": role, "content": "ok"}));
    }
    let last = |content: String| {
        if s.has_images {
            json!({"role": "user", "content": [
                {"type": "text", "text": content},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]})
        } else {
            json!({"role": "user", "content": content})
        }
    };
    let mut body = json!({
        "model": s.requested_model,
        "user": format!("conversation-{:016x}", s.conversation.key),
    });
    if s.streaming {
        body["stream"] = json!(true);
    }
    if let Some(m) = s.max_output_tokens {
        body["max_tokens"] = json!(m);
    }
    if let Some(e) = &s.reasoning_effort {
        body["reasoning_effort"] = json!(e);
    }
    if s.tools_offered > 0 {
        body["tools"] = json!(
            (0..s.tools_offered)
                .map(|i| json!({"type": "function",
            "function": {"name": format!("tool_{i}"), "parameters": {"type": "object"}}}))
                .collect::<Vec<_>>()
        );
    }
    if !s.hints.is_empty() {
        body["metadata"] = s
            .hints
            .iter()
            .map(|p| (p.key.clone(), json!(p.value)))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    // The host's own estimate of everything but the last message's text says how much text it
    // needs (about four bytes a token).
    let mut probe = body.clone();
    let mut with_empty = messages.clone();
    with_empty.push(last(String::new()));
    probe["messages"] = json!(with_empty);
    let base = switchyard_upstream::chat::ChatRequest::parse(
        switchyard_upstream::dialect::json_bytes(&probe),
        100_000,
    )
    .map_or(0, |c| c.stats.estimated_input_tokens);
    let want = (s.estimated_input_tokens.saturating_sub(base) * 4) as usize;
    messages.push(last(text(&s.last_user_excerpt, want)));
    body["messages"] = json!(messages);
    body
}

/// The file a policy's live version can be simulated from: its kept version, its configured
/// file, or (built in) its bytes written out.
pub(crate) fn live_file(
    playground: &Playground,
    snapshot: &crate::live::snapshot::Snapshot,
    policy: &str,
) -> Result<PathBuf, String> {
    let loaded = snapshot
        .policies
        .get(policy)
        .ok_or_else(|| format!("no policy `{policy}` in service"))?;
    let hash = loaded.compiled.hash().to_string();
    if let Some(kept) = super::versions::file(snapshot, policy, &hash).filter(|p| p.exists()) {
        return Ok(kept);
    }
    match &loaded.source {
        crate::config::PolicySource::File(p) => Ok(p.clone()),
        crate::config::PolicySource::Builtin(b) => {
            let bytes = crate::live::loader::read_source(policy, &loaded.source)
                .map_err(|e| e.to_string())?;
            playground
                .scratch(&format!("builtin-{b}-{}.wasm", &hash[..12]), &bytes)
                .map_err(|e| e.to_string())
        }
    }
}

/// The config file to simulate with: the one in service, or the embedded default written out.
pub(crate) fn config_file(
    playground: &Playground,
    live: &crate::live::Live,
) -> Result<PathBuf, String> {
    if let Some(p) = &live.config_path {
        return Ok(p.clone());
    }
    let snapshot = live.snapshot.load();
    if snapshot.config.origin == "<embedded default>" {
        return playground
            .scratch("default.toml", crate::config::EMBEDDED_DEFAULT.as_bytes())
            .map_err(|e| e.to_string());
    }
    Err(
        "the Playground needs the config file the gateway runs on (this one was given in memory)"
            .into(),
    )
}

/// A label for a component path in reports.
pub(crate) fn label(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_upstream::chat::ChatRequest;

    #[test]
    fn a_replayed_request_looks_like_the_summary_it_came_from() {
        let mut summary = switchyard_policy::defaults::summary("r1", "a", "{}");
        summary.estimated_input_tokens = 3000;
        summary.message_count = 9;
        summary.tool_calls_so_far = 3;
        summary.tools_offered = 2;
        summary.max_output_tokens = Some(700);
        summary.requested_model = "auto".into();
        let detail = Detail {
            id: "r1".into(),
            summary: summary.clone(),
            excerpt_redacted: Some(10),
            policy: "p@1".into(),
            decision: Err(switchyard_policy::PolicyFailure::new(
                switchyard_policy::FailureKind::Trap,
                "x",
            )),
        };
        let trace = trace_of(&[(detail, Some(42))]);
        let line: Value = serde_json::from_str(trace.trim()).unwrap();
        assert_eq!(line["output_tokens"], 42);
        let chat = ChatRequest::parse(bytes::Bytes::from(line["request"].to_string()), 1000)
            .expect("a valid chat request");
        let s = &chat.stats;
        assert_eq!(s.message_count, 9);
        assert_eq!(s.tool_calls_so_far, 3);
        assert_eq!(s.tools_offered, 2);
        assert_eq!(chat.max_output_tokens(), Some(700));
        let tokens = s.estimated_input_tokens as i64;
        assert!((tokens - 3000).abs() < 150, "{tokens}");
    }
}
