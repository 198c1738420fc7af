use async_trait::async_trait;

use super::{Post, PostChanges, PostId};
use crate::users::UserId;
use crate::{Cursor, Error, Limit, Page, Version};

/// Where posts are kept.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PostRepository: Send + Sync + 'static {
    /// Stores a new post as given.
    ///
    /// MUST return [`Error::NotFound`] (entity `user`) when the author does not exist.
    async fn create(&self, post: &Post) -> Result<Post, Error>;

    /// MUST return [`Error::NotFound`] when no post has this id.
    async fn get(&self, id: &PostId) -> Result<Post, Error>;

    /// Applies `changes` and bumps the version by one, atomically, and only if the
    /// stored version equals `expected` (when given).
    ///
    /// MUST return [`Error::NotFound`] for an unknown id and [`Error::VersionMismatch`]
    /// when `expected` is not the stored version; in both cases nothing changes. The
    /// check and the write MUST be one step: of two updates expecting the same version,
    /// at most one succeeds.
    async fn update(
        &self,
        id: &PostId,
        changes: &PostChanges,
        expected: Option<Version>,
    ) -> Result<Post, Error>;

    /// MUST return [`Error::NotFound`] when no post has this id.
    async fn delete(&self, id: &PostId) -> Result<(), Error>;

    /// The author's posts newest first, `(created_at DESC, id DESC)`, strictly after
    /// `after` when given. An author without posts (or unknown) gets an empty page.
    async fn list_by_author(
        &self,
        author: &UserId,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Post>, Error>;
}
