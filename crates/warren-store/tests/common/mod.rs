//! Helpers shared by the integration tests: messages whose content encodes their seq,
//! temporary directories (on tmpfs when there is one, so fsyncs cost nothing), a seeded PRNG.
#![allow(dead_code)]

use bytes::Bytes;
use std::path::{Path, PathBuf};
use warren_store::{QueueLog, QueueLogConfig, RecoveredMessage, RecoveryReport, StoredMessage};

pub fn temp_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().expect("temp dir")
}

/// A message whose every field depends on `seq` (and whose body is `body_len` long).
pub fn message(seq: u64, body_len: usize) -> StoredMessage {
    let body: Vec<u8> = (0..body_len)
        .map(|i| (seq as usize * 31 + i) as u8)
        .collect();
    StoredMessage {
        exchange: if seq % 3 == 0 {
            "".into()
        } else {
            "amq.topic".into()
        },
        routing_key: format!("orders.{seq}").as_str().into(),
        properties_raw: Bytes::from(vec![0x90, 0x00, (seq % 251) as u8]),
        body: Bytes::from(body),
        // Both record kinds: with and without an enqueue time.
        enqueued_ms: (seq % 2 == 0).then_some(1_700_000_000_000 + seq),
    }
}

pub fn config(segment_size_bytes: u64) -> QueueLogConfig {
    QueueLogConfig { segment_size_bytes }
}

pub fn open(
    dir: &Path,
    segment_size_bytes: u64,
) -> (QueueLog, Vec<RecoveredMessage>, RecoveryReport) {
    QueueLog::open(dir, config(segment_size_bytes)).expect("open queue log")
}

pub fn seqs(recovered: &[RecoveredMessage]) -> Vec<u64> {
    recovered.iter().map(|m| m.seq).collect()
}

/// Files in `dir` with the given extension, sorted by name.
pub fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Copies every file of `from` into a fresh temp dir.
pub fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = temp_dir();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
}

pub fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// What a crash does to one file of `len` bytes whose last sync left `synced` bytes (`None`:
/// created since then): a created file may vanish (if `allow_vanish`); a `rolled` file (a
/// segment fdatasynced when the log rolled past it) keeps every byte; any other is cut back to
/// a random length at or above `synced`, sometimes with garbage over the unsynced part.
pub fn tear(
    path: &Path,
    len: u64,
    synced: Option<u64>,
    rolled: bool,
    allow_vanish: bool,
    rng: &mut Rng,
) {
    if synced.is_none() && allow_vanish && rng.chance(40) {
        std::fs::remove_file(path).unwrap();
        return;
    }
    if rolled {
        return;
    }
    let synced = synced.unwrap_or(0).min(len);
    let keep = synced + rng.below(len - synced + 1);
    let mut bytes = std::fs::read(path).unwrap();
    bytes.truncate(keep as usize);
    if keep > synced && rng.chance(30) {
        let from = synced + rng.below(keep - synced);
        for b in &mut bytes[from as usize..] {
            *b = rng.next() as u8;
        }
    }
    std::fs::write(path, bytes).unwrap();
}

/// splitmix64: small, seedable, good enough to drive a simulation.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
