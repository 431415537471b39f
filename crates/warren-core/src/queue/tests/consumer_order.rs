//! Single active consumer and consumer priorities.

use super::*;
use crate::args::QueueArgs;

fn with_priority(id: u64, owner: SessionId, prefetch: u16, priority: i64) -> ConsumerSpec {
    ConsumerSpec {
        priority,
        ..consumer(id, owner, prefetch, false)
    }
}

#[test]
fn single_active_consumer_receives_everything_and_the_next_takes_over_in_order() {
    let mut q = queue_with(QueueArgs {
        single_active_consumer: true,
        ..QueueArgs::default()
    });
    q.add_consumer(consumer(1, CH1, 0, false), "q").unwrap();
    q.add_consumer(consumer(2, CH2, 0, false), "q").unwrap();
    q.add_consumer(consumer(3, CH2, 0, false), "q").unwrap();
    for i in 0..4 {
        q.publish(msg(i), 0);
    }
    assert!(drain(&mut q).iter().all(|(c, _)| *c == 1));
    q.cancel_consumer(ConsumerId(1));
    q.publish(msg(4), 0);
    assert_eq!(
        drain(&mut q).iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        vec![2]
    );
}

#[test]
fn single_active_consumer_without_credit_holds_messages_back_from_the_others() {
    let mut q = queue_with(QueueArgs {
        single_active_consumer: true,
        ..QueueArgs::default()
    });
    q.add_consumer(consumer(1, CH1, 1, false), "q").unwrap();
    q.add_consumer(consumer(2, CH2, 0, false), "q").unwrap();
    for i in 0..3 {
        q.publish(msg(i), 0);
    }
    let first = drain(&mut q);
    assert_eq!(first.len(), 1);
    // The active consumer's channel closes: its message comes back and the next consumer
    // gets everything, in order.
    q.session_closed(CH1);
    let got: Vec<(u64, u64)> = drain(&mut q)
        .iter()
        .map(|(c, d)| (*c, body_of(d)))
        .collect();
    assert_eq!(got, vec![(2, 0), (2, 1), (2, 2)]);
}

#[test]
fn higher_priority_consumers_get_messages_while_they_have_credit() {
    let mut q: QueueState = QueueState::new();
    q.add_consumer(with_priority(1, CH1, 0, 0), "q").unwrap();
    q.add_consumer(with_priority(2, CH2, 2, 10), "q").unwrap();
    for i in 0..5 {
        q.publish(msg(i), 0);
    }
    let who: Vec<u64> = drain(&mut q).iter().map(|(c, _)| *c).collect();
    assert_eq!(
        who,
        vec![2, 2, 1, 1, 1],
        "the high-priority consumer until its prefetch is full"
    );
}

#[test]
fn consumers_of_equal_priority_share_round_robin() {
    let mut q: QueueState = QueueState::new();
    q.add_consumer(with_priority(1, CH1, 0, 5), "q").unwrap();
    q.add_consumer(with_priority(2, CH2, 0, 5), "q").unwrap();
    q.add_consumer(with_priority(3, CH2, 0, -1), "q").unwrap();
    for i in 0..4 {
        q.publish(msg(i), 0);
    }
    let who: Vec<u64> = drain(&mut q).iter().map(|(c, _)| *c).collect();
    assert_eq!(who, vec![1, 2, 1, 2]);
}

#[test]
fn priority_consumers_without_session_credit_yield_to_lower_ones() {
    let mut q: QueueState = QueueState::new();
    let mut high = with_priority(1, CH1, 0, 3);
    high.session_credit = Some(1);
    q.add_consumer(high, "q").unwrap();
    q.add_consumer(with_priority(2, CH2, 0, 0), "q").unwrap();
    for i in 0..3 {
        q.publish(msg(i), 0);
    }
    let who: Vec<u64> = drain(&mut q).iter().map(|(c, _)| *c).collect();
    assert_eq!(who, vec![1, 2, 2]);
}
