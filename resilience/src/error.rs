//! Errors shared by every module.

use std::borrow::Cow;

/// A configuration was rejected by a builder; `field` names the offending option.
///
/// Builders never panic and never clamp silently: a zero threshold, a `max_delay` below the
/// `initial_delay`, a window of size 0 and the like come back as this error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: `{field}` {reason}")]
pub struct ConfigError {
    /// The option that was rejected, as the builder method names it (e.g. `failure_threshold`).
    pub field: &'static str,
    /// Why it was rejected, in words (e.g. "must be at least 1").
    pub reason: Cow<'static, str>,
}

impl ConfigError {
    /// A rejection of `field` for `reason`.
    pub fn new(field: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A preset was asked for by a name that does not exist (names read from configuration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{name}`; valid names: {}", .valid.join(", "))]
pub struct UnknownPreset {
    /// What kind of preset was asked for (e.g. "retry service").
    pub kind: &'static str,
    /// The name asked for.
    pub name: String,
    /// The names that exist.
    pub valid: &'static [&'static str],
}

impl UnknownPreset {
    /// `name` is not a `kind`; `valid` lists the names that are.
    pub fn new(kind: &'static str, name: &str, valid: &'static [&'static str]) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            valid,
        }
    }
}
