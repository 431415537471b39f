//! One MessageLog, several LogReaders: reading forward from positions across segments, each
//! reader's acks kept apart, a segment going only once every reader settled it (or by
//! retention), and every reader's state coming back with its log after a restart or a crash.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use warren_store::{LogConfig, LogReader, MessageLog, StoreError};

fn open_log(dir: &Path, segment_size_bytes: u64) -> MessageLog {
    let (log, report) = MessageLog::open(dir, LogConfig { segment_size_bytes }).expect("open log");
    assert!(report.damaged.is_empty(), "{:?}", report.damaged);
    assert_eq!(report.messages, 0, "a bare log hands nothing back");
    log
}

fn open_reader(dir: &Path, log: &mut MessageLog) -> LogReader {
    let (reader, report) = LogReader::open(dir, log).expect("open reader");
    assert!(report.damaged.is_empty(), "{:?}", report.damaged);
    reader
}

/// Every seq `read` yields from `from` on, calling it until it returns nothing; checks each
/// message's content and that each call stays within one segment.
fn read_all(
    log: &mut MessageLog,
    mut from: u64,
    mut read: impl FnMut(&mut MessageLog, u64) -> Vec<(u64, warren_store::StoredMessage)>,
) -> Vec<u64> {
    let mut out = Vec::new();
    loop {
        let batch = read(log, from);
        let Some(&(last, _)) = batch.last() else {
            return out;
        };
        let names: Vec<u64> = log.segments().map(|s| s.first_seq).collect();
        let segment_of = |seq: u64| names.partition_point(|&n| n <= seq);
        assert!(
            batch
                .iter()
                .all(|(seq, _)| segment_of(*seq) == segment_of(last)),
            "one call, one segment"
        );
        for (seq, m) in &batch {
            assert_eq!(*m, message(*seq, 40), "seq {seq}");
            out.push(*seq);
        }
        from = last + 1;
    }
}

fn reader_dirs(root: &Path) -> (PathBuf, PathBuf) {
    (
        root.join("readers").join("a"),
        root.join("readers").join("b"),
    )
}

#[test]
fn reading_from_a_position_crosses_segment_boundaries_a_segment_at_a_time() {
    let dir = temp_dir();
    let mut log = open_log(dir.path(), 600);
    // Gaps in the seqs, as when transient messages share the numbering.
    let appended: Vec<u64> = (0..50u64).map(|i| 3 + i * 2 + (i / 9) * 7).collect();
    for &seq in &appended {
        log.append(seq, &message(seq, 40)).unwrap();
    }
    assert!(log.segment_count() > 4, "small segments roll");
    // Some records are still in the write buffer, some in files: the same answers.
    for synced in [false, true] {
        if synced {
            log.sync_appends().unwrap();
        }
        assert_eq!(
            read_all(&mut log, 0, |l, f| l.read_from(f, usize::MAX).unwrap()),
            appended
        );
        // A few bytes at a time: still one record at least per call, never skipping one.
        assert_eq!(
            read_all(&mut log, 0, |l, f| l.read_from(f, 1).unwrap()),
            appended
        );
        for (i, &seq) in appended.iter().enumerate() {
            // From a seq, and from the gap just below it.
            let from_seq = read_all(&mut log, seq, |l, f| l.read_from(f, 200).unwrap());
            assert_eq!(from_seq, appended[i..]);
            let first = log.read_from(seq - 1, usize::MAX).unwrap();
            assert_eq!(
                first[0].0,
                if i > 0 && appended[i - 1] == seq - 1 {
                    seq - 1
                } else {
                    seq
                }
            );
        }
        assert!(log
            .read_from(log.next_seq(), usize::MAX)
            .unwrap()
            .is_empty());
    }
    // One call reads the rest of one segment, with one read.
    let whole = log.read_from(0, usize::MAX).unwrap();
    assert_eq!(whole.len() as u32, log.segments().next().unwrap().records);
    drop(log);
    let mut log = open_log(dir.path(), 600);
    assert_eq!(
        read_all(&mut log, 0, |l, f| l.read_from(f, 333).unwrap()),
        appended
    );
}

