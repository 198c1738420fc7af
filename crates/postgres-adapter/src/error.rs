//! Every database failure becomes a [`domain::Error`] here, so the rest of the service
//! never sees diesel or the pool.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;
use domain::Error;

/// A pool checkout failure: the pool is exhausted past its wait timeout, or no new
/// connection can be made. Either way the database cannot serve us now.
pub(crate) fn pool(error: PoolError) -> Error {
    match error {
        PoolError::NoRuntimeSpecified => Error::internal(error.to_string()),
        other => Error::unavailable(other.to_string()),
    }
}

/// A failed statement. `unique` maps a unique index or constraint name to the
/// `(entity, field)` the duplicate is reported on.
pub(crate) fn query(error: DieselError, unique: &[(&str, &'static str, &'static str)]) -> Error {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, ref info) => {
            let constraint = info.constraint_name().unwrap_or_default();
            match unique.iter().find(|(name, _, _)| *name == constraint) {
                Some((_, entity, field)) => Error::Duplicate { entity, field },
                None => Error::internal(error.to_string()),
            }
        }
        ref lost if is_connection_loss(lost) => Error::unavailable(error.to_string()),
        other => Error::internal(other.to_string()),
    }
}

/// Whether `error` means the connection itself is gone (server restart,
/// `pg_terminate_backend`, a cut network), not that the statement was wrong.
pub(crate) fn is_connection_loss(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        // diesel-async reports a connection dropped mid-query as an unknown database
        // error; only its message tells.
        DieselError::DatabaseError(_, info) => mentions_connection_loss(info.message()),
        _ => false,
    }
}

fn mentions_connection_loss(message: &str) -> bool {
    const SIGNS: [&str; 5] = [
        "connection closed",
        "terminating connection",
        "server closed the connection",
        "broken pipe",
        "connection reset",
    ];
    let message = message.to_ascii_lowercase();
    SIGNS.iter().any(|s| message.contains(s))
}
