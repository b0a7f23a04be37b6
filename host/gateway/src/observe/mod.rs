//! What the gateway tells operators: logs and traces, Prometheus metrics, and the ring of recent
//! requests the console reads.

pub mod metrics;
pub(crate) mod recent;
pub mod telemetry;
