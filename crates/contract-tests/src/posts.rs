//! The [`PostRepository`] contract. Cases get a user repository over the same storage:
//! posts belong to stored users.

use domain::auth::PasswordHash;
use domain::posts::{Post, PostBody, PostChanges, PostId, PostRepository, PostTitle};
use domain::users::{Email, User, UserId, UserName, UserRepository};
use domain::{Error, Limit, Version};
use time::Duration;

async fn author(users: &impl UserRepository, email: &str) -> User {
    let user = User::new(
        UserName::parse("Author").expect("name"),
        Email::parse(email).expect("email"),
    );
    users
        .create(&user, &PasswordHash::new("$argon2id$placeholder"), &[])
        .await
        .expect("author")
}

fn post(author: &User, n: usize) -> Post {
    Post::new(
        author.id,
        PostTitle::parse(&format!("Post {n}")).expect("title"),
        PostBody::parse("Body text.").expect("body"),
    )
}

fn retitle(title: &str) -> PostChanges {
    PostChanges::new(Some(PostTitle::parse(title).expect("title")), None)
}

pub async fn create_then_get_round_trips(posts: &impl PostRepository, users: &impl UserRepository) {
    let ada = author(users, "ada@example.com").await;
    let new = post(&ada, 1);
    assert_eq!(posts.create(&new).await.expect("create"), new);
    assert_eq!(posts.get(&new.id).await.expect("get"), new);
    assert!(matches!(
        posts.get(&PostId::generate()).await,
        Err(Error::NotFound { entity: "post", .. })
    ));
}

pub async fn a_post_by_an_unknown_author_is_refused(
    posts: &impl PostRepository,
    _users: &impl UserRepository,
) {
    let ghost = User::new(
        UserName::parse("Ghost").expect("name"),
        Email::parse("ghost@example.com").expect("email"),
    );
    let orphan = post(&ghost, 1);
    assert!(matches!(
        posts.create(&orphan).await,
        Err(Error::NotFound { entity: "user", .. })
    ));
    assert!(posts.get(&orphan.id).await.is_err());
}

pub async fn updates_check_the_version_in_the_same_step(
    posts: &impl PostRepository,
    users: &impl UserRepository,
) {
    let ada = author(users, "ada@example.com").await;
    let original = posts.create(&post(&ada, 1)).await.expect("create");

    let v2 = posts
        .update(&original.id, &retitle("Second"), Some(original.version))
        .await
        .expect("update");
    assert_eq!(v2.version, original.version.next());
    assert_eq!(v2.title.as_str(), "Second");
    assert_eq!(v2.body, original.body);

    match posts
        .update(&original.id, &retitle("Stale"), Some(original.version))
        .await
    {
        Err(Error::VersionMismatch { entity: "post" }) => {}
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    assert_eq!(posts.get(&original.id).await.expect("get"), v2);

    let v3 = posts
        .update(&original.id, &retitle("Third"), None)
        .await
        .expect("unconditional");
    assert_eq!(v3.version, v2.version.next());
    assert!(matches!(
        posts
            .update(&PostId::generate(), &retitle("x"), Some(Version::INITIAL))
            .await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn concurrent_updates_expecting_one_version_succeed_once(
    posts: &impl PostRepository,
    users: &impl UserRepository,
) {
    let ada = author(users, "ada@example.com").await;
    let original = posts.create(&post(&ada, 1)).await.expect("create");
    let (a, b) = futures_util::future::join(
        posts.update(&original.id, &retitle("A"), Some(original.version)),
        posts.update(&original.id, &retitle("B"), Some(original.version)),
    )
    .await;
    let wins = [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count();
    assert_eq!(wins, 1, "exactly one writer wins");
    let stored = posts.get(&original.id).await.expect("get");
    assert_eq!(stored.version, original.version.next());
}

pub async fn delete_removes_and_unknown_is_not_found(
    posts: &impl PostRepository,
    users: &impl UserRepository,
) {
    let ada = author(users, "ada@example.com").await;
    let p = posts.create(&post(&ada, 1)).await.expect("create");
    posts.delete(&p.id).await.expect("delete");
    assert!(matches!(
        posts.get(&p.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        posts.delete(&p.id).await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn listing_is_per_author_newest_first_with_keyset_pages(
    posts: &impl PostRepository,
    users: &impl UserRepository,
) {
    let ada = author(users, "ada@example.com").await;
    let grace = author(users, "grace@example.com").await;
    let base = domain::now() - Duration::hours(1);
    let mut mine = Vec::new();
    for n in 0..5 {
        let mut p = post(&ada, n);
        p.created_at = base + Duration::seconds(n as i64);
        p.updated_at = p.created_at;
        mine.push(posts.create(&p).await.expect("create").id);
    }
    posts.create(&post(&grace, 99)).await.expect("other author");
    mine.reverse();

    let limit = Limit::new(2).expect("limit");
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..5 {
        let page = posts
            .list_by_author(&ada.id, limit, cursor)
            .await
            .expect("list");
        seen.extend(page.items.iter().map(|p| p.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, mine);

    let nobody = posts
        .list_by_author(&UserId::generate(), Limit::DEFAULT, None)
        .await
        .expect("list");
    assert!(nobody.items.is_empty() && nobody.next_cursor.is_none());
}

pub async fn deleting_the_author_deletes_their_posts(
    posts: &impl PostRepository,
    users: &impl UserRepository,
) {
    let ada = author(users, "ada@example.com").await;
    let grace = author(users, "grace@example.com").await;
    let hers = posts.create(&post(&ada, 1)).await.expect("create");
    let other = posts.create(&post(&grace, 2)).await.expect("create");
    users.delete(&ada.id).await.expect("delete author");
    assert!(matches!(
        posts.get(&hers.id).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(posts.get(&other.id).await.expect("untouched"), other);
}
