use std::sync::Arc;

use async_trait::async_trait;
use domain::auth::Principal;
use domain::events::{Event, EventBus, EventKind, Topic};
use domain::posts::{Post, PostBody, PostChanges, PostId, PostRepository, PostTitle};
use domain::users::{UserId, UserRepository};
use domain::{Cursor, Error, Limit, Page, ValidationErrors, Version};

/// Writes a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePost {
    pub title: PostTitle,
    pub body: PostBody,
}

impl CreatePost {
    pub fn parse(title: &str, body: &str) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let title = errors.collect(PostTitle::parse(title));
        let body = errors.collect(PostBody::parse(body));
        match (title, body) {
            (Some(title), Some(body)) => Ok(Self { title, body }),
            _ => Err(errors),
        }
    }
}

/// Changes some of a post's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdatePost {
    pub title: Option<PostTitle>,
    pub body: Option<PostBody>,
}

impl UpdatePost {
    pub fn parse(title: Option<&str>, body: Option<&str>) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let title = title.and_then(|t| errors.collect(PostTitle::parse(t)));
        let body = body.and_then(|b| errors.collect(PostBody::parse(b)));
        errors.into_result()?;
        Ok(Self { title, body })
    }
}

/// One page of an author's posts, newest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListPosts {
    pub limit: Limit,
    pub cursor: Option<Cursor>,
}

/// The post use cases.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PostService: Send + Sync + 'static {
    /// Writes a post by `actor`.
    async fn create(&self, actor: Principal, command: CreatePost) -> Result<Post, Error>;

    /// [`Error::NotFound`] when no post has this id.
    async fn get(&self, id: PostId) -> Result<Post, Error>;

    /// Changes a post, if `expected` (when given) is still its version.
    /// [`Error::Forbidden`] unless `actor` wrote it or is an admin; [`Error::NotFound`];
    /// [`Error::VersionMismatch`].
    async fn update(
        &self,
        actor: Principal,
        id: PostId,
        command: UpdatePost,
        expected: Option<Version>,
    ) -> Result<Post, Error>;

    /// [`Error::Forbidden`] unless `actor` wrote it or is an admin; [`Error::NotFound`].
    async fn delete(&self, actor: Principal, id: PostId) -> Result<(), Error>;

    /// An author's posts newest first. [`Error::NotFound`] for an unknown user; an
    /// empty page for a user without posts.
    async fn list_by_author(&self, author: UserId, query: ListPosts) -> Result<Page<Post>, Error>;
}

/// The application service behind [`PostService`].
pub struct Posts {
    posts: Arc<dyn PostRepository>,
    users: Arc<dyn UserRepository>,
    bus: Option<Arc<dyn EventBus>>,
}

impl Posts {
    pub fn new(posts: Arc<dyn PostRepository>, users: Arc<dyn UserRepository>) -> Self {
        Self {
            posts,
            users,
            bus: None,
        }
    }

    /// Announces post changes on `posts` and `user:{author}` (live updates).
    pub fn with_events(mut self, bus: Arc<dyn EventBus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Publishes `kind` for `post`. The write already happened: a failed announcement is
    /// logged, not turned into a failed request.
    async fn announce(&self, kind: EventKind, post: &Post) {
        let Some(bus) = &self.bus else { return };
        let data = serde_json::json!({
            "id": post.id.to_string(),
            "author_id": post.author_id.to_string(),
            "title": post.title.as_str(),
            "version": post.version.get(),
        });
        for topic in [Topic::Posts, Topic::User(post.author_id)] {
            let event = Event {
                topic,
                kind,
                data: data.clone(),
            };
            if let Err(error) = bus.publish(&event).await {
                tracing::warn!(%error, event = %kind, "publishing a post event failed");
            }
        }
    }

    /// The post, if `actor` may change it: its author, or an admin by the role stored
    /// now (a token's claim outlives a demotion).
    async fn owned(&self, actor: Principal, id: PostId) -> Result<Post, Error> {
        let post = self.posts.get(&id).await?;
        if post.author_id == actor.user_id {
            return Ok(post);
        }
        let actor = crate::users::stored_principal(&*self.users, actor).await?;
        if !actor.may_manage(post.author_id) {
            return Err(Error::Forbidden(
                "only the author or an admin may change a post",
            ));
        }
        Ok(post)
    }
}

#[async_trait]
impl PostService for Posts {
    async fn create(&self, actor: Principal, command: CreatePost) -> Result<Post, Error> {
        let post = Post::new(actor.user_id, command.title, command.body);
        let post = self.posts.create(&post).await?;
        tracing::info!(post_id = %post.id, author_id = %post.author_id, "post created");
        self.announce(EventKind::PostCreated, &post).await;
        Ok(post)
    }

