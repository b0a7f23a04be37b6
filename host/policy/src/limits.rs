//! What one decision may consume.

use std::time::Duration;

/// Per-tenant sandbox limits for one policy call.
///
/// The defaults suit compiled policies (Rust, C, Zig); interpreted ones (Python, JavaScript) start
/// with 9-13 MiB of linear memory and need a larger `memory_bytes` and a longer `deadline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Linear memory the instance may grow to, in bytes, summed over its memories.
    pub memory_bytes: usize,
    /// CPU-time budget for one call (instantiation plus the export, or, for an instance made
    /// ahead with `CompiledPolicy::prepare`, each on its own), measured on the calling thread and
    /// checked at every epoch tick (so enforced within one tick).
    pub deadline: Duration,
    /// Calls to the `log` import per decision before the call traps.
    pub max_log_calls: u32,
    /// Bytes of one log line kept; longer lines are cut.
    pub max_log_line_bytes: usize,
    /// Size of a returned decision (all its strings) before it is refused as oversized.
    pub max_decision_bytes: usize,
    /// Core instances, tables and memories one component may create.
    pub max_instances: usize,
    /// Tables one instance may create.
    pub max_tables: usize,
    /// Elements one table may grow to.
    pub max_table_elements: usize,
    /// Whether each decision gets a fresh instance (the default) or the tenant's warm one.
    pub instance: InstanceReuse,
}

impl SandboxLimits {
    /// Whether an instance made under `self` may serve a call under `other`: the same limits,
    /// whichever way each gets its instances (an instance made ahead has never been called).
    pub fn same_sandbox(&self, other: &SandboxLimits) -> bool {
        SandboxLimits {
            instance: other.instance,
            ..self.clone()
        } == *other
    }
}

/// How a tenant's decisions get their instances: the isolation level between its own requests.
/// Different tenants never share an instance either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InstanceReuse {
    /// A fresh instance per decision: nothing of one request is in the memory the next sees.
    #[default]
    Fresh,
    /// One warm instance per tenant (and policy version), reused by that tenant's decisions and
    /// replaced after any failure (a trap, a limit, an oversized decision). Saves the teardown
    /// and the next instantiation per decision; a request's decision may then see what the
    /// tenant's earlier decisions left in the instance's memory (docs/security-model.md).
    Warm,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            // Within what the engine keeps resident per pooled slot (`keep_resident_bytes`, 4 MiB),
            // so a decision under the default never pays page faults or unmapping; and small,
            // since a policy that grows to its cap on every call makes the slot's reset rewrite
            // all of it, which other tenants feel as memory traffic (measured:
            // `host/gateway/src/sandbox/README.md`). The Rust reference policy starts at 1.3 MiB.
            memory_bytes: 2 << 20,
            deadline: Duration::from_millis(5),
            max_log_calls: 32,
            max_log_line_bytes: 1024,
            max_decision_bytes: 64 << 10,
            max_instances: 64,
            max_tables: 64,
            max_table_elements: 100_000,
            instance: InstanceReuse::Fresh,
        }
    }
}
