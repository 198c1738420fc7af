use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::Error;
use domain::auth::{
    EndSessions, MAX_LISTED_SESSIONS, NewRefreshToken, RefreshTokenHash, RefreshTokenStore,
    Rotation, SeenFrom, Session, SessionId,
};
use domain::users::UserId;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Database;
use crate::schema::{refresh_tokens as tokens, sessions, users};

/// [`RefreshTokenStore`] on the `refresh_tokens` and `sessions` tables.
#[derive(Clone)]
pub struct PgRefreshTokenStore {
    db: Database,
}

impl PgRefreshTokenStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[derive(Insertable)]
#[diesel(table_name = tokens)]
struct NewRow<'a> {
    token_hash: &'a [u8],
    user_id: Uuid,
    family_id: Uuid,
    expires_at: OffsetDateTime,
    family_expires_at: OffsetDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = tokens, check_for_backend(diesel::pg::Pg))]
struct Row {
    user_id: Uuid,
    family_id: Uuid,
    expires_at: OffsetDateTime,
    used_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
struct NewSessionRow<'a> {
    id: Uuid,
    user_id: Uuid,
    expires_at: OffsetDateTime,
    login_address: Option<&'a str>,
    login_user_agent: Option<&'a str>,
    last_address: Option<&'a str>,
    last_user_agent: Option<&'a str>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    created_at: OffsetDateTime,
    last_used_at: OffsetDateTime,
    login_address: Option<String>,
    login_user_agent: Option<String>,
    last_address: Option<String>,
    last_user_agent: Option<String>,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id: SessionId::from_uuid(row.id),
            user_id: UserId::from_uuid(row.user_id),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            login: SeenFrom {
                address: row.login_address,
                user_agent: row.login_user_agent,
            },
            last: SeenFrom {
                address: row.last_address,
                user_agent: row.last_user_agent,
            },
        }
    }
}

fn query_error(e: diesel::result::Error) -> Error {
    crate::error::query(e, &[])
}

