//! What is wrong with a config file, and reading the values whose errors it names.

use std::time::Duration;

/// A config file that could not be used, with the path of the setting at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Dotted path of the setting, e.g. `tenants.acme.policy`; the file name for I/O and syntax errors.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    pub(super) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A duration that may be written either way: `name = "30s"` (humantime: `250ms`, `30s`, `15m`,
/// `1h 30m`) or `name_ms = 30000`, kept for compatibility; not both. `path` names it without the
/// `_ms`.
pub(crate) fn opt_duration(
    human: Option<Duration>,
    ms: Option<u64>,
    path: &str,
) -> Result<Option<Duration>, ConfigError> {
    match either(human, ms, path)? {
        Some((d, at)) if d.is_zero() => Err(ConfigError::new(at, "must be greater than zero")),
        other => Ok(other.map(|(d, _)| d)),
    }
}

/// The duration set either way, with the path of the key that set it; zero allowed.
pub(crate) fn either(
    human: Option<Duration>,
    ms: Option<u64>,
    path: &str,
) -> Result<Option<(Duration, String)>, ConfigError> {
    Ok(match (human, ms) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                path,
                format!(
                    "set either `{}` or `{}_ms`, not both",
                    leaf(path),
                    leaf(path)
                ),
            ));
        }
        (Some(d), None) => Some((d, path.to_owned())),
        (None, Some(ms)) => Some((Duration::from_millis(ms), format!("{path}_ms"))),
        (None, None) => None,
    })
}

/// [`opt_duration`] with a default.
pub(crate) fn duration(
    human: Option<Duration>,
    ms: Option<u64>,
    default: Duration,
    path: &str,
) -> Result<Duration, ConfigError> {
    Ok(opt_duration(human, ms, path)?.unwrap_or(default))
}

fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}
