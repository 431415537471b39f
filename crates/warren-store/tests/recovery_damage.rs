//! Recovery from damaged files: torn tails are cut, damage elsewhere is reported with file and
//! offset and skipped, and every intact record still comes back.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use warren_store::DamageKind;

const BIG: u64 = 1 << 20;

/// Writes messages `0..n` into one segment, syncing after each; returns the segment's path
/// and the offset at which each record starts (plus the file's end).
fn one_segment(dir: &Path, n: u64, body_len: usize) -> (PathBuf, Vec<u64>) {
    let (mut log, _, _) = open(dir, BIG);
    let path = files(dir, "seg")[0].clone();
    let mut offsets = vec![0];
    for seq in 0..n {
        log.append(seq, &message(seq, body_len)).unwrap();
        log.sync().unwrap();
        offsets.push(file_len(&path));
    }
    (path, offsets)
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn torn_tail_at_every_byte_offset_drops_only_the_last_record_and_truncates_the_file() {
    let dir = temp_dir();
    let (path, offsets) = one_segment(dir.path(), 4, 30);
    let last_start = offsets[3];
    let end = offsets[4];
    for cut in last_start..end {
        let copy = copy_dir(dir.path());
        let seg = copy.path().join(path.file_name().unwrap());
        truncate(&seg, cut);
        let (mut log, recovered, report) = open(copy.path(), BIG);
        assert_eq!(seqs(&recovered), vec![0, 1, 2], "cut at {cut}");
        assert_eq!(report.torn_tail_bytes, cut - last_start, "cut at {cut}");
        assert!(
            report.damaged.is_empty(),
            "cut at {cut}: {:?}",
            report.damaged
        );
        assert_eq!(
            file_len(&seg),
            last_start,
            "file truncated to the last intact record"
        );
        // The log goes on from there; the dropped seq may be reused since it was never synced.
        assert_eq!(log.next_seq(), 3);
        log.append(3, &message(3, 5)).unwrap();
        log.sync().unwrap();
        drop(log);
        let (_, recovered, report) = open(copy.path(), BIG);
        assert_eq!(seqs(&recovered), vec![0, 1, 2, 3]);
        assert_eq!(recovered[3].message, message(3, 5));
        assert_eq!(report.torn_tail_bytes, 0);
    }
}

#[test]
fn zero_filled_tail_is_cut_like_a_torn_write() {
    // After a crash a file's size can be updated while its last blocks still read as zeros.
    let dir = temp_dir();
    let (path, offsets) = one_segment(dir.path(), 3, 30);
    let mut bytes = std::fs::read(&path).unwrap();
    let zero_from = offsets[2] as usize + 5;
    bytes.truncate(zero_from);
    bytes.resize(zero_from + 8192, 0);
    std::fs::write(&path, bytes).unwrap();
    let (_, recovered, report) = open(dir.path(), BIG);
    assert_eq!(seqs(&recovered), vec![0, 1]);
    assert_eq!(file_len(&path), offsets[2]);
    assert_eq!(report.torn_tail_bytes, 8192 + 5);
}

#[test]
fn bad_crc_in_the_middle_is_reported_with_file_and_offset_and_the_rest_recovered() {
    let dir = temp_dir();
    let (path, offsets) = one_segment(dir.path(), 10, 40);
    flip_byte(&path, offsets[4] + 30);
    let len_before = file_len(&path);
    let (_, recovered, report) = open(dir.path(), BIG);
    assert_eq!(seqs(&recovered), vec![0, 1, 2, 3, 5, 6, 7, 8, 9]);
    for m in &recovered {
        assert_eq!(m.message, message(m.seq, 40));
    }
    assert_eq!(report.damaged.len(), 1);
    let d = &report.damaged[0];
    assert_eq!(d.path, path);
    assert_eq!(d.offset, offsets[4]);
    assert_eq!(d.skipped_bytes, offsets[5] - offsets[4]);
    assert_eq!(d.what, DamageKind::BadChecksum);
    assert_eq!(report.torn_tail_bytes, 0);
    assert_eq!(
        file_len(&path),
        len_before,
        "damage in the middle is left in place"
    );
}

#[test]
fn implausible_length_in_the_middle_skips_to_the_next_intact_record() {
    let dir = temp_dir();
    let (path, offsets) = one_segment(dir.path(), 10, 40);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = offsets[6] as usize;
    bytes[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let (_, recovered, report) = open(dir.path(), BIG);
    assert_eq!(seqs(&recovered), vec![0, 1, 2, 3, 4, 5, 7, 8, 9]);
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].offset, offsets[6]);
    assert_eq!(report.damaged[0].what, DamageKind::BadLength(0xFFFF_FFF0));
}

