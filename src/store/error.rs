//! The store's error, whichever backend raised it: what failed is told apart, the backend is not.

use std::fmt;
use std::io;
use std::sync::Arc;

pub type StoreResult<T> = Result<T, StoreError>;

/// Why the store failed. Cloned for every caller that waits on a failed flush.
#[derive(Debug, Clone)]
pub enum StoreError {
    /// Reading or writing the data directory failed.
    Io(Arc<io::Error>),
    /// Stored data is damaged: the backend's checksums caught it.
    Corruption(String),
    /// The data directory is of a format or layout this parley does not read.
    Unsupported(String),
    /// The backend broke an invariant of its own.
    Bug(String),
    /// The data directory holds less than was durable before (its high-water mark says so), or
    /// is missing a part: serving from it would silently drop acknowledged data.
    DataLoss(String),
}

impl fmt::Display for StoreError {
    /// The texts sled's errors had, which operators and their log searches know.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(err) => write!(f, "IO error: {err}"),
            StoreError::Corruption(what) => write!(f, "Read corrupted data {what}"),
            StoreError::Unsupported(what) => write!(f, "Unsupported: {what}"),
            StoreError::DataLoss(what) => write!(f, "{what}"),
            StoreError::Bug(what) => {
                write!(
                    f,
                    "Unexpected bug has happened: {what}. PLEASE REPORT THIS BUG!"
                )
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io(err) => Some(&**err),
            _ => None,
        }
    }
}
