//! Runs Switchyard routing policies as sandboxed WebAssembly components.
//!
//! This crate owns the wasmtime embedding and nothing else: it knows the WIT contract
//! (`wit/policy.wit`) but not HTTP, tenants' keys or upstreams. The gateway hands it a
//! [`types::RequestSummary`] and gets back a [`types::Decision`] or a [`PolicyFailure`] that says
//! what went wrong (trap, deadline, memory, ...), which the gateway turns into the tenant's
//! configured outcome.
//!
//! The three lifetimes of state:
//! - process: one [`PolicyEngine`] (wasmtime `Engine`, `Linker`, the epoch ticker thread);
//! - load: one [`CompiledPolicy`] per policy file (compiled component and its `InstancePre`,
//!   type-checked against the contract when it is loaded);
//! - decision: a fresh `Store` and instance per call, thrown away afterwards (when the caller
//!   drops its [`SpentInstance`]), so nothing survives between requests or crosses tenants.

mod bindings;
mod cache;
pub mod defaults;
mod engine;
mod epoch;
mod error;
mod hash;
mod limits;
mod policy;
mod state;

pub use bindings::{ContractVersion, types};
pub use cache::ArtifactCache;
pub use engine::{EngineSettings, PolicyEngine};
pub use error::{FailureKind, LoadError, PolicyFailure};
pub use hash::PolicyHash;
pub use limits::{InstanceReuse, SandboxLimits};
pub use policy::{CallContext, CompiledPolicy, Outcome, Prepared, SpentInstance};
pub use state::{PolicyLogLine, PolicyStore};
