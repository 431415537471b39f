//! TTL (`x-message-ttl`, `expiration`) and unused-queue expiry (`x-expires`), with time as
//! an argument.

use super::*;
use crate::args::QueueArgs;

fn ttl_queue(ttl_ms: u64) -> QueueState {
    queue_with(QueueArgs {
        message_ttl_ms: Some(ttl_ms),
        ..QueueArgs::default()
    })
}

fn expiring(n: u64, ms: u64) -> Arc<Message> {
    msg_with(n, |p| p.expiration = Some(ShortStr::from(ms.to_string())))
}

#[test]
fn queue_ttl_expires_messages_after_their_deadline_without_any_consumer() {
    let mut q = ttl_queue(100);
    q.publish(msg(0), 1_000);
    q.publish(msg(1), 1_050);
    assert_eq!(q.next_expiry_ms(), Some(1_100));
    q.expire(1_100);
    assert_eq!(
        q.message_count(),
        2,
        "live through the deadline's millisecond"
    );
    q.expire(1_101);
    assert_eq!(dead_bodies(&q.take_dead()), vec![(0, DeathReason::Expired)]);
    assert_eq!(q.next_expiry_ms(), Some(1_150));
    q.expire(5_000);
    assert_eq!(dead_bodies(&q.take_dead()), vec![(1, DeathReason::Expired)]);
    assert_eq!(
        (q.message_count(), q.ready_bytes(), q.next_expiry_ms()),
        (0, 0, None)
    );
}

#[test]
fn plain_queue_has_no_deadline_and_never_needs_the_time() {
    let mut q: QueueState = QueueState::new();
    assert!(!q.needs_time(&msg(0)));
    q.publish(msg(0), 0);
    assert_eq!(q.next_expiry_ms(), None);
    q.expire(u64::MAX);
    assert_eq!(q.message_count(), 1);
}

#[test]
fn message_expiration_and_queue_ttl_take_the_sooner() {
    let mut q = ttl_queue(1_000);
    assert!(q.needs_time(&msg(0)));
    q.publish(expiring(0, 10), 0);
    q.publish(expiring(1, 5_000), 0);
    let deadlines: Vec<u64> = q.ready_messages().map(|m| m.expires_at_ms).collect();
    assert_eq!(deadlines, vec![10, 1_000]);
    let mut plain: QueueState = QueueState::new();
    assert!(plain.needs_time(&expiring(0, 1)));
    plain.publish(expiring(0, 20), 100);
    assert_eq!(plain.next_expiry_ms(), Some(120));
}

#[test]
fn per_message_ttl_expires_only_at_the_head_as_rabbitmq_does() {
    let mut q: QueueState = QueueState::new();
    q.publish(msg(0), 0);
    q.publish(expiring(1, 10), 0);
    q.expire(1_000);
    assert_eq!(
        q.message_count(),
        2,
        "the expired message waits behind one without TTL"
    );
    // Once the head leaves, the expired message is dropped rather than handed out.
    let (d, _) = q.get(CH1, true).unwrap();
    assert_eq!(body_of(&d), 0);
    assert!(q.get(CH1, true).is_none());
    assert_eq!(dead_bodies(&q.take_dead()), vec![(1, DeathReason::Expired)]);
}

#[test]
fn expired_heads_are_skipped_when_dispatching() {
    let mut q: QueueState = QueueState::new();
    q.publish(msg(0), 0);
    q.publish(expiring(1, 10), 0);
    q.publish(msg(2), 0);
    q.expire(100);
    q.add_consumer(consumer(1, CH1, 0, false), "q").unwrap();
    let got: Vec<u64> = drain(&mut q).iter().map(|(_, d)| body_of(d)).collect();
    assert_eq!(got, vec![0, 2]);
    assert_eq!(dead_bodies(&q.take_dead()), vec![(1, DeathReason::Expired)]);
}

#[test]
fn zero_ttl_message_reaches_a_waiting_consumer_in_its_batch_or_expires() {
    let mut q = ttl_queue(0);
    q.add_consumer(consumer(1, CH1, 1, false), "q").unwrap();
    q.publish(msg(0), 500);
    q.publish(msg(1), 500);
    q.expire(500);
    assert_eq!(drain(&mut q).len(), 1, "the waiting consumer takes one");
    q.expire(501);
    assert_eq!(dead_bodies(&q.take_dead()), vec![(1, DeathReason::Expired)]);
}

#[test]
fn requeued_message_keeps_its_original_deadline() {
    let mut q = ttl_queue(100);
    q.publish(msg(0), 0);
    let (d, _) = q.get(CH1, false).unwrap();
    q.requeue(&[d.seq]);
    assert_eq!(q.next_expiry_ms(), Some(100));
}

#[test]
fn restored_messages_expire_from_their_enqueue_time() {
    let mut q = ttl_queue(1_000);
    q.restore(1, msg(0), false, 10_000, None);
    q.restore(2, msg(1), false, 12_000, None);
    q.expire(11_500);
    assert_eq!(dead_bodies(&q.take_dead()), vec![(0, DeathReason::Expired)]);
    assert_eq!(q.next_expiry_ms(), Some(13_000));
}

#[test]
fn unused_queue_expires_only_while_it_has_no_consumers() {
    let mut q = queue_with(QueueArgs {
        expires_ms: Some(1_000),
        ..QueueArgs::default()
    });
    q.touch(5_000);
    assert_eq!(q.unused_deadline_ms(), Some(6_000));
    q.add_consumer(consumer(1, CH1, 0, false), "q").unwrap();
    assert_eq!(q.unused_deadline_ms(), None);
    q.cancel_consumer(ConsumerId(1));
    q.touch(7_000);
    assert_eq!(q.unused_deadline_ms(), Some(8_000));
    let plain: QueueState = QueueState::new();
    assert_eq!(plain.unused_deadline_ms(), None);
}

#[test]
fn ttl_expiry_in_a_priority_queue_looks_at_every_priority_head() {
    let mut q = queue_with(QueueArgs {
        max_priority: Some(3),
        ..QueueArgs::default()
    });
    q.publish(msg_with(0, |p| p.priority = Some(3)), 0);
    q.publish(msg_with(1, |p| p.expiration = Some("5".into())), 0);
    assert_eq!(q.next_expiry_ms(), Some(5));
    q.expire(6);
    assert_eq!(dead_bodies(&q.take_dead()), vec![(1, DeathReason::Expired)]);
    assert_eq!(bodies(&q), vec![0]);
}
