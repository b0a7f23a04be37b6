//! What the gateway tells operators: logs and traces, and Prometheus metrics.

pub mod metrics;
pub mod telemetry;
