//! QueueLog behaviour across clean restarts: what comes back, in what order, with which flags,
//! and what is reclaimed.

mod common;

use bytes::Bytes;
use common::*;
use warren_store::{QueueLog, StoreError, StoredMessage, ACTIVE_RECLAIM_MIN_BYTES};

#[test]
fn recovery_returns_every_unacked_message_in_seq_order_across_segments() {
    let dir = temp_dir();
    let (mut log, recovered, report) = open(dir.path(), 400);
    assert!(recovered.is_empty());
    assert_eq!(report.segments, 0);
    // Gaps in the seqs, as when transient messages share the queue's numbering.
    let appended: Vec<u64> = (0..60u64).map(|i| 5 + i * 2 + (i / 7) * 10).collect();
    for &seq in &appended {
        log.append(seq, &message(seq, 40)).unwrap();
    }
    log.sync().unwrap();
    drop(log);

    let segment_files = files(dir.path(), "seg");
    assert!(
        segment_files.len() > 3,
        "small segments roll: {segment_files:?}"
    );
    let (log, recovered, report) = open(dir.path(), 400);
    assert_eq!(seqs(&recovered), appended);
    for m in &recovered {
        assert_eq!(m.message, message(m.seq, 40));
        assert!(!m.redelivered);
    }
    assert_eq!(report.segments, segment_files.len());
    assert_eq!(report.messages, 60);
    assert!(report.damaged.is_empty());
    assert_eq!(report.torn_tail_bytes, 0);
    assert_eq!(log.message_count(), 60);
}

#[test]
fn message_fields_round_trip_exactly() {
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), 1 << 20);
    let long_key = "k".repeat(255);
    let cases = [
        StoredMessage {
            exchange: "".into(),
            routing_key: "".into(),
            properties_raw: Bytes::new(),
            body: Bytes::new(),
            enqueued_ms: None,
        },
        StoredMessage {
            exchange: "ünïcode-x".into(),
            routing_key: long_key.as_str().into(),
            properties_raw: Bytes::from_static(&[0xff; 40]),
            body: Bytes::from((0..=255u8).cycle().take(100_000).collect::<Vec<_>>()),
            enqueued_ms: None,
        },
    ];
    for (i, m) in cases.iter().enumerate() {
        log.append(i as u64, m).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let (_, recovered, _) = open(dir.path(), 1 << 20);
    let back: Vec<StoredMessage> = recovered.into_iter().map(|r| r.message).collect();
    assert_eq!(back, cases);
}

#[test]
fn synced_acks_survive_restart() {
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), 300);
    for seq in 1..=30 {
        log.append(seq, &message(seq, 20)).unwrap();
    }
    log.ack(&[3, 1, 17, 29, 30, 2]).unwrap();
    log.sync().unwrap();
    log.ack(&[4]).unwrap(); // never synced: may come back
    drop(log);
    let (log, recovered, _) = open(dir.path(), 300);
    let got = seqs(&recovered);
    for gone in [1, 2, 3, 17, 29, 30] {
        assert!(!got.contains(&gone), "acked {gone} came back");
    }
    assert_eq!(got.len(), 30 - 6 - usize::from(!got.contains(&4)));
    assert_eq!(log.message_count(), got.len() as u64);
}

#[test]
fn mark_delivered_makes_recovery_set_redelivered() {
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), 1 << 20);
    for seq in 0..10 {
        log.append(seq, &message(seq, 8)).unwrap();
    }
    log.mark_delivered(&[2, 5, 7]).unwrap();
    log.ack(&[7]).unwrap();
    log.sync().unwrap();
    drop(log);
    let (mut log, recovered, _) = open(dir.path(), 1 << 20);
    let redelivered: Vec<u64> = recovered
        .iter()
        .filter(|m| m.redelivered)
        .map(|m| m.seq)
        .collect();
    assert_eq!(redelivered, vec![2, 5]);
    assert_eq!(recovered.len(), 9);

    // Marks made after the restart count as well.
    log.mark_delivered(&[0]).unwrap();
    log.sync().unwrap();
    drop(log);
    let (_, recovered, _) = open(dir.path(), 1 << 20);
    let redelivered: Vec<u64> = recovered
        .iter()
        .filter(|m| m.redelivered)
        .map(|m| m.seq)
        .collect();
    assert_eq!(redelivered, vec![0, 2, 5]);
}

