use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use domain::users::{Email, User, UserChanges, UserId, UserName, UserRepository};
use domain::{Cursor, Error, Limit, Page};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Database;
use crate::schema::users;

/// Unique indexes of `users` and the duplicate each one means.
const UNIQUE: &[(&str, &str, &str)] = &[
    ("users_email_lower_key", "user", "email"),
    ("users_pkey", "user", "id"),
];

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
struct UserRow {
    id: Uuid,
    name: String,
    email: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<&User> for UserRow {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.as_uuid(),
            name: u.name.as_str().to_owned(),
            email: u.email.as_str().to_owned(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

impl TryFrom<UserRow> for User {
    type Error = Error;

    /// Rows were validated on the way in; one that no longer parses means the table was
    /// changed behind our back, which is an internal error, not the client's.
    fn try_from(row: UserRow) -> Result<Self, Error> {
        Ok(User {
            id: UserId::from_uuid(row.id),
            name: UserName::parse(&row.name).map_err(Error::internal)?,
            email: Email::parse(&row.email).map_err(Error::internal)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct UserChangeset<'a> {
    name: Option<&'a str>,
    email: Option<&'a str>,
    updated_at: OffsetDateTime,
}

/// [`UserRepository`] on the `users` table.
#[derive(Clone)]
pub struct PgUserRepository {
    db: Database,
}

impl PgUserRepository {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn query_error(e: diesel::result::Error) -> Error {
    crate::error::query(e, UNIQUE)
}

#[async_trait]
impl UserRepository for PgUserRepository {
    async fn create(&self, user: &User) -> Result<User, Error> {
        let mut conn = self.db.get().await?;
        let row: UserRow = diesel::insert_into(users::table)
            .values(UserRow::from(user))
            .returning(UserRow::as_returning())
            .get_result(&mut conn)
            .await
            .map_err(query_error)?;
        row.try_into()
    }

    async fn get(&self, id: &UserId) -> Result<User, Error> {
        let mut conn = self.db.get().await?;
        users::table
            .find(id.as_uuid())
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(query_error)?
            .ok_or_else(|| Error::not_found("user", id))?
            .try_into()
    }

    async fn update(&self, id: &UserId, changes: &UserChanges) -> Result<User, Error> {
        let mut conn = self.db.get().await?;
        let changeset = UserChangeset {
            name: changes.name.as_ref().map(UserName::as_str),
            email: changes.email.as_ref().map(Email::as_str),
            updated_at: changes.updated_at,
        };
        diesel::update(users::table.find(id.as_uuid()))
            .set(changeset)
            .returning(UserRow::as_returning())
            .get_result(&mut conn)
            .await
            .optional()
            .map_err(query_error)?
            .ok_or_else(|| Error::not_found("user", id))?
            .try_into()
    }

    async fn list(&self, limit: Limit, after: Option<Cursor>) -> Result<Page<User>, Error> {
        let mut conn = self.db.get().await?;
        let mut query = users::table
            .select(UserRow::as_select())
            .order((users::created_at.desc(), users::id.desc()))
            .limit(i64::from(limit.get()) + 1)
            .into_boxed();
        if let Some(c) = after {
            // (created_at, id) < (c.created_at, c.id), spelled out so the planner uses
            // users_created_at_id_idx.
            query = query.filter(
                users::created_at
                    .lt(c.created_at)
                    .or(users::created_at.eq(c.created_at).and(users::id.lt(c.id))),
            );
        }
        let rows: Vec<UserRow> = query.load(&mut conn).await.map_err(query_error)?;
        let users = rows
            .into_iter()
            .map(User::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(users, limit, User::cursor))
    }
}
