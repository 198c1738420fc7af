use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use domain::Error;
use domain::auth::{NewRefreshToken, RefreshTokenHash, RefreshTokenStore, Rotation};
use domain::users::UserId;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone)]
struct Stored {
    user_id: UserId,
    family_id: Uuid,
    expires_at: OffsetDateTime,
    family_expires_at: OffsetDateTime,
    used: bool,
    revoked: bool,
}

/// A [`RefreshTokenStore`] in a map guarded by a mutex; each rotation holds the lock
/// throughout, which makes it atomic.
#[derive(Debug, Default)]
pub struct MemoryRefreshTokenStore {
    tokens: Mutex<HashMap<RefreshTokenHash, Stored>>,
}

impl MemoryRefreshTokenStore {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Expired tokens are dropped now and then so the map cannot grow without bound.
const PURGE_EVERY: usize = 1024;

#[async_trait]
impl RefreshTokenStore for MemoryRefreshTokenStore {
    async fn insert(&self, token: &NewRefreshToken) -> Result<(), Error> {
        let mut tokens = crate::lock(&self.tokens);
        if tokens.len() % PURGE_EVERY == PURGE_EVERY - 1 {
            let now = domain::now();
            tokens.retain(|_, t| t.expires_at > now);
        }
        tokens.insert(
            token.hash,
            Stored {
                user_id: token.user_id,
                family_id: token.family_id,
                expires_at: token.expires_at.min(token.family_expires_at),
                family_expires_at: token.family_expires_at,
                used: false,
                revoked: false,
            },
        );
        Ok(())
    }

    async fn owner(&self, presented: &RefreshTokenHash) -> Result<Option<UserId>, Error> {
        Ok(crate::lock(&self.tokens).get(presented).map(|t| t.user_id))
    }

    async fn rotate(
        &self,
        presented: &RefreshTokenHash,
        next: &RefreshTokenHash,
        next_expires_at: OffsetDateTime,
    ) -> Result<Rotation, Error> {
        let mut tokens = crate::lock(&self.tokens);
        let Some(current) = tokens.get(presented).cloned() else {
            return Ok(Rotation::Invalid);
        };
        let now = domain::now();
        if current.revoked || current.expires_at <= now || current.family_expires_at <= now {
            return Ok(Rotation::Invalid);
        }
        if current.used {
            for token in tokens.values_mut() {
                if token.family_id == current.family_id {
                    token.revoked = true;
                }
            }
            return Ok(Rotation::Reused {
                user_id: current.user_id,
            });
        }
        if let Some(spent) = tokens.get_mut(presented) {
            spent.used = true;
        }
        tokens.insert(
            *next,
            Stored {
                used: false,
                revoked: false,
                expires_at: next_expires_at.min(current.family_expires_at),
                ..current
            },
        );
        Ok(Rotation::Rotated {
            user_id: current.user_id,
        })
    }

    async fn revoke(&self, presented: &RefreshTokenHash) -> Result<(), Error> {
        if let Some(token) = crate::lock(&self.tokens).get_mut(presented) {
            token.revoked = true;
        }
        Ok(())
    }

    async fn revoke_all_for_user(&self, user: &UserId) -> Result<(), Error> {
        crate::lock(&self.tokens).retain(|_, t| t.user_id != *user);
        Ok(())
    }
}
