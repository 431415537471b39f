//! Seeded crash simulation of one MessageLog with two LogReaders in their own directories:
//! random appends, acks and delivery marks by either reader, syncs of one reader or of both
//! followed by a reclaim, then a crash (as in `crash.rs`: every file that can hold unsynced
//! bytes cut back to a random length above what was synced, sometimes with garbage in the
//! unsynced part; files created since their last sync may vanish). After reopening the log
//! and both readers: no reader sees a message it durably acked, every durable message that a
//! reader has not acked is there for it with its content, and seqs are never reused.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use warren_store::{LogConfig, LogReader, MessageLog, StoreError, StoredMessage};

const CONFIG: LogConfig = LogConfig {
    segment_size_bytes: 2048,
};

#[derive(Default)]
struct ReaderModel {
    /// Acks made durable: never seen again by this reader.
    acked: BTreeSet<u64>,
    /// Acked since this reader's last sync: may or may not have taken effect.
    unsynced_acks: BTreeSet<u64>,
    /// Not acked, as this reader sees it now.
    live: BTreeSet<u64>,
}

#[derive(Default)]
struct Model {
    appended: BTreeMap<u64, StoredMessage>,
    /// Appended and synced (by either reader's sync).
    durable: BTreeSet<u64>,
    unsynced_appends: Vec<u64>,
    readers: [ReaderModel; 2],
    /// Size of each file when the sync that last covered it returned.
    synced_sizes: HashMap<PathBuf, u64>,
}

fn reader_dir(root: &Path, i: usize) -> PathBuf {
    root.join("readers").join(i.to_string())
}

/// Every file under `dir`, with its size.
fn sizes(dir: &Path) -> HashMap<PathBuf, u64> {
    let mut out = HashMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        match e.file_type().unwrap().is_dir() {
            true => out.extend(sizes(&e.path())),
            false => {
                out.insert(e.path(), e.metadata().unwrap().len());
            }
        }
    }
    out
}

fn is_segment(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "seg")
}

impl Model {
    /// Reader `i` synced: the log's appends and its own marks are durable.
    fn synced(&mut self, root: &Path, i: usize) {
        self.durable.extend(self.unsynced_appends.drain(..));
        let r = &mut self.readers[i];
        r.acked.extend(std::mem::take(&mut r.unsynced_acks));
        let own = reader_dir(root, i);
        self.synced_sizes
            .retain(|p, _| !is_segment(p) && !p.starts_with(&own));
        for (path, len) in sizes(root) {
            if is_segment(&path) || path.starts_with(&own) {
                self.synced_sizes.insert(path, len);
            }
        }
    }
}

/// As `crash.rs`'s: cuts unsynced bytes, scribbles, lets files created since their last
/// sync vanish (unless `allow_vanish` is false: the crash came after a sync deleted files,
/// and syncs fsync the directories before deleting anything).
fn crash(root: &Path, model: &Model, rng: &mut Rng, allow_vanish: bool) {
    let segments = files(root, "seg");
    let newest = segments.last().cloned();
    for (path, len) in sizes(root) {
        let synced = model.synced_sizes.get(&path).copied();
        // A segment other than the newest was fdatasynced when the log rolled past it.
        let rolled = is_segment(&path) && Some(&path) != newest.as_ref();
        tear(&path, len, synced, rolled, allow_vanish, rng);
    }
}

fn open_all(root: &Path, seed: u64) -> (MessageLog, Vec<LogReader>, u64) {
    let (mut log, report) =
        MessageLog::open(root, CONFIG).unwrap_or_else(|e| panic!("seed {seed}: open failed: {e}"));
    assert!(
        report.damaged.is_empty(),
        "seed {seed}: {:?}",
        report.damaged
    );
    let mut torn = report.torn_tail_bytes;
    let readers = (0..2)
        .map(|i| {
            let (r, report) = LogReader::open(&reader_dir(root, i), &mut log).unwrap();
            assert!(
                report.damaged.is_empty(),
                "seed {seed}: {:?}",
                report.damaged
            );
            torn += report.torn_tail_bytes;
            r
        })
        .collect();
    (log, readers, torn)
}