#[test]
fn seq_continues_above_the_highest_recovered_seq() {
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), 1 << 20);
    assert_eq!(log.next_seq(), 0);
    for seq in [10, 11, 40] {
        log.append(seq, &message(seq, 8)).unwrap();
    }
    assert_eq!(log.next_seq(), 41);
    log.sync().unwrap();
    drop(log);
    let (mut log, _, _) = open(dir.path(), 1 << 20);
    assert_eq!(log.next_seq(), 41);
    assert!(matches!(
        log.append(40, &message(40, 8)),
        Err(StoreError::SeqNotIncreasing {
            seq: 40,
            next_seq: 41
        })
    ));
    log.append(41, &message(41, 8)).unwrap();
}

#[test]
fn seq_continues_after_restart_even_when_every_segment_was_reclaimed() {
    let dir = temp_dir();
    let seg = 1 << 20;
    let (mut log, _, _) = open(dir.path(), seg);
    let n = 500;
    for seq in 0..n {
        log.append(seq, &message(seq, 300)).unwrap();
    }
    log.sync().unwrap();
    assert!(log.disk_bytes() > ACTIVE_RECLAIM_MIN_BYTES);
    log.ack(&(0..n).collect::<Vec<_>>()).unwrap();
    log.sync().unwrap();
    assert_eq!(log.message_count(), 0);
    // All that is left: an empty segment named after the next seq.
    let left = files(dir.path(), "seg");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].file_name().unwrap(), "00000000000000000500.seg");
    assert_eq!(file_len(&left[0]), 0);
    assert!(files(dir.path(), "acks").is_empty());
    assert_eq!(log.disk_bytes(), 0);
    drop(log);
    let (log, recovered, _) = open(dir.path(), seg);
    assert!(recovered.is_empty());
    assert_eq!(log.next_seq(), n);
}

#[test]
fn segments_are_deleted_once_all_their_messages_are_acked() {
    let dir = temp_dir();
    let seg = 64 * 1024;
    let (mut log, _, _) = open(dir.path(), seg);
    let n = 3000u64;
    for seq in 0..n {
        log.append(seq, &message(seq, 200)).unwrap();
    }
    log.mark_delivered(&(0..n).collect::<Vec<_>>()).unwrap();
    log.sync().unwrap();
    assert!(log.disk_bytes() > 200 * n);
    let segments_before = files(dir.path(), "seg").len();
    assert!(segments_before > 8);

    // Acking the first half frees the segments wholly inside it, and no others.
    log.ack(&(0..n / 2).collect::<Vec<_>>()).unwrap();
    log.sync().unwrap();
    let left = files(dir.path(), "seg").len();
    assert!(
        left < segments_before && left > segments_before / 3,
        "{left} of {segments_before}"
    );
    assert_eq!(
        files(dir.path(), "acks").len(),
        left,
        "side files go with their segments"
    );

    log.ack(&(n / 2..n).collect::<Vec<_>>()).unwrap();
    log.sync().unwrap();
    // What is left is at most the active segment, below the active-reclaim threshold.
    assert_eq!(files(dir.path(), "seg").len(), 1);
    assert!(files(dir.path(), "acks").len() <= 1);
    let on_disk: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(on_disk, log.disk_bytes());
    assert!(
        on_disk < ACTIVE_RECLAIM_MIN_BYTES + 4096,
        "{on_disk} bytes left"
    );
    drop(log);
    let (log, recovered, _) = open(dir.path(), seg);
    assert!(recovered.is_empty());
    assert_eq!(log.next_seq(), n);
}

#[test]
fn drained_log_below_the_reclaim_threshold_keeps_its_small_active_segment() {
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), 64 << 20);
    for seq in 0..10 {
        log.append(seq, &message(seq, 100)).unwrap();
    }
    log.ack(&(0..10).collect::<Vec<_>>()).unwrap();
    log.sync().unwrap();
    assert!(log.disk_bytes() < ACTIVE_RECLAIM_MIN_BYTES);
    assert_eq!(log.message_count(), 0);
    drop(log);
    let (_, recovered, _) = open(dir.path(), 64 << 20);
    assert!(recovered.is_empty());
}

