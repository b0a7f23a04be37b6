//! The policy's own statistics: a small key-value store per tenant that the host keeps (bounded in
//! keys and bytes, shared by replicas through Redis when they share one).
//!
//! Readable everywhere; writable only in [`crate::Policy::on_outcome`]: while deciding, [`set`]
//! fails, so a decision stays a function of its request and the state it read. The host calls
//! `on_outcome` only for decisions that asked for it ([`crate::Decision::report_outcome`]).
//!
//! On wasm the calls go to the host. Natively (`cargo test`) they go to an in-memory map per
//! thread, which [`crate::testing`] can seed and inspect and which refuses writes inside
//! [`crate::testing::decide`], as the host does.
//!
//! ```
//! use switchyard_sdk::state;
//!
//! state::set_json("latency", &[120u32, 80]).unwrap();
//! assert_eq!(state::get_json::<Vec<u32>>("latency"), Some(vec![120, 80]));
//! state::remove("latency");
//! assert_eq!(state::get("latency"), None);
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Option<Vec<u8>> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::switchyard::policy::state::get(key);
    #[cfg(not(target_arch = "wasm32"))]
    return native::get(key);
}

/// Stores `value` under `key`. Fails while deciding, or past the tenant's key or byte limits.
pub fn set(key: &str, value: &[u8]) -> Result<(), String> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::switchyard::policy::state::set(key, value);
    #[cfg(not(target_arch = "wasm32"))]
    return native::set(key, value);
}

/// Removes `key` (nothing happens while deciding, where state is read-only).
pub fn remove(key: &str) {
    #[cfg(target_arch = "wasm32")]
    crate::bindings::switchyard::policy::state::remove(key);
    #[cfg(not(target_arch = "wasm32"))]
    native::remove(key);
}

/// The value under `key` read as JSON. `None` when there is none or it does not parse as a `T`
/// (say, written by an older version of the policy): start afresh then.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Option<T> {
    serde_json::from_slice(&get(key)?).ok()
}

/// Stores `value` as JSON under `key`.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), String> {
    let bytes = serde_json::to_vec(value).map_err(|e| format!("{key}: {e}"))?;
    set(key, &bytes)
}

/// The native stand-in for the host's store: one map per thread.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native {
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    thread_local! {
        pub(crate) static STORE: RefCell<BTreeMap<String, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
        /// Set while [`crate::testing::decide`] runs a decision.
        pub(crate) static READ_ONLY: Cell<bool> = const { Cell::new(false) };
    }

    pub(crate) fn get(key: &str) -> Option<Vec<u8>> {
        STORE.with(|s| s.borrow().get(key).cloned())
    }

    pub(crate) fn set(key: &str, value: &[u8]) -> Result<(), String> {
        if READ_ONLY.get() {
            return Err("state is read-only while deciding: write it in on-outcome".into());
        }
        STORE.with(|s| s.borrow_mut().insert(key.to_owned(), value.to_owned()));
        Ok(())
    }

    pub(crate) fn remove(key: &str) {
        if !READ_ONLY.get() {
            STORE.with(|s| s.borrow_mut().remove(key));
        }
    }
}
