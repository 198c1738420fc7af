//! The [`UserRepository`] contract.

use domain::auth::PasswordHash;
use domain::users::{Email, Role, User, UserChanges, UserId, UserName, UserRepository};
use domain::{Error, Limit, Version};
use time::{Duration, OffsetDateTime};

fn user(name: &str, email: &str) -> User {
    User::new(
        UserName::parse(name).expect("valid name"),
        Email::parse(email).expect("valid email"),
    )
}

fn hash(tag: &str) -> PasswordHash {
    PasswordHash::new(format!("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ${tag}"))
}

/// Stores `user` with a placeholder password hash.
async fn create(repo: &impl UserRepository, user: &User) -> Result<User, Error> {
    repo.create(user, &hash("x"), &[]).await
}

fn user_at(n: usize, created_at: OffsetDateTime) -> User {
    let mut u = user(&format!("User {n}"), &format!("user{n}@example.com"));
    u.created_at = created_at;
    u.updated_at = created_at;
    u
}

fn changes(name: Option<&str>, email: Option<&str>) -> UserChanges {
    UserChanges::new(
        name.map(|n| UserName::parse(n).expect("valid name")),
        email.map(|e| Email::parse(e).expect("valid email")),
    )
}

fn assert_duplicate_email(result: Result<User, Error>) {
    match result {
        Err(Error::Duplicate { field: "email", .. }) => {}
        other => panic!("expected a duplicate e-mail, got {other:?}"),
    }
}

