//! Seeded crash simulation: random appends, acks, delivery marks and syncs, then a "crash"
//! (the log dropped, possibly in the middle of a sync whose writes reached the files; every
//! file that can hold unsynced bytes cut back to a random length between what was synced and
//! what was written, sometimes with garbage in the unsynced part; files created since the
//! last sync may vanish). After reopening, nothing synced may be lost,
//! nothing whose ack was synced may come back, and everything that comes back is intact.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use warren_store::{QueueLog, StoredMessage};

const SEGMENT_BYTES: u64 = 2048;

/// What the test knows the log must hold.
#[derive(Default)]
struct Model {
    /// Every message ever appended, by seq (to check content of whatever comes back).
    appended: BTreeMap<u64, StoredMessage>,
    /// Appended and synced, and no synced ack: must come back.
    durable: BTreeSet<u64>,
    /// Appended since the last sync.
    unsynced_appends: Vec<u64>,
    /// Acked since the last sync.
    unsynced_acks: Vec<u64>,
    /// Acks made durable: must never come back.
    acked: BTreeSet<u64>,
    /// Delivery marks made durable.
    delivered: BTreeSet<u64>,
    unsynced_delivered: Vec<u64>,
    /// Live from the log's point of view (appended, not acked), for picking acks.
    live: BTreeSet<u64>,
    /// File sizes right after the last sync.
    synced_sizes: HashMap<PathBuf, u64>,
}

fn sizes(dir: &Path) -> HashMap<PathBuf, u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.path(), e.metadata().unwrap().len()))
        .collect()
}

impl Model {
    fn synced(&mut self, dir: &Path) {
        self.durable.extend(self.unsynced_appends.drain(..));
        for seq in self.unsynced_acks.drain(..) {
            self.durable.remove(&seq);
            self.acked.insert(seq);
        }
        self.delivered.extend(self.unsynced_delivered.drain(..));
        self.synced_sizes = sizes(dir);
    }
}

/// Cuts every file that can hold unsynced bytes back to a random length at or above its synced
/// size, sometimes scribbling over the unsynced part; files created since the last sync may
/// disappear. A segment other than the newest was fdatasynced when the log rolled past it,
/// so it keeps all its bytes (if its directory entry survives). With `allow_vanish` false
/// (the crash came after a sync deleted files), created files stay: `sync` fsyncs the
/// directory before it deletes anything.
fn crash(dir: &Path, model: &Model, rng: &mut Rng, allow_vanish: bool) {
    let segments = files(dir, "seg");
    let newest = segments.last().cloned();
    for (path, len) in sizes(dir) {
        let synced = model.synced_sizes.get(&path).copied();
        let rolled = path.extension().is_some_and(|e| e == "seg") && Some(&path) != newest.as_ref();
        tear(&path, len, synced, rolled, allow_vanish, rng);
    }
}

/// Runs one seeded simulation; returns the bytes recovery cut off as torn tails.
fn run(seed: u64) -> u64 {
    let mut rng = Rng::new(seed);
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), SEGMENT_BYTES);
    let mut model = Model::default();
    let mut next = 0u64;
    let mut torn = 0;
    for _crash in 0..4 {
        let ops = 50 + rng.below(250);
        for _ in 0..ops {
            match rng.below(100) {
                0..=49 => {
                    next += 1 + u64::from(rng.chance(20)) * rng.below(5);
                    let msg = message(next, rng.below(300) as usize);
                    log.append(next, &msg).unwrap();
                    model.appended.insert(next, msg);
                    model.unsynced_appends.push(next);
                    model.live.insert(next);
                    next += 1;
                }
                50..=64 if !model.live.is_empty() => {
                    let live: Vec<u64> = model.live.iter().copied().collect();
                    let mut batch = Vec::new();
                    for _ in 0..1 + rng.below(4) {
                        batch.push(live[rng.below(live.len() as u64) as usize]);
                    }
                    if rng.chance(10) {
                        batch.push(next + 1000); // never appended: ignored
                    }
                    log.ack(&batch).unwrap();
                    for seq in batch {
                        if model.live.remove(&seq) {
                            model.unsynced_acks.push(seq);
                        }
                    }
                }
                65..=74 if !model.live.is_empty() => {
                    let live: Vec<u64> = model.live.iter().copied().collect();
                    let seq = live[rng.below(live.len() as u64) as usize];
                    log.mark_delivered(&[seq]).unwrap();
                    model.unsynced_delivered.push(seq);
                }
                _ => {
                    log.sync().unwrap();
                    model.synced(dir.path());
                }
            }
        }
        // Half the time the crash interrupts a sync: its writes reached the files, but the
        // model does not count them as synced.
        let mut allow_vanish = true;
        if rng.chance(50) {
            let before: BTreeSet<PathBuf> = sizes(dir.path()).into_keys().collect();
            log.sync().unwrap();
            let after: BTreeSet<PathBuf> = sizes(dir.path()).into_keys().collect();
            allow_vanish = before.is_subset(&after);
        }
        drop(log);
        crash(dir.path(), &model, &mut rng, allow_vanish);

        let (reopened, recovered, report) = QueueLog::open(dir.path(), config(SEGMENT_BYTES))
            .unwrap_or_else(|e| panic!("seed {seed}: open failed: {e}"));
        // Torn tails are cut; with every synced byte intact there is nothing else to report.
        assert!(
            report.damaged.is_empty(),
            "seed {seed}: {:?}",
            report.damaged
        );
        torn += report.torn_tail_bytes;
        let got = seqs(&recovered);
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: out of order: {got:?}"
        );
        let got_set: BTreeSet<u64> = got.iter().copied().collect();
        // Acks not yet synced may or may not have taken effect.
        let maybe_acked: BTreeSet<u64> = model.unsynced_acks.iter().copied().collect();
        let lost: Vec<_> = model
            .durable
            .difference(&got_set)
            .filter(|s| !maybe_acked.contains(s))
            .collect();
        assert!(
            lost.is_empty(),
            "seed {seed}: synced messages lost: {lost:?} ({report:?})"
        );
        for m in &recovered {
            assert!(
                !model.acked.contains(&m.seq),
                "seed {seed}: acked {} came back",
                m.seq
            );
            assert_eq!(
                Some(&m.message),
                model.appended.get(&m.seq),
                "seed {seed}: seq {}",
                m.seq
            );
            if model.delivered.contains(&m.seq) {
                assert!(
                    m.redelivered,
                    "seed {seed}: delivery mark of {} lost",
                    m.seq
                );
            }
        }
        let max_durable = model.durable.iter().chain(&model.acked).max().copied();
        assert!(
            max_durable.is_none_or(|m| reopened.next_seq() > m),
            "seed {seed}"
        );
        assert!(
            got.last().is_none_or(|&l| reopened.next_seq() > l),
            "seed {seed}"
        );

        // What came back is the truth now (open made it durable).
        log = reopened;
        next = log.next_seq();
        model.live = got_set.clone();
        model.durable = got_set;
        model.unsynced_appends.clear();
        model.unsynced_acks.clear();
        model.unsynced_delivered.clear();
        model.delivered = recovered
            .iter()
            .filter(|m| m.redelivered)
            .map(|m| m.seq)
            .collect();
        model.synced_sizes = sizes(dir.path());
    }
    torn
}

#[test]
fn crash_at_random_points_loses_nothing_synced_and_resurrects_nothing_acked() {
    let torn: u64 = (0..200).map(run).sum();
    assert!(
        torn > 0,
        "the simulation never tore a write: it tests nothing"
    );
}
