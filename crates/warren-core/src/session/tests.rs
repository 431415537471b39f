use super::*;

type Q = &'static str;

fn sub(id: u64, tag: &'static str, queue: Q, no_ack: bool) -> Subscription<Q> {
    Subscription {
        id: ConsumerId(id),
        tag: ShortStr::from(tag),
        queue,
        no_ack,
    }
}

/// A session with consumer 1 on `a` and 2 on `b`, both manual ack.
fn two_consumers() -> Subscriptions<Q> {
    let mut s = Subscriptions::new();
    for (id, tag, q) in [(1, "c1", "a"), (2, "c2", "b")] {
        s.initial_credit(ConsumerId(id), &q, false);
        s.subscribed(sub(id, tag, q, false));
    }
    s
}

#[test]
fn delivery_numbers_count_up_and_settle_back_to_queue_and_seq() {
    let mut s = two_consumers();
    assert_eq!(s.delivered(ConsumerId(1), 10), Some(1));
    assert_eq!(s.delivered(ConsumerId(2), 20), Some(2));
    assert_eq!(s.delivered(ConsumerId(1), 11), Some(3));
    s.settle(2, false, Settlement::Ack).unwrap();
    assert_eq!(s.take_settlements(), vec![("b", Settlement::Ack, vec![20])]);
    assert_eq!(s.unsettled_count(), 2);
}

#[test]
fn multiple_settles_everything_up_to_the_tag_grouped_per_queue() {
    let mut s = two_consumers();
    for (c, seq) in [(1, 10), (2, 20), (1, 11), (2, 21)] {
        s.delivered(ConsumerId(c), seq);
    }
    s.settle(3, true, Settlement::Requeue).unwrap();
    assert_eq!(
        s.take_settlements(),
        vec![
            ("a", Settlement::Requeue, vec![10, 11]),
            ("b", Settlement::Requeue, vec![20])
        ]
    );
    s.settle(0, true, Settlement::Ack).unwrap();
    assert_eq!(s.take_settlements(), vec![("b", Settlement::Ack, vec![21])]);
    assert_eq!(s.unsettled_count(), 0);
}

#[test]
fn settling_an_unknown_or_settled_tag_is_an_error_even_with_multiple() {
    let mut s = two_consumers();
    s.delivered(ConsumerId(1), 10);
    s.delivered(ConsumerId(1), 11);
    s.settle(1, false, Settlement::Ack).unwrap();
    assert_eq!(s.settle(1, false, Settlement::Ack), Err(UnknownDelivery(1)));
    assert_eq!(s.settle(7, true, Settlement::Ack), Err(UnknownDelivery(7)));
    // Nothing was settled by the failed calls.
    s.take_settlements();
    s.settle(2, true, Settlement::Discard).unwrap();
    assert_eq!(s.take_settlements(), vec![("a", Settlement::Discard, vec![11])]);
}

#[test]
fn no_ack_deliveries_and_gets_without_ack_are_not_held() {
    let mut s = Subscriptions::new();
    s.initial_credit(ConsumerId(1), &"a", true);
    s.subscribed(sub(1, "c1", "a", true));
    assert_eq!(s.delivered(ConsumerId(1), 1), Some(1));
    assert_eq!(s.got(&"a", 2, true), 2);
    assert_eq!(s.got(&"a", 3, false), 3);
    assert_eq!(s.unsettled_count(), 1);
    assert_eq!(s.settle(1, false, Settlement::Ack), Err(UnknownDelivery(1)));
}

#[test]
fn deliveries_to_a_cancelled_consumer_are_refused_but_its_held_ones_settle() {
    let mut s = two_consumers();
    s.delivered(ConsumerId(1), 10);
    assert!(s.unsubscribe("c1").is_some());
    assert_eq!(s.delivered(ConsumerId(1), 11), None);
    s.settle(1, false, Settlement::Ack).unwrap();
    assert_eq!(s.take_settlements(), vec![("a", Settlement::Ack, vec![10])]);
}

