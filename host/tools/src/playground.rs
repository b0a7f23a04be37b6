//! The console's Playground runs `policy simulate` through this: the gateway cannot depend on
//! this crate (this crate depends on it), so the binary installs it with
//! `Gateway::set_playground(Arc::new(Playground))`.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;
use switchyard_gateway::{Simulate, SimulateJob};

use crate::simulate::{self, SimulateOptions};

/// `policy simulate` for the Playground: the job's policy beside the live one, every single-model
/// baseline, the prompt cache modelled, 500 output tokens for requests that name none.
pub struct Playground;

impl Simulate for Playground {
    fn simulate(
        &self,
        job: SimulateJob,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send>> {
        Box::pin(async move {
            let options = SimulateOptions {
                policy: job.policy,
                config: job.config,
                requests: job.requests,
                tenant: Some(job.tenant),
                compare: Some(job.compare),
                faults: None,
                default_output_tokens: 500,
                cache_hit_share: None,
                state_in: None,
                state_out: None,
                json: None,
                svg: None,
                quiet: true,
            };
            let report = simulate::run(&options)
                .await
                .map_err(|e| format!("{e:#}"))?;
            serde_json::to_value(&report).map_err(|e| e.to_string())
        })
    }
}
