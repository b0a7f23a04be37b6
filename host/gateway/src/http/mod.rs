//! The listeners: the API's accept loop with its graceful drain, and the admin API.

pub mod admin;
pub mod server;
