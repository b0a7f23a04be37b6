//! The contract's enums as config values: each reads and writes its WIT name (kebab-case), so a
//! policy's config can hold `cache: CacheMode` instead of a string it matches by hand.
//!
//! ```
//! use switchyard_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Config { cache: CacheMode }
//!
//! let c: Config = serde_json::from_str(r#"{"cache":"read-write"}"#).unwrap();
//! assert_eq!(c.cache, CacheMode::ReadWrite);
//! let e = serde_json::from_str::<Config>(r#"{"cache":"sometimes"}"#).err().unwrap();
//! assert!(e.to_string().contains("unknown cache mode `sometimes`"));
//! assert_eq!("degraded".parse::<Health>(), Ok(Health::Degraded));
//! ```

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::bindings::switchyard::policy::log::Level;
use crate::bindings::switchyard::policy::types::{CacheMode, ConversationSource, Endpoint, Health};

macro_rules! contract_enum {
    ($ty:ident, $what:literal, $default:ident, [$($variant:ident => $name:literal),+ $(,)?]) => {
        impl $ty {
            /// Every value's WIT name, in the contract's order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The WIT name, e.g. `read-write`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                $ty::$default
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;

            fn from_str(name: &str) -> Result<Self, String> {
                match name {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(format!(
                        concat!("unknown ", $what, " `{}` (expected {})"),
                        name,
                        expected(Self::NAMES)
                    )),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Name;
                impl Visitor<'_> for Name {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, concat!("a ", $what, ": {}"), expected($ty::NAMES))
                    }
                    fn visit_str<E: de::Error>(self, name: &str) -> Result<$ty, E> {
                        name.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(Name)
            }
        }
    };
}

/// `a, b or c`.
fn expected(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

contract_enum!(CacheMode, "cache mode", Off, [
    Off => "off",
    ReadOnly => "read-only",
    WriteOnly => "write-only",
    ReadWrite => "read-write",
]);
contract_enum!(Health, "health", Healthy, [
    Healthy => "healthy",
    Degraded => "degraded",
    Unavailable => "unavailable",
]);
contract_enum!(Endpoint, "endpoint", ChatCompletions, [
    ChatCompletions => "chat-completions",
    Messages => "messages",
    Responses => "responses",
]);
contract_enum!(ConversationSource, "conversation source", Prefix, [
    Prefix => "prefix",
    User => "user",
]);
contract_enum!(Level, "log level", Info, [
    Trace => "trace",
    Debug => "debug",
    Info => "info",
    Warn => "warn",
    Error => "error",
]);

/// Splits a hint spec `key=value` (both sides non-empty) as [`crate::Request::hint_matches_any`]
/// reads it.
pub fn split_hint(spec: &str) -> Option<(&str, &str)> {
    spec.split_once('=')
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
}

/// Checks hint specs from a config: `Err("hint `hard` must look like key=value")` for the first
/// one that is not `key=value`. Specs that fail it never match.
pub fn check_hints<S: AsRef<str>>(specs: &[S]) -> Result<(), String> {
    match specs.iter().find(|s| split_hint(s.as_ref()).is_none()) {
        Some(bad) => Err(format!("hint `{}` must look like key=value", bad.as_ref())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(names: &[&str])
    where
        T: std::str::FromStr<Err = String> + fmt::Display + Serialize + de::DeserializeOwned,
        T: PartialEq + fmt::Debug,
    {
        for name in names {
            let value: T = name.parse().unwrap();
            assert_eq!(value.to_string(), *name);
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), value);
        }
    }

    #[test]
    fn every_enum_round_trips_through_its_wit_name() {
        round_trips::<CacheMode>(CacheMode::NAMES);
        round_trips::<Health>(Health::NAMES);
        round_trips::<Endpoint>(Endpoint::NAMES);
        round_trips::<ConversationSource>(ConversationSource::NAMES);
        round_trips::<Level>(Level::NAMES);
        assert_eq!(
            "Off".parse::<CacheMode>(),
            Err(
                "unknown cache mode `Off` (expected off, read-only, write-only or read-write)"
                    .into()
            )
        );
    }

    #[test]
    fn hint_specs_need_both_sides() {
        assert_eq!(split_hint("tier=pro"), Some(("tier", "pro")));
        assert_eq!(split_hint("a=b=c"), Some(("a", "b=c")));
        for bad in ["tier", "=pro", "tier=", ""] {
            assert_eq!(split_hint(bad), None, "{bad}");
        }
        assert_eq!(check_hints(&["a=b", "c=d"]), Ok(()));
        assert_eq!(
            check_hints(&["a=b", "hard"]),
            Err("hint `hard` must look like key=value".into())
        );
    }
}
