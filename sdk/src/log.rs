//! Logging from a policy. On wasm the lines go to the host, which tags them with the tenant and
//! request id; natively (in tests) they are kept for [`crate::testing::take_logs`].

pub use crate::bindings::switchyard::policy::log::Level;

/// Writes one log line. The host caps how many lines one decision may write.
pub fn write(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::switchyard::policy::log::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    native::push(level, message);
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native {
    use super::Level;
    use std::cell::RefCell;

    thread_local! {
        pub(crate) static LINES: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn push(level: Level, message: &str) {
        LINES.with(|l| l.borrow_mut().push((level, message.to_owned())));
    }
}

/// Logs at debug level: `switchyard_sdk::debug!("tokens={}", n)`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Debug, &::std::format!($($arg)*)) };
}

/// Logs at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs at warn level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, &::std::format!($($arg)*)) };
}

/// Logs at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, &::std::format!($($arg)*)) };
}
