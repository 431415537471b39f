//! New settings while the queue runs (`QueueState::set_args`, what a policy change does).

use super::*;
use crate::args::{Overflow, QueueArgs};

#[test]
fn lower_max_length_drops_the_oldest_at_once_with_reason_maxlen() {
    let mut q = queue_with(QueueArgs::default());
    for i in 0..5 {
        q.publish(msg(i), 0);
    }
    q.set_args(QueueArgs {
        max_length: Some(2),
        ..QueueArgs::default()
    });
    assert_eq!(bodies(&q), vec![3, 4]);
    assert_eq!(
        dead_bodies(&q.take_dead()),
        vec![
            (0, DeathReason::Maxlen),
            (1, DeathReason::Maxlen),
            (2, DeathReason::Maxlen)
        ]
    );
}

#[test]
fn reject_publish_limit_keeps_what_is_queued_and_refuses_new_messages() {
    let mut q = queue_with(QueueArgs::default());
    for i in 0..3 {
        q.publish(msg(i), 0);
    }
    q.set_args(QueueArgs {
        max_length: Some(1),
        overflow: Overflow::RejectPublish,
        ..QueueArgs::default()
    });
    assert_eq!(bodies(&q), vec![0, 1, 2]);
    assert!(!q.has_dead());
    assert_eq!(q.publish(msg(3), 0), Enqueued::Refused);
    // The limit lifted: publishes are accepted again.
    q.set_args(QueueArgs::default());
    assert!(matches!(q.publish(msg(4), 0), Enqueued::Accepted(_)));
}

#[test]
fn new_ttl_applies_to_messages_published_after_it_only() {
    let mut q = queue_with(QueueArgs::default());
    q.publish(msg(0), 1_000);
    q.set_args(QueueArgs {
        message_ttl_ms: Some(10),
        ..QueueArgs::default()
    });
    q.publish(msg(1), 1_000);
    // The older message has no deadline: long after the TTL it is still there.
    q.expire(5_000);
    assert_eq!(bodies(&q), vec![0, 1]);
    let (first, _) = q.get(CH1, true).unwrap();
    assert_eq!(body_of(&first), 0);
    q.expire(5_000);
    assert_eq!(bodies(&q), Vec::<u64>::new());
    assert_eq!(dead_bodies(&q.take_dead()), vec![(1, DeathReason::Expired)]);
}
