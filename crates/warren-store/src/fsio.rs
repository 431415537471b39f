//! The store's few file-system primitives, each wrapped so that its error names the path.
//!
//! fsync discipline, in one place: file contents are made durable with `fdatasync`
//! (`File::sync_data`, which also covers a changed file size); a directory is fsynced after
//! a file is created, renamed or deleted in it, since only that makes the directory entry
//! itself durable.

use crate::StoreError;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Creates `dir` and any missing ancestors, fsyncing the parent of each directory it created.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<(), StoreError> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cur = Some(dir);
    while let Some(p) = cur {
        if p.as_os_str().is_empty() || p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        cur = p.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| StoreError::io("create directory", dir, e))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Makes the entries of `dir` (created, renamed, deleted files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let f = File::open(dir).map_err(|e| StoreError::io("open directory", dir, e))?;
    f.sync_all()
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

pub(crate) fn sync_data(file: &File, path: &Path) -> Result<(), StoreError> {
    file.sync_data()
        .map_err(|e| StoreError::io("fdatasync", path, e))
}

pub(crate) fn write_all(file: &mut File, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    file.write_all(bytes)
        .map_err(|e| StoreError::io("write", path, e))
}

/// Opens a file for appending, creating it if missing; says whether it was created (so the
/// caller knows the directory needs an fsync).
pub(crate) fn open_append(path: &Path) -> Result<(File, bool), StoreError> {
    match OpenOptions::new().append(true).open(path) {
        Ok(f) => Ok((f, false)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)
            .map(|f| (f, true))
            .map_err(|e| StoreError::io("create", path, e)),
        Err(e) => Err(StoreError::io("open", path, e)),
    }
}

/// Reads a whole file in as few `read` calls as its size allows (one, usually).
/// Reads exactly `len` bytes at `offset` (positioned read: the file's cursor is not moved).
pub(crate) fn read_at(
    file: &File,
    path: &Path,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, StoreError> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| StoreError::io("read", path, e))?;
    Ok(buf)
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, StoreError> {
    fs::read(path).map_err(|e| StoreError::io("read", path, e))
}

/// Cuts a file to `len` bytes and makes the cut durable.
pub(crate) fn truncate(path: &Path, len: u64) -> Result<(), StoreError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io("open", path, e))?;
    f.set_len(len)
        .map_err(|e| StoreError::io("truncate", path, e))?;
    sync_data(&f, path)
}

/// Deletes a file; a file that is already gone is not an error.
pub(crate) fn remove_file(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("delete", path, e)),
    }
}
