//! [`ExchangeDirs`]: data directories of durable exchanges whose type keeps state on disk (a
//! delayed-message exchange's held messages, a deduplication exchange's cache). The
//! definitions store knows these exchanges by name; this module ties a name to a directory.
//!
//! # On disk
//!
//! Under the root (`<data dir>/exchanges`), one directory per exchange incarnation, named by
//! a number never reused within a run (one above the highest found at open). Each holds an
//! `owner` file: the 8-byte magic `WRNEXCH1` then one record (see `crate::record`) whose
//! payload is `vhost_len: u16 LE | vhost | name_len: u16 LE | name`. The owner file is
//! written as `owner.tmp`, fdatasynced, renamed, and the directory fsynced, before the
//! directory is handed out; what the exchange type stores goes next to it.
//!
//! At open, a directory without an intact owner file (a creation cut short by a crash), or
//! whose owner the caller no longer declares (an exchange deleted just before a crash), is
//! removed; if two name one exchange, the newer (higher number) wins. A deleted exchange's
//! directory is removed by its owner with [`ExchangeDirs::remove`].

use crate::fsio;
use crate::record::{put_record, scan, DamageKind, PayloadCheck};
use crate::StoreError;
use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use tracing::warn;

const OWNER_FILE: &str = "owner";
const OWNER_TMP_FILE: &str = "owner.tmp";
const OWNER_MAGIC: &[u8; 8] = b"WRNEXCH1";

/// The directories of stateful durable exchanges, by (vhost, exchange name).
#[derive(Debug)]
pub struct ExchangeDirs {
    root: PathBuf,
    next_id: u64,
    /// Directories found at open that no exchange has claimed yet.
    found: HashMap<(String, String), PathBuf>,
}

impl ExchangeDirs {
    /// Opens (creating) `root`; keeps the directories whose owner `keep(vhost, name)` accepts
    /// and removes the others.
    pub fn open(root: &Path, keep: impl Fn(&str, &str) -> bool) -> Result<Self, StoreError> {
        fsio::create_dir_durable(root)?;
        let mut found: HashMap<(String, String), (u64, PathBuf)> = HashMap::new();
        let mut next_id = 1;
        let mut removed = false;
        let entries = fs::read_dir(root).map_err(|e| StoreError::io("list", root, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            next_id = next_id.max(id + 1);
            let owner = read_owner(&path).filter(|(v, n)| keep(v, n));
            let stale = match owner {
                None => Some(path),
                Some(owner) => match found.get(&owner) {
                    Some((other, _)) if *other > id => Some(path),
                    _ => found.insert(owner, (id, path)).map(|(_, p)| p),
                },
            };
            if let Some(stale) = stale {
                warn!("removing data of a deleted exchange: {}", stale.display());
                remove_tree(&stale)?;
                removed = true;
            }
        }
        if removed {
            fsio::sync_dir(root)?;
        }
        Ok(ExchangeDirs {
            root: root.to_path_buf(),
            next_id,
            found: found.into_iter().map(|(k, (_, p))| (k, p)).collect(),
        })
    }

    /// The directory the exchange had before the restart, if any (each is handed out once).
    pub fn recovered(&mut self, vhost: &str, name: &str) -> Option<PathBuf> {
        self.found.remove(&(vhost.to_string(), name.to_string()))
    }

    /// A new, empty directory owned by the exchange, durable before it is returned.
    pub fn create(&mut self, vhost: &str, name: &str) -> Result<PathBuf, StoreError> {
        let dir = self.root.join(self.next_id.to_string());
        self.next_id += 1;
        fsio::create_dir_durable(&dir)?;
        let mut bytes = OWNER_MAGIC.to_vec();
        put_record(&mut bytes, |out| {
            for part in [vhost, name] {
                out.extend_from_slice(&(part.len() as u16).to_le_bytes());
                out.extend_from_slice(part.as_bytes());
            }
        });
        let tmp = dir.join(OWNER_TMP_FILE);
        let mut file = File::create(&tmp).map_err(|e| StoreError::io("create", &tmp, e))?;
        fsio::write_all(&mut file, &tmp, &bytes)?;
        fsio::sync_data(&file, &tmp)?;
        let owner = dir.join(OWNER_FILE);
        fs::rename(&tmp, &owner).map_err(|e| StoreError::io("rename", &tmp, e))?;
        fsio::sync_dir(&dir)?;
        Ok(dir)
    }

    /// Removes an exchange's directory with everything in it (its exchange was deleted).
    pub fn remove(dir: &Path) -> Result<(), StoreError> {
        remove_tree(dir)?;
        if let Some(parent) = dir.parent() {
            fsio::sync_dir(parent)?;
        }
        Ok(())
    }
}

fn remove_tree(dir: &Path) -> Result<(), StoreError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("delete directory", dir, e)),
    }
}