#[test]
fn damaged_tail_of_an_older_segment_is_reported_and_left_in_place() {
    let dir = temp_dir();
    let seg_size = 400;
    let (mut log, _, _) = open(dir.path(), seg_size);
    for seq in 0..30 {
        log.append(seq, &message(seq, 30)).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let segs = files(dir.path(), "seg");
    assert!(segs.len() >= 3);
    let older = &segs[0];
    let len = file_len(older);
    truncate(older, len - 3);
    let (_, recovered, report) = open(dir.path(), seg_size);
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].path, *older);
    assert_eq!(
        report.damaged[0].what,
        DamageKind::TruncatedRecord(len as u32 - report.damaged[0].offset as u32 - 8)
    );
    assert_eq!(
        file_len(older),
        len - 3,
        "an older segment is never truncated"
    );
    assert_eq!(recovered.len(), 29, "only the damaged record is missing");
    assert_eq!(report.torn_tail_bytes, 0);
}

#[test]
fn torn_tail_of_an_ack_file_is_cut_and_earlier_acks_kept() {
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), BIG);
    for seq in 0..10 {
        log.append(seq, &message(seq, 10)).unwrap();
    }
    log.ack(&[1, 2]).unwrap();
    log.sync().unwrap();
    let acks = files(dir.path(), "acks")[0].clone();
    let first_batch = file_len(&acks);
    log.ack(&[5, 6, 7]).unwrap();
    log.sync().unwrap();
    drop(log);
    truncate(&acks, file_len(&acks) - 1);
    let (_, recovered, report) = open(dir.path(), BIG);
    assert_eq!(seqs(&recovered), vec![0, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(file_len(&acks), first_batch);
    assert!(report.torn_tail_bytes > 0);
    assert!(report.damaged.is_empty());
}

#[test]
fn damaged_ack_record_brings_its_messages_back_rather_than_losing_others() {
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), BIG);
    for seq in 0..10 {
        log.append(seq, &message(seq, 10)).unwrap();
    }
    log.ack(&[1, 2]).unwrap();
    log.sync().unwrap();
    let acks = files(dir.path(), "acks")[0].clone();
    log.ack(&[5]).unwrap();
    log.sync().unwrap();
    drop(log);
    flip_byte(&acks, 9); // inside the first record's payload
    let (_, recovered, report) = open(dir.path(), BIG);
    assert_eq!(seqs(&recovered), vec![0, 1, 2, 3, 4, 6, 7, 8, 9]);
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].path, acks);
    assert_eq!(report.damaged[0].offset, 0);
}

#[test]
fn empty_newest_segment_left_by_a_crash_is_harmless() {
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), BIG);
    for seq in 0..3 {
        log.append(seq, &message(seq, 10)).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    // As if a roll had created the next segment and crashed before writing to it.
    std::fs::File::create(dir.path().join("00000000000000000007.seg")).unwrap();
    let (mut log, recovered, report) = open(dir.path(), BIG);
    assert_eq!(seqs(&recovered), vec![0, 1, 2]);
    assert!(report.damaged.is_empty());
    assert_eq!(log.next_seq(), 7);
    log.append(7, &message(7, 10)).unwrap();
    log.sync().unwrap();
    drop(log);
    let (_, recovered, _) = open(dir.path(), BIG);
    assert_eq!(seqs(&recovered), vec![0, 1, 2, 7]);
}

#[test]
fn orphan_ack_file_is_removed() {
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), BIG);
    log.append(0, &message(0, 10)).unwrap();
    log.sync().unwrap();
    drop(log);
    let orphan = dir.path().join("00000000000000000099.acks");
    std::fs::write(&orphan, b"left over").unwrap();
    let (_, recovered, report) = open(dir.path(), BIG);
    assert_eq!(seqs(&recovered), vec![0]);
    assert!(report.damaged.is_empty());
    assert!(!orphan.exists());
}
