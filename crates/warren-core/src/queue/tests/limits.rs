//! Length limits: `x-max-length`, `x-max-length-bytes` and the `x-overflow` modes.

use super::*;
use crate::args::{Overflow, QueueArgs};

fn limited(
    max_length: Option<u64>,
    max_length_bytes: Option<u64>,
    overflow: Overflow,
) -> QueueState {
    queue_with(QueueArgs {
        max_length,
        max_length_bytes,
        overflow,
        ..QueueArgs::default()
    })
}

fn sized(n: u64, len: usize) -> Arc<Message> {
    let mut m = (*msg(n)).clone();
    let mut body = n.to_be_bytes().to_vec();
    body.resize(len.max(8), b'x');
    m.body = Bytes::from(body);
    Arc::new(m)
}

#[test]
fn drop_head_drops_the_oldest_messages_with_reason_maxlen() {
    let mut q = limited(Some(2), None, Overflow::DropHead);
    for i in 0..5 {
        assert!(matches!(q.publish(msg(i), 0), Enqueued::Accepted(_)));
    }
    assert_eq!(bodies(&q), vec![3, 4]);
    let dead = dead_bodies(&q.take_dead());
    assert_eq!(
        dead,
        vec![
            (0, DeathReason::Maxlen),
            (1, DeathReason::Maxlen),
            (2, DeathReason::Maxlen)
        ]
    );
}

#[test]
fn max_length_bytes_counts_the_bodies_of_ready_messages() {
    // Bodies of 10, 10 and 8 bytes against 20: the first is dropped.
    let mut q = limited(None, Some(20), Overflow::DropHead);
    q.publish(sized(0, 10), 0);
    q.publish(sized(1, 10), 0);
    q.publish(sized(2, 8), 0);
    assert_eq!(bodies(&q), vec![1, 2]);
    assert_eq!(q.ready_bytes(), 18);
}

#[test]
fn a_message_larger_than_the_byte_limit_drops_itself() {
    let mut q = limited(None, Some(3), Overflow::DropHead);
    q.publish(sized(0, 8), 0);
    assert_eq!(q.message_count(), 0);
    assert_eq!(dead_bodies(&q.take_dead()), vec![(0, DeathReason::Maxlen)]);
}

#[test]
fn reject_publish_refuses_a_message_that_would_exceed_the_limit() {
    // As RabbitMQ 3.10 with a 10-byte limit accepts 8, refuses 8 more, accepts 1 more.
    let mut q = limited(None, Some(24), Overflow::RejectPublish);
    assert!(matches!(q.publish(sized(0, 16), 0), Enqueued::Accepted(_)));
    assert_eq!(q.publish(sized(1, 16), 0), Enqueued::Refused);
    assert!(matches!(q.publish(sized(2, 8), 0), Enqueued::Accepted(_)));
    assert!(!q.has_dead(), "reject-publish does not dead-letter");
    let mut by_count = limited(Some(1), None, Overflow::RejectPublish);
    by_count.publish(msg(0), 0);
    assert_eq!(by_count.publish(msg(1), 0), Enqueued::Refused);
    assert_eq!(bodies(&by_count), vec![0]);
}

#[test]
fn reject_publish_dlx_dead_letters_the_refused_message_with_reason_maxlen() {
    let mut q = limited(Some(1), None, Overflow::RejectPublishDlx);
    q.publish(msg(0), 0);
    assert_eq!(q.publish(msg(1), 0), Enqueued::Refused);
    let dead = q.take_dead();
    assert_eq!(dead_bodies(&dead), vec![(1, DeathReason::Maxlen)]);
    assert_eq!(dead[0].seq, None, "never enqueued");
}

#[test]
fn unacked_messages_do_not_count_against_the_limit() {
    let mut q = limited(Some(1), None, Overflow::RejectPublish);
    q.publish(msg(0), 0);
    let (d, _) = q.get(CH1, false).unwrap();
    assert!(matches!(q.publish(msg(1), 0), Enqueued::Accepted(_)));
    // A return may take a reject-publish queue over its limit (RabbitMQ keeps both).
    q.requeue(&[d.seq]);
    assert_eq!(bodies(&q), vec![0, 1]);
}

#[test]
fn a_return_over_the_limit_of_a_drop_head_queue_drops_the_head() {
    let mut q = limited(Some(1), None, Overflow::DropHead);
    q.publish(msg(0), 0);
    let (d, _) = q.get(CH1, false).unwrap();
    q.publish(msg(1), 0);
    q.requeue(&[d.seq]);
    assert_eq!(bodies(&q), vec![1]);
    assert_eq!(dead_bodies(&q.take_dead()), vec![(0, DeathReason::Maxlen)]);
}

#[test]
fn max_length_zero_keeps_nothing() {
    let mut q = limited(Some(0), None, Overflow::DropHead);
    q.publish(msg(0), 0);
    assert_eq!(q.message_count(), 0);
    let mut r = limited(Some(0), None, Overflow::RejectPublish);
    assert_eq!(r.publish(msg(0), 0), Enqueued::Refused);
}
