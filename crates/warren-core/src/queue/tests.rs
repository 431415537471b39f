use super::state::*;
use super::*;
use warren_amqp::ShortStr;
use crate::args::QueueArgs;
use bytes::Bytes;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::{BTreeSet, HashMap, HashSet};
use warren_amqp::BasicProperties;

mod command_simulation;
mod consumer_order;
mod dead_letters;
mod limits;
mod machine;
mod paging;
mod policy_change;
mod priorities;
mod simulation;
mod ttl;

fn msg(n: u64) -> Arc<Message> {
    msg_with(n, |_| {})
}

/// A message whose body is `n`, with properties set by `props`.
fn msg_with(n: u64, props: impl FnOnce(&mut BasicProperties)) -> Arc<Message> {
    let mut properties = BasicProperties::default();
    props(&mut properties);
    Arc::new(Message {
        exchange: ShortStr::from(""),
        routing_key: ShortStr::from("q"),
        properties,
        properties_raw: Bytes::new(),
        body: Bytes::from(n.to_be_bytes().to_vec()),
    })
}

fn queue_with(args: QueueArgs) -> QueueState {
    QueueState::with_args(args)
}

fn bodies(q: &QueueState) -> Vec<u64> {
    q.ready_messages()
        .map(|r| u64::from_be_bytes(r.content.loaded().unwrap().body[..8].try_into().unwrap()))
        .collect()
}

fn dead_bodies(dead: &[Dead]) -> Vec<(u64, DeathReason)> {
    dead.iter()
        .map(|d| {
            (
                u64::from_be_bytes(d.content.loaded().unwrap().body[..8].try_into().unwrap()),
                d.reason,
            )
        })
        .collect()
}

fn body_of(d: &Delivery) -> u64 {
    u64::from_be_bytes(d.message.body[..8].try_into().unwrap())
}

/// The write window the server gives its consumers.
const WRITE_WINDOW: u32 = 4096;

const CH1: SessionId = SessionId(101);
const CH2: SessionId = SessionId(201);

fn consumer(id: u64, owner: SessionId, prefetch: u16, no_ack: bool) -> ConsumerSpec {
    ConsumerSpec {
        id: ConsumerId(id),
        tag: ShortStr::from(format!("c{id}")),
        session: owner,
        no_ack,
        prefetch,
        exclusive: false,
        priority: 0,
        window: WRITE_WINDOW,
        session_credit: None,
    }
}

fn drain(q: &mut QueueState) -> Vec<(u64, Delivery)> {
    let mut out = Vec::new();
    q.dispatch(|c, d| out.push((c.id.0, d)));
    out
}

