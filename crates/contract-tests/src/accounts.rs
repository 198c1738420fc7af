//! The [`AccountStore`] contract, over the users, sessions and jobs it acts on.

use std::sync::Arc;

use domain::Error;
use domain::Limit;
use domain::accounts::{AccountStore, NewAccountToken, PasswordChange, TokenPurpose};
use domain::auth::{
    NewRefreshToken, PasswordHash, RefreshTokenStore, SecretToken, SeenFrom, SessionId, TokenHash,
};
use domain::jobs::{JobPayload, JobQueue, JobState, NewJob};
use domain::users::{Email, User, UserChanges, UserName, UserRepository};
use time::Duration;

/// An account store and what it acts on, over the same storage.
pub struct AccountStores {
    pub accounts: Arc<dyn AccountStore>,
    pub users: Arc<dyn UserRepository>,
    pub refresh_tokens: Arc<dyn RefreshTokenStore>,
    pub queue: Arc<dyn JobQueue>,
}

async fn stored_user(s: &AccountStores, email: &str) -> User {
    let user = User::new(
        UserName::parse("Account Holder").expect("name"),
        Email::parse(email).expect("email"),
    );
    s.users
        .create(&user, &PasswordHash::new("$argon2id$old"), &[])
        .await
        .expect("user")
}

/// Issues a token of `purpose` for `user`, bound to `email`, expiring in `ttl`.
async fn issue(
    s: &AccountStores,
    user: &User,
    purpose: TokenPurpose,
    email: &str,
    ttl: Duration,
) -> TokenHash {
    let hash = SecretToken::generate().expect("token").hash();
    s.accounts
        .issue(&NewAccountToken {
            hash,
            user_id: user.id,
            purpose,
            email: Email::parse(email).expect("email"),
            expires_at: domain::now() + ttl,
        })
        .await
        .expect("issue");
    hash
}

async fn login(s: &AccountStores, user: &User) -> SessionId {
    let session = SessionId::generate();
    s.refresh_tokens
        .insert(&NewRefreshToken {
            hash: SecretToken::generate().expect("token").hash(),
            user_id: user.id,
            family_id: session,
            expires_at: domain::now() + Duration::days(1),
            family_expires_at: domain::now() + Duration::days(1),
            seen: SeenFrom::default(),
            proof: None,
        })
        .await
        .expect("login");
    session
}

fn day() -> Duration {
    Duration::days(1)
}

pub async fn a_verification_token_works_once_and_only_for_its_address(s: &AccountStores) {
    let ada = stored_user(s, "ada@example.com").await;
    let token = issue(s, &ada, TokenPurpose::VerifyEmail, "ada@example.com", day()).await;
    // A token of one purpose proves nothing else.
    assert_eq!(
        s.accounts
            .confirm_email_change(&token)
            .await
            .expect("other purpose"),
        None
    );
    assert_eq!(
        s.accounts.verify_email(&token).await.expect("verify"),
        Some(ada.id)
    );
    assert!(
        s.users
            .get(&ada.id)
            .await
            .expect("get")
            .email_verified_at
            .is_some()
    );
    assert_eq!(s.accounts.verify_email(&token).await.expect("again"), None);

    let grace = stored_user(s, "grace@example.com").await;
    let stale = issue(
        s,
        &grace,
        TokenPurpose::VerifyEmail,
        "grace@example.com",
        day(),
    )
    .await;
    let moved = UserChanges::new(
        None,
        Some(Email::parse("hopper@example.com").expect("email")),
    );
    s.users
        .update(&grace.id, &moved, None, &[])
        .await
        .expect("move");
    assert_eq!(
        s.accounts.verify_email(&stale).await.expect("old address"),
        None,
        "a link proves the address it was sent to, not the one the account has now"
    );
    assert!(
        s.users
            .get(&grace.id)
            .await
            .expect("get")
            .email_verified_at
            .is_none()
    );
}

pub async fn expired_and_unknown_tokens_do_nothing(s: &AccountStores) {
    let ada = stored_user(s, "ada@example.com").await;
    let expired = issue(
        s,
        &ada,
        TokenPurpose::VerifyEmail,
        "ada@example.com",
        Duration::seconds(-1),
    )
    .await;
    assert_eq!(
        s.accounts.verify_email(&expired).await.expect("expired"),
        None
    );
    let unknown = SecretToken::generate().expect("token").hash();
    assert_eq!(
        s.accounts.verify_email(&unknown).await.expect("unknown"),
        None
    );
    assert_eq!(
        s.accounts
            .owner(TokenPurpose::ResetPassword, &unknown)
            .await
            .expect("owner"),
        None
    );
    assert!(
        s.users
            .get(&ada.id)
            .await
            .expect("get")
            .email_verified_at
            .is_none()
    );
    let ghost = User::new(
        UserName::parse("Ghost").expect("name"),
        Email::parse("ghost@example.com").expect("email"),
    );
    let refused = s
        .accounts
        .issue(&NewAccountToken {
            hash: unknown,
            user_id: ghost.id,
            purpose: TokenPurpose::ResetPassword,
            email: ghost.email.clone(),
            expires_at: domain::now() + day(),
        })
        .await;
    assert!(
        matches!(refused, Err(Error::NotFound { .. })),
        "{refused:?}"
    );
}

