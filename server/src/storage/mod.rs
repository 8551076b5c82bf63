//! Durable storage: every redb table and key encoding lives behind this module.
//!
//! The database file is `<data_dir>/switchboard.redb`. redb takes an exclusive lock on it when
//! it opens, so two hubs can never share a data directory. redb is synchronous: every call here
//! runs on a blocking thread, never on the async runtime's worker threads.

pub mod backend;
pub mod dedup;
mod key_index;
mod migrate;
pub mod queues;
pub mod streams;
pub mod tables;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable};

use tables::META;

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "switchboard.redb";

/// The on-disk format version this build writes. Files of formats 1 (one row per record) and
/// 2 (one row per queue idempotency key) are upgraded when opened.
pub const FORMAT_VERSION: u64 = 3;

/// Storage could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot create data directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("data directory {0} is in use by another hub")]
    Locked(PathBuf),
    #[error(
        "database {path} was written by a newer version (format {found}, this build reads {FORMAT_VERSION})"
    )]
    TooNew { path: PathBuf, found: u64 },
    #[error("database error: {0}")]
    Database(#[from] redb::Error),
    #[error("stored data cannot be decoded: {0}")]
    Corrupt(String),
    #[error("storage task failed: {0}")]
    Join(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError::Database(e.into())
            }
        }
    )*};
}
from_redb!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// Why a storage operation failed. Everything but [`OpError::Storage`], [`OpError::Corrupt`]
/// and [`OpError::Closed`] is the operation's own fault and leaves the rest of its batch alone.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{message}")]
    OutOfRange { message: String, low: u64 },
    #[error("{0}")]
    Full(String),
    #[error("{0}")]
    LeaseExpired(String),
    #[error("stored data cannot be decoded: {0}")]
    Corrupt(String),
    #[error("storage failed: {0}")]
    Storage(String),
    #[error("the storage writer has stopped")]
    Closed,
}

impl OpError {
    /// Whether the error aborts the whole batch (the transaction may be half-written).
    pub fn is_fatal(&self) -> bool {
        matches!(self, OpError::Storage(_) | OpError::Corrupt(_) | OpError::Closed)
    }
}

macro_rules! op_from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for OpError {
            fn from(e: $t) -> Self {
                OpError::Storage(e.to_string())
            }
        }
    )*};
}
op_from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// redb's page cache when nothing else is configured (the hub's `storage_cache_mb`): 128 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 128 << 20;

/// How far ahead of redb's writes the file is filled when nothing else is configured (the hub's
/// `storage_prefill_mb`): 64 MiB.
pub const DEFAULT_PREFILL_BYTES: u64 = 64 << 20;

/// How the database is opened.
#[derive(Debug, Clone, Copy)]
pub struct StorageOptions {
    /// The bound of redb's page cache.
    pub cache_bytes: usize,
    /// How far past redb's highest write the file's new space is kept filled with zeros (see
    /// [`backend`]); 0 leaves redb's growth as holes.
    pub prefill_bytes: u64,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions { cache_bytes: DEFAULT_CACHE_BYTES, prefill_bytes: DEFAULT_PREFILL_BYTES }
    }
}

/// The hub's database. Cloning shares it.
#[derive(Clone)]
pub struct Storage {
    db: Arc<Database>,
    path: PathBuf,
}

impl Storage {
    /// Creates the data directory if needed, opens (or creates) the database and locks it.
    ///
    /// # Errors
    /// The directory cannot be created, another hub holds the database, the file is from a newer
    /// format, or redb fails.
    pub async fn open(data_dir: &Path) -> Result<Storage, StorageError> {
        Storage::open_with(data_dir, StorageOptions::default()).await
    }

