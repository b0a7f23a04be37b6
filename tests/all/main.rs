//! All integration tests, in one binary (one link, shared harness). Each module covers one
//! behaviour of the real gateway over real HTTP on loopback, with policy components built from
//! source by `scripts/build-policies.sh`.

mod binary;
mod budgets;
mod caching;
mod clients;
mod conformance;
mod disconnects;
mod errors;
mod fallback;
mod hostile;
mod languages;
mod operations;
mod policy_failures;
mod reload;
mod replicas;
mod resilience;
mod routing;
mod shutdown;
mod streaming;
mod tools;
mod traces;
