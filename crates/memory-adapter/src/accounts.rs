use async_trait::async_trait;
use domain::Error;
use domain::accounts::{AccountStore, NewAccountToken, PasswordChange, TokenPurpose};
use domain::auth::{SessionId, TokenHash};
use domain::users::UserId;

use crate::tables::{Shared, Tables};

/// An [`AccountStore`] over the users' tables: each step holds their one lock, so a
/// token is spent exactly when what it proves is applied.
#[derive(Debug, Clone)]
pub struct MemoryAccountStore {
    tables: Shared,
}

impl MemoryAccountStore {
    pub(crate) fn new(tables: Shared) -> Self {
        Self { tables }
    }
}

/// The live token `hash` of `purpose`, if there is one.
fn live(tables: &Tables, purpose: TokenPurpose, hash: &TokenHash) -> Option<NewAccountToken> {
    tables
        .account_tokens
        .get(hash)
        .filter(|t| t.purpose == purpose && t.expires_at > domain::now())
        .cloned()
}

#[async_trait]
impl AccountStore for MemoryAccountStore {
    async fn issue(&self, token: &NewAccountToken) -> Result<(), Error> {
        let mut tables = self.tables.lock();
        if !tables.users.contains_key(&token.user_id) {
            return Err(Error::not_found("user", token.user_id));
        }
        let now = domain::now();
        // Older tokens of the kind end, and expired ones of any kind go.
        tables.account_tokens.retain(|_, t| {
            t.expires_at > now && !(t.user_id == token.user_id && t.purpose == token.purpose)
        });
        tables.account_tokens.insert(token.hash, token.clone());
        Ok(())
    }

    async fn owner(
        &self,
        purpose: TokenPurpose,
        token: &TokenHash,
    ) -> Result<Option<UserId>, Error> {
        Ok(live(&self.tables.lock(), purpose, token).map(|t| t.user_id))
    }

    async fn verify_email(&self, token: &TokenHash) -> Result<Option<UserId>, Error> {
        let mut tables = self.tables.lock();
        let Some(found) = live(&tables, TokenPurpose::VerifyEmail, token) else {
            return Ok(None);
        };
        let Some(credentials) = tables.users.get_mut(&found.user_id) else {
            return Ok(None);
        };
        if !credentials.user.email.same_as(&found.email) {
            return Ok(None);
        }
        credentials.user.email_verified_at = Some(domain::now());
        tables.account_tokens.remove(token);
        Ok(Some(found.user_id))
    }

    async fn change_password(
        &self,
        change: PasswordChange,
    ) -> Result<Option<Vec<SessionId>>, Error> {
        let mut tables = self.tables.lock();
        if !tables.users.contains_key(&change.user_id) {
            return Err(Error::not_found("user", change.user_id));
        }
        if let Some(spend) = &change.spend {
            let current = tables
                .users
                .get(&change.user_id)
                .map(|c| c.user.email.clone());
            match live(&tables, TokenPurpose::ResetPassword, spend) {
                Some(t)
                    if t.user_id == change.user_id
                        && current.as_ref().is_some_and(|e| e.same_as(&t.email)) =>
                {
                    tables.account_tokens.remove(spend);
                    // The link reached the account's address: that proves it.
                    if let Some(credentials) = tables.users.get_mut(&change.user_id)
                        && credentials.user.email.same_as(&t.email)
                        && credentials.user.email_verified_at.is_none()
                    {
                        credentials.user.email_verified_at = Some(domain::now());
                    }
                }
                _ => return Ok(None),
            }
        }
        if let Some(credentials) = tables.users.get_mut(&change.user_id) {
            credentials.password_hash = Some(change.hash.clone());
            // The record changes (for ETags) only if a move was pending.
            if credentials.user.pending_email.take().is_some() {
                credentials.user.version = credentials.user.version.next();
            }
        }
        tables.account_tokens.retain(|_, t| {
            !(t.user_id == change.user_id && t.purpose == TokenPurpose::ChangeEmail)
        });
        let ended = tables.end_sessions(change.user_id, |s| Some(s) != change.keep);
        for job in &change.jobs {
            tables.jobs.insert(job.id, crate::jobs::stored(job));
        }
        drop(tables);
        if !change.jobs.is_empty() {
            self.tables.job_added.notify_one();
        }
        Ok(Some(ended))
    }

    async fn confirm_email_change(&self, token: &TokenHash) -> Result<Option<UserId>, Error> {
        let mut tables = self.tables.lock();
        let Some(found) = live(&tables, TokenPurpose::ChangeEmail, token) else {
            return Ok(None);
        };
        let wanted = found.email.normalized();
        let taken = tables
            .users
            .values()
            .any(|c| c.user.id != found.user_id && c.user.email.normalized() == wanted);
        let Some(credentials) = tables.users.get_mut(&found.user_id) else {
            return Ok(None);
        };
        if credentials.user.pending_email.as_ref() != Some(&found.email) {
            return Ok(None);
        }
        if taken {
            return Err(Error::Duplicate {
                entity: "user",
                field: "email",
            });
        }
        let user = &mut credentials.user;
        user.email = found.email.clone();
        user.pending_email = None;
        user.email_verified_at = Some(domain::now());
        user.updated_at = domain::now();
        user.version = user.version.next();
        tables.account_tokens.remove(token);
        Ok(Some(found.user_id))
    }
}