    /// As [`Storage::open`], with `options`.
    ///
    /// # Errors
    /// As [`Storage::open`].
    pub async fn open_with(
        data_dir: &Path,
        options: StorageOptions,
    ) -> Result<Storage, StorageError> {
        let data_dir = data_dir.to_owned();
        tokio::task::spawn_blocking(move || Storage::open_blocking(&data_dir, options))
            .await
            .map_err(|e| StorageError::Join(e.to_string()))?
    }

    fn open_blocking(data_dir: &Path, options: StorageOptions) -> Result<Storage, StorageError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StorageError::CreateDir { path: data_dir.to_owned(), source })?;
        let path = data_dir.join(DB_FILE);
        let mut builder = redb::Builder::new();
        builder.set_cache_size(options.cache_bytes);
        let opened = if options.prefill_bytes == 0 {
            builder.create(&path)
        } else {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .and_then(|file| backend::PrefilledFile::new(file, options.prefill_bytes))
                .map_err(DatabaseError::from)
                .and_then(|file| builder.create_with_backend(file))
        };
        let db = match opened {
            Ok(db) => db,
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StorageError::Locked(data_dir.to_owned()));
            }
            Err(e) => return Err(StorageError::Database(e.into())),
        };
        let txn = db.begin_write()?;
        tables::create_all(&txn)?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("format_version")?.map(|v| v.value());
            match found {
                Some(v) if v > FORMAT_VERSION => {
                    return Err(StorageError::TooNew { path, found: v });
                }
                Some(old @ (1 | 2)) => {
                    drop(meta);
                    if old == 1 {
                        migrate::v1_to_v2(&txn)?;
                    }
                    migrate::v2_to_v3(&txn)?;
                    tracing::info!(path = %path.display(), from = old, "upgraded the database to format {FORMAT_VERSION}");
                    txn.open_table(META)?.insert("format_version", FORMAT_VERSION)?;
                }
                Some(_) => {}
                None => {
                    meta.insert("format_version", FORMAT_VERSION)?;
                }
            }
        }
        txn.commit()?;
        Ok(Storage { db: Arc::new(db), path })
    }

    /// The database, for the writer thread and for read transactions on blocking threads.
    pub fn database(&self) -> Arc<Database> {
        self.db.clone()
    }

    /// Runs a read-only query in a read transaction on a blocking thread.
    ///
    /// # Errors
    /// The query's error, or [`OpError::Storage`] if redb or the blocking task fails.
    pub async fn read<T, F>(&self, query: F) -> Result<T, OpError>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadTransaction) -> Result<T, OpError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            query(&txn)
        })
        .await
        .map_err(|e| OpError::Storage(e.to_string()))?
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The format version recorded in the database.
    ///
    /// # Errors
    /// redb fails to read.
    pub async fn format_version(&self) -> Result<Option<u64>, StorageError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<Option<u64>, StorageError> {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            Ok(meta.get("format_version")?.map(|v| v.value()))
        })
        .await
        .map_err(|e| StorageError::Join(e.to_string()))?
    }

    /// Closes the database once no other clone is alive, releasing its lock. Called at the end
    /// of shutdown, after every session has finished.
    pub async fn close(self) {
        let path = self.path.clone();
        let closed = tokio::task::spawn_blocking(move || Arc::try_unwrap(self.db).is_ok()).await;
        match closed {
            Ok(true) => tracing::info!(path = %path.display(), "database closed"),
            _ => tracing::warn!(path = %path.display(), "database still in use at shutdown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_should_create_the_directory_and_record_the_format() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        let storage = Storage::open(&data).await.unwrap();
        assert!(data.join(DB_FILE).exists());
        assert_eq!(storage.format_version().await.unwrap(), Some(FORMAT_VERSION));
    }

    #[tokio::test]
    async fn a_second_open_should_be_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let first = Storage::open(dir.path()).await.unwrap();
        let err = Storage::open(dir.path()).await.err().unwrap();
        assert!(matches!(err, StorageError::Locked(_)), "{err}");
        first.close().await;
        Storage::open(dir.path()).await.unwrap();
    }
}