#[test]
fn messages_are_delivered_in_fifo_order() {
    let mut q = QueueState::new();
    for i in 0..10 {
        q.publish(msg(i), 0);
    }
    q.add_consumer(consumer(1, CH1, 0, false), "queue 'q'")
        .unwrap();
    let got: Vec<u64> = drain(&mut q).iter().map(|(_, d)| body_of(d)).collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[test]
fn competing_consumers_are_served_round_robin() {
    let mut q = QueueState::new();
    q.add_consumer(consumer(1, CH1, 0, false), "q").unwrap();
    q.add_consumer(consumer(2, CH2, 0, false), "q").unwrap();
    for i in 0..6 {
        q.publish(msg(i), 0);
    }
    let who: Vec<u64> = drain(&mut q).iter().map(|(c, _)| *c).collect();
    assert_eq!(who, vec![1, 2, 1, 2, 1, 2]);
}

#[test]
fn prefetch_limits_unacked_deliveries_until_ack() {
    let mut q = QueueState::new();
    q.add_consumer(consumer(1, CH1, 2, false), "q").unwrap();
    for i in 0..5 {
        q.publish(msg(i), 0);
    }
    let first = drain(&mut q);
    assert_eq!(first.len(), 2);
    assert!(drain(&mut q).is_empty());
    q.ack(&[first[0].1.seq], |_| {});
    assert_eq!(drain(&mut q).len(), 1);
}

#[test]
fn session_credit_limits_a_consumer_and_is_reported_wanted_once() {
    let mut q = QueueState::new();
    let a = ConsumerSpec {
        session_credit: Some(2),
        ..consumer(1, CH1, 0, false)
    };
    q.add_consumer(a, "q").unwrap();
    for i in 0..10 {
        q.publish(msg(i), 0);
    }
    assert_eq!(drain(&mut q).len(), 2);
    assert_eq!(q.credit_wanted(), vec![(CH1, ConsumerId(1))]);
    assert_eq!(q.credit_wanted(), vec![], "reported once per starvation");
    q.grant(ConsumerId(1), Grant::Add(1));
    assert_eq!(drain(&mut q).len(), 1);
    assert_eq!(q.credit_wanted(), vec![(CH1, ConsumerId(1))]);
    q.grant(ConsumerId(1), Grant::Add(5));
    q.grant(ConsumerId(1), Grant::Unlimited);
    assert_eq!(drain(&mut q).len(), 7);
}

#[test]
fn reclaim_gives_back_unused_session_credit() {
    let mut q = QueueState::new();
    let a = ConsumerSpec {
        session_credit: Some(5),
        ..consumer(1, CH1, 0, false)
    };
    q.add_consumer(a, "q").unwrap();
    q.publish(msg(0), 0);
    assert_eq!(drain(&mut q).len(), 1);
    assert_eq!(q.grant(ConsumerId(1), Grant::Reclaim), Some((CH1, 4)));
    q.publish(msg(1), 0);
    assert!(drain(&mut q).is_empty());
}

#[test]
fn no_ack_consumers_ignore_session_credit() {
    let mut q = QueueState::new();
    let a = ConsumerSpec {
        session_credit: Some(0),
        ..consumer(1, CH1, 0, true)
    };
    q.add_consumer(a, "q").unwrap();
    q.publish(msg(0), 0);
    assert_eq!(drain(&mut q).len(), 1);
    assert!(q.credit_wanted().is_empty());
}

#[test]
fn no_ack_consumer_is_bounded_by_write_window_and_resumes_on_credit() {
    let mut q = QueueState::new();
    q.add_consumer(consumer(1, CH1, 0, true), "q").unwrap();
    for i in 0..(WRITE_WINDOW as u64 + 10) {
        q.publish(msg(i), 0);
    }
    assert_eq!(drain(&mut q).len(), WRITE_WINDOW as usize);
    assert_eq!(q.unacked_count(), 0);
    q.written(ConsumerId(1), 5);
    assert_eq!(drain(&mut q).len(), 5);
}

#[test]
fn requeued_messages_return_to_their_original_place_marked_redelivered() {
    let mut q = QueueState::new();
    q.add_consumer(consumer(1, CH1, 3, false), "q").unwrap();
    for i in 0..6 {
        q.publish(msg(i), 0);
    }
    let first = drain(&mut q);
    let seqs: Vec<Seq> = first.iter().map(|(_, d)| d.seq).collect();
    q.cancel_consumer(ConsumerId(1));
    q.requeue(&[seqs[2], seqs[0]]);
    q.add_consumer(consumer(2, CH1, 0, false), "q").unwrap();
    let got: Vec<(u64, bool)> = drain(&mut q)
        .iter()
        .map(|(_, d)| (body_of(d), d.redelivered))
        .collect();
    assert_eq!(
        got,
        vec![(0, true), (2, true), (3, false), (4, false), (5, false)]
    );
}

#[test]
fn closing_a_channel_requeues_its_deliveries_in_order_and_removes_its_consumers() {
    let mut q = QueueState::new();
    q.add_consumer(consumer(1, CH1, 0, false), "q").unwrap();
    for i in 0..4 {
        q.publish(msg(i), 0);
    }
    drain(&mut q);
    q.get(CH2, false); // nothing left for get; holds nothing
    let removed = q.session_closed(CH1);
    assert_eq!(removed.len(), 1);
    assert_eq!(q.consumer_count(), 0);
    assert_eq!(q.message_count(), 4);
    q.add_consumer(consumer(2, CH2, 0, false), "q").unwrap();
    let got: Vec<(u64, bool)> = drain(&mut q)
        .iter()
        .map(|(_, d)| (body_of(d), d.redelivered))
        .collect();
    assert_eq!(got, vec![(0, true), (1, true), (2, true), (3, true)]);
}

#[test]
fn exclusive_consumer_excludes_others_both_ways() {
    let mut q = QueueState::new();
    let mut ex = consumer(1, CH1, 0, false);
    ex.exclusive = true;
    q.add_consumer(ex, "queue 'q' in vhost '/'").unwrap();
    let err = q
        .add_consumer(consumer(2, CH2, 0, false), "queue 'q' in vhost '/'")
        .unwrap_err();
    assert_eq!(
        err.reply_text(),
        "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use"
    );

    let mut q2 = QueueState::new();
    q2.add_consumer(consumer(1, CH1, 0, false), "q").unwrap();
    let mut ex = consumer(2, CH2, 0, false);
    ex.exclusive = true;
    assert!(q2.add_consumer(ex, "q").is_err());
}

#[test]
fn restored_messages_keep_their_numbers_and_publishing_continues_after_them() {
    let mut q: QueueState = QueueState::new();
    q.restore(5, msg(0), true, 0, None);
    q.restore(9, msg(1), false, 0, None);
    let seq = q.publish(msg(2), 0);
    assert_eq!(seq, Enqueued::Accepted(10));
    let (d, _) = q.get(CH1, true).unwrap();
    assert_eq!((d.seq, d.redelivered), (5, true));
}

#[test]
fn get_reports_remaining_count_and_purge_keeps_unacked() {
    let mut q: QueueState = QueueState::new();
    for i in 0..3 {
        q.publish(msg(i), 0);
    }
    let (d, remaining) = q.get(CH1, false).unwrap();
    assert_eq!((body_of(&d), remaining), (0, 2));
    assert_eq!(q.purge(|_| {}), 2);
    assert_eq!(q.unacked_count(), 1);
    q.requeue(&[d.seq]);
    assert_eq!(q.message_count(), 1);
}

/// Random publish / consume / ack / requeue / cancel / channel-close sequences, checking:
/// nothing is lost or duplicated, no message is held by two consumers at once, and each
/// consumer sees never-redelivered messages in increasing order (FIFO apart from requeues).
#[test]
fn simulation_preserves_messages_and_order() {
    for seed in 0..200u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut q: QueueState = QueueState::new();
        let owners = [
            CH1,
            CH2,
            SessionId(307),
        ];
        let mut next_msg = 0u64;
        let mut next_consumer = 1u64;
        let mut live: Vec<(ConsumerId, SessionId)> = Vec::new();
        let mut held: HashMap<Seq, (u64, SessionId)> = HashMap::new(); // seq -> (msg, owner)
        let mut acked: HashSet<u64> = HashSet::new();
        let mut last_fresh: HashMap<u64, u64> = HashMap::new();
        for _ in 0..400 {
            match rng.gen_range(0..7) {
                0 | 1 => {
                    q.publish(msg(next_msg), 0);
                    next_msg += 1;
                }
                2 => {
                    let owner = owners[rng.gen_range(0..owners.len())];
                    let id = next_consumer;
                    next_consumer += 1;
                    q.add_consumer(consumer(id, owner, rng.gen_range(0..4), false), "q")
                        .unwrap();
                    live.push((ConsumerId(id), owner));
                }
                3 if !live.is_empty() => {
                    let (id, _) = live.remove(rng.gen_range(0..live.len()));
                    q.cancel_consumer(id);
                }
                4 if !held.is_empty() => {
                    let seqs: Vec<Seq> =
                        held.keys().copied().filter(|_| rng.gen_bool(0.5)).collect();
                    if rng.gen_bool(0.5) {
                        q.ack(&seqs, |_| {});
                        for s in &seqs {
                            let (m, _) = held.remove(s).unwrap();
                            assert!(acked.insert(m), "seed {seed}: message {m} acked twice");
                        }
                    } else {
                        q.requeue(&seqs);
                        for s in &seqs {
                            held.remove(s);
                        }
                    }
                }
                5 => {
                    let owner = owners[rng.gen_range(0..owners.len())];
                    q.session_closed(owner);
                    live.retain(|(_, o)| *o != owner);
                    held.retain(|_, (_, o)| *o != owner);
                }
                _ => {}
            }
            let mut out = Vec::new();
            q.dispatch(|c, d| out.push((c.id.0, c.session, d)));
            for (c, owner, d) in out {
                let m = body_of(&d);
                assert!(
                    !acked.contains(&m),
                    "seed {seed}: acked message {m} delivered again"
                );
                assert!(
                    held.insert(d.seq, (m, owner)).is_none(),
                    "seed {seed}: {m} held twice"
                );
                if !d.redelivered {
                    let last = last_fresh.insert(c, m);
                    assert!(
                        last.is_none_or(|l| l < m),
                        "seed {seed}: fresh messages out of order"
                    );
                }
                q.written(ConsumerId(c), 1);
            }
        }
        // Everything published is acked, held, or ready: nothing lost.
        let total = acked.len() + held.len() + q.message_count();
        assert_eq!(
            total as u64, next_msg,
            "seed {seed}: messages lost or duplicated"
        );
        let mut all: BTreeSet<u64> = acked.iter().copied().collect();
        all.extend(held.values().map(|(m, _)| *m));
        assert_eq!(all.len(), acked.len() + held.len());
    }
}
