//! Keyset pagination: pages are addressed by the position of their last row, never by an offset,
//! so a page costs the same wherever it is and rows inserted meanwhile do not shift later pages.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::FieldError;

/// How many rows a page holds: 1 to [`Limit::MAX`], [`Limit::DEFAULT`] when not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    pub const DEFAULT: Limit = Limit(20);
    pub const MAX: u32 = 100;

    pub fn new(value: u32) -> Result<Self, FieldError> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Self(value))
        } else {
            Err(FieldError::new(
                "limit",
                format!("must be between 1 and {}", Self::MAX),
            ))
        }
    }

    /// Parses the raw query-string value.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let value: u64 = raw.trim().parse().map_err(|_| {
            FieldError::new(
                "limit",
                format!("must be an integer between 1 and {}", Self::MAX),
            )
        })?;
        Self::new(u32::try_from(value).unwrap_or(u32::MAX))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The position after which the next page starts, in the newest-first order
/// `(created_at DESC, id DESC)`. Clients see it only as an opaque string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: OffsetDateTime,
    pub id: Uuid,
}

impl Cursor {
    pub fn new(created_at: OffsetDateTime, id: Uuid) -> Self {
        Self { created_at, id }
    }

    pub fn encode(&self) -> String {
        let raw = format!(
            "{}:{}",
            self.created_at.unix_timestamp_nanos(),
            self.id.simple()
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Decodes a string made by [`Cursor::encode`]; anything else is a `cursor` field error.
    pub fn decode(encoded: &str) -> Result<Self, FieldError> {
        let invalid = || FieldError::new("cursor", "is not a cursor returned by this API");
        // A real cursor is about 60 characters; refuse to decode anything much longer.
        if encoded.len() > 128 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| invalid())?;
        let raw = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
        let (nanos, id) = raw.split_once(':').ok_or_else(invalid)?;
        let nanos: i128 = nanos.parse().map_err(|_| invalid())?;
        // Cursors we issue point at rows we stored; anything outside 1970..=9999 is made
        // up, and some storage (Postgres) cannot even compare such instants.
        if !(0..=MAX_CURSOR_NANOS).contains(&nanos) {
            return Err(invalid());
        }
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| invalid())?;
        let id = Uuid::try_parse(id).map_err(|_| invalid())?;
        Ok(Self { created_at, id })
    }
}

/// 9999-12-31T23:59:59.999999999Z in nanoseconds since the Unix epoch.
const MAX_CURSOR_NANOS: i128 = 253_402_300_799_999_999_999;

/// One page of a keyset-paginated listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in order: the extra row, when
    /// present, only proves that another page exists and is dropped.
    pub fn from_rows(mut rows: Vec<T>, limit: Limit, key: impl Fn(&T) -> Cursor) -> Self {
        let limit = limit.get() as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(key)
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_accepts_only_1_to_100() {
        let cases = [
            ("1", true),
            ("20", true),
            ("100", true),
            ("0", false),
            ("101", false),
            ("-1", false),
            ("abc", false),
            ("", false),
            ("99999999999999999999999", false),
        ];
        for (raw, ok) in cases {
            assert_eq!(Limit::parse(raw).is_ok(), ok, "limit {raw:?}");
        }
        assert_eq!(Limit::parse("7").unwrap().get(), 7);
        assert_eq!(Limit::parse("101").unwrap_err().field, "limit");
    }

    #[test]
    fn cursor_round_trips() {
        let cursor = Cursor::new(
            time::macros::datetime!(2026-11-28 10:11:12.123456 UTC),
            Uuid::now_v7(),
        );
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
    }

    #[test]
    fn garbage_cursors_are_field_errors() {
        let long = "A".repeat(500);
        for raw in [
            "",
            "!!!",
            "bm90LWEtY3Vyc29y",
            "MTI6bm90LWEtdXVpZA",
            long.as_str(),
        ] {
            let err = Cursor::decode(raw).unwrap_err();
            assert_eq!(err.field, "cursor", "{raw:?}");
        }
    }

    #[test]
    fn from_rows_keeps_limit_rows_and_points_after_the_last() {
        let limit = Limit::new(2).unwrap();
        let key = |n: &i64| Cursor::new(OffsetDateTime::UNIX_EPOCH, Uuid::from_u128(*n as u128));
        let page = Page::from_rows(vec![3, 2, 1], limit, key);
        assert_eq!(page.items, vec![3, 2]);
        assert_eq!(page.next_cursor, Some(key(&2)));

        let last = Page::from_rows(vec![3, 2], limit, key);
        assert_eq!(last.items, vec![3, 2]);
        assert_eq!(last.next_cursor, None);
    }
}