pub async fn a_newer_token_ends_the_older_ones_of_its_kind(s: &AccountStores) {
    let ada = stored_user(s, "ada@example.com").await;
    let older = issue(
        s,
        &ada,
        TokenPurpose::ResetPassword,
        "ada@example.com",
        day(),
    )
    .await;
    let verify = issue(s, &ada, TokenPurpose::VerifyEmail, "ada@example.com", day()).await;
    let newer = issue(
        s,
        &ada,
        TokenPurpose::ResetPassword,
        "ada@example.com",
        day(),
    )
    .await;
    let owner = |t| {
        let accounts = s.accounts.clone();
        async move {
            accounts
                .owner(TokenPurpose::ResetPassword, &t)
                .await
                .expect("owner")
        }
    };
    assert_eq!(owner(older).await, None);
    assert_eq!(owner(newer).await, Some(ada.id));
    assert_eq!(
        s.accounts
            .owner(TokenPurpose::VerifyEmail, &verify)
            .await
            .expect("other kind"),
        Some(ada.id)
    );
}

pub async fn a_password_change_ends_sessions_spends_its_token_and_stores_its_notice(
    s: &AccountStores,
) {
    let ada = stored_user(s, "ada@example.com").await;
    let grace = stored_user(s, "grace@example.com").await;
    let kept = login(s, &ada).await;
    let other = login(s, &ada).await;
    let graces = login(s, &grace).await;
    let token = issue(
        s,
        &ada,
        TokenPurpose::ResetPassword,
        "ada@example.com",
        day(),
    )
    .await;
    let notice = NewJob::now(
        JobPayload::PasswordChanged {
            user_id: ada.id.as_uuid(),
            email: "ada@example.com".into(),
        },
        3,
    );
    let change =
        |spend: Option<TokenHash>, keep: Option<SessionId>, jobs: Vec<NewJob>| PasswordChange {
            user_id: ada.id,
            hash: PasswordHash::new("$argon2id$new"),
            spend,
            keep,
            jobs,
        };
    // A reset token of someone else, or none that lives, changes nothing.
    let not_hers = issue(
        s,
        &grace,
        TokenPurpose::ResetPassword,
        "grace@example.com",
        day(),
    )
    .await;
    assert_eq!(
        s.accounts
            .change_password(change(Some(not_hers), None, vec![notice.clone()]))
            .await
            .expect("refused"),
        None
    );
    let stored = s
        .users
        .credentials_by_email(&ada.email)
        .await
        .expect("credentials")
        .expect("ada");
    assert_eq!(
        stored.password_hash.as_ref().map(PasswordHash::expose),
        Some("$argon2id$old")
    );

    let ended = s
        .accounts
        .change_password(change(Some(token), Some(kept), vec![notice.clone()]))
        .await
        .expect("change")
        .expect("applied");
    assert_eq!(ended, vec![other]);
    let stored = s
        .users
        .credentials_by_email(&ada.email)
        .await
        .expect("credentials")
        .expect("ada");
    assert_eq!(
        stored.password_hash.as_ref().map(PasswordHash::expose),
        Some("$argon2id$new")
    );
    let live: Vec<_> = s
        .refresh_tokens
        .sessions(&ada.id)
        .await
        .expect("sessions")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, vec![kept]);
    assert_eq!(
        s.refresh_tokens
            .sessions(&grace.id)
            .await
            .expect("grace")
            .len(),
        1
    );
    assert!(
        s.refresh_tokens
            .sessions(&grace.id)
            .await
            .expect("grace")
            .iter()
            .any(|x| x.id == graces)
    );
    let jobs = s
        .queue
        .list(Some(JobState::Queued), Limit::new(10).expect("limit"), None)
        .await
        .expect("jobs");
    assert_eq!(jobs.items.len(), 1, "the notice, once");
    assert_eq!(jobs.items[0].payload, notice.payload);
    // Spent: it works once.
    assert_eq!(
        s.accounts
            .change_password(change(Some(token), None, vec![]))
            .await
            .expect("spent"),
        None
    );
}

