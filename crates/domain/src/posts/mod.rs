//! The post aggregate: what users write.

mod repository;

#[cfg(feature = "mocks")]
pub use repository::MockPostRepository;
pub use repository::PostRepository;

use time::OffsetDateTime;

use crate::users::UserId;
use crate::{Cursor, FieldError, Version};

crate::id::uuid_id!(
    /// A post's identity.
    PostId
);

/// Trimmed text of a bounded number of characters.
fn bounded(field: &str, raw: &str, max: usize, allow_newlines: bool) -> Result<String, FieldError> {
    let text = raw.trim();
    let chars = text.chars().count();
    if chars == 0 {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if chars > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    let bad = |c: char| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t'));
    if text.chars().any(bad) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// A post title: 1 to 200 characters after trimming, on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostTitle(String);

impl PostTitle {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        bounded("title", raw, Self::MAX_CHARS, false).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A post body: 1 to 20,000 characters after trimming; newlines and tabs allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostBody(String);

impl PostBody {
    pub const MAX_CHARS: usize = 20_000;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        bounded("body", raw, Self::MAX_CHARS, true).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub id: PostId,
    pub author_id: UserId,
    pub title: PostTitle,
    pub body: PostBody,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: Version,
}

impl Post {
    /// A new post by `author`, written now.
    pub fn new(author_id: UserId, title: PostTitle, body: PostBody) -> Self {
        let now = crate::now();
        Self {
            id: PostId::generate(),
            author_id,
            title,
            body,
            created_at: now,
            updated_at: now,
            version: Version::INITIAL,
        }
    }

    /// This post's position in its author's newest-first listing.
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.created_at, self.id.as_uuid())
    }
}

/// A change to a post: each `Some` field is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostChanges {
    pub title: Option<PostTitle>,
    pub body: Option<PostBody>,
    pub updated_at: OffsetDateTime,
}

impl PostChanges {
    pub fn new(title: Option<PostTitle>, body: Option<PostBody>) -> Self {
        Self {
            title,
            body,
            updated_at: crate::now(),
        }
    }

    /// Applies the change in memory exactly as a repository does: fields, timestamp,
    /// and the next version.
    pub fn apply_to(&self, post: &mut Post) {
        if let Some(title) = &self.title {
            post.title = title.clone();
        }
        if let Some(body) = &self.body {
            post.body = body.clone();
        }
        post.updated_at = self.updated_at;
        post.version = post.version.next();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_bodies_are_trimmed_and_bounded() {
        assert_eq!(PostTitle::parse("  Hello ").unwrap().as_str(), "Hello");
        assert!(PostTitle::parse(&"t".repeat(200)).is_ok());
        assert_eq!(
            PostTitle::parse(&"t".repeat(201)).unwrap_err().field,
            "title"
        );
        assert_eq!(PostTitle::parse(" ").unwrap_err().field, "title");
        assert!(PostTitle::parse("two\nlines").is_err());

        assert_eq!(
            PostBody::parse("\n line one\nline two \n")
                .unwrap()
                .as_str(),
            "line one\nline two"
        );
        assert!(PostBody::parse(&"b".repeat(20_000)).is_ok());
        assert_eq!(
            PostBody::parse(&"b".repeat(20_001)).unwrap_err().field,
            "body"
        );
        assert_eq!(PostBody::parse("").unwrap_err().field, "body");
        assert!(PostBody::parse("nul\u{0}byte").is_err());
    }

    #[test]
    fn changes_bump_the_version() {
        let mut post = Post::new(
            UserId::generate(),
            PostTitle::parse("t").unwrap(),
            PostBody::parse("b").unwrap(),
        );
        assert_eq!(post.version, Version::INITIAL);
        PostChanges::new(Some(PostTitle::parse("t2").unwrap()), None).apply_to(&mut post);
        assert_eq!(post.version.get(), 2);
        assert_eq!(post.title.as_str(), "t2");
    }
}
