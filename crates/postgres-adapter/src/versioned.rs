//! The optimistic-concurrency UPDATE every versioned entity shares (users, posts).

/// Applies `$changeset` to the row `$id` of `$table` and returns the row as `$row`, at
/// version `$expected` when one is given: the check is part of the UPDATE itself, so
/// there is no read-then-write race. When nothing was written, says why:
/// `VersionMismatch` when the row is there at another version, `NotFound` when it is
/// gone; other failures go through `$query_error`. A macro, not a function: diesel's
/// table types differ per table.
macro_rules! versioned_update {
    ($conn:expr, $table:ident, $id:expr, $changeset:expr, $expected:expr, $row:ty, $entity:literal, $query_error:path) => {{
        use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, SelectableHelper};
        use diesel_async::RunQueryDsl;
        let conn = $conn;
        let id = $id;
        let updated: Option<$row> = match $expected {
            Some(version) => {
                diesel::update(
                    $table::table
                        .filter($table::id.eq(id.as_uuid()))
                        .filter($table::version.eq(version.get())),
                )
                .set($changeset)
                .returning(<$row>::as_returning())
                .get_result(&mut *conn)
                .await
            }
            None => {
                diesel::update($table::table.find(id.as_uuid()))
                    .set($changeset)
                    .returning(<$row>::as_returning())
                    .get_result(&mut *conn)
                    .await
            }
        }
        .optional()
        .map_err($query_error)?;
        match updated {
            Some(row) => row.try_into(),
            None => {
                let exists: bool =
                    diesel::select(diesel::dsl::exists($table::table.find(id.as_uuid())))
                        .get_result(&mut *conn)
                        .await
                        .map_err($query_error)?;
                Err(if exists {
                    domain::Error::VersionMismatch { entity: $entity }
                } else {
                    domain::Error::not_found($entity, id)
                })
            }
        }
    }};
}

pub(crate) use versioned_update;