fn assert_not_found(result: Result<User, Error>) {
    match result {
        Err(Error::NotFound { entity: "user", .. }) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

pub async fn create_then_get_round_trips(repo: &impl UserRepository) {
    let new = user("Ada Lovelace", "Ada@Example.com");
    let created = create(repo, &new).await.expect("create");
    assert_eq!(created, new, "create returns what was stored");
    let fetched = repo.get(&new.id).await.expect("get");
    assert_eq!(
        fetched, new,
        "every field, timestamps included, survives storage"
    );
    assert_eq!(
        fetched.email.as_str(),
        "Ada@Example.com",
        "e-mail kept as typed"
    );
}

pub async fn get_unknown_is_not_found(repo: &impl UserRepository) {
    assert_not_found(repo.get(&UserId::generate()).await);
}

pub async fn duplicate_email_ignoring_case_is_rejected_and_nothing_stored(
    repo: &impl UserRepository,
) {
    create(repo, &user("Ada", "ada@example.com"))
        .await
        .expect("first");
    let second = user("Other Ada", "ADA@example.COM");
    assert_duplicate_email(create(repo, &second).await);
    assert_not_found(repo.get(&second.id).await);
    let all = repo
        .list(Limit::new(Limit::MAX).expect("limit"), None)
        .await
        .expect("list");
    assert_eq!(all.items.len(), 1);
}

pub async fn update_replaces_only_given_fields(repo: &impl UserRepository) {
    let original = create(repo, &user("Ada", "ada@example.com"))
        .await
        .expect("create");

    let renamed = repo
        .update(&original.id, &changes(Some("Grace"), None), None, &[])
        .await
        .expect("rename");
    assert_eq!(renamed.name.as_str(), "Grace");
    assert_eq!(renamed.email, original.email);
    assert_eq!(renamed.created_at, original.created_at);
    assert!(renamed.updated_at >= original.updated_at);

    let moved = repo
        .update(
            &original.id,
            &changes(None, Some("grace@example.com")),
            None,
            &[],
        )
        .await
        .expect("change e-mail");
    assert_eq!(moved.name.as_str(), "Grace");
    assert_eq!(moved.email.as_str(), "grace@example.com");
    assert_eq!(repo.get(&original.id).await.expect("get"), moved);
}

pub async fn update_unknown_is_not_found(repo: &impl UserRepository) {
    assert_not_found(
        repo.update(
            &UserId::generate(),
            &changes(Some("Nobody"), None),
            None,
            &[],
        )
        .await,
    );
}

pub async fn update_to_taken_email_is_duplicate_and_changes_nothing(repo: &impl UserRepository) {
    create(repo, &user("Ada", "ada@example.com"))
        .await
        .expect("ada");
    let grace = create(repo, &user("Grace", "grace@example.com"))
        .await
        .expect("grace");
    assert_duplicate_email(
        repo.update(
            &grace.id,
            &changes(Some("Renamed"), Some("ADA@example.com")),
            None,
            &[],
        )
        .await,
    );
    assert_eq!(repo.get(&grace.id).await.expect("get"), grace);
}

pub async fn update_own_email_to_other_case_is_allowed(repo: &impl UserRepository) {
    let ada = create(repo, &user("Ada", "ada@example.com"))
        .await
        .expect("create");
    let updated = repo
        .update(&ada.id, &changes(None, Some("ADA@example.com")), None, &[])
        .await
        .expect("same address, other case");
    assert_eq!(updated.email.as_str(), "ADA@example.com");
}

pub async fn updates_bump_the_version_and_honour_the_expected_one(repo: &impl UserRepository) {
    let ada = create(repo, &user("Ada", "ada@example.com"))
        .await
        .expect("create");
    assert_eq!(ada.version, Version::INITIAL);

    let v2 = repo
        .update(
            &ada.id,
            &changes(Some("Ada 2"), None),
            Some(ada.version),
            &[],
        )
        .await
        .expect("expected version matches");
    assert_eq!(v2.version, ada.version.next());

    // A writer that read version 1 is refused, and nothing changes.
    match repo
        .update(
            &ada.id,
            &changes(Some("Stale"), None),
            Some(ada.version),
            &[],
        )
        .await
    {
        Err(Error::VersionMismatch { entity: "user" }) => {}
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    assert_eq!(repo.get(&ada.id).await.expect("get"), v2);

    // Without an expectation the last write wins, and still bumps the version.
    let v3 = repo
        .update(&ada.id, &changes(Some("Ada 3"), None), None, &[])
        .await
        .expect("unconditional");
    assert_eq!(v3.version, v2.version.next());
    assert!(matches!(
        repo.update(
            &UserId::generate(),
            &changes(None, None),
            Some(Version::INITIAL),
            &[]
        )
        .await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn credentials_are_found_by_email_ignoring_case(repo: &impl UserRepository) {
    let ada = user("Ada", "Ada@Example.com");
    repo.create(&ada, &hash("ada"), &[]).await.expect("create");
    create(repo, &user("Grace", "grace@example.com"))
        .await
        .expect("grace");

    let found = repo
        .credentials_by_email(&Email::parse("ADA@example.COM").expect("email"))
        .await
        .expect("lookup")
        .expect("ada is found");
    assert_eq!(found.user, ada);
    assert_eq!(found.password_hash, Some(hash("ada")));

    let nobody = repo
        .credentials_by_email(&Email::parse("nobody@example.com").expect("email"))
        .await
        .expect("lookup");
    assert_eq!(nobody, None);
}

pub async fn password_hashes_can_be_replaced(repo: &impl UserRepository) {
    let ada = create(repo, &user("Ada", "ada@example.com"))
        .await
        .expect("create");
    repo.set_password_hash(&ada.id, &hash("new"))
        .await
        .expect("set");
    let found = repo
        .credentials_by_email(&ada.email)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.password_hash, Some(hash("new")));
    assert!(matches!(
        repo.set_password_hash(&UserId::generate(), &hash("x"))
            .await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn roles_are_stored_and_changed(repo: &impl UserRepository) {
    let ada = create(repo, &user("Ada", "ada@example.com"))
        .await
        .expect("create");
    assert_eq!(ada.role, Role::User);
    let promoted = repo
        .update(
            &ada.id,
            &changes(None, None).with_role(Some(Role::Admin)),
            None,
            &[],
        )
        .await
        .expect("promote");
    assert_eq!(promoted.role, Role::Admin);
    assert_eq!(repo.get(&ada.id).await.expect("get").role, Role::Admin);
}

pub async fn deleted_users_are_gone(repo: &impl UserRepository) {
    let ada = create(repo, &user("Ada", "ada@example.com"))
        .await
        .expect("create");
    repo.delete(&ada.id).await.expect("delete");
    assert_not_found(repo.get(&ada.id).await);
    assert!(matches!(
        repo.delete(&ada.id).await,
        Err(Error::NotFound { .. })
    ));
    // The address is free again.
    create(repo, &user("Ada again", "ada@example.com"))
        .await
        .expect("re-register");
}

pub async fn list_of_nothing_is_an_empty_last_page(repo: &impl UserRepository) {
    let page = repo.list(Limit::DEFAULT, None).await.expect("list");
    assert!(page.items.is_empty());
    assert_eq!(page.next_cursor, None);
}

pub async fn list_is_newest_first_and_pages_without_gaps_or_repeats(repo: &impl UserRepository) {
    let base = domain::now() - Duration::hours(1);
    let mut created = Vec::new();
    for n in 0..5 {
        let u = user_at(n, base + Duration::seconds(n as i64));
        created.push(create(repo, &u).await.expect("create"));
    }
    let newest_first: Vec<UserId> = created.iter().rev().map(|u| u.id).collect();

    let limit = Limit::new(2).expect("limit");
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = repo.list(limit, cursor).await.expect("list");
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|u| u.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10, "pagination does not terminate");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, newest_first);

    // Exactly `limit` rows left: the page is full, yet it is the last one.
    let tail = repo
        .list(limit, Some(created[2].cursor()))
        .await
        .expect("tail");
    assert_eq!(
        tail.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        [created[1].id, created[0].id]
    );
    assert_eq!(tail.next_cursor, None);
}

pub async fn list_breaks_timestamp_ties_by_id_descending(repo: &impl UserRepository) {
    let at = domain::now();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(create(repo, &user_at(n, at)).await.expect("create").id);
    }
    ids.sort();
    ids.reverse();

    let first = repo
        .list(Limit::new(1).expect("limit"), None)
        .await
        .expect("list");
    assert_eq!(first.items[0].id, ids[0]);
    let rest = repo
        .list(Limit::DEFAULT, first.next_cursor)
        .await
        .expect("rest");
    assert_eq!(
        rest.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        &ids[1..]
    );
}

pub async fn a_rehash_replaces_only_the_hash_it_was_made_from(repo: &impl UserRepository) {
    let user = User::new(
        UserName::parse("Ada").expect("name"),
        Email::parse("ada@example.com").expect("email"),
    );
    repo.create(&user, &PasswordHash::new("$argon2id$old-cost"), &[])
        .await
        .expect("create");
    assert!(
        repo.rehash_password(
            &user.id,
            &PasswordHash::new("$argon2id$old-cost"),
            &PasswordHash::new("$argon2id$new-cost"),
        )
        .await
        .expect("rehash")
    );
    assert_eq!(
        stored_hash(repo, &user.email).await.as_deref(),
        Some("$argon2id$new-cost")
    );
    // The password changed meanwhile: a rehash of the old one must not bring it back.
    repo.set_password_hash(&user.id, &PasswordHash::new("$argon2id$changed"))
        .await
        .expect("change");
    assert!(
        !repo
            .rehash_password(
                &user.id,
                &PasswordHash::new("$argon2id$new-cost"),
                &PasswordHash::new("$argon2id$stale"),
            )
            .await
            .expect("rehash")
    );
    assert_eq!(
        stored_hash(repo, &user.email).await.as_deref(),
        Some("$argon2id$changed")
    );
    let ghost = UserId::generate();
    let gone = repo
        .rehash_password(
            &ghost,
            &PasswordHash::new("$argon2id$a"),
            &PasswordHash::new("$argon2id$b"),
        )
        .await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
}

async fn stored_hash(repo: &impl UserRepository, email: &Email) -> Option<String> {
    repo.credentials_by_email(email)
        .await
        .expect("credentials")
        .and_then(|c| c.password_hash)
        .map(|h| h.expose().to_owned())
}
