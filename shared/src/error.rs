//! Error types of the library, one per concern, each answering `is_retryable()`.

use crate::domain::dataset::UnknownDataset;

/// A configuration value that is missing or not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value outside the accepted ones.
    #[error("invalid {name} {value:?}: expected {accepted}")]
    Invalid {
        name: &'static str,
        value: String,
        accepted: &'static str,
    },
}

/// A failure of the catalog, the object store or the table files.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The Iceberg library reported an error.
    #[error("{context}: {source}")]
    Iceberg {
        context: String,
        #[source]
        source: Box<iceberg::Error>,
    },
    /// The catalog database reported an error (the outcome of a commit may be unknown).
    #[error("catalog database: {0}")]
    Catalog(#[from] sqlx::Error),
    /// Arrow or Parquet conversion failed.
    #[error("{context}: {message}")]
    Data { context: String, message: String },
    /// AWS Glue refused or failed a request.
    #[error("Glue {context}: {message}")]
    Glue {
        context: String,
        message: String,
        retryable: bool,
    },
    /// Another writer committed first, every retry included.
    #[error("commit to {table} kept conflicting after {attempts} attempts")]
    ConflictsExhausted { table: String, attempts: u32 },
    /// An input object could not be read.
    #[error("cannot read {path}: {message}")]
    Object { path: String, message: String },
    /// A schema or partition change Iceberg forbids, refused before anything was written.
    #[error("{table}: {message}; nothing was changed")]
    Evolution { table: String, message: String },
    /// A server did not answer in time (`what` names it, without credentials).
    #[error("no answer from {what} within {seconds} s: {message}")]
    Unreachable {
        what: String,
        seconds: u64,
        message: String,
    },
    /// A server answered but TLS with it failed (`what` names it, without credentials).
    #[error("TLS with {what} failed: {message}")]
    Tls { what: String, message: String },
}

impl StorageError {
    /// Wraps an Iceberg error with what was being done.
    pub fn iceberg(context: impl Into<String>) -> impl FnOnce(iceberg::Error) -> StorageError {
        let context = context.into();
        move |source| StorageError::Iceberg {
            context,
            source: Box::new(source),
        }
    }

    /// Wraps a conversion error with what was being done.
    pub fn data(context: impl Into<String>) -> impl FnOnce(String) -> StorageError {
        let context = context.into();
        move |message| StorageError::Data { context, message }
    }

    /// Whether retrying the invocation may succeed (I/O, database, conflicts).
    pub fn is_retryable(&self) -> bool {
        match self {
            StorageError::Iceberg { source, .. } => {
                source.retryable()
                    || matches!(
                        source.kind(),
                        iceberg::ErrorKind::Unexpected | iceberg::ErrorKind::CatalogCommitConflicts
                    )
            }
            StorageError::Catalog(_) | StorageError::ConflictsExhausted { .. } => true,
            StorageError::Glue { retryable, .. } => *retryable,
            StorageError::Data { .. }
            | StorageError::Evolution { .. }
            | StorageError::Tls { .. } => false,
            StorageError::Object { .. } | StorageError::Unreachable { .. } => true,
        }
    }
}

/// The error a hop's handler returns.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    UnknownDataset(#[from] UnknownDataset),
    /// The event document is not one this handler takes.
    #[error("unsupported event: {0}")]
    Event(String),
    /// The weather API could not be asked, or did not answer (after its retries).
    #[error("weather pull: {0}")]
    Weather(String),
}

impl HandlerError {
    /// Whether the trigger should retry the invocation.
    pub fn is_retryable(&self) -> bool {
        matches!(self, HandlerError::Storage(e) if e.is_retryable())
    }
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = if error.is_retryable() {
            "Retryable"
        } else {
            "Permanent"
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_string(),
            error_message: error.to_string(),
        }
    }
}
