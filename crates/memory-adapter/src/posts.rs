use async_trait::async_trait;
use domain::posts::{Post, PostChanges, PostId, PostRepository};
use domain::users::UserId;
use domain::{Cursor, Error, Limit, Page, Version};

use crate::tables::Shared;

/// A [`PostRepository`] sharing its tables with a
/// [`MemoryUserRepository`](crate::MemoryUserRepository) (see
/// [`MemoryUserRepository::posts`](crate::MemoryUserRepository::posts)).
#[derive(Debug, Clone)]
pub struct MemoryPostRepository {
    tables: Shared,
}

impl MemoryPostRepository {
    pub(crate) fn new(tables: Shared) -> Self {
        Self { tables }
    }
}

#[async_trait]
impl PostRepository for MemoryPostRepository {
    async fn create(&self, post: &Post) -> Result<Post, Error> {
        let mut tables = self.tables.lock();
        if !tables.users.contains_key(&post.author_id) {
            return Err(Error::not_found("user", post.author_id));
        }
        if tables.posts.contains_key(&post.id) {
            return Err(Error::Duplicate {
                entity: "post",
                field: "id",
            });
        }
        tables.posts.insert(post.id, post.clone());
        Ok(post.clone())
    }

    async fn get(&self, id: &PostId) -> Result<Post, Error> {
        self.tables
            .lock()
            .posts
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found("post", id))
    }

    async fn update(
        &self,
        id: &PostId,
        changes: &PostChanges,
        expected: Option<Version>,
    ) -> Result<Post, Error> {
        let mut tables = self.tables.lock();
        let post = tables
            .posts
            .get_mut(id)
            .ok_or_else(|| Error::not_found("post", id))?;
        if expected.is_some_and(|v| v != post.version) {
            return Err(Error::VersionMismatch { entity: "post" });
        }
        changes.apply_to(post);
        Ok(post.clone())
    }

    async fn delete(&self, id: &PostId) -> Result<(), Error> {
        self.tables
            .lock()
            .posts
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| Error::not_found("post", id))
    }

    async fn list_by_author(
        &self,
        author: &UserId,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Post>, Error> {
        let key = |p: &Post| (p.created_at, p.id.as_uuid());
        let mut rows: Vec<Post> = self
            .tables
            .lock()
            .posts
            .values()
            .filter(|p| p.author_id == *author)
            .filter(|p| after.is_none_or(|c| key(p) < (c.created_at, c.id)))
            .cloned()
            .collect();
        rows.sort_by_key(|p| std::cmp::Reverse(key(p)));
        rows.truncate(limit.get() as usize + 1);
        Ok(Page::from_rows(rows, limit, Post::cursor))
    }
}
