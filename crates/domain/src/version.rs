use std::fmt;

/// How many times an entity has been written: 1 when created, +1 on every update.
/// Clients see it as the entity's `ETag` and send it back in `If-Match`, so an update
/// based on a stale read is refused instead of silently overwriting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(i64);

impl Version {
    pub const INITIAL: Version = Version(1);

    /// A version read back from storage or a client; `None` below 1.
    pub fn new(value: i64) -> Option<Self> {
        (value >= 1).then_some(Self(value))
    }

    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
