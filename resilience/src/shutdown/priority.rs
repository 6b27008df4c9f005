//! Hook priorities: higher runs first.

use std::fmt;

/// The order in which shutdown hooks run: higher first, equal priorities concurrently.
///
/// Any `i32` is allowed; the named levels are the conventional tiers.
///
/// ```
/// use resilience::shutdown::Priority;
/// assert_eq!(Priority::from_name("high"), Some(Priority::HIGH));
/// assert!(Priority::CRITICAL > Priority::NORMAL);
/// assert_eq!(Priority::from(42).value(), 42);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub i32);

impl Priority {
    /// 100: stop accepting requests (close servers).
    pub const CRITICAL: Priority = Priority(100);
    /// 75: close connections.
    pub const HIGH: Priority = Priority(75);
    /// 50: standard cleanup (the default).
    pub const NORMAL: Priority = Priority(50);
    /// 25: nice-to-have cleanup.
    pub const LOW: Priority = Priority(25);
    /// 0: best effort.
    pub const BACKGROUND: Priority = Priority(0);

    /// The valid names for [`Priority::from_name`], highest first.
    pub const NAMES: &'static [&'static str] = &["critical", "high", "normal", "low", "background"];

    /// The named level for `name` (`"critical"`, `"high"`, `"normal"`, `"low"`, `"background"`).
    pub fn from_name(name: &str) -> Option<Priority> {
        match name {
            "critical" => Some(Self::CRITICAL),
            "high" => Some(Self::HIGH),
            "normal" => Some(Self::NORMAL),
            "low" => Some(Self::LOW),
            "background" => Some(Self::BACKGROUND),
            _ => None,
        }
    }

    /// The numeric value.
    pub const fn value(self) -> i32 {
        self.0
    }

    /// The name of this level when it is one of the named ones.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Self::CRITICAL => Some("critical"),
            Self::HIGH => Some("high"),
            Self::NORMAL => Some("normal"),
            Self::LOW => Some("low"),
            Self::BACKGROUND => Some("background"),
            _ => None,
        }
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::NORMAL
    }
}

impl From<i32> for Priority {
    fn from(value: i32) -> Self {
        Priority(value)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// The name given to `Priority::from_str` is not one of [`Priority::NAMES`] nor an integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown priority `{0}`: expected one of critical, high, normal, low, background, or an integer"
)]
pub struct ParsePriorityError(pub String);

impl std::str::FromStr for Priority {
    type Err = ParsePriorityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::from_name(s)
            .or_else(|| s.parse::<i32>().ok().map(Priority))
            .ok_or_else(|| ParsePriorityError(s.to_owned()))
    }
}
