//! Offline tools for policy authors, behind `switchyard policy ...`: check a component against the
//! contract and some sample requests, and simulate a trace of requests through it to see the
//! model mix and what it would cost. Kept out of the gateway's crate: the proxy's hot path never
//! links them.

pub mod check;
pub mod playground;
pub mod samples;
pub mod simulate;
pub mod svg;
