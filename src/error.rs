//! The one application error type. Domain code returns it without knowing about HTTP; `web::errors`
//! turns each kind into a status and a page or JSON body. Database "not found" becomes 404 and an
//! unreachable database 503 here, in one place (as crates.io does).

use std::collections::BTreeMap;
use std::fmt;

/// What went wrong, in terms a user can act on — or `Internal`, which they cannot.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The object does not exist, or exists in an account the user may not see (never say which).
    #[error("not found")]
    NotFound,
    /// The URL exists but not for this HTTP method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Not signed in (console) or no credentials (API).
    #[error("sign-in required")]
    Unauthenticated,
    /// Signed in, but this role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A management API request would give a key more than the calling key holds (403 `escalation`).
    #[error("{0}")]
    Escalation(String),
    /// The input breaks a rule the user can fix: the form is shown again with a message by each field
    /// (422). Not an error page: handlers catch it and re-render.
    #[error("the form has errors")]
    Invalid(FieldErrors),
    /// The request cannot be understood (bad CSRF token, malformed form, wrong content type).
    #[error("{0}")]
    BadRequest(String),
    /// The request is valid but the state of things forbids it (delete an enabled code, a third code).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; retry after the given number of seconds.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// The database cannot be reached: fail closed, tell the client to retry.
    #[error("the service is temporarily unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A bug or an unexpected failure: logged with its cause chain, shown as a plain 500.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        AppError::Internal(e.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::Forbidden(message.into())
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        AppError::BadRequest(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        AppError::Conflict(message.into())
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => AppError::NotFound,
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                AppError::Unavailable(e.into())
            }
            // PostgreSQL refuses NUL characters in text. Input validation refuses them first; this is
            // the safety net that keeps such input a 400 rather than a 500.
            Error::DatabaseError(_, ref info)
                if info.message().contains("invalid byte sequence") =>
            {
                AppError::bad_request("Text may not contain NUL characters.")
            }
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<r2d2::Error> for AppError {
    fn from(e: r2d2::Error) -> Self {
        AppError::Unavailable(e.into())
    }
}

/// Prints an error with every cause behind it, one per line, for the logs.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Messages by field name, shown next to each field of a re-rendered form.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(BTreeMap<&'static str, String>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the message for `field` (the first one wins).
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.entry(field).or_insert_with(|| message.into());
    }

    /// Records `problem` for `field` if there is one.
    pub fn check(&mut self, field: &'static str, problem: Option<&str>) {
        if let Some(p) = problem {
            self.add(field, p);
        }
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each field with its message, in field order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0
            .iter()
            .map(|(field, message)| (*field, message.as_str()))
    }
}

impl AppError {
    /// A validation failure of one field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.add(field, message);
        AppError::Invalid(errors)
    }
}

impl FieldErrors {
    /// All messages in one line, for where there is no form to show them by (JSON, error pages).
    pub fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(field, message)| format!("{field}: {message}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