fn run(seed: u64) -> u64 {
    let mut rng = Rng::new(seed);
    let dir = temp_dir();
    let root = dir.path();
    let (mut log, mut readers, _) = open_all(root, seed);
    let mut model = Model::default();
    let mut torn = 0;
    for _crash in 0..4 {
        for _ in 0..50 + rng.below(250) {
            let i = rng.below(2) as usize;
            match rng.below(100) {
                0..=44 => {
                    let seq = log.next_seq() + u64::from(rng.chance(20)) * rng.below(5);
                    let msg = message(seq, rng.below(300) as usize);
                    log.append(seq, &msg).unwrap();
                    model.appended.insert(seq, msg);
                    model.unsynced_appends.push(seq);
                    for r in &mut model.readers {
                        r.live.insert(seq);
                    }
                }
                45..=69 if !model.readers[i].live.is_empty() => {
                    let live: Vec<u64> = model.readers[i].live.iter().copied().collect();
                    let batch: Vec<u64> = (0..1 + rng.below(6))
                        .map(|_| live[rng.below(live.len() as u64) as usize])
                        .collect();
                    readers[i].ack(&mut log, &batch).unwrap();
                    for seq in batch {
                        if model.readers[i].live.remove(&seq) {
                            model.readers[i].unsynced_acks.insert(seq);
                        }
                    }
                }
                70..=79 if !model.readers[i].live.is_empty() => {
                    let live: Vec<u64> = model.readers[i].live.iter().copied().collect();
                    let seq = live[rng.below(live.len() as u64) as usize];
                    readers[i].mark_delivered(&mut log, &[seq]).unwrap();
                }
                80..=91 => {
                    readers[i].sync(&mut log).unwrap();
                    model.synced(root, i);
                }
                _ => {
                    for (i, r) in readers.iter_mut().enumerate() {
                        r.sync(&mut log).unwrap();
                        model.synced(root, i);
                    }
                    log.reclaim(&mut readers).unwrap();
                }
            }
        }
        let mut allow_vanish = true;
        if rng.chance(50) {
            // The crash interrupts a sync and reclaim: their writes reached the files, but
            // the model does not count them as synced.
            let before: BTreeSet<PathBuf> = sizes(root).into_keys().collect();
            readers.iter_mut().for_each(|r| r.sync(&mut log).unwrap());
            log.reclaim(&mut readers).unwrap();
            let after: BTreeSet<PathBuf> = sizes(root).into_keys().collect();
            allow_vanish = before.is_subset(&after);
        }
        drop((log, readers));
        crash(root, &model, &mut rng, allow_vanish);

        let (mut reopened, reopened_readers, t) = open_all(root, seed);
        torn += t;
        let max_durable = model.durable.iter().max().copied();
        assert!(
            max_durable.is_none_or(|m| reopened.next_seq() > m),
            "seed {seed}"
        );
        for (i, reader) in reopened_readers.iter().enumerate() {
            let r = &model.readers[i];
            for &seq in &r.acked {
                assert!(
                    matches!(
                        reader.read(&mut reopened, seq),
                        Err(StoreError::NotInLog { .. })
                    ),
                    "seed {seed}: reader {i} sees {seq} again, which it acked"
                );
            }
            for seq in model
                .durable
                .iter()
                .filter(|s| !r.acked.contains(s) && !r.unsynced_acks.contains(s))
            {
                let got = reader.read(&mut reopened, *seq);
                assert_eq!(
                    got.ok().as_ref(),
                    model.appended.get(seq),
                    "seed {seed}: reader {i} lost durable {seq}"
                );
            }
        }

        // What came back is the truth now (open made the log durable, marks are as read).
        log = reopened;
        readers = reopened_readers;
        let mut in_log = BTreeSet::new();
        let mut from = 0;
        loop {
            let batch = log.read_from(from, usize::MAX).unwrap();
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            in_log.extend(batch.into_iter().map(|(s, _)| s));
            from = last + 1;
        }
        let next = log.next_seq();
        model.appended.retain(|&s, _| s < next);
        model.durable = in_log.clone();
        model.unsynced_appends.clear();
        for (i, r) in model.readers.iter_mut().enumerate() {
            r.unsynced_acks.clear();
            r.live = (in_log.iter().copied())
                .filter(|&s| !readers[i].is_acked(&log, s))
                .collect();
            r.acked = (model.appended.keys().copied())
                .filter(|s| !r.live.contains(s))
                .collect();
        }
        model.synced_sizes = sizes(root);
    }
    torn
}

#[test]
fn crash_with_two_readers_loses_nothing_either_synced_and_resurrects_nothing_either_acked() {
    let torn: u64 = (0..150).map(run).sum();
    assert!(
        torn > 0,
        "the simulation never tore a write: it tests nothing"
    );
}
