use std::fmt;

/// A failure of the storage itself, not of a business rule.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database said no (I/O, constraint, corrupt file…). The message
    /// names the statement's table or constraint, never bound values.
    #[error("database error: {message}")]
    Backend { message: String, retryable: bool },
    /// A unique constraint was hit: the row already exists.
    #[error("duplicate row: {0}")]
    Duplicate(String),
    /// A stored row could not be read back into the domain (a bug or a
    /// hand-edited database).
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// The write queue is full: shed load rather than queue without bound.
    #[error("the database is overloaded; try again shortly")]
    Overloaded,
    /// The store was shut down or its writer died.
    #[error("the database is not available")]
    Unavailable,
    /// A job panicked; its changes were rolled back.
    #[error("internal error while writing; nothing was changed")]
    JobPanicked,
}

impl StoreError {
    pub fn corrupt(what: impl fmt::Display) -> StoreError {
        StoreError::Corrupt(what.to_string())
    }

    /// Worth running the whole transaction again (serialization failures,
    /// deadlocks, a busy database, and a unique key another writer took
    /// first: the rerun's own check then sees that writer's row).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Backend { retryable: true, .. } | StoreError::Duplicate(_))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        match &e {
            rusqlite::Error::SqliteFailure(f, msg)
                if f.code == ErrorCode::ConstraintViolation
                    && matches!(
                        f.extended_code,
                        rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    ) =>
            {
                StoreError::Duplicate(msg.clone().unwrap_or_default())
            }
            rusqlite::Error::SqliteFailure(f, _) => StoreError::Backend {
                message: e.to_string(),
                retryable: matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked),
            },
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Backend { message: e.to_string(), retryable: false },
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> StoreError {
        use postgres::error::SqlState;
        let Some(db) = e.as_db_error() else {
            // no answer from the server: the connection broke or timed out.
            // Whether a COMMIT in flight took effect is unknown; the client
            // retries with its Idempotency-Key and gets the truth
            tracing::warn!(error = %e, "PostgreSQL connection failed");
            return StoreError::Unavailable;
        };
        let code = db.code();
        // the server is going down, starting up or dropped us (class 57:
        // operator intervention; class 08: connection exception): a restart,
        // not a fault of the request, so the caller may try again
        if lost_connection(code.code()) {
            tracing::warn!(error = %e, "PostgreSQL is restarting or refused the connection");
            return StoreError::Unavailable;
        }
        if *code == SqlState::UNIQUE_VIOLATION {
            return StoreError::Duplicate(db.constraint().unwrap_or("unique").to_owned());
        }
        let retryable =
            [SqlState::T_R_SERIALIZATION_FAILURE, SqlState::T_R_DEADLOCK_DETECTED, SqlState::LOCK_NOT_AVAILABLE]
                .contains(code);
        StoreError::Backend { message: format!("{} ({})", db.message(), code.code()), retryable }
    }
}

/// SQLSTATE classes of a PostgreSQL server going away: operator
/// intervention (57: shutting down, starting up, a terminated backend) and
/// connection exceptions (08).
pub(crate) fn lost_connection(sqlstate: &str) -> bool {
    sqlstate.starts_with("57") || sqlstate.starts_with("08")
}
