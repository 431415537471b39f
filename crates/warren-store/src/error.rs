//! [`StoreError`]: every way the store can fail, written for the operator who reads the log.
//! I/O errors carry the operation and the path; corruption carries the file and the offset.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A system call on a file or directory failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done (`"open"`, `"fdatasync"`, `"rename"`, …).
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file that must be intact is not (a fsynced definitions record, a snapshot): refusing
    /// to start is safer than silently forgetting a queue and, with it, its messages.
    #[error("{} is damaged at byte offset {offset}: {what}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    /// `MessageLog::append` (or `QueueLog::append`) was called with a seq that is not above
    /// every seq appended, recovered or marked so far (see `MessageLog::next_seq`).
    #[error("message seq {seq} is not above the log's last seq (next expected seq is at least {next_seq})")]
    SeqNotIncreasing { seq: u64, next_seq: u64 },
    /// A read of a seq the log does not hold (never appended, or its segment deleted), or,
    /// read through a reader (`LogReader::read`, `QueueLog::read`), one that reader acked.
    #[error("message seq {seq} is not in the log")]
    NotInLog { seq: u64 },
    /// A message whose record would not fit a record's 32-bit length.
    #[error("message of {bytes} bytes is larger than the store's limit of {max_bytes} bytes")]
    MessageTooLarge { bytes: u64, max_bytes: u64 },
    /// An earlier write or fsync of this log or store failed. After a failed fsync the
    /// kernel's page cache no longer tells what is on disk, so the only safe way on is to
    /// reopen (which recovers from what is really on disk).
    #[error("{} failed earlier ({reason}); reopen it to recover", path.display())]
    Failed { path: PathBuf, reason: String },
}

impl StoreError {
    /// `Ok` unless an earlier write or fsync of the log or store at `path` failed (`failed`
    /// says why): the poisoning check of every writer in the crate.
    pub(crate) fn unless_failed(failed: &Option<String>, path: &Path) -> Result<(), StoreError> {
        match failed {
            None => Ok(()),
            Some(reason) => Err(StoreError::Failed {
                path: path.to_path_buf(),
                reason: reason.clone(),
            }),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
