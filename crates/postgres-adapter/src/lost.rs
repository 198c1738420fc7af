//! Discarding a connection at the first statement that found it gone.
//!
//! Checkouts do not run a `SELECT 1` (that doubled every request's round trips); they
//! ask diesel-async whether the connection is broken, and it answers from
//! `tokio_postgres::Client::is_closed`, which turns true only once the connection's
//! driver task has finished. A statement can fail "terminating connection" and reach
//! the pool before that task has read the end of the stream, and the connection would
//! then be handed out, and fail, once more. [`LossWatch`] sits on every connection as
//! its diesel instrumentation and remembers a failure that means the connection is
//! gone; [`recycle_check`] refuses such a connection at its next checkout, so the pool
//! opens a fresh one instead.

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::{DatabaseErrorKind, Error as DieselError, QueryResult};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::future::BoxFuture;

/// Remembers whether a statement on this connection failed because it is gone.
#[derive(Debug, Default)]
pub(crate) struct LossWatch {
    lost: bool,
}

impl Instrumentation for LossWatch {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery {
            error: Some(error), ..
        } = event
        {
            self.lost |= crate::error::is_connection_loss(error);
        }
    }
}

/// The pool's recycle check: refuses a connection whose [`LossWatch`] saw it lost.
pub(crate) fn recycle_check(conn: &mut AsyncPgConnection) -> BoxFuture<'_, QueryResult<()>> {
    let lost = conn
        .instrumentation()
        .downcast_ref::<LossWatch>()
        .is_some_and(|watch| watch.lost);
    Box::pin(std::future::ready(if lost {
        Err(DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("a statement on this connection found it closed".to_owned()),
        ))
    } else {
        Ok(())
    }))
}
