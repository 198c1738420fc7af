//! Reading variables one at a time, each with its default and its bounds. Every reader
//! names the variable in its error, so a bad value stops start-up with a reason, never a
//! panic; and a blank value means "the default", so `VAR=` in a `.env` unsets it.

use std::cell::RefCell;
use std::str::FromStr;
use std::time::Duration;

use super::ConfigError;

/// No timeout setting may exceed a day; larger values are typos, and some overflow timer
/// arithmetic. Token lifetimes have their own caps.
pub(super) const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A section of the settings, read whole: it starts from its owner's defaults (the
/// adapter's `Default` when the section is an adapter's configuration) and checks its
/// own rules, so no section is ever half-built.
pub(super) trait FromEnv: Sized {
    fn from_env(env: &Env<'_>) -> Result<Self, ConfigError>;
}

/// Settings that were renamed, with the name they had: the old name is still read when
/// the new one is unset, and says so at start-up. (`WS_*` limits also govern gRPC chat
/// streams, so they are `LIVE_*` now.)
pub(super) const RENAMED: &[(&str, &str)] = &[
    ("LIVE_MAX_FRAMES_PER_SEC", "WS_MAX_MESSAGES_PER_SEC"),
    ("LIVE_OUTBOUND_QUEUE", "WS_OUTBOUND_QUEUE"),
    ("LIVE_MAX_CONNECTIONS", "WS_MAX_CONNECTIONS"),
];

/// The variables, through whatever lookup the caller gave (the process environment, a
/// layered file, a test's list).
pub(super) struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// What start-up should warn about (old names in use).
    warnings: RefCell<Vec<String>>,
}

impl<'a> Env<'a> {
    pub(super) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            warnings: RefCell::new(Vec::new()),
        }
    }

    /// The warnings reading has collected so far, each once.
    pub(super) fn take_warnings(&self) -> Vec<String> {
        let mut warnings = self.warnings.take();
        warnings.sort();
        warnings.dedup();
        warnings
    }

    /// The value, or `None` when unset or blank (so `VAR=` in a `.env` means "default").
    /// A renamed setting falls back to its old name.
    pub(super) fn raw(&self, var: &str) -> Option<String> {
        let value = self.lookup(var);
        let Some((_, old)) = RENAMED.iter().find(|(new, _)| *new == var) else {
            return value;
        };
        match (value, self.lookup(old)) {
            (Some(value), Some(_)) => {
                self.warn(format!("{old} is ignored: {var} is set"));
                Some(value)
            }
            (Some(value), None) => Some(value),
            (None, Some(value)) => {
                self.warn(format!("{old} is the old name of {var}; rename it"));
                Some(value)
            }
            (None, None) => None,
        }
    }

    fn lookup(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    fn warn(&self, warning: String) {
        self.warnings.borrow_mut().push(warning);
    }

    /// A comma-separated list, blanks dropped; `None` when unset.
    pub(super) fn list(&self, var: &str) -> Option<Vec<String>> {
        self.raw(var).map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    pub(super) fn parse<T: FromStr>(
        &self,
        var: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.raw(var) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|_| ConfigError {
                var,
                reason: format!("`{raw}` is not a valid {}", kind::<T>()),
            }),
        }
    }

    /// A count that must be at least 1 (zero is the type's default).
    pub(super) fn positive<T: FromStr + Default + PartialEq>(
        &self,
        var: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        let value = self.parse(var, default)?;
        if value == T::default() {
            return Err(ConfigError {
                var,
                reason: "must be at least 1".into(),
            });
        }
        Ok(value)
    }

    /// A count that must be at least 1 when set; `None` when unset.
    pub(super) fn optional_positive(
        &self,
        var: &'static str,
    ) -> Result<Option<usize>, ConfigError> {
        self.raw(var)
            .map(|_| self.positive(var, 1usize))
            .transpose()
    }

    pub(super) fn secs(
        &self,
        var: &'static str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        self.duration(var, default, Duration::from_secs, DAY)
    }

    pub(super) fn millis(
        &self,
        var: &'static str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        self.duration(var, default, Duration::from_millis, DAY)
    }

    /// A positive whole number of `unit`s, at most `max`.
    pub(super) fn duration(
        &self,
        var: &'static str,
        default: Duration,
        unit: fn(u64) -> Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        match self.raw(var) {
            None => Ok(default),
            Some(_) => {
                let n: u64 = self.parse(var, 0)?;
                if n == 0 {
                    return Err(ConfigError {
                        var,
                        reason: "must be greater than 0".into(),
                    });
                }
                let value = unit(n);
                if value > max {
                    return Err(ConfigError {
                        var,
                        reason: format!("must be at most {}s", max.as_secs()),
                    });
                }
                Ok(value)
            }
        }
    }
}

/// What a value of `T` looks like, for the error message.
fn kind<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    if name.ends_with("u16") {
        "port number (0-65535)"
    } else if name == "bool" {
        "boolean (`true` or `false`)"
    } else {
        "non-negative integer"
    }
}
