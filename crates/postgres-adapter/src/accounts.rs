use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::Error;
use domain::accounts::{AccountStore, NewAccountToken, PasswordChange, TokenPurpose};
use domain::auth::{EndSessions, SessionId, TokenHash};
use domain::users::UserId;
use uuid::Uuid;

use crate::Database;
use crate::schema::{account_tokens as tokens, users};

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// [`AccountStore`] on `account_tokens`, next to the `users` and `sessions` it acts on:
/// each step is one transaction.
#[derive(Clone)]
pub struct PgAccountStore {
    db: Database,
}

impl PgAccountStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[derive(Insertable)]
#[diesel(table_name = tokens)]
struct NewRow<'a> {
    token_hash: &'a [u8],
    user_id: Uuid,
    purpose: &'static str,
    email: &'a str,
    expires_at: time::OffsetDateTime,
}

const UNIQUE: &[(&str, &str, &str)] = &[("users_email_lower_key", "user", "email")];

fn query_error(e: diesel::result::Error) -> Error {
    crate::error::query(e, UNIQUE)
}

/// Deletes the live token `hash` of `purpose` and returns its user and address; `None`
/// when there is none. Spending is the delete: two concurrent spends cannot both win.
/// The user's row is locked first, as [`AccountStore::issue`] locks it before deleting
/// that user's tokens: a spend racing an issue waits instead of deadlocking. `FOR NO
/// KEY UPDATE`, not `FOR UPDATE`: it must not block the key-share lock a refresh
/// token's insert takes on its user (a rotation holds its session meanwhile).
async fn spend(
    conn: &mut AsyncPgConnection,
    purpose: TokenPurpose,
    hash: &TokenHash,
) -> Result<Option<(Uuid, String)>, diesel::result::Error> {
    let owner: Option<Uuid> = tokens::table
        .find(hash.0.as_slice())
        .select(tokens::user_id)
        .first(conn)
        .await
        .optional()?;
    let Some(owner) = owner else {
        return Ok(None);
    };
    users::table
        .find(owner)
        .select(users::id)
        .for_no_key_update()
        .first::<Uuid>(conn)
        .await
        .optional()?;
    diesel::delete(
        tokens::table
            .filter(tokens::token_hash.eq(hash.0.as_slice()))
            .filter(tokens::purpose.eq(purpose.as_str()))
            .filter(tokens::expires_at.gt(diesel::dsl::now)),
    )
    .returning((tokens::user_id, tokens::email))
    .get_result(conn)
    .await
    .optional()
}

/// Rolls the transaction back and says nothing was done.
#[derive(Debug)]
enum Outcome {
    Query(diesel::result::Error),
    Nothing,
}

impl From<diesel::result::Error> for Outcome {
    fn from(e: diesel::result::Error) -> Self {
        Self::Query(e)
    }
}

fn finish<T>(result: Result<T, Outcome>) -> Result<Option<T>, Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Outcome::Nothing) => Ok(None),
        Err(Outcome::Query(e)) => Err(query_error(e)),
    }
}

