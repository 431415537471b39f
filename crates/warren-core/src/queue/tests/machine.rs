//! The queue as commands in, effects out: what the log records, which confirms wait for it,
//! dead letters, paging requests, session credit, and the queue's end.

use super::*;
use crate::args::{DeadLetterTarget, Overflow};

fn machine(durable: bool, args: QueueArgs) -> QueueMachine {
    QueueMachine::new(QueueConfig {
        name: ShortStr::from("q"),
        vhost: "/".into(),
        durable,
        auto_delete: false,
        args,
    })
}

fn persistent(n: u64) -> Arc<Message> {
    msg_with(n, |p| p.delivery_mode = Some(2))
}

fn enqueue(m: &mut QueueMachine, messages: Vec<(Arc<Message>, Option<u64>)>) -> Vec<Effect> {
    let batch = messages
        .into_iter()
        .map(|(message, c)| Incoming {
            message,
            confirm: c.map(ConfirmId),
        })
        .collect();
    m.apply(0, Command::Enqueue(batch));
    m.take_effects()
}

fn consume(m: &mut QueueMachine, id: u64, session: SessionId, no_ack: bool) -> Vec<Effect> {
    let reply = m.apply(0, Command::Consume(consumer(id, session, 0, no_ack)));
    assert!(matches!(reply, Reply::Consumed(Ok(()))));
    m.take_effects()
}

fn delivered(effects: &[Effect]) -> Vec<(u64, Seq)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver {
                consumer, delivery, ..
            } => Some((consumer.0, delivery.seq)),
            _ => None,
        })
        .collect()
}

#[test]
fn persistent_publish_to_a_durable_queue_is_confirmed_with_its_log_append() {
    let mut m = machine(true, QueueArgs::default());
    let effects = enqueue(&mut m, vec![(persistent(1), Some(7)), (msg(2), Some(8))]);
    assert!(matches!(
        &effects[..],
        [
            Effect::Append {
                seq: 1,
                confirm: Some(ConfirmId(7)),
                enqueued_ms: None,
                ..
            },
            Effect::Confirm {
                id: ConfirmId(8),
                ok: true
            }
        ]
    ));
}

#[test]
fn a_transient_queue_confirms_persistent_messages_at_once_and_logs_nothing() {
    let mut m = machine(false, QueueArgs::default());
    let effects = enqueue(&mut m, vec![(persistent(1), Some(1))]);
    assert!(matches!(
        &effects[..],
        [Effect::Confirm {
            id: ConfirmId(1),
            ok: true
        }]
    ));
    assert!(!m.answers_confirm(&persistent(2)));
}

#[test]
fn a_refused_publish_is_nacked_and_answers_confirm_says_so_beforehand() {
    let mut m = machine(
        false,
        QueueArgs {
            max_length: Some(1),
            overflow: Overflow::RejectPublish,
            ..QueueArgs::default()
        },
    );
    assert!(m.answers_confirm(&msg(0)), "a queue that may refuse answers every confirm");
    let effects = enqueue(&mut m, vec![(msg(1), Some(1)), (msg(2), Some(2))]);
    assert!(matches!(
        &effects[..],
        [
            Effect::Confirm {
                id: ConfirmId(1),
                ok: true
            },
            Effect::Confirm {
                id: ConfirmId(2),
                ok: false
            }
        ]
    ));
}

#[test]
fn a_ttl_keeps_the_enqueue_time_in_the_log() {
    let mut m = machine(
        true,
        QueueArgs {
            message_ttl_ms: Some(1000),
            ..QueueArgs::default()
        },
    );
    m.apply(
        42,
        Command::Enqueue(vec![Incoming {
            message: persistent(1),
            confirm: None,
        }]),
    );
    assert!(matches!(
        &m.take_effects()[..],
        [Effect::Append {
            enqueued_ms: Some(42),
            ..
        }]
    ));
}

