use std::fmt;

/// A boxed error from an adapter, kept as the source of [`Error::Unavailable`] and [`Error::Internal`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Every failure a use case or a driven port can report.
///
/// Inbound adapters map each variant to their transport (HTTP status, gRPC code) in one
/// place; the variants are chosen so that mapping never needs to look inside a message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The addressed entity does not exist.
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },

    /// A uniqueness rule would be broken, e.g. an e-mail address already in use.
    #[error("a {entity} with this {field} already exists")]
    Duplicate {
        entity: &'static str,
        field: &'static str,
    },

    /// The caller is not authenticated: no credentials, or credentials that do not prove
    /// who they are. The message is safe to show.
    #[error("{0}")]
    Unauthorized(&'static str),

    /// The caller is authenticated but may not do this. The message is safe to show.
    #[error("{0}")]
    Forbidden(&'static str),

    /// The credentials are right, but the account's e-mail address is not verified and
    /// this service requires it. Told only to someone who proved the password.
    #[error("verify your e-mail address first: follow the link we sent you")]
    EmailNotVerified,

    /// A mailed token (a link's) is unknown, spent or expired; which of these is not
    /// said, so the answer tells a guesser nothing.
    #[error("this link is invalid, already used or expired; ask for a new one")]
    LinkInvalid,

    /// The entity is not in a state that allows this (e.g. retrying a running job).
    /// The message is safe to show.
    #[error("{0}")]
    Conflict(&'static str),

    /// The write was based on a version that is no longer current; nothing was written.
    #[error("the {entity} was changed by someone else; fetch it again")]
    VersionMismatch { entity: &'static str },

    /// The caller made too many attempts of this kind; nothing was done. Retrying after
    /// `retry_after` may work.
    #[error("too many attempts; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: std::time::Duration },

    /// The work did not finish within its deadline and was cancelled.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(&'static str),

    /// The input breaks one or more rules; each [`FieldError`] names the field.
    #[error("{0}")]
    Validation(ValidationErrors),

    /// A dependency (the database, the pool) cannot serve now; retrying later may work.
    #[error("service unavailable: {0}")]
    Unavailable(#[source] BoxError),

    /// Anything else. The source is logged, never shown to a client.
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

impl Error {
    pub fn not_found(entity: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::Unavailable(source.into())
    }

    pub fn internal(source: impl Into<BoxError>) -> Self {
        Self::Internal(source.into())
    }
}

impl From<ValidationErrors> for Error {
    fn from(errors: ValidationErrors) -> Self {
        Self::Validation(errors)
    }
}

impl From<FieldError> for Error {
    fn from(error: FieldError) -> Self {
        Self::Validation(ValidationErrors::from(error))
    }
}

/// One broken rule on one input field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field as the client spelled it (`email`, `name`, `limit`).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error reported against another field name, for value objects
    /// that are parsed before they know which field they came from.
    pub fn for_field(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }
}

/// A non-empty list of [`FieldError`]s, so a client learns every problem at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// Records the error of `result`, if any, and returns its value.
    pub fn collect<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// `Ok(())` when nothing was recorded, the errors otherwise.
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl From<FieldError> for ValidationErrors {
    fn from(error: FieldError) -> Self {
        Self(vec![error])
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid input")?;
        for (i, e) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}
