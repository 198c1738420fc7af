use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::RunQueryDsl;
use domain::posts::{Post, PostBody, PostChanges, PostId, PostRepository, PostTitle};
use domain::users::UserId;
use domain::{Cursor, Error, Limit, Page, Version};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Database;
use crate::schema::posts;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = posts, check_for_backend(diesel::pg::Pg))]
struct PostRow {
    id: Uuid,
    author_id: Uuid,
    title: String,
    body: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    version: i64,
}

impl From<&Post> for PostRow {
    fn from(p: &Post) -> Self {
        Self {
            id: p.id.as_uuid(),
            author_id: p.author_id.as_uuid(),
            title: p.title.as_str().to_owned(),
            body: p.body.as_str().to_owned(),
            created_at: p.created_at,
            updated_at: p.updated_at,
            version: p.version.get(),
        }
    }
}

impl TryFrom<PostRow> for Post {
    type Error = Error;

    fn try_from(row: PostRow) -> Result<Self, Error> {
        Ok(Post {
            id: PostId::from_uuid(row.id),
            author_id: UserId::from_uuid(row.author_id),
            title: PostTitle::parse(&row.title).map_err(Error::internal)?,
            body: PostBody::parse(&row.body).map_err(Error::internal)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
            version: Version::new(row.version)
                .ok_or_else(|| Error::internal("stored version below 1"))?,
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = posts)]
struct PostChangeset<'a> {
    title: Option<&'a str>,
    body: Option<&'a str>,
    updated_at: OffsetDateTime,
}

/// [`PostRepository`] on the `posts` table.
#[derive(Clone)]
pub struct PgPostRepository {
    db: Database,
}

impl PgPostRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn query_error(e: DieselError) -> Error {
    crate::error::query(e, &[("posts_pkey", "post", "id")])
}

#[async_trait]
impl PostRepository for PgPostRepository {
    async fn create(&self, post: &Post) -> Result<Post, Error> {
        let mut conn = self.db.get().await?;
        diesel::insert_into(posts::table)
            .values(PostRow::from(post))
            .returning(PostRow::as_returning())
            .get_result(&mut conn)
            .await
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                    Error::not_found("user", post.author_id)
                }
                other => query_error(other),
            })?
            .try_into()
    }

    async fn get(&self, id: &PostId) -> Result<Post, Error> {
        let mut conn = self.db.get_cancellable().await?;
        let row = posts::table
            .find(id.as_uuid())
            .select(PostRow::as_select())
            .first(&mut *conn)
            .await;
        conn.finish();
        row.optional()
            .map_err(query_error)?
            .ok_or_else(|| Error::not_found("post", id))?
            .try_into()
    }

    async fn update(
        &self,
        id: &PostId,
        changes: &PostChanges,
        expected: Option<Version>,
    ) -> Result<Post, Error> {
        let mut conn = self.db.get().await?;
        let changeset = (
            PostChangeset {
                title: changes.title.as_ref().map(PostTitle::as_str),
                body: changes.body.as_ref().map(PostBody::as_str),
                updated_at: changes.updated_at,
            },
            posts::version.eq(posts::version + 1),
        );
        crate::versioned::versioned_update!(
            &mut conn,
            posts,
            id,
            changeset,
            expected,
            PostRow,
            "post",
            query_error
        )
    }

    async fn delete(&self, id: &PostId) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        let deleted = diesel::delete(posts::table.find(id.as_uuid()))
            .execute(&mut conn)
            .await
            .map_err(query_error)?;
        if deleted == 0 {
            return Err(Error::not_found("post", id));
        }
        Ok(())
    }

    async fn list_by_author(
        &self,
        author: &UserId,
        limit: Limit,
        after: Option<Cursor>,
    ) -> Result<Page<Post>, Error> {
        let mut conn = self.db.get_cancellable().await?;
        let mut query = posts::table
            .filter(posts::author_id.eq(author.as_uuid()))
            .select(PostRow::as_select())
            .order((posts::created_at.desc(), posts::id.desc()))
            .limit(i64::from(limit.get()) + 1)
            .into_boxed();
        if let Some(c) = after {
            // Spelled out so the planner uses posts_author_created_at_id_idx.
            query = query.filter(
                posts::created_at
                    .lt(c.created_at)
                    .or(posts::created_at.eq(c.created_at).and(posts::id.lt(c.id))),
            );
        }
        let rows = query.load::<PostRow>(&mut *conn).await;
        conn.finish();
        let posts = rows
            .map_err(query_error)?
            .into_iter()
            .map(Post::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(posts, limit, Post::cursor))
    }
}
