use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::AsyncConnection;
use diesel_async::RunQueryDsl;
use domain::auth::PasswordHash;
use domain::jobs::NewJob;
use domain::users::{
    Credentials, Email, Role, User, UserChanges, UserId, UserName, UserRepository,
};
use domain::{Cursor, Error, Limit, Page, Version};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Database;
use crate::schema::{jobs, users};

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// Unique indexes of `users` and the duplicate each one means.
const UNIQUE: &[(&str, &str, &str)] = &[
    ("users_email_lower_key", "user", "email"),
    ("users_pkey", "user", "id"),
];

#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
struct UserRow {
    id: Uuid,
    name: String,
    email: String,
    role: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    version: i64,
    email_verified_at: Option<OffsetDateTime>,
    pending_email: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUserRow<'a> {
    id: Uuid,
    name: &'a str,
    email: &'a str,
    role: &'a str,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    password_hash: &'a str,
    version: i64,
    email_verified_at: Option<OffsetDateTime>,
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
            role: Role::parse(&row.role).map_err(Error::internal)?,
            email_verified_at: row.email_verified_at,
            pending_email: row
                .pending_email
                .as_deref()
                .map(Email::parse)
                .transpose()
                .map_err(Error::internal)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
            version: Version::new(row.version)
                .ok_or_else(|| Error::internal("stored version below 1"))?,
        })
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct UserChangeset<'a> {
    name: Option<&'a str>,
    email: Option<&'a str>,
    /// `Some(None)` clears it (a new address applied), `Some(Some(_))` records one.
    pending_email: Option<Option<&'a str>>,
    role: Option<&'a str>,
    updated_at: OffsetDateTime,
}

