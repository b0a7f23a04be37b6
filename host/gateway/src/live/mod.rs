//! The live configuration: one immutable snapshot of config, tenants, policies and upstream
//! clients, rebuilt off the request path and swapped atomically when files change.

pub(crate) mod loader;
pub(crate) mod reload;
pub(crate) mod snapshot;
pub(crate) mod tenant;
pub(crate) mod watch;
