//! The fan-out under a deadline, with fake repositories that take known delays. Time is
//! tokio's paused clock, so the measured durations are exact, not sampled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use domain::auth::{MockPasswordHasher, MockRefreshTokenStore, PasswordHash};
use domain::jobs::NewJob;
use domain::posts::{Post, PostBody, PostChanges, PostId, PostRepository, PostTitle};
use domain::users::{Credentials, Email, User, UserChanges, UserId, UserName, UserRepository};
use domain::{Cursor, Error, Limit, Page, Version};
use tokio::time::Instant;

use crate::users::{UserService, Users};

struct SlowUsers {
    delay: Duration,
    user: Option<User>,
}

#[async_trait]
impl UserRepository for SlowUsers {
    async fn get(&self, id: &UserId) -> Result<User, Error> {
        tokio::time::sleep(self.delay).await;
        self.user
            .clone()
            .ok_or_else(|| Error::not_found("user", id))
    }
    async fn create(&self, _: &User, _: &PasswordHash, _: &[NewJob]) -> Result<User, Error> {
        unimplemented!()
    }
    async fn credentials_by_email(&self, _: &Email) -> Result<Option<Credentials>, Error> {
        unimplemented!()
    }
    async fn update(
        &self,
        _: &UserId,
        _: &UserChanges,
        _: Option<Version>,
        _: &[NewJob],
    ) -> Result<User, Error> {
        unimplemented!()
    }
    async fn set_password_hash(&self, _: &UserId, _: &PasswordHash) -> Result<(), Error> {
        unimplemented!()
    }
    async fn rehash_password(
        &self,
        _: &UserId,
        _: &PasswordHash,
        _: &PasswordHash,
    ) -> Result<bool, Error> {
        unimplemented!()
    }
    async fn delete(&self, _: &UserId) -> Result<(), Error> {
        unimplemented!()
    }
    async fn list(&self, _: Limit, _: Option<Cursor>) -> Result<Page<User>, Error> {
        unimplemented!()
    }
}

/// Sets `dropped` if its work is abandoned before finishing.
struct SlowPosts {
    delay: Duration,
    posts: Vec<Post>,
    dropped: Arc<AtomicBool>,
}

struct DropFlag(Arc<AtomicBool>, bool);

impl Drop for DropFlag {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl PostRepository for SlowPosts {
    async fn list_by_author(
        &self,
        _: &UserId,
        limit: Limit,
        _: Option<Cursor>,
    ) -> Result<Page<Post>, Error> {
        let mut flag = DropFlag(self.dropped.clone(), false);
        tokio::time::sleep(self.delay).await;
        flag.1 = true;
        let mut items = self.posts.clone();
        items.truncate(limit.get() as usize);
        Ok(Page {
            items,
            next_cursor: None,
        })
    }
    async fn create(&self, _: &Post) -> Result<Post, Error> {
        unimplemented!()
    }
    async fn get(&self, _: &PostId) -> Result<Post, Error> {
        unimplemented!()
    }
    async fn update(&self, _: &PostId, _: &PostChanges, _: Option<Version>) -> Result<Post, Error> {
        unimplemented!()
    }
    async fn delete(&self, _: &PostId) -> Result<(), Error> {
        unimplemented!()
    }
}

fn ada() -> User {
    User::new(
        UserName::parse("Ada").unwrap(),
        Email::parse("ada@example.com").unwrap(),
    )
}

fn posts_by(user: &User, n: usize) -> Vec<Post> {
    (0..n)
        .map(|i| {
            Post::new(
                user.id,
                PostTitle::parse(&format!("Post {i}")).unwrap(),
                PostBody::parse("Body").unwrap(),
            )
        })
        .collect()
}

struct Setup {
    users: Users,
    dropped: Arc<AtomicBool>,
}

fn setup(user: Option<User>, user_delay_ms: u64, posts_delay_ms: u64, deadline_ms: u64) -> Setup {
    let dropped = Arc::new(AtomicBool::new(false));
    let posts = user.as_ref().map(|u| posts_by(u, 25)).unwrap_or_default();
    Setup {
        users: Users::new(
            Arc::new(SlowUsers {
                delay: Duration::from_millis(user_delay_ms),
                user,
            }),
            Arc::new(SlowPosts {
                delay: Duration::from_millis(posts_delay_ms),
                posts,
                dropped: dropped.clone(),
            }),
            Arc::new(MockPasswordHasher::new()),
            Arc::new(MockRefreshTokenStore::new()),
            Duration::from_millis(deadline_ms),
        ),
        dropped,
    }
}

/// The user themself, as a token proves them (a `user` claim needs no lookup).
fn as_self(user: &User) -> domain::auth::Principal {
    domain::auth::Principal {
        user_id: user.id,
        role: domain::users::Role::User,
    }
}

#[tokio::test(start_paused = true)]
async fn both_branches_run_concurrently_so_the_wait_is_the_slower_one() {
    let user = ada();
    let s = setup(Some(user.clone()), 100, 300, 5_000);
    let started = Instant::now();
    let got = s
        .users
        .get_with_posts(as_self(&user), user.id)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(got.user, crate::users::UserView::Full(user));
    assert_eq!(got.posts.len(), 20, "the latest 20 posts");
    // Sequential would be 400 ms.
    assert_eq!(elapsed, Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn a_branch_slower_than_the_deadline_fails_at_the_deadline_and_is_dropped() {
    let user = ada();
    let s = setup(Some(user.clone()), 10, 10_000, 5_000);
    let started = Instant::now();
    let err = s
        .users
        .get_with_posts(as_self(&user), user.id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DeadlineExceeded(_)), "{err:?}");
    assert_eq!(started.elapsed(), Duration::from_millis(5_000));
    assert!(
        s.dropped.load(Ordering::SeqCst),
        "the slow branch was cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_branch_fails_the_request_without_waiting_for_the_other() {
    let s = setup(None, 50, 3_000, 5_000);
    let started = Instant::now();
    let err = s
        .users
        .get_with_posts(as_self(&ada()), UserId::generate())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { entity: "user", .. }),
        "{err:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_millis(50));
    assert!(
        s.dropped.load(Ordering::SeqCst),
        "the posts branch was cancelled"
    );
}