#[test]
fn a_log_is_read_by_two_readers_at_different_positions_each_with_its_own_acks() {
    let dir = temp_dir();
    let (a_dir, b_dir) = reader_dirs(dir.path());
    let mut log = open_log(dir.path(), 700);
    let mut a = open_reader(&a_dir, &mut log);
    let mut b = open_reader(&b_dir, &mut log);
    for seq in 0..100 {
        log.append(seq, &message(seq, 40)).unwrap();
    }
    // `a` consumed the first 30; `b` the first 70 and every even seq after that.
    a.ack(&mut log, &(0..30).collect::<Vec<_>>()).unwrap();
    let b_acks: Vec<u64> = (0..70).chain((70..100).filter(|s| s % 2 == 0)).collect();
    b.ack(&mut log, &b_acks).unwrap();
    let a_left: Vec<u64> = (30..100).collect();
    let b_left: Vec<u64> = (71..100).step_by(2).collect();
    let check = |log: &mut MessageLog, a: &LogReader, b: &LogReader| {
        assert_eq!(
            read_all(log, 0, |l, f| a.read_from(l, f, usize::MAX).unwrap()),
            a_left
        );
        assert_eq!(
            read_all(log, 0, |l, f| b.read_from(l, f, 300).unwrap()),
            b_left
        );
        // Each from its own position.
        assert_eq!(
            read_all(log, 50, |l, f| a.read_from(l, f, usize::MAX).unwrap()),
            a_left[20..]
        );
        assert_eq!(
            read_all(log, 90, |l, f| b.read_from(l, f, usize::MAX).unwrap()),
            b_left[10..]
        );
        assert_eq!(a.unacked_count(log), 70);
        assert_eq!(b.unacked_count(log), 15);
        assert!(matches!(
            a.read(log, 29),
            Err(StoreError::NotInLog { seq: 29 })
        ));
        assert_eq!(
            b.read(log, 29).err().map(|e| e.to_string()),
            Some("message seq 29 is not in the log".into())
        );
        assert_eq!(a.read(log, 40).unwrap(), message(40, 40));
        assert!(b.is_acked(log, 40) && !a.is_acked(log, 40));
        // The log itself keeps everything.
        assert_eq!(log.record_count(), 100);
        assert_eq!(log.read(5).unwrap(), message(5, 40));
    };
    check(&mut log, &a, &b);
    a.sync(&mut log).unwrap();
    b.sync(&mut log).unwrap();
    drop((a, b, log));
    let mut log = open_log(dir.path(), 700);
    let a = open_reader(&a_dir, &mut log);
    let b = open_reader(&b_dir, &mut log);
    check(&mut log, &a, &b);
}

#[test]
fn a_segment_is_reclaimed_only_once_every_reader_settled_it() {
    let dir = temp_dir();
    let (a_dir, b_dir) = reader_dirs(dir.path());
    let mut log = open_log(dir.path(), 1000);
    let mut readers = [open_reader(&a_dir, &mut log), open_reader(&b_dir, &mut log)];
    for seq in 0..60 {
        log.append(seq, &message(seq, 40)).unwrap();
    }
    let segments = log.segment_count();
    assert!(segments >= 4);
    let first = log.segments().next().unwrap();
    let in_first: Vec<u64> = (first.first_seq..=first.last_seq.unwrap()).collect();
    // Only `a` settles the first segment; `b` settles all of it but one message.
    readers[0].ack(&mut log, &in_first).unwrap();
    readers[1].ack(&mut log, &in_first[1..]).unwrap();
    for r in &mut readers {
        r.sync(&mut log).unwrap();
    }
    assert!(readers[0].is_settled(&log, first.first_seq));
    assert!(!readers[1].is_settled(&log, first.first_seq));
    assert_eq!(log.reclaim(&mut readers).unwrap(), 0);
    assert_eq!(
        log.reclaim(&mut []).unwrap(),
        0,
        "with no readers nothing is settled"
    );
    assert_eq!(log.segment_count(), segments);
    assert_eq!(files(&a_dir, "acks").len(), 1);

    readers[1].ack(&mut log, &in_first[..1]).unwrap();
    readers[1].sync(&mut log).unwrap();
    assert_eq!(log.reclaim(&mut readers).unwrap(), 1);
    assert_eq!(log.segment_count(), segments - 1);
    assert_eq!(log.first_seq(), log.segments().next().unwrap().first_seq);
    assert!(files(dir.path(), "seg")
        .iter()
        .all(|p| !p.ends_with(format!("{:020}.seg", first.first_seq))));
    assert!(
        files(&a_dir, "acks").is_empty() && files(&b_dir, "acks").is_empty(),
        "side files go with their segment"
    );
    assert!(matches!(log.read(0), Err(StoreError::NotInLog { .. })));
    assert_eq!(readers[0].unacked_count(&log), 60 - in_first.len() as u64);
    // The rest is unchanged after a restart.
    drop((readers, log));
    let mut log = open_log(dir.path(), 1000);
    let a = open_reader(&a_dir, &mut log);
    assert_eq!(log.segment_count(), segments - 1);
    assert_eq!(a.unacked_count(&log), 60 - in_first.len() as u64);
    assert_eq!(log.next_seq(), 60);
}