#[test]
fn acks_of_unknown_or_repeated_seqs_do_not_count() {
    let dir = temp_dir();
    let seg = 512;
    let (mut log, _, _) = open(dir.path(), seg);
    for seq in (0..40).map(|i| i * 10) {
        log.append(seq, &message(seq, 30)).unwrap();
    }
    log.sync().unwrap();
    let segments = files(dir.path(), "seg").len();
    // Seqs between and beyond the appended ones, and the same seq many times: if these
    // counted, the first segment would look fully acked and be deleted.
    log.ack(&[1, 2, 3, 5, 11, 12, 13, 1000, u64::MAX]).unwrap();
    log.ack(&[0, 0, 0]).unwrap();
    log.ack(&[0]).unwrap();
    log.mark_delivered(&[7, 0]).unwrap();
    log.sync().unwrap();
    assert_eq!(files(dir.path(), "seg").len(), segments);
    assert_eq!(log.message_count(), 39);
    drop(log);
    let (_, recovered, _) = open(dir.path(), seg);
    assert_eq!(
        seqs(&recovered),
        (1..40).map(|i| i * 10).collect::<Vec<_>>()
    );
}

#[test]
fn destroy_removes_the_log_directory() {
    let parent = temp_dir();
    let dir = parent.path().join("queues").join("17");
    let (mut log, _, _) = open(&dir, 1 << 20);
    log.append(0, &message(0, 10)).unwrap();
    log.ack(&[0]).unwrap();
    log.sync().unwrap();
    assert!(dir.is_dir());
    log.destroy().unwrap();
    assert!(!dir.exists());
    assert!(parent.path().join("queues").is_dir());
}

#[test]
fn one_record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), 256);
    log.append(1, &message(1, 10)).unwrap();
    log.append(2, &message(2, 5000)).unwrap();
    log.append(3, &message(3, 10)).unwrap();
    log.sync().unwrap();
    assert_eq!(files(dir.path(), "seg").len(), 3);
    drop(log);
    let (_, recovered, _) = open(dir.path(), 256);
    assert_eq!(seqs(&recovered), vec![1, 2, 3]);
    assert_eq!(recovered[1].message, message(2, 5000));
}

#[test]
fn reopening_without_changes_is_stable() {
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), 300);
    for seq in 0..20 {
        log.append(seq, &message(seq, 20)).unwrap();
    }
    log.ack(&[0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    log.sync().unwrap();
    let bytes = log.disk_bytes();
    drop(log);
    for _ in 0..3 {
        let (log, recovered, report) = QueueLog::open(dir.path(), config(300)).unwrap();
        assert_eq!(seqs(&recovered), (8..20).collect::<Vec<_>>());
        assert_eq!(log.disk_bytes(), bytes);
        assert!(report.damaged.is_empty() && report.torn_tail_bytes == 0);
    }
}

#[test]
fn messages_are_read_back_by_seq_from_buffer_files_and_after_recovery() {
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), 700);
    let appended: Vec<u64> = (0..40u64).map(|i| 3 + i * 3).collect();
    for &seq in &appended {
        log.append(seq, &message(seq, 50)).unwrap();
        // Fresh appends are still in the write buffer.
        assert_eq!(log.read(seq).unwrap(), message(seq, 50));
    }
    log.sync().unwrap();
    log.ack(&[6, 9]).unwrap();
    for &seq in &appended {
        match seq {
            6 | 9 => assert!(matches!(log.read(seq), Err(StoreError::NotInLog { .. }))),
            _ => assert_eq!(log.read(seq).unwrap(), message(seq, 50)),
        }
    }
    assert!(matches!(log.read(4), Err(StoreError::NotInLog { .. })));
    log.sync().unwrap();
    drop(log);
    let (mut log, _, _) = open(dir.path(), 700);
    for &seq in appended.iter().filter(|&&s| s != 6 && s != 9) {
        assert_eq!(log.read(seq).unwrap(), message(seq, 50));
    }
}

#[test]
fn sync_appends_makes_messages_durable_but_leaves_acks_for_the_full_sync() {
    let dir = temp_dir();
    let (mut log, _, _) = open(dir.path(), 1 << 20);
    for seq in 1..=3 {
        log.append(seq, &message(seq, 10)).unwrap();
    }
    log.sync().unwrap();
    log.ack(&[1]).unwrap();
    log.append(4, &message(4, 10)).unwrap();
    log.sync_appends().unwrap();
    // A crash now: the append is durable, the ack was never promised.
    drop(log);
    let (mut log, recovered, _) = open(dir.path(), 1 << 20);
    assert_eq!(seqs(&recovered), vec![1, 2, 3, 4]);
    log.ack(&[1]).unwrap();
    log.sync().unwrap();
    drop(log);
    let (_, recovered, _) = open(dir.path(), 1 << 20);
    assert_eq!(seqs(&recovered), vec![2, 3, 4]);
}
