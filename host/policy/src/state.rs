//! Per-decision `Store` data: the limits being enforced and the `log` import.

use std::sync::Arc;

use crate::bindings::switchyard::policy::log;
use crate::limits::SandboxLimits;

/// One line a policy logged, kept when the caller asked to capture them (e.g. `policy check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLogLine {
    /// Severity.
    pub level: log::Level,
    /// The message, cut to the per-line limit.
    pub message: String,
}

/// Data owned by one decision's `Store`. Dropped with it.
pub(crate) struct PolicyState {
    pub(crate) tenant: Arc<str>,
    pub(crate) request_id: Arc<str>,
    pub(crate) policy: Arc<str>,
    limits: SandboxLimits,
    memory_in_use: usize,
    log_calls: u32,
    pub(crate) memory_refused: bool,
    pub(crate) log_limit_hit: bool,
    pub(crate) captured: Option<Vec<PolicyLogLine>>,
    /// Why the epoch callback stopped the call, when it did: CPU budget or wall-clock cap.
    pub(crate) stopped_because: Option<String>,
}

impl PolicyState {
    pub(crate) fn new(
        tenant: Arc<str>,
        request_id: Arc<str>,
        policy: Arc<str>,
        limits: SandboxLimits,
        capture_logs: bool,
    ) -> Self {
        PolicyState {
            tenant,
            request_id,
            policy,
            limits,
            memory_in_use: 0,
            log_calls: 0,
            memory_refused: false,
            log_limit_hit: false,
            captured: capture_logs.then(Vec::new),
            stopped_because: None,
        }
    }

    /// Makes a store that was instantiated ahead of time ready for a call: whose call it is and
    /// whether to capture its log lines. What instantiation used (memory) stays counted.
    pub(crate) fn begin_call(
        &mut self,
        tenant: Arc<str>,
        request_id: Arc<str>,
        capture_logs: bool,
    ) {
        self.tenant = tenant;
        self.request_id = request_id;
        self.captured = capture_logs.then(Vec::new);
        self.stopped_because = None;
    }
}

// === impl ResourceLimiter ===

/// Enforces the memory and table caps, and remembers a refusal so a resulting trap is classified
/// as out-of-memory rather than a generic trap.
impl wasmtime::ResourceLimiter for PolicyState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self
            .memory_in_use
            .saturating_sub(current)
            .saturating_add(desired);
        if after > self.limits.memory_bytes {
            self.memory_refused = true;
            return Ok(false);
        }
        self.memory_in_use = after;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.limits.max_table_elements)
    }

    fn instances(&self) -> usize {
        self.limits.max_instances
    }

    fn tables(&self) -> usize {
        self.limits.max_tables
    }

    fn memories(&self) -> usize {
        self.limits.max_instances
    }
}

// === impl log::Host ===

impl log::Host for PolicyState {
    /// Forwards a policy's log line to `tracing`, tagged with tenant, request and policy. Past the
    /// per-decision cap the call traps: a policy that logs in a loop fails instead of flooding logs.
    fn log(&mut self, level: log::Level, mut message: String) -> wasmtime::Result<()> {
        self.log_calls += 1;
        if self.log_calls > self.limits.max_log_calls {
            self.log_limit_hit = true;
            return Err(wasmtime::format_err!(
                "log called more than {} times in one decision",
                self.limits.max_log_calls
            ));
        }
        if message.len() > self.limits.max_log_line_bytes {
            let mut cut = self.limits.max_log_line_bytes;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let (tenant, request_id, policy) = (&*self.tenant, &*self.request_id, &*self.policy);
        match level {
            log::Level::Trace => {
                tracing::trace!(target: "switchyard::policy_log", tenant, request_id, policy, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "switchyard::policy_log", tenant, request_id, policy, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "switchyard::policy_log", tenant, request_id, policy, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "switchyard::policy_log", tenant, request_id, policy, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "switchyard::policy_log", tenant, request_id, policy, "{message}")
            }
        }
        if let Some(lines) = &mut self.captured {
            lines.push(PolicyLogLine { level, message });
        }
        Ok(())
    }
}

// The `types` interface has no functions; wasmtime still wants its (empty) host trait.
impl crate::bindings::switchyard::policy::types::Host for PolicyState {}
