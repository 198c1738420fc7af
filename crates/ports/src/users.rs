use std::sync::Arc;

use async_trait::async_trait;
use domain::users::{Email, User, UserChanges, UserId, UserName, UserRepository};
use domain::{Cursor, Error, Limit, Page, ValidationErrors};

/// Registers a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateUser {
    pub name: UserName,
    pub email: Email,
}

impl CreateUser {
    /// Validates raw input, reporting every broken rule at once.
    pub fn parse(name: &str, email: &str) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let name = errors.collect(UserName::parse(name));
        let email = errors.collect(Email::parse(email));
        match (name, email) {
            (Some(name), Some(email)) => Ok(Self { name, email }),
            _ => Err(errors),
        }
    }
}

/// Changes some of a user's fields; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateUser {
    pub name: Option<UserName>,
    pub email: Option<Email>,
}

impl UpdateUser {
    pub fn parse(name: Option<&str>, email: Option<&str>) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let name = name.and_then(|n| errors.collect(UserName::parse(n)));
        let email = email.and_then(|e| errors.collect(Email::parse(e)));
        errors.into_result()?;
        Ok(Self { name, email })
    }

    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.email.is_none()
    }
}

/// One page of the newest-first user listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListUsers {
    pub limit: Limit,
    pub cursor: Option<Cursor>,
}

/// The user use cases.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait UserService: Send + Sync + 'static {
    /// Registers a user. [`Error::Duplicate`] when the e-mail is taken (ignoring case).
    async fn create(&self, command: CreateUser) -> Result<User, Error>;

    /// [`Error::NotFound`] when no user has this id.
    async fn get(&self, id: UserId) -> Result<User, Error>;

    /// [`Error::NotFound`] for an unknown id, [`Error::Duplicate`] when the new e-mail
    /// belongs to another user. An empty update returns the user unchanged.
    async fn update(&self, id: UserId, command: UpdateUser) -> Result<User, Error>;

    /// Users newest first.
    async fn list(&self, query: ListUsers) -> Result<Page<User>, Error>;
}

/// The application service behind [`UserService`].
pub struct Users {
    repo: Arc<dyn UserRepository>,
}

impl Users {
    pub fn new(repo: Arc<dyn UserRepository>) -> Self {
        Self { repo }
    }
}

#[async_trait]
impl UserService for Users {
    async fn create(&self, command: CreateUser) -> Result<User, Error> {
        let user = User::new(command.name, command.email);
        let user = self.repo.create(&user).await?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok(user)
    }

    async fn get(&self, id: UserId) -> Result<User, Error> {
        self.repo.get(&id).await
    }

    async fn update(&self, id: UserId, command: UpdateUser) -> Result<User, Error> {
        if command.is_empty() {
            return self.repo.get(&id).await;
        }
        let changes = UserChanges::new(command.name, command.email);
        self.repo.update(&id, &changes).await
    }

    async fn list(&self, query: ListUsers) -> Result<Page<User>, Error> {
        self.repo.list(query.limit, query.cursor).await
    }
}

#[cfg(test)]
mod tests {
    use domain::users::MockUserRepository;
    use mockall::predicate::eq;

    use super::*;

    fn user(name: &str, email: &str) -> User {
        User::new(UserName::parse(name).unwrap(), Email::parse(email).unwrap())
    }

    #[test]
    fn create_user_reports_every_invalid_field() {
        let err = CreateUser::parse("", "not-an-email").unwrap_err();
        let fields: Vec<_> = err.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "email"]);
    }

    #[tokio::test]
    async fn create_stores_a_new_user_with_fresh_id_and_timestamps() {
        let mut repo = MockUserRepository::new();
        repo.expect_create()
            .withf(|u| u.name.as_str() == "Ada" && u.created_at == u.updated_at)
            .times(1)
            .returning(|u| Ok(u.clone()));
        let users = Users::new(Arc::new(repo));

        let created = users
            .create(CreateUser::parse("Ada", "ada@example.com").unwrap())
            .await
            .unwrap();
        assert_eq!(created.email.as_str(), "ada@example.com");
    }

    #[tokio::test]
    async fn create_passes_duplicates_through() {
        let mut repo = MockUserRepository::new();
        repo.expect_create().returning(|_| {
            Err(Error::Duplicate {
                entity: "user",
                field: "email",
            })
        });
        let users = Users::new(Arc::new(repo));
        let err = users
            .create(CreateUser::parse("Ada", "ada@example.com").unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Duplicate { field: "email", .. }));
    }

    #[tokio::test]
    async fn empty_update_reads_instead_of_writing() {
        let existing = user("Ada", "ada@example.com");
        let id = existing.id;
        let mut repo = MockUserRepository::new();
        repo.expect_get()
            .with(eq(id))
            .times(1)
            .returning(move |_| Ok(existing.clone()));
        repo.expect_update().never();
        let users = Users::new(Arc::new(repo));

        let got = users.update(id, UpdateUser::default()).await.unwrap();
        assert_eq!(got.id, id);
    }

    #[tokio::test]
    async fn update_sends_only_the_given_fields() {
        let existing = user("Ada", "ada@example.com");
        let id = existing.id;
        let mut repo = MockUserRepository::new();
        repo.expect_update()
            .withf(move |got_id, c| {
                *got_id == id && c.email.is_none() && c.name.as_ref().unwrap().as_str() == "Grace"
            })
            .times(1)
            .returning(move |_, c| {
                let mut u = existing.clone();
                c.apply_to(&mut u);
                Ok(u)
            });
        let users = Users::new(Arc::new(repo));

        let updated = users
            .update(id, UpdateUser::parse(Some("Grace"), None).unwrap())
            .await
            .unwrap();
        assert_eq!(updated.name.as_str(), "Grace");
        assert_eq!(updated.email.as_str(), "ada@example.com");
    }
}