/// Ends the sessions of `user` that `which` picks and have not ended, and revokes
/// their tokens, in the caller's transaction; returns them.
pub(crate) async fn end_sessions(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    which: EndSessions,
) -> Result<Vec<Uuid>, diesel::result::Error> {
    let now = domain::now();
    // Families the previous release started have no session row until their first
    // refresh here: they become sessions first, so they end like any other. A family
    // being adopted concurrently makes this wait (ON CONFLICT) and is then seen.
    diesel::sql_query(
        "INSERT INTO sessions (id, user_id, expires_at) \
         SELECT DISTINCT ON (t.family_id) t.family_id, t.user_id, t.family_expires_at \
         FROM refresh_tokens t \
         WHERE t.user_id = $1 AND t.revoked_at IS NULL \
           AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = t.family_id) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind::<diesel::sql_types::Uuid, _>(user)
    .execute(conn)
    .await?;
    let open = sessions::table
        .filter(sessions::user_id.eq(user))
        .filter(sessions::ended_at.is_null())
        .into_boxed();
    let open = match which {
        EndSessions::One(id) => open.filter(sessions::id.eq(id.as_uuid())),
        EndSessions::AllExcept(Some(keep)) => open.filter(sessions::id.ne(keep.as_uuid())),
        EndSessions::AllExcept(None) => open,
    };
    let ids: Vec<Uuid> = open.select(sessions::id).load(conn).await?;
    if ids.is_empty() {
        return Ok(ids);
    }
    let ended: Vec<Uuid> = diesel::update(
        sessions::table
            .filter(sessions::id.eq_any(&ids))
            .filter(sessions::ended_at.is_null()),
    )
    .set(sessions::ended_at.eq(now))
    .returning(sessions::id)
    .get_results(conn)
    .await?;
    diesel::update(
        tokens::table
            .filter(tokens::family_id.eq_any(&ended))
            .filter(tokens::revoked_at.is_null()),
    )
    .set(tokens::revoked_at.eq(now))
    .execute(conn)
    .await?;
    Ok(ended)
}

#[async_trait]
impl RefreshTokenStore for PgRefreshTokenStore {
    async fn insert(&self, token: &NewRefreshToken) -> Result<(), Error> {
        let mut conn = self.db.get().await?;
        let seen = &token.seen;
        let session = NewSessionRow {
            id: token.family_id.as_uuid(),
            user_id: token.user_id.as_uuid(),
            expires_at: token.family_expires_at,
            login_address: seen.address.as_deref(),
            login_user_agent: seen.user_agent.as_deref(),
            last_address: seen.address.as_deref(),
            last_user_agent: seen.user_agent.as_deref(),
        };
        let row = NewRow {
            token_hash: &token.hash.0,
            user_id: token.user_id.as_uuid(),
            family_id: token.family_id.as_uuid(),
            expires_at: token.expires_at.min(token.family_expires_at),
            family_expires_at: token.family_expires_at,
        };
        let proof = token
            .proof
            .as_ref()
            .map(|p| (token.user_id.as_uuid(), p.expose().to_owned()));
        let stored = conn
            .transaction::<bool, diesel::result::Error, _>(async move |conn| {
                if let Some((user, hash)) = proof {
                    // FOR SHARE: a password change (an UPDATE of this row) waits for this
                    // login to commit, then ends its session; or this waits for it, and
                    // sees the hash it checked is gone.
                    let current: Option<Uuid> = users::table
                        .find(user)
                        .filter(users::password_hash.eq(hash))
                        .select(users::id)
                        .for_share()
                        .first(conn)
                        .await
                        .optional()?;
                    if current.is_none() {
                        return Ok(false);
                    }
                }
                diesel::insert_into(sessions::table)
                    .values(session)
                    .on_conflict_do_nothing()
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
        if !stored {
            return Err(Error::Unauthorized("the password changed"));
        }
        Ok(())
    }

    async fn owner(&self, presented: &RefreshTokenHash) -> Result<Option<UserId>, Error> {
        let mut conn = self.db.get().await?;
        let owner: Option<Uuid> = tokens::table
            .find(presented.0.as_slice())
            .select(tokens::user_id)
            .first(&mut conn)
            .await
            .optional()
            .map_err(query_error)?;
        Ok(owner.map(UserId::from_uuid))
    }

    async fn rotate(
        &self,
        presented: &RefreshTokenHash,
        next: &RefreshTokenHash,
        next_expires_at: OffsetDateTime,
        seen: &SeenFrom,
    ) -> Result<Rotation, Error> {
        let mut conn = self.db.get().await?;
        let presented = presented.0;
        let next = next.0;
        let now = domain::now();
        let seen = seen.clone();
        conn.transaction::<Rotation, diesel::result::Error, _>(async move |conn| {
            // Locks are taken session first, then token, as every ending of sessions
            // takes them: a rotation racing a logout waits instead of deadlocking. The
            // session's FOR UPDATE also serialises concurrent presentations of one
            // token: the second waits, then sees it spent.
            type Family = (
                Uuid,
                Uuid,
                OffsetDateTime,
                OffsetDateTime,
                Option<OffsetDateTime>,
            );
            let family: Option<Family> = tokens::table
                .find(presented.as_slice())
                .select((
                    tokens::family_id,
                    tokens::user_id,
                    tokens::expires_at,
                    tokens::family_expires_at,
                    tokens::revoked_at,
                ))
                .first(conn)
                .await
                .optional()?;
            let Some((family, owner, token_end, family_end, revoked)) = family else {
                return Ok(Rotation::Invalid);
            };
            let find_session = async |conn: &mut AsyncPgConnection| {
                sessions::table
                    .find(family)
                    .select((sessions::expires_at, sessions::ended_at))
                    .for_update()
                    .first::<(OffsetDateTime, Option<OffsetDateTime>)>(conn)
                    .await
                    .optional()
            };
            let mut session = find_session(conn).await?;
            if session.is_none() && revoked.is_none() && token_end > now && family_end > now {
                // A family the previous release started (during a rolling deploy)
                // has no session row yet: it becomes a session now, instead of
                // signing its user out.
                diesel::insert_into(sessions::table)
                    .values(NewSessionRow {
                        id: family,
                        user_id: owner,
                        expires_at: family_end,
                        login_address: None,
                        login_user_agent: None,
                        last_address: None,
                        last_user_agent: None,
                    })
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
                session = find_session(conn).await?;
            }
            let Some((family_expires_at, None)) = session else {
                return Ok(Rotation::Invalid);
            };
            // Gone meanwhile (swept, or its user deleted): nothing to rotate.
            let Some(current) = tokens::table
                .find(presented.as_slice())
                .select(Row::as_select())
                .for_update()
                .first::<Row>(conn)
                .await
                .optional()?
            else {
                return Ok(Rotation::Invalid);
            };
            if current.revoked_at.is_some() || current.expires_at <= now || family_expires_at <= now
            {
                return Ok(Rotation::Invalid);
            }
            let user_id = UserId::from_uuid(current.user_id);
            let session = SessionId::from_uuid(current.family_id);
            if current.used_at.is_some() {
                end_sessions(conn, current.user_id, EndSessions::One(session)).await?;
                return Ok(Rotation::Reused { user_id, session });
            }
            diesel::update(tokens::table.find(presented.as_slice()))
                .set(tokens::used_at.eq(now))
                .execute(conn)
                .await?;
            diesel::insert_into(tokens::table)
                .values(NewRow {
                    token_hash: next.as_slice(),
                    user_id: current.user_id,
                    family_id: current.family_id,
                    expires_at: next_expires_at.min(family_expires_at),
                    family_expires_at,
                })
                .execute(conn)
                .await?;
            diesel::update(sessions::table.find(current.family_id))
                .set((
                    sessions::last_used_at.eq(now),
                    sessions::last_address.eq(seen.address.as_deref()),
                    sessions::last_user_agent.eq(seen.user_agent.as_deref()),
                ))
                .execute(conn)
                .await?;
            Ok(Rotation::Rotated { user_id, session })
        })
        .await
        .map_err(query_error)
    }

    async fn end_by_token(
        &self,
        presented: &RefreshTokenHash,
    ) -> Result<Option<(UserId, SessionId)>, Error> {
        let mut conn = self.db.get().await?;
        let presented = presented.0;
        conn.transaction::<Option<(UserId, SessionId)>, diesel::result::Error, _>(
            async move |conn| {
                let found: Option<(Uuid, Uuid)> = tokens::table
                    .find(presented.as_slice())
                    .select((tokens::user_id, tokens::family_id))
                    .first(conn)
                    .await
                    .optional()?;
                let Some((user, family)) = found else {
                    return Ok(None);
                };
                let session = SessionId::from_uuid(family);
                let ended = end_sessions(conn, user, EndSessions::One(session)).await?;
                // Ended before: nothing new to announce.
                Ok((!ended.is_empty()).then_some((UserId::from_uuid(user), session)))
            },
        )
        .await
        .map_err(query_error)
    }

    async fn sessions(&self, user: &UserId) -> Result<Vec<Session>, Error> {
        let mut conn = self.db.get().await?;
        let now = domain::now();
        // A session whose newest token expired unused can no longer be refreshed.
        let refreshable = diesel::dsl::exists(
            tokens::table
                .filter(tokens::family_id.eq(sessions::id))
                .filter(tokens::used_at.is_null())
                .filter(tokens::revoked_at.is_null())
                .filter(tokens::expires_at.gt(now)),
        );
        let rows: Vec<SessionRow> = sessions::table
            .filter(sessions::user_id.eq(user.as_uuid()))
            .filter(sessions::ended_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .filter(refreshable)
            .order((sessions::created_at.desc(), sessions::id.desc()))
            .limit(MAX_LISTED_SESSIONS as i64)
            .select(SessionRow::as_select())
            .load(&mut conn)
            .await
            .map_err(query_error)?;
        Ok(rows.into_iter().map(Session::from).collect())
    }

    async fn end_sessions(
        &self,
        user: &UserId,
        which: EndSessions,
    ) -> Result<Vec<SessionId>, Error> {
        let mut conn = self.db.get().await?;
        let user = user.as_uuid();
        let ended = conn
            .transaction::<Vec<Uuid>, diesel::result::Error, _>(async move |conn| {
                end_sessions(conn, user, which).await
            })
            .await
            .map_err(query_error)?;
        Ok(ended.into_iter().map(SessionId::from_uuid).collect())
    }

    async fn ended_since(&self, since: OffsetDateTime) -> Result<Vec<SessionId>, Error> {
        let mut conn = self.db.get().await?;
        let ids: Vec<Uuid> = sessions::table
            .filter(sessions::ended_at.ge(since))
            .select(sessions::id)
            .load(&mut conn)
            .await
            .map_err(query_error)?;
        Ok(ids.into_iter().map(SessionId::from_uuid).collect())
    }
}