#[async_trait]
impl AccountStore for PgAccountStore {
    async fn issue(&self, token: &NewAccountToken) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        let user = token.user_id.as_uuid();
        let purpose = token.purpose.as_str();
        let row = NewRow {
            token_hash: &token.hash.0,
            user_id: user,
            purpose,
            email: token.email.as_str(),
            expires_at: token.expires_at,
        };
        let inserted = conn
            .transaction::<bool, diesel::result::Error, _>(async move |conn| {
                // The user's row lock orders concurrent issues of one user (NO KEY:
                // refresh-token inserts for the user go on meanwhile).
                let exists: Option<Uuid> = users::table
                    .find(user)
                    .select(users::id)
                    .for_no_key_update()
                    .first(conn)
                    .await
                    .optional()?;
                if exists.is_none() {
                    return Ok(false);
                }
                diesel::delete(
                    tokens::table
                        .filter(tokens::user_id.eq(user))
                        .filter(tokens::purpose.eq(purpose)),
                )
                .execute(conn)
                .await?;
                diesel::insert_into(tokens::table)
                    .values(row)
                    .execute(conn)
                    .await?;
                Ok(true)
            })
            .await
            .map_err(query_error)?;
        if !inserted {
            return Err(Error::not_found("user", token.user_id));
        }
        Ok(())
    }

    async fn owner(
        &self,
        purpose: TokenPurpose,
        token: &TokenHash,
    ) -> Result<Option<UserId>, Error> {
        let mut conn = self.db.get().await?;
        let owner: Option<Uuid> = tokens::table
            .filter(tokens::token_hash.eq(token.0.as_slice()))
            .filter(tokens::purpose.eq(purpose.as_str()))
            .filter(tokens::expires_at.gt(diesel::dsl::now))
            .select(tokens::user_id)
            .first(&mut conn)
            .await
            .optional()
            .map_err(query_error)?;
        Ok(owner.map(UserId::from_uuid))
    }

    async fn verify_email(&self, token: &TokenHash) -> Result<Option<UserId>, Error> {
        let mut conn = self.db.get().await?;
        let token = *token;
        let result = conn
            .transaction::<Uuid, Outcome, _>(async move |conn| {
                let (user, email) = spend(conn, TokenPurpose::VerifyEmail, &token)
                    .await?
                    .ok_or(Outcome::Nothing)?;
                let verified = diesel::update(
                    users::table
                        .filter(users::id.eq(user))
                        .filter(lower(users::email).eq(lower(email))),
                )
                .set(users::email_verified_at.eq(domain::now()))
                .execute(conn)
                .await?;
                if verified == 0 {
                    return Err(Outcome::Nothing);
                }
                Ok(user)
            })
            .await;
        Ok(finish(result)?.map(UserId::from_uuid))
    }

    async fn change_password(
        &self,
        change: PasswordChange,
    ) -> Result<Option<Vec<SessionId>>, Error> {
        let mut conn = self.db.get().await?;
        let user = change.user_id.as_uuid();
        let hash = change.hash.expose().to_owned();
        let user_id = change.user_id;
        let spend_token = change.spend;
        let keep = change.keep;
        let jobs = change.jobs;
        let result = conn
            .transaction::<Option<Vec<Uuid>>, Outcome, _>(async move |conn| {
                if let Some(token) = spend_token {
                    match spend(conn, TokenPurpose::ResetPassword, &token).await? {
                        Some((owner, email)) if owner == user => {
                            // Only a link sent to the address the account has now: one
                            // mailed to an address it has since left proves nothing.
                            let proven = diesel::update(
                                users::table
                                    .filter(users::id.eq(user))
                                    .filter(lower(users::email).eq(lower(email))),
                            )
                            .set(users::email_verified_at.eq(diesel::dsl::sql::<
                                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
                            >(
                                "coalesce(email_verified_at, now())",
                            )))
                            .execute(conn)
                            .await?;
                            if proven == 0 {
                                return Err(Outcome::Nothing);
                            }
                        }
                        _ => return Err(Outcome::Nothing),
                    }
                }
                // A new password also cancels a pending address change, and its links.
                let updated = diesel::update(users::table.find(user))
                    .set((
                        users::password_hash.eq(hash),
                        users::pending_email.eq(None::<String>),
                        // The record changes (for ETags) only if a move was pending.
                        users::version.eq(users::version
                            + diesel::dsl::sql::<diesel::sql_types::BigInt>(
                                "CASE WHEN pending_email IS NULL THEN 0 ELSE 1 END",
                            )),
                    ))
                    .execute(conn)
                    .await?;
                diesel::delete(
                    tokens::table
                        .filter(tokens::user_id.eq(user))
                        .filter(tokens::purpose.eq(TokenPurpose::ChangeEmail.as_str())),
                )
                .execute(conn)
                .await?;
                if updated == 0 {
                    return Ok(None);
                }
                let ended =
                    crate::refresh::end_sessions(conn, user, EndSessions::AllExcept(keep)).await?;
                crate::jobs::insert_jobs(conn, &jobs).await?;
                Ok(Some(ended))
            })
            .await;
        match finish(result)? {
            None => Ok(None),
            Some(None) => Err(Error::not_found("user", user_id)),
            Some(Some(ended)) => Ok(Some(ended.into_iter().map(SessionId::from_uuid).collect())),
        }
    }

    async fn confirm_email_change(&self, token: &TokenHash) -> Result<Option<UserId>, Error> {
        let mut conn = self.db.get().await?;
        let token = *token;
        let result = conn
            .transaction::<Uuid, Outcome, _>(async move |conn| {
                let (user, email) = spend(conn, TokenPurpose::ChangeEmail, &token)
                    .await?
                    .ok_or(Outcome::Nothing)?;
                let now = domain::now();
                // Another account holding the address now fails on the unique index:
                // a 409, and the rollback keeps the token.
                let moved = diesel::update(
                    users::table
                        .filter(users::id.eq(user))
                        .filter(users::pending_email.eq(&email)),
                )
                .set((
                    users::email.eq(&email),
                    users::pending_email.eq(None::<String>),
                    users::email_verified_at.eq(now),
                    users::updated_at.eq(now),
                    users::version.eq(users::version + 1),
                ))
                .execute(conn)
                .await?;
                if moved == 0 {
                    return Err(Outcome::Nothing);
                }
                Ok(user)
            })
            .await;
        Ok(finish(result)?.map(UserId::from_uuid))
    }
}