#[test]
fn close_forgets_everything_and_names_each_queue_touched_once() {
    let mut s = two_consumers();
    s.delivered(ConsumerId(1), 10);
    s.got(&"c", 1, false);
    s.got(&"a", 2, false);
    assert_eq!(s.close(), vec!["a", "b", "c"]);
    assert_eq!(s.unsettled_count(), 0);
    assert!(s.consumers().next().is_none());
}

#[test]
fn shared_prefetch_is_never_exceeded_across_queues() {
    let mut s = Subscriptions::new();
    s.set_shared_limit(3);
    assert_eq!(s.initial_credit(ConsumerId(1), &"a", false), Some(3));
    s.subscribed(sub(1, "c1", "a", false));
    // The second consumer joins with nothing free.
    assert_eq!(s.initial_credit(ConsumerId(2), &"b", false), Some(0));
    s.subscribed(sub(2, "c2", "b", false));
    // Queue b has messages: its consumer wants credit; a holds it unused, so it is asked back.
    s.credit_wanted(ConsumerId(2));
    assert_eq!(s.take_grants(), vec![("a", ConsumerId(1), Grant::Reclaim)]);
    // Meanwhile a delivered one; it gives back the other two.
    s.delivered(ConsumerId(1), 1);
    s.credit_returned(ConsumerId(1), 2);
    assert_eq!(s.take_grants(), vec![("b", ConsumerId(2), Grant::Add(2))]);
    s.delivered(ConsumerId(2), 1);
    s.delivered(ConsumerId(2), 2);
    // Three outstanding: nothing left to grant.
    s.credit_wanted(ConsumerId(1));
    s.credit_wanted(ConsumerId(2));
    assert_eq!(s.take_grants(), vec![]);
    // Each settlement frees one, shared in turn.
    s.settle(1, false, Settlement::Ack).unwrap();
    s.settle(2, false, Settlement::Ack).unwrap();
    let grants = s.take_grants();
    assert_eq!(grants.len(), 2);
    let total: u32 = grants
        .iter()
        .map(|(_, _, g)| match g {
            Grant::Add(n) => *n,
            _ => 0,
        })
        .sum();
    assert_eq!(total, 2);
    assert!(grants.iter().any(|(q, _, _)| *q == "a"));
    assert!(grants.iter().any(|(q, _, _)| *q == "b"));
}

#[test]
fn shared_prefetch_set_after_consumers_exist_limits_them_and_unset_frees_them() {
    let mut s = two_consumers();
    assert_eq!(s.initial_credit(ConsumerId(3), &"c", true), None);
    s.set_shared_limit(1);
    assert_eq!(
        s.take_grants(),
        vec![
            ("a", ConsumerId(1), Grant::Limit),
            ("b", ConsumerId(2), Grant::Limit)
        ]
    );
    s.credit_wanted(ConsumerId(2));
    assert_eq!(s.take_grants(), vec![("b", ConsumerId(2), Grant::Add(1))]);
    s.set_shared_limit(0);
    assert_eq!(
        s.take_grants(),
        vec![
            ("a", ConsumerId(1), Grant::Unlimited),
            ("b", ConsumerId(2), Grant::Unlimited)
        ]
    );
}

#[test]
fn a_consumer_leaving_takes_its_credit_with_it() {
    let mut s = Subscriptions::new();
    s.set_shared_limit(2);
    assert_eq!(s.initial_credit(ConsumerId(1), &"a", false), Some(2));
    s.subscribed(sub(1, "c1", "a", false));
    s.unsubscribe("c1");
    assert_eq!(s.initial_credit(ConsumerId(2), &"b", false), Some(2));
}

#[test]
fn a_transaction_hands_back_publishes_then_settlements_and_rollback_drops_them() {
    let mut tx: Transaction<&str> = Transaction::new();
    tx.publish("m1");
    tx.settle(1, true, Settlement::Ack);
    tx.publish("m2");
    let (publishes, settles) = tx.commit();
    assert_eq!(publishes, vec!["m1", "m2"]);
    assert_eq!(
        settles,
        vec![TxSettle {
            tag: 1,
            multiple: true,
            how: Settlement::Ack
        }]
    );
    assert!(tx.is_empty(), "commit starts the next transaction");
    tx.publish("m3");
    tx.rollback();
    assert!(tx.is_empty());
}
