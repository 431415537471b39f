//! Priority queues (`x-max-priority`).

use super::*;
use crate::args::QueueArgs;

fn prio(n: u64, p: Option<u8>) -> Arc<Message> {
    msg_with(n, |props| props.priority = p)
}

#[test]
fn higher_priority_first_and_fifo_within_a_priority_with_priorities_capped_at_the_max() {
    // The order RabbitMQ 3.10 gives for these priorities with x-max-priority 5.
    let mut q = queue_with(QueueArgs {
        max_priority: Some(5),
        ..QueueArgs::default()
    });
    for (i, p) in [None, Some(3), Some(9), Some(5), Some(0), Some(3), Some(200)]
        .into_iter()
        .enumerate()
    {
        q.publish(prio(i as u64, p), 0);
    }
    assert_eq!(bodies(&q), vec![2, 3, 6, 1, 5, 0, 4]);
    let mut got = Vec::new();
    while let Some((d, _)) = q.get(CH1, true) {
        got.push(body_of(&d));
    }
    assert_eq!(got, vec![2, 3, 6, 1, 5, 0, 4]);
}

#[test]
fn requeued_messages_return_to_their_place_within_their_priority() {
    let mut q = queue_with(QueueArgs {
        max_priority: Some(9),
        ..QueueArgs::default()
    });
    for (i, p) in [None, Some(3), Some(9), Some(5), Some(0), Some(3)]
        .into_iter()
        .enumerate()
    {
        q.publish(prio(i as u64, p), 0);
    }
    let mut held = Vec::new();
    while let Some((d, _)) = q.get(CH1, false) {
        held.push(d);
    }
    let back: Vec<Seq> = held
        .iter()
        .filter(|d| [1, 2, 4].contains(&body_of(d)))
        .map(|d| d.seq)
        .collect();
    q.requeue(&back);
    assert_eq!(bodies(&q), vec![2, 1, 4]);
}

#[test]
fn max_priority_zero_is_a_fifo_queue() {
    let mut q = queue_with(QueueArgs {
        max_priority: Some(0),
        ..QueueArgs::default()
    });
    for (i, p) in [None, Some(3), Some(0)].into_iter().enumerate() {
        q.publish(prio(i as u64, p), 0);
    }
    assert_eq!(bodies(&q), vec![0, 1, 2]);
}

#[test]
fn a_queue_without_max_priority_ignores_the_priority_property() {
    let mut q: QueueState = QueueState::new();
    q.publish(prio(0, Some(1)), 0);
    q.publish(prio(1, Some(9)), 0);
    assert_eq!(bodies(&q), vec![0, 1]);
}

#[test]
fn the_highest_of_255_levels_is_found_across_bitmap_words() {
    let mut q = queue_with(QueueArgs {
        max_priority: Some(255),
        ..QueueArgs::default()
    });
    for (i, p) in [0u8, 64, 255, 63, 128, 200].into_iter().enumerate() {
        q.publish(prio(i as u64, Some(p)), 0);
    }
    let mut got = Vec::new();
    while let Some((d, _)) = q.get(CH1, true) {
        got.push(body_of(&d));
    }
    assert_eq!(got, vec![2, 5, 4, 1, 3, 0]);
    assert_eq!(q.message_count(), 0);
}

#[test]
fn drop_head_in_a_priority_queue_drops_the_next_message_to_deliver() {
    let mut q = queue_with(QueueArgs {
        max_priority: Some(5),
        max_length: Some(2),
        ..QueueArgs::default()
    });
    q.publish(prio(0, Some(1)), 0);
    q.publish(prio(1, Some(5)), 0);
    q.publish(prio(2, Some(1)), 0);
    assert_eq!(dead_bodies(&q.take_dead()), vec![(1, DeathReason::Maxlen)]);
    assert_eq!(bodies(&q), vec![0, 2]);
}