#[test]
fn deliveries_acks_and_no_ack_deliveries_are_recorded_in_the_log() {
    let mut m = machine(true, QueueArgs::default());
    enqueue(&mut m, (1..=3).map(|i| (persistent(i), None)).collect());
    let effects = consume(&mut m, 1, CH1, false);
    assert_eq!(delivered(&effects), vec![(1, 1), (1, 2), (1, 3)]);
    assert!(matches!(effects.last(), Some(Effect::LogDelivered(s)) if s == &[1, 2, 3]));
    m.apply(
        0,
        Command::Settle {
            seqs: vec![1, 3],
            how: Settlement::Ack,
        },
    );
    assert!(matches!(&m.take_effects()[..], [Effect::LogAck(s)] if s == &[1, 3]));
    // A redelivery is not marked again; a no-ack delivery is gone at once.
    m.apply(0, Command::SessionClosed(CH1));
    m.take_effects();
    let effects = consume(&mut m, 2, CH2, true);
    assert_eq!(delivered(&effects), vec![(2, 2)]);
    assert!(matches!(effects.last(), Some(Effect::LogAck(s)) if s == &[2]));
}

#[test]
fn a_duplicate_is_dropped_and_its_confirm_is_an_ack() {
    let mut m = machine(
        false,
        QueueArgs {
            deduplication: true,
            ..QueueArgs::default()
        },
    );
    let keyed = |n| {
        msg_with(n, |p| {
            let mut h = warren_amqp::FieldTable::new();
            h.insert("x-deduplication-header", warren_amqp::FieldValue::string("k"));
            p.headers = Some(h);
        })
    };
    enqueue(&mut m, vec![(keyed(1), None)]);
    let effects = enqueue(&mut m, vec![(keyed(2), Some(5))]);
    assert!(matches!(
        &effects[..],
        [Effect::Confirm {
            id: ConfirmId(5),
            ok: true
        }]
    ));
    assert_eq!(m.message_count(), 1);
    // The key is free once its message leaves.
    consume(&mut m, 1, CH1, true);
    enqueue(&mut m, vec![(keyed(3), None)]);
    assert_eq!(m.message_count(), 0, "delivered at once to the no-ack consumer");
}

#[test]
fn a_rejected_message_goes_to_the_dead_letter_exchange_then_leaves_the_log() {
    let mut m = machine(
        true,
        QueueArgs {
            dead_letter: Some(DeadLetterTarget {
                exchange: ShortStr::from("dlx"),
                routing_key: None,
            }),
            ..QueueArgs::default()
        },
    );
    enqueue(&mut m, vec![(persistent(1), None)]);
    consume(&mut m, 1, CH1, false);
    m.apply(
        5_000,
        Command::Settle {
            seqs: vec![1],
            how: Settlement::Discard,
        },
    );
    let effects = m.take_effects();
    let Effect::DeadLetter(d) = &effects[0] else {
        panic!("{effects:?}")
    };
    assert_eq!(d.reason, DeathReason::Rejected);
    assert_eq!(d.now_ms, 5_000);
    let again = d.republished(d.content.loaded().unwrap(), "q");
    assert_eq!(again.exchange.as_str(), "dlx");
    assert!(matches!(&effects[1..], [Effect::LogAck(s)] if s == &[1]));
}

#[test]
fn past_the_budget_new_messages_are_paged_out_and_read_back_before_delivery() {
    let mut m = machine(false, QueueArgs::default());
    m.apply(0, Command::SetMemoryBudget(msg(0).footprint()));
    let effects = enqueue(&mut m, vec![(msg(1), None), (msg(2), None)]);
    let Some(Effect::PageOut { seq: 2, in_log, .. }) = effects.last() else {
        panic!("{effects:?}")
    };
    assert!(!in_log);
    assert!(matches!(
        m.apply(
            0,
            Command::PagedOut {
                seq: 2,
                priority: 0,
                place: 99
            }
        ),
        Reply::PagedOut(true)
    ));
    let effects = consume(&mut m, 1, CH1, true);
    assert_eq!(delivered(&effects), vec![(1, 1)]);
    let Some(Effect::ReadBack(ahead)) = effects.last() else {
        panic!("{effects:?}")
    };
    assert_eq!(ahead.len(), 1);
    assert_eq!(ahead[0].1.place, 99);
    m.apply(0, Command::Loaded(vec![(2, ahead[0].1, Some(msg(2)))]));
    assert_eq!(delivered(&m.take_effects()), vec![(1, 2)]);
}

#[test]
fn a_message_that_leaves_before_its_page_out_is_answered_false() {
    let mut m = machine(false, QueueArgs::default());
    m.apply(0, Command::SetMemoryBudget(0));
    consume(&mut m, 1, CH1, true);
    enqueue(&mut m, vec![(msg(1), None)]);
    let reply = m.apply(
        0,
        Command::PagedOut {
            seq: 1,
            priority: 0,
            place: 3,
        },
    );
    assert!(matches!(reply, Reply::PagedOut(false)));
}