pub async fn an_email_change_applies_the_pending_address_once(s: &AccountStores) {
    let ada = stored_user(s, "ada@example.com").await;
    let pending = Email::parse("ada.king@example.com").expect("email");
    let ask = UserChanges::new(None, None).pending(Some(pending.clone()));
    let asked = s
        .users
        .update(&ada.id, &ask, None, &[])
        .await
        .expect("pending");
    assert_eq!(asked.pending_email.as_ref(), Some(&pending));
    assert_eq!(asked.email, ada.email, "the address stays until confirmed");
    let token = issue(
        s,
        &ada,
        TokenPurpose::ChangeEmail,
        "ada.king@example.com",
        day(),
    )
    .await;
    assert_eq!(
        s.accounts
            .confirm_email_change(&token)
            .await
            .expect("confirm"),
        Some(ada.id)
    );
    let moved = s.users.get(&ada.id).await.expect("get");
    assert_eq!(moved.email, pending);
    assert_eq!(moved.pending_email, None);
    assert!(moved.email_verified_at.is_some());
    assert_eq!(moved.version, asked.version.next());
    assert_eq!(
        s.accounts
            .confirm_email_change(&token)
            .await
            .expect("again"),
        None
    );

    // A link for an address no longer pending does nothing.
    let stale = issue(
        s,
        &ada,
        TokenPurpose::ChangeEmail,
        "elsewhere@example.com",
        day(),
    )
    .await;
    assert_eq!(
        s.accounts
            .confirm_email_change(&stale)
            .await
            .expect("stale"),
        None
    );
}

pub async fn an_address_taken_meanwhile_fails_the_confirmation(s: &AccountStores) {
    let ada = stored_user(s, "ada@example.com").await;
    let wanted = Email::parse("wanted@example.com").expect("email");
    let ask = UserChanges::new(None, None).pending(Some(wanted));
    s.users
        .update(&ada.id, &ask, None, &[])
        .await
        .expect("pending");
    let token = issue(
        s,
        &ada,
        TokenPurpose::ChangeEmail,
        "wanted@example.com",
        day(),
    )
    .await;
    stored_user(s, "WANTED@example.com").await;
    let taken = s.accounts.confirm_email_change(&token).await;
    assert!(
        matches!(taken, Err(Error::Duplicate { field: "email", .. })),
        "{taken:?}"
    );
    let unchanged = s.users.get(&ada.id).await.expect("get");
    assert_eq!(unchanged.email.as_str(), "ada@example.com");
}

pub async fn a_reset_link_works_only_for_the_address_the_account_has_now(s: &AccountStores) {
    let ada = stored_user(s, "ada@example.com").await;
    let old = issue(
        s,
        &ada,
        TokenPurpose::ResetPassword,
        "ada@example.com",
        day(),
    )
    .await;
    let moved = UserChanges::new(
        None,
        Some(Email::parse("ada.king@example.com").expect("email")),
    );
    s.users
        .update(&ada.id, &moved, None, &[])
        .await
        .expect("move");
    let change = PasswordChange {
        user_id: ada.id,
        hash: PasswordHash::new("$argon2id$new"),
        spend: Some(old),
        keep: None,
        jobs: vec![],
    };
    assert_eq!(
        s.accounts.change_password(change).await.expect("refused"),
        None,
        "a link mailed to an address the account left proves nothing"
    );
    let stored = s
        .users
        .credentials_by_email(&Email::parse("ada.king@example.com").expect("email"))
        .await
        .expect("credentials")
        .expect("ada");
    assert_eq!(
        stored.password_hash.as_ref().map(PasswordHash::expose),
        Some("$argon2id$old")
    );
}

pub async fn a_new_password_cancels_a_pending_address_change(s: &AccountStores) {
    let ada = stored_user(s, "ada@example.com").await;
    let ask = UserChanges::new(None, None)
        .pending(Some(Email::parse("thief@example.com").expect("email")));
    let asked = s
        .users
        .update(&ada.id, &ask, None, &[])
        .await
        .expect("pending");
    let link = issue(
        s,
        &ada,
        TokenPurpose::ChangeEmail,
        "thief@example.com",
        day(),
    )
    .await;
    s.accounts
        .change_password(PasswordChange {
            user_id: ada.id,
            hash: PasswordHash::new("$argon2id$new"),
            spend: None,
            keep: None,
            jobs: vec![],
        })
        .await
        .expect("change")
        .expect("applied");
    let cancelled = s.users.get(&ada.id).await.expect("get");
    assert_eq!(cancelled.pending_email, None);
    assert_eq!(
        cancelled.version,
        asked.version.next(),
        "the record changed: its ETag must"
    );
    assert_eq!(
        s.accounts
            .confirm_email_change(&link)
            .await
            .expect("confirm"),
        None,
        "the move's link is cancelled with it"
    );
    assert_eq!(
        s.users.get(&ada.id).await.expect("get").email.as_str(),
        "ada@example.com"
    );
}