    async fn get(&self, id: PostId) -> Result<Post, Error> {
        self.posts.get(&id).await
    }

    async fn update(
        &self,
        actor: Principal,
        id: PostId,
        command: UpdatePost,
        expected: Option<Version>,
    ) -> Result<Post, Error> {
        let post = self.owned(actor, id).await?;
        if command.title.is_none() && command.body.is_none() {
            return match expected {
                Some(v) if v != post.version => Err(Error::VersionMismatch { entity: "post" }),
                _ => Ok(post),
            };
        }
        let changes = PostChanges::new(command.title, command.body);
        let post = self.posts.update(&id, &changes, expected).await?;
        self.announce(EventKind::PostUpdated, &post).await;
        Ok(post)
    }

    async fn delete(&self, actor: Principal, id: PostId) -> Result<(), Error> {
        let post = self.owned(actor, id).await?;
        self.posts.delete(&id).await?;
        self.announce(EventKind::PostDeleted, &post).await;
        Ok(())
    }

    async fn list_by_author(&self, author: UserId, query: ListPosts) -> Result<Page<Post>, Error> {
        let (_, page) = tokio::try_join!(
            self.users.get(&author),
            self.posts
                .list_by_author(&author, query.limit, query.cursor)
        )?;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use domain::posts::MockPostRepository;
    use domain::users::{MockUserRepository, Role};

    use super::*;

    fn post_by(author: UserId) -> Post {
        Post::new(
            author,
            PostTitle::parse("Title").unwrap(),
            PostBody::parse("Body").unwrap(),
        )
    }

    fn principal(user_id: UserId, role: Role) -> Principal {
        Principal { user_id, role }
    }

    #[test]
    fn create_post_reports_both_fields() {
        let err = CreatePost::parse(" ", "").unwrap_err();
        let fields: Vec<_> = err.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["title", "body"]);
    }

    #[tokio::test]
    async fn only_the_author_or_an_admin_changes_or_deletes() {
        let author = UserId::generate();
        let post = post_by(author);
        let id = post.id;
        let mut repo = MockPostRepository::new();
        repo.expect_get().returning(move |_| Ok(post.clone()));
        repo.expect_update().never();
        repo.expect_delete().times(2).returning(|_| Ok(()));
        let admin = principal(UserId::generate(), Role::Admin);
        let demoted = principal(UserId::generate(), Role::Admin);
        let mut users = MockUserRepository::new();
        // The stored roles now: one admin still is, the other was demoted since.
        users.expect_get().returning(move |id| {
            let mut user = domain::users::User::new(
                domain::users::UserName::parse("Someone").unwrap(),
                domain::users::Email::parse("someone@example.com").unwrap(),
            );
            user.id = *id;
            user.role = if *id == admin.user_id {
                Role::Admin
            } else {
                Role::User
            };
            Ok(user)
        });
        let posts = Posts::new(Arc::new(repo), Arc::new(users));

        let stranger = principal(UserId::generate(), Role::User);
        let update = UpdatePost::parse(Some("New"), None).unwrap();
        assert!(matches!(
            posts.update(stranger, id, update, None).await,
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            posts.delete(stranger, id).await,
            Err(Error::Forbidden(_))
        ));
        posts
            .delete(principal(author, Role::User), id)
            .await
            .unwrap();
        assert!(
            matches!(posts.delete(demoted, id).await, Err(Error::Forbidden(_))),
            "a demoted admin's old token is no admin's"
        );
        posts.delete(admin, id).await.unwrap();
    }

    #[tokio::test]
    async fn listing_an_unknown_author_is_not_found() {
        let mut users = MockUserRepository::new();
        users
            .expect_get()
            .returning(|id| Err(Error::not_found("user", id)));
        let mut repo = MockPostRepository::new();
        repo.expect_list_by_author().returning(|_, _, _| {
            Ok(Page {
                items: vec![],
                next_cursor: None,
            })
        });
        let posts = Posts::new(Arc::new(repo), Arc::new(users));
        assert!(matches!(
            posts
                .list_by_author(UserId::generate(), ListPosts::default())
                .await,
            Err(Error::NotFound { entity: "user", .. })
        ));
    }
}