/// A failure inside a transaction that also runs the versioned update.
enum TxError {
    Query(diesel::result::Error),
    Domain(Error),
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Query(e)
    }
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        Self::Domain(e)
    }
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
    async fn create(
        &self,
        user: &User,
        password_hash: &PasswordHash,
        jobs: &[NewJob],
    ) -> Result<User, Error> {
        let mut conn = self.db.get().await?;
        let new = NewUserRow {
            id: user.id.as_uuid(),
            name: user.name.as_str(),
            email: user.email.as_str(),
            role: user.role.as_str(),
            created_at: user.created_at,
            updated_at: user.updated_at,
            password_hash: password_hash.expose(),
            version: user.version.get(),
            email_verified_at: user.email_verified_at,
        };
        // The user and their jobs commit together or not at all (transactional outbox).
        let row: UserRow = conn
            .transaction::<UserRow, diesel::result::Error, _>(async move |conn| {
                let row = diesel::insert_into(users::table)
                    .values(new)
                    .returning(UserRow::as_returning())
                    .get_result(conn)
                    .await?;
                crate::jobs::insert_jobs(conn, jobs).await?;
                Ok(row)
            })
            .await
            .map_err(query_error)?;
        row.try_into()
    }

    async fn get(&self, id: &UserId) -> Result<User, Error> {
        let mut conn = self.db.get_cancellable().await?;
        let row = users::table
            .find(id.as_uuid())
            .select(UserRow::as_select())
            .first(&mut *conn)
            .await;
        conn.finish();
        row.optional()
            .map_err(query_error)?
            .ok_or_else(|| Error::not_found("user", id))?
            .try_into()
    }

    async fn update(
        &self,
        id: &UserId,
        changes: &UserChanges,
        expected: Option<Version>,
        jobs: &[NewJob],
    ) -> Result<User, Error> {
        use diesel::dsl::sql;
        use diesel::sql_types::{Nullable, Text, Timestamptz};
        let mut conn = self.db.get().await?;
        // As `UserChanges::apply_to`: a new address is unverified unless the change says
        // when it was verified; the same address in another case keeps its state.
        let verified =
            (changes.email.is_some() || changes.email_verified_at.is_some()).then(|| {
                let new = changes.email.as_ref().map_or("", Email::as_str).to_owned();
                sql::<Nullable<Timestamptz>>("COALESCE(")
                    .bind::<Nullable<Timestamptz>, _>(changes.email_verified_at)
                    .sql(", CASE WHEN lower(email) = lower(")
                    .bind::<Text, _>(new)
                    .sql(") THEN email_verified_at END)")
            });
        let changeset = (
            UserChangeset {
                name: changes.name.as_ref().map(UserName::as_str),
                email: changes.email.as_ref().map(Email::as_str),
                pending_email: match (&changes.email, &changes.pending_email) {
                    (_, Some(pending)) => Some(Some(pending.as_str())),
                    (Some(_), None) => Some(None),
                    (None, None) => None,
                },
                role: changes.role.map(Role::as_str),
                updated_at: changes.updated_at,
            },
            users::version.eq(users::version + 1),
            verified.map(|v| users::email_verified_at.eq(v)),
        );
        if jobs.is_empty() {
            return crate::versioned::versioned_update!(
                &mut conn,
                users,
                id,
                changeset,
                expected,
                UserRow,
                "user",
                query_error
            );
        }
        // The change and the e-mails announcing it commit together (outbox).
        let jobs = jobs.to_vec();
        let id = *id;
        conn.transaction::<User, TxError, _>(async move |conn| {
            let user: User = crate::versioned::versioned_update!(
                &mut *conn,
                users,
                id,
                changeset,
                expected,
                UserRow,
                "user",
                query_error
            )?;
            crate::jobs::insert_jobs(conn, &jobs).await?;
            Ok(user)
        })
        .await
        .map_err(|e| match e {
            TxError::Query(e) => query_error(e),
            TxError::Domain(e) => e,
        })
    }

    async fn credentials_by_email(&self, email: &Email) -> Result<Option<Credentials>, Error> {
        let mut conn = self.db.get().await?;
        // `lower(email) = lower($1)` is served by the unique index users_email_lower_key.
        let found: Option<(UserRow, Option<String>)> = users::table
            .filter(lower(users::email).eq(lower(email.as_str())))
            .select((UserRow::as_select(), users::password_hash))
            .first(&mut conn)
            .await
            .optional()
            .map_err(query_error)?;
        found
            .map(|(row, hash)| {
                Ok(Credentials {
                    user: row.try_into()?,
                    password_hash: hash.map(PasswordHash::new),
                })
            })
            .transpose()
    }

    async fn set_password_hash(&self, id: &UserId, hash: &PasswordHash) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        let updated = diesel::update(users::table.find(id.as_uuid()))
            .set(users::password_hash.eq(hash.expose()))
            .execute(&mut conn)
            .await
            .map_err(query_error)?;
        if updated == 0 {
            return Err(Error::not_found("user", id));
        }
        Ok(())
    }

    async fn rehash_password(
        &self,
        id: &UserId,
        old: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, Error> {
        let mut conn = self.db.get().await?;
        // The old hash is part of the condition: a password changed meanwhile stays.
        let updated = diesel::update(
            users::table
                .find(id.as_uuid())
                .filter(users::password_hash.eq(old.expose())),
        )
        .set(users::password_hash.eq(new.expose()))
        .execute(&mut conn)
        .await
        .map_err(query_error)?;
        if updated == 1 {
            return Ok(true);
        }
        let exists: bool = diesel::select(diesel::dsl::exists(users::table.find(id.as_uuid())))
            .get_result(&mut conn)
            .await
            .map_err(query_error)?;
        if exists {
            Ok(false)
        } else {
            Err(Error::not_found("user", id))
        }
    }

    async fn delete(&self, id: &UserId) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        let user = id.as_uuid();
        // Owned rows (refresh tokens, …) go with it through ON DELETE CASCADE; jobs
        // about the user (their address in the payload) in the same transaction.
        let deleted = conn
            .transaction::<usize, diesel::result::Error, _>(async move |conn| {
                let deleted = diesel::delete(users::table.find(user))
                    .execute(conn)
                    .await?;
                if deleted > 0 {
                    diesel::delete(jobs::table.filter(jobs::user_id.eq(user)))
                        .execute(conn)
                        .await?;
                }
                Ok(deleted)
            })
            .await
            .map_err(query_error)?;
        if deleted == 0 {
            return Err(Error::not_found("user", id));
        }
        Ok(())
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