#[test]
fn retention_drops_whole_segments_from_the_front_whatever_the_readers_settled() {
    let dir = temp_dir();
    let (a_dir, _) = reader_dirs(dir.path());
    let mut log = open_log(dir.path(), 800);
    let mut readers = [open_reader(&a_dir, &mut log)];
    for seq in 0..80 {
        log.append(seq, &message(seq, 40)).unwrap();
    }
    readers[0].ack(&mut log, &[0, 1, 2, 79]).unwrap();
    readers[0].mark_delivered(&mut log, &[3, 4]).unwrap();
    readers[0].sync(&mut log).unwrap();
    let before: Vec<_> = log.segments().collect();
    // Keep what is at or above seq 30: the segments wholly below it go, the one holding 30
    // stays whole.
    let dropped = log.truncate_front(30, &mut readers).unwrap();
    let kept_from = before.iter().rposition(|s| s.first_seq <= 30).unwrap();
    assert_eq!(dropped, kept_from);
    assert_eq!(log.first_seq(), before[kept_from].first_seq);
    assert!(log.first_seq() <= 30);
    assert!(
        files(&a_dir, "acks").len() == 1,
        "the dropped segment's side file went with it"
    );
    let first_left = read_all(&mut log, 0, |l, f| l.read_from(f, usize::MAX).unwrap())[0];
    assert_eq!(first_left, log.first_seq());
    assert_eq!(readers[0].unacked_count(&log), log.record_count() - 1);
    // The active segment stays until rolled.
    let total = log.segment_count();
    assert_eq!(
        log.truncate_front(u64::MAX, &mut readers).unwrap(),
        total - 1
    );
    assert_eq!(log.segment_count(), 1);
    log.roll().unwrap();
    assert_eq!(log.truncate_front(u64::MAX, &mut readers).unwrap(), 1);
    assert_eq!(log.record_count(), 0);
    assert!(files(&a_dir, "acks").is_empty());
    log.sync_appends().unwrap();
    drop((readers, log));
    let mut log = open_log(dir.path(), 800);
    let a = open_reader(&a_dir, &mut log);
    assert_eq!(log.next_seq(), 80, "retention does not rewind the seq");
    assert_eq!(a.unacked_count(&log), 0);
}

#[test]
fn a_readers_marks_keep_the_logs_seq_above_them_even_when_the_records_were_lost() {
    let dir = temp_dir();
    let (a_dir, _) = reader_dirs(dir.path());
    let mut log = open_log(dir.path(), 1 << 20);
    let mut a = open_reader(&a_dir, &mut log);
    for seq in 0..4 {
        log.append(seq, &message(seq, 40)).unwrap();
    }
    log.sync_appends().unwrap();
    let seg = files(dir.path(), "seg")[0].clone();
    let intact = file_len(&seg);
    log.append(4, &message(4, 40)).unwrap();
    a.ack(&mut log, &[4]).unwrap();
    a.sync(&mut log).unwrap();
    drop((a, log));
    // As if the last record had never fully reached the disk while its ack did.
    truncate(&seg, intact + 5);
    let (mut log, report) = MessageLog::open(
        dir.path(),
        LogConfig {
            segment_size_bytes: 1 << 20,
        },
    )
    .unwrap();
    assert_eq!(report.torn_tail_bytes, 5);
    assert_eq!(log.next_seq(), 4, "the log alone would hand out 4 again");
    let a = open_reader(&a_dir, &mut log);
    assert_eq!(
        log.next_seq(),
        5,
        "the reader's ack of 4 keeps it from being reused"
    );
    assert_eq!(a.unacked_count(&log), 4);
}

#[test]
fn torn_tail_of_a_readers_side_file_at_every_byte_offset_loses_only_its_last_marks() {
    let dir = temp_dir();
    let (a_dir, b_dir) = reader_dirs(dir.path());
    let mut log = open_log(dir.path(), 1 << 20);
    let mut a = open_reader(&a_dir, &mut log);
    let mut b = open_reader(&b_dir, &mut log);
    for seq in 0..20 {
        log.append(seq, &message(seq, 40)).unwrap();
    }
    a.ack(&mut log, &[1, 2, 3]).unwrap();
    b.ack(&mut log, &[10]).unwrap();
    a.sync(&mut log).unwrap();
    b.sync(&mut log).unwrap();
    let side = files(&a_dir, "acks")[0].clone();
    let first_batch = file_len(&side);
    a.ack(&mut log, &[7, 8, 9, 15]).unwrap();
    a.sync(&mut log).unwrap();
    let end = file_len(&side);
    drop((a, b, log));
    for cut in first_batch..end {
        let copy = copy_tree(dir.path());
        let (a_copy, b_copy) = reader_dirs(copy.path());
        truncate(&a_copy.join(side.file_name().unwrap()), cut);
        let mut log = open_log(copy.path(), 1 << 20);
        let (a, report) = LogReader::open(&a_copy, &mut log).unwrap();
        assert!(
            report.damaged.is_empty(),
            "cut at {cut}: {:?}",
            report.damaged
        );
        assert_eq!(report.torn_tail_bytes, cut - first_batch, "cut at {cut}");
        assert_eq!(
            file_len(&a_copy.join(side.file_name().unwrap())),
            first_batch
        );
        let b = open_reader(&b_copy, &mut log);
        let unacked_a = read_all(&mut log, 0, |l, f| a.read_from(l, f, usize::MAX).unwrap());
        assert_eq!(
            unacked_a,
            [0].into_iter().chain(4..20).collect::<Vec<_>>(),
            "cut at {cut}"
        );
        assert_eq!(b.unacked_count(&log), 19, "the other reader is untouched");
    }
}

/// A recursive copy of `from` (the log's files and its readers' directories).
fn copy_tree(from: &Path) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            match e.file_type().unwrap().is_dir() {
                true => copy(&e.path(), &target),
                false => {
                    std::fs::copy(e.path(), target).unwrap();
                }
            }
        }
    }
    let to = temp_dir();
    copy(from, to.path());
    to
}
