//! Keyset pagination at the HTTP edge: the `limit` and `cursor` query parameters every
//! listing takes, and the page every listing answers with.

use domain::{Cursor, Limit};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::problem::ApiError;

/// `limit` and `cursor` of every keyset-paginated listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Page size, 1 to 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    pub(crate) limit: Option<String>,
    /// The `next_cursor` of the previous page (opaque).
    #[param(nullable = false)]
    pub(crate) cursor: Option<String>,
}

impl ListParams {
    /// The parsed parameters, with every invalid one reported.
    pub(crate) fn parse(&self) -> Result<(Limit, Option<Cursor>), ApiError> {
        page_params(self.limit.as_deref(), self.cursor.as_deref())
    }
}

/// `limit` and `cursor` of a listing's query string, with every invalid one reported.
pub(crate) fn page_params(
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<(Limit, Option<Cursor>), ApiError> {
    let mut errors = domain::ValidationErrors::new();
    let limit = match limit {
        Some(raw) => errors.collect(Limit::parse(raw)),
        None => Some(Limit::DEFAULT),
    };
    let cursor = match cursor {
        Some(raw) => errors.collect(Cursor::decode(raw)).map(Some),
        None => Some(None),
    };
    match (limit, cursor) {
        (Some(limit), Some(cursor)) => Ok((limit, cursor)),
        _ => Err(domain::Error::Validation(errors).into()),
    }
}

/// One page of a listing, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct Page<T> {
    items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The wire form of a page of `U`s, each shown as `T`.
    pub(crate) fn of<U>(page: domain::Page<U>, show: impl FnMut(U) -> T) -> Self {
        Self {
            next_cursor: page.next_cursor.map(|c| c.encode()),
            items: page.items.into_iter().map(show).collect(),
        }
    }
}