/// The (vhost, name) an owner file names, if it is intact.
fn read_owner(dir: &Path) -> Option<(String, String)> {
    let bytes = fs::read(dir.join(OWNER_FILE)).ok()?;
    let body = bytes.strip_prefix(OWNER_MAGIC.as_slice())?;
    let mut owner = Owner(None);
    let found = scan(body, &mut owner);
    if found.tail.is_some() || !found.damage.is_empty() {
        return None;
    }
    owner.0
}

struct Owner(Option<(String, String)>);

fn decode_owner(payload: &[u8]) -> Option<(String, String)> {
    let mut rest = payload;
    let mut take = || {
        let len = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        let s = std::str::from_utf8(rest.get(2..2 + len)?).ok()?.to_string();
        rest = &rest[2 + len..];
        Some(s)
    };
    let vhost = take()?;
    let name = take()?;
    rest.is_empty().then_some((vhost, name))
}

impl PayloadCheck for Owner {
    const MIN_PAYLOAD_BYTES: usize = 4;

    fn check(&self, payload: &[u8]) -> Result<(), DamageKind> {
        if self.0.is_some() {
            return Err(DamageKind::BadPayload("more than one owner record"));
        }
        decode_owner(payload)
            .map(|_| ())
            .ok_or(DamageKind::BadPayload("not an owner record"))
    }

    fn accept(&mut self, _offset: usize, payload: &[u8]) {
        self.0 = decode_owner(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn a_created_directory_is_found_again_for_its_owner() {
        let root = temp();
        let mut dirs = ExchangeDirs::open(root.path(), |_, _| true).unwrap();
        let a = dirs.create("/", "delayed").unwrap();
        fs::write(a.join("data"), b"kept").unwrap();
        let b = dirs.create("other", "delayed").unwrap();
        assert_ne!(a, b);
        drop(dirs);
        let mut dirs = ExchangeDirs::open(root.path(), |_, _| true).unwrap();
        assert_eq!(dirs.recovered("/", "delayed"), Some(a.clone()));
        assert_eq!(dirs.recovered("/", "delayed"), None, "handed out once");
        assert_eq!(dirs.recovered("other", "delayed"), Some(b));
        assert_eq!(fs::read(a.join("data")).unwrap(), b"kept");
        let c = dirs.create("/", "delayed").unwrap();
        assert!(c != a, "numbers are not reused");
    }

    #[test]
    fn directories_of_exchanges_no_longer_declared_are_removed() {
        let root = temp();
        let mut dirs = ExchangeDirs::open(root.path(), |_, _| true).unwrap();
        let gone = dirs.create("/", "gone").unwrap();
        let kept = dirs.create("/", "kept").unwrap();
        drop(dirs);
        let mut dirs = ExchangeDirs::open(root.path(), |_, name| name == "kept").unwrap();
        assert!(!gone.exists());
        assert_eq!(dirs.recovered("/", "kept"), Some(kept));
    }

    #[test]
    fn a_torn_owner_file_or_a_missing_one_counts_as_no_owner() {
        let root = temp();
        let mut dirs = ExchangeDirs::open(root.path(), |_, _| true).unwrap();
        let torn = dirs.create("/", "torn").unwrap();
        let bytes = fs::read(torn.join(OWNER_FILE)).unwrap();
        fs::write(torn.join(OWNER_FILE), &bytes[..bytes.len() - 1]).unwrap();
        let bare = root.path().join("77");
        fs::create_dir(&bare).unwrap();
        drop(dirs);
        let mut dirs = ExchangeDirs::open(root.path(), |_, _| true).unwrap();
        assert!(!torn.exists() && !bare.exists());
        assert_eq!(dirs.recovered("/", "torn"), None);
        assert!(dirs.create("/", "next").unwrap().ends_with("78"));
    }

    #[test]
    fn of_two_directories_for_one_exchange_the_newer_wins() {
        let root = temp();
        let mut dirs = ExchangeDirs::open(root.path(), |_, _| true).unwrap();
        let old = dirs.create("/", "x").unwrap();
        let new = dirs.create("/", "x").unwrap();
        drop(dirs);
        let mut dirs = ExchangeDirs::open(root.path(), |_, _| true).unwrap();
        assert_eq!(dirs.recovered("/", "x"), Some(new));
        assert!(!old.exists());
        ExchangeDirs::remove(&dirs.create("/", "y").unwrap()).unwrap();
    }
}
