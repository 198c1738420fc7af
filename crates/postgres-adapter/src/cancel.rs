//! Cancelling abandoned statements on the server.
//!
//! Dropping a query future (a fan-out deadline, a client that went away) stops our side,
//! but Postgres would keep executing the statement. A [`CancellableConn`] dropped
//! before [`CancellableConn::finish`] takes its connection out of the pool (so it is
//! never reused while the statement may still run — a late cancel could otherwise hit
//! the next borrower's query), asks the server to cancel the statement, and closes it.

use std::ops::{Deref, DerefMut};

use deadpool::managed::Object;
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;

type Pooled = Object<AsyncDieselConnectionManager<AsyncPgConnection>>;

pub(crate) struct CancellableConn {
    conn: Option<Pooled>,
    /// A cancel request opens a connection of its own, with the pool's TLS.
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl CancellableConn {
    pub(crate) fn new(conn: Pooled, tls: tokio_postgres_rustls::MakeRustlsConnect) -> Self {
        Self {
            conn: Some(conn),
            tls,
        }
    }

    /// The statement completed (successfully or not): the connection goes back to the
    /// pool as usual.
    pub(crate) fn finish(mut self) {
        self.conn.take();
    }
}

impl Deref for CancellableConn {
    type Target = AsyncPgConnection;

    fn deref(&self) -> &AsyncPgConnection {
        self.conn.as_deref().expect("used after finish")
    }
}

impl DerefMut for CancellableConn {
    fn deref_mut(&mut self) -> &mut AsyncPgConnection {
        self.conn.as_deref_mut().expect("used after finish")
    }
}

impl Drop for CancellableConn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let conn = Object::take(conn);
        let token = conn.cancel_token();
        let tls = self.tls.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = token.cancel_query(tls).await {
                    tracing::debug!(%error, "cancelling an abandoned statement failed");
                }
                drop(conn);
            });
        }
    }
}
