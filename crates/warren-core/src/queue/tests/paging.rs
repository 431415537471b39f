//! Paging: the queue's rules hold whether a ready message is loaded or only an index entry,
//! and consumers only ever receive loaded messages, in order.

use super::*;
use std::collections::HashMap;

/// The runtime's part, simulated: a place → message map standing in for the disk.
#[derive(Default)]
struct Disk {
    pages: HashMap<u64, Arc<Message>>,
    next: u64,
}

impl Disk {
    /// Publishes like the queue task: pages the new message out when over budget.
    fn publish(&mut self, q: &mut QueueState, m: Arc<Message>) {
        let prio = m.properties.priority.unwrap_or(0);
        if let Enqueued::Accepted(seq) = q.publish(m.clone(), 0) {
            if q.over_budget() {
                self.next += 1;
                self.pages.insert(self.next, m);
                assert!(q.page(seq, prio, self.next));
            }
        }
    }

    /// Reads back the next `n` to deliver.
    fn read_ahead(&mut self, q: &mut QueueState, n: usize) {
        for (seq, p) in q.paged_ahead(n) {
            let m = self.pages.remove(&p.place).expect("paged message on disk");
            assert!(q.load(seq, p.priority, m));
        }
    }

    /// Delivers everything as the queue task does: load ahead, dispatch, repeat while
    /// dispatch stopped at a paged head.
    fn drain(&mut self, q: &mut QueueState) -> Vec<u64> {
        let mut got = Vec::new();
        loop {
            self.read_ahead(q, 4);
            q.dispatch(|_, d| got.push(body_of(&d)));
            if !q.head_is_paged() {
                return got;
            }
        }
    }
}

fn footprint() -> usize {
    msg(0).footprint()
}

#[test]
fn messages_past_the_budget_are_paged_and_delivered_in_order() {
    let mut q = queue_with(QueueArgs::default());
    q.set_memory_budget(footprint() * 10);
    let mut disk = Disk::default();
    for i in 0..100 {
        disk.publish(&mut q, msg(i));
    }
    assert_eq!(q.paged_count(), 90);
    assert_eq!(q.message_count(), 100);
    assert_eq!(q.ready_bytes(), 800, "length limits count paged bodies too");
    assert!(q.loaded_bytes() <= footprint() * 10);
    q.add_consumer(consumer(1, CH1, 0, true), "q").unwrap();
    assert_eq!(disk.drain(&mut q), (0..100).collect::<Vec<_>>());
    assert_eq!(q.paged_count(), 0);
    assert_eq!(q.loaded_bytes(), 0);
    assert!(disk.pages.is_empty());
}

#[test]
fn dispatch_stops_at_a_paged_head_and_get_needs_it_loaded() {
    let mut q = queue_with(QueueArgs::default());
    q.set_memory_budget(0);
    let mut disk = Disk::default();
    disk.publish(&mut q, msg(7));
    assert!(q.head_is_paged());
    q.add_consumer(consumer(1, CH1, 0, true), "q").unwrap();
    assert!(drain(&mut q).is_empty(), "nothing handed out unloaded");
    assert!(q.get(CH1, true).is_none());
    disk.read_ahead(&mut q, 1);
    assert_eq!(body_of(&q.get(CH1, true).unwrap().0), 7);
}

#[test]
fn priorities_are_kept_for_paged_messages() {
    let mut q = queue_with(QueueArgs {
        max_priority: Some(5),
        ..Default::default()
    });
    q.set_memory_budget(footprint() * 2);
    let mut disk = Disk::default();
    for i in 0..12 {
        disk.publish(
            &mut q,
            msg_with(i, |p| p.priority = Some((i % 3) as u8 * 2)),
        );
    }
    assert!(q.paged_count() >= 9);
    q.add_consumer(consumer(1, CH1, 0, true), "q").unwrap();
    assert_eq!(
        disk.drain(&mut q),
        vec![2, 5, 8, 11, 1, 4, 7, 10, 0, 3, 6, 9]
    );
}

#[test]
fn paged_messages_expire_drop_and_purge_as_index_entries() {
    let mut q = queue_with(QueueArgs {
        message_ttl_ms: Some(100),
        max_length: Some(5),
        ..Default::default()
    });
    q.set_memory_budget(0);
    let mut disk = Disk::default();
    for i in 0..8 {
        disk.publish(&mut q, msg(i));
    }
    // drop-head removed the three oldest, paged: they die as index entries.
    let dropped = q.take_dead();
    assert_eq!(dropped.len(), 3);
    assert!(dropped.iter().all(|d| d.content.paged().is_some()));
    assert_eq!(q.paged_count(), 5);
    q.expire(1_000);
    let expired = q.take_dead();
    assert_eq!(expired.len(), 5);
    assert!(expired
        .iter()
        .all(|d| d.reason == DeathReason::Expired && d.content.paged().is_some()));
    assert_eq!(
        (q.message_count(), q.paged_count(), q.ready_bytes()),
        (0, 0, 0)
    );
}

#[test]
fn requeued_messages_come_back_loaded_at_their_place() {
    let mut q = queue_with(QueueArgs::default());
    q.set_memory_budget(footprint() * 3);
    let mut disk = Disk::default();
    for i in 0..3 {
        disk.publish(&mut q, msg(i));
    }
    q.add_consumer(consumer(1, CH1, 0, false), "q").unwrap();
    let first = drain(&mut q);
    assert_eq!(first.len(), 3);
    for i in 3..10 {
        disk.publish(&mut q, msg(i));
    }
    q.requeue(&[first[1].1.seq]);
    let c = q.cancel_consumer(ConsumerId(1)).unwrap();
    assert_eq!(c.id.0, 1);
    q.add_consumer(consumer(2, CH2, 0, true), "q").unwrap();
    assert_eq!(disk.drain(&mut q), vec![1, 3, 4, 5, 6, 7, 8, 9]);
}

#[test]
fn a_lower_budget_names_the_latest_loaded_messages_to_page_out() {
    let mut q = queue_with(QueueArgs::default());
    let mut disk = Disk::default();
    for i in 0..10 {
        disk.publish(&mut q, msg(i));
    }
    assert_eq!(q.paged_count(), 0);
    q.set_memory_budget(footprint() * 4);
    let excess = q.excess_loaded();
    let seqs: Vec<Seq> = excess.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, vec![10, 9, 8, 7, 6, 5]);
    for (seq, m) in excess {
        disk.next += 1;
        disk.pages.insert(disk.next, m);
        assert!(q.page(seq, 0, disk.next));
    }
    assert!(!q.over_budget());
    assert!(q.excess_loaded().is_empty());
    q.add_consumer(consumer(1, CH1, 0, true), "q").unwrap();
    assert_eq!(disk.drain(&mut q), (0..10).collect::<Vec<_>>());
}

#[test]
fn restored_messages_can_start_paged() {
    let mut q = queue_with(QueueArgs::default());
    q.restore(3, msg(3), true, 0, None);
    q.restore(4, msg(4), false, 0, Some(40));
    assert_eq!(q.paged_count(), 1);
    let mut disk = Disk::default();
    disk.pages.insert(40, msg(4));
    q.add_consumer(consumer(1, CH1, 0, true), "q").unwrap();
    assert_eq!(disk.drain(&mut q), vec![3, 4]);
}

#[test]
fn an_index_entry_stays_small() {
    // README and ARCHITECTURE state what a paged message costs in RAM.
    assert!(
        std::mem::size_of::<Queued>() <= 48,
        "{}",
        std::mem::size_of::<Queued>()
    );
}
