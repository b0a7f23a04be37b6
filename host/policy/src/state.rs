//! Per-call `Store` data: the limits being enforced, and the host's imports (`log`, in every
//! version of the contract, and 0.2's `state`).

use std::sync::Arc;

use crate::bindings::types::LogLevel;
use crate::bindings::{convert, v0_1, v0_2};
use crate::limits::SandboxLimits;

/// Where a tenant's policy keeps its statistics (`state` in the contract). The host owns it: it
/// bounds keys and bytes per tenant and may share it between replicas.
pub trait PolicyStore: Send + Sync {
    /// The value under `key`.
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    /// Stores `value` under `key`, or says why not (a limit).
    fn set(&self, key: &str, value: Vec<u8>) -> Result<(), String>;
    /// Removes `key`.
    fn remove(&self, key: &str);
}

/// One line a policy logged, kept when the caller asked to capture them (e.g. `policy check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLogLine {
    /// Severity.
    pub level: LogLevel,
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
    /// The tenant's store, when the call may read it.
    pub(crate) store: Option<Arc<dyn PolicyStore>>,
    /// Whether the call may write it (`on-outcome`, not `decide`).
    pub(crate) store_writable: bool,
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
            store: None,
            store_writable: false,
        }
    }

    /// Makes a store instantiated ahead of time, or kept warm after earlier calls, ready for a
    /// call: whose call it is, whether to capture its log lines, and the per-call counts from
    /// zero (the `log` limit is per decision). What the instance holds (memory) stays counted.
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
        self.log_calls = 0;
        self.memory_refused = false;
        self.log_limit_hit = false;
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

impl PolicyState {
    /// Forwards a policy's log line to `tracing`, tagged with tenant, request and policy. Past the
    /// per-call cap the call traps: a policy that logs in a loop fails instead of flooding logs.
    fn write_log(&mut self, level: LogLevel, mut message: String) -> wasmtime::Result<()> {
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
            LogLevel::Trace => {
                tracing::trace!(target: "switchyard::policy_log", tenant, request_id, policy, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "switchyard::policy_log", tenant, request_id, policy, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "switchyard::policy_log", tenant, request_id, policy, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "switchyard::policy_log", tenant, request_id, policy, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "switchyard::policy_log", tenant, request_id, policy, "{message}")
            }
        }
        if let Some(lines) = &mut self.captured {
            lines.push(PolicyLogLine { level, message });
        }
        Ok(())
    }
}

impl v0_2::switchyard::policy::log::Host for PolicyState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.write_log(level, message)
    }
}

impl v0_1::switchyard::policy::log::Host for PolicyState {
    fn log(
        &mut self,
        level: v0_1::switchyard::policy::log::Level,
        message: String,
    ) -> wasmtime::Result<()> {
        self.write_log(convert::level(level), message)
    }
}

// === impl state::Host ===

/// Longest key a policy may store under, bytes.
const MAX_KEY_BYTES: usize = 256;

impl v0_2::switchyard::policy::state::Host for PolicyState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.store.as_ref().and_then(|s| s.get(&key)))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        if !self.store_writable {
            return Ok(Err(
                "state is read-only while deciding: write it in on-outcome".into(),
            ));
        }
        if key.len() > MAX_KEY_BYTES {
            return Ok(Err(format!("keys are at most {MAX_KEY_BYTES} bytes")));
        }
        Ok(match &self.store {
            Some(s) => s.set(&key, value),
            None => Err("this host keeps no state for the tenant".into()),
        })
    }

    fn remove(&mut self, key: String) -> wasmtime::Result<()> {
        if self.store_writable
            && let Some(s) = &self.store
        {
            s.remove(&key);
        }
        Ok(())
    }
}

// The `types` interfaces have no functions; wasmtime still wants their (empty) host traits.
impl v0_2::switchyard::policy::types::Host for PolicyState {}
impl v0_1::switchyard::policy::types::Host for PolicyState {}