#[test]
fn a_session_limited_consumer_asks_for_credit_and_gives_it_back_when_asked() {
    let mut m = machine(false, QueueArgs::default());
    let spec = ConsumerSpec {
        session_credit: Some(1),
        ..consumer(1, CH1, 0, false)
    };
    m.apply(0, Command::Consume(spec));
    let effects = enqueue(&mut m, (1..=3).map(|i| (msg(i), None)).collect());
    assert_eq!(delivered(&effects), vec![(1, 1)]);
    assert!(matches!(
        effects.last(),
        Some(Effect::CreditWanted {
            consumer: ConsumerId(1),
            ..
        })
    ));
    m.apply(
        0,
        Command::Grant {
            consumer: ConsumerId(1),
            grant: Grant::Add(5),
        },
    );
    assert_eq!(delivered(&m.take_effects()), vec![(1, 2), (1, 3)]);
    m.apply(
        0,
        Command::Grant {
            consumer: ConsumerId(1),
            grant: Grant::Reclaim,
        },
    );
    assert!(matches!(
        &m.take_effects()[..],
        [Effect::CreditReturned { n: 3, .. }]
    ));
}

#[test]
fn an_auto_delete_queue_goes_with_its_last_consumer_and_cancels_nobody() {
    let mut m = QueueMachine::new(QueueConfig {
        name: ShortStr::from("q"),
        vhost: "/".into(),
        durable: false,
        auto_delete: true,
        args: QueueArgs::default(),
    });
    consume(&mut m, 1, CH1, false);
    consume(&mut m, 2, CH2, false);
    m.apply(0, Command::Cancel(ConsumerId(1)));
    assert!(m.take_effects().is_empty());
    m.apply(0, Command::SessionClosed(CH2));
    assert!(matches!(&m.take_effects()[..], [Effect::Deleted]));
    assert!(m.is_deleted());
}

#[test]
fn delete_cancels_the_consumers_and_later_commands_find_the_queue_gone() {
    let mut m = machine(false, QueueArgs::default());
    enqueue(&mut m, vec![(msg(1), None), (msg(2), None)]);
    consume(&mut m, 1, CH1, false);
    let reply = m.apply(
        0,
        Command::Delete {
            if_unused: false,
            if_empty: false,
        },
    );
    assert!(matches!(reply, Reply::Deleted(Ok(0))), "both were delivered");
    assert!(matches!(
        &m.take_effects()[..],
        [
            Effect::ConsumerCancelled {
                consumer: ConsumerId(1),
                ..
            },
            Effect::Deleted
        ]
    ));
    assert!(matches!(m.apply(0, Command::Declared), Reply::Gone));
    let effects = enqueue(&mut m, vec![(msg(3), Some(4))]);
    assert!(matches!(
        &effects[..],
        [Effect::Confirm {
            id: ConfirmId(4),
            ok: true
        }]
    ));
}

#[test]
fn delete_if_unused_or_if_empty_refuses_with_rabbitmq_texts() {
    let mut m = machine(false, QueueArgs::default());
    enqueue(&mut m, vec![(msg(1), None)]);
    let Reply::Deleted(Err(e)) = m.apply(
        0,
        Command::Delete {
            if_unused: false,
            if_empty: true,
        },
    ) else {
        panic!()
    };
    assert_eq!(e.reply_text(), "PRECONDITION_FAILED - queue 'q' in vhost '/' not empty");
    consume(&mut m, 1, CH1, false);
    let Reply::Deleted(Err(e)) = m.apply(
        0,
        Command::Delete {
            if_unused: true,
            if_empty: false,
        },
    ) else {
        panic!()
    };
    assert_eq!(e.reply_text(), "PRECONDITION_FAILED - queue 'q' in vhost '/' in use");
}

#[test]
fn an_unused_queue_expires_on_the_tick_after_its_deadline() {
    let mut m = machine(
        false,
        QueueArgs {
            expires_ms: Some(100),
            ..QueueArgs::default()
        },
    );
    m.apply(1_000, Command::Declared);
    assert_eq!(m.next_deadline_ms(), Some(1_100));
    m.apply(1_099, Command::Tick);
    assert!(!m.is_deleted());
    m.apply(1_100, Command::Tick);
    assert!(m.is_deleted());
}
