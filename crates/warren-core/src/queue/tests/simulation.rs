//! Seeded simulation of queues with arguments: random publishes (with priorities and
//! expirations), consumers (with priorities and prefetch), acks, returns, rejections, channel
//! closes, gets and the passage of time, on queues with random TTL, length limit, overflow
//! mode, priorities, delivery limit and single active consumer. Invariants:
//! - every message is accounted for exactly once (acked, held, ready, dead or refused);
//! - no message is held by two consumers at once;
//! - no message is handed out after its deadline passed (as of the time last given);
//! - fresh messages reach each consumer in order within a priority level;
//! - each death has a reason the configuration and history allow;
//! - a drop-head queue never holds more ready messages than its limit;
//! - a single-active-consumer queue delivers only to its oldest consumer.

use super::*;
use crate::args::{Overflow, QueueArgs, QueueType};
use std::collections::HashMap;

struct Model {
    deadline: HashMap<u64, u64>,
    priority: HashMap<u64, u8>,
    returns: HashMap<u64, u32>,
    discarded: HashSet<u64>,
}

fn random_args(rng: &mut StdRng) -> QueueArgs {
    let quorum = rng.gen_bool(0.3);
    QueueArgs {
        queue_type: if quorum {
            QueueType::Quorum
        } else {
            QueueType::Classic
        },
        message_ttl_ms: rng.gen_bool(0.4).then(|| rng.gen_range(0..50)),
        max_length: rng.gen_bool(0.4).then(|| rng.gen_range(0..8)),
        overflow: [
            Overflow::DropHead,
            Overflow::RejectPublish,
            Overflow::RejectPublishDlx,
        ][rng.gen_range(0..3)],
        max_priority: (!quorum && rng.gen_bool(0.4)).then(|| rng.gen_range(0..6)),
        single_active_consumer: rng.gen_bool(0.3),
        delivery_limit: (quorum && rng.gen_bool(0.6)).then(|| rng.gen_range(0..3)),
        ..QueueArgs::default()
    }
}

#[test]
fn simulation_with_arguments_accounts_for_every_message() {
    let mut reasons_seen: HashSet<DeathReason> = HashSet::new();
    for seed in 0..300u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let args = random_args(&mut rng);
        let mut q: QueueState = QueueState::with_args(args.clone());
        let owners = [
            CH1,
            CH2,
            SessionId(307),
        ];
        let mut model = Model {
            deadline: HashMap::new(),
            priority: HashMap::new(),
            returns: HashMap::new(),
            discarded: HashSet::new(),
        };
        let (mut now, mut next_msg, mut next_consumer) = (1_000u64, 0u64, 1u64);
        let mut live: Vec<(ConsumerId, SessionId)> = Vec::new();
        let mut held: HashMap<Seq, (u64, SessionId)> = HashMap::new();
        let (mut acked, mut dead, mut refused) = (HashSet::new(), HashMap::new(), HashSet::new());
        let mut last_fresh: HashMap<(u64, u8), u64> = HashMap::new();
        for _ in 0..400 {
            match rng.gen_range(0..10) {
                0..=2 => {
                    let expiration = rng.gen_bool(0.2).then(|| rng.gen_range(0..40u64));
                    let priority = rng.gen_bool(0.5).then(|| rng.gen_range(0..8u8));
                    let m = msg_with(next_msg, |p| {
                        p.expiration = expiration.map(|e| ShortStr::from(e.to_string()));
                        p.priority = priority;
                    });
                    let ttl = [args.message_ttl_ms, expiration]
                        .into_iter()
                        .flatten()
                        .min();
                    model
                        .deadline
                        .insert(next_msg, ttl.map_or(NO_DEADLINE, |t| now + t));
                    model.priority.insert(
                        next_msg,
                        priority.unwrap_or(0).min(args.max_priority.unwrap_or(0)),
                    );
                    if q.publish(m, now) == Enqueued::Refused {
                        refused.insert(next_msg);
                    }
                    next_msg += 1;
                }
                3 => {
                    let owner = owners[rng.gen_range(0..owners.len())];
                    let spec = ConsumerSpec {
                        priority: rng.gen_range(-1..2),
                        ..consumer(next_consumer, owner, rng.gen_range(0..4), false)
                    };
                    q.add_consumer(spec, "q").unwrap();
                    live.push((ConsumerId(next_consumer), owner));
                    next_consumer += 1;
                }
                4 if !live.is_empty() => {
                    let (id, _) = live.remove(rng.gen_range(0..live.len()));
                    q.cancel_consumer(id);
                }
                5 | 6 if !held.is_empty() => {
                    let seqs: Vec<Seq> =
                        held.keys().copied().filter(|_| rng.gen_bool(0.5)).collect();
                    let ids: Vec<u64> = seqs.iter().map(|s| held.remove(s).unwrap().0).collect();
                    match rng.gen_range(0..3) {
                        0 => {
                            q.ack(&seqs, |_| {});
                            for m in ids {
                                assert!(acked.insert(m), "seed {seed}: {m} acked twice");
                            }
                        }
                        1 => {
                            q.requeue(&seqs);
                            for m in ids {
                                *model.returns.entry(m).or_default() += 1;
                            }
                        }
                        _ => {
                            q.discard(&seqs);
                            model.discarded.extend(ids);
                        }
                    }
                }
                7 => {
                    let owner = owners[rng.gen_range(0..owners.len())];
                    q.session_closed(owner);
                    live.retain(|(_, o)| *o != owner);
                    for (_, (m, _)) in held.iter().filter(|(_, (_, o))| *o == owner) {
                        *model.returns.entry(*m).or_default() += 1;
                    }
                    held.retain(|_, (_, o)| *o != owner);
                }
                8 => {
                    now += rng.gen_range(0..30);
                    q.expire(now);
                }
                _ => {
                    q.expire(now);
                    if let Some((d, _)) = q.get(CH2, false) {
                        let m = body_of(&d);
                        assert!(
                            model.deadline[&m] >= now,
                            "seed {seed}: expired {m} handed out by get"
                        );
                        held.insert(d.seq, (m, CH2));
                    }
                }
            }
            let mut out = Vec::new();
            q.dispatch(|c, d| out.push((c.id.0, c.session, d)));
            for (c, owner, d) in out {
                let m = body_of(&d);
                assert!(
                    model.deadline[&m] >= now,
                    "seed {seed}: expired {m} delivered"
                );
                assert!(
                    held.insert(d.seq, (m, owner)).is_none(),
                    "seed {seed}: {m} held twice"
                );
                if args.single_active_consumer {
                    assert_eq!(
                        Some(ConsumerId(c)),
                        live.first().map(|l| l.0),
                        "seed {seed}: not the active consumer"
                    );
                }
                if !d.redelivered {
                    let last = last_fresh.insert((c, model.priority[&m]), m);
                    assert!(
                        last.is_none_or(|l| l < m),
                        "seed {seed}: fresh messages out of order"
                    );
                }
                q.written(ConsumerId(c), 1);
            }
            for d in q.take_dead() {
                let m = body_of_message(d.content.loaded().unwrap());
                let ok = match d.reason {
                    DeathReason::Rejected => model.discarded.contains(&m),
                    DeathReason::Expired => model.deadline[&m] < now,
                    DeathReason::Maxlen => args.max_length.is_some(),
                    DeathReason::DeliveryLimit => args
                        .delivery_limit
                        .is_some_and(|l| model.returns[&m] as i64 > l),
                };
                assert!(ok, "seed {seed}: {m} died for {:?} without cause", d.reason);
                reasons_seen.insert(d.reason);
                assert!(
                    dead.insert(m, d.reason).is_none(),
                    "seed {seed}: {m} died twice"
                );
            }
            if let (Some(max), Overflow::DropHead) = (args.max_length, args.overflow) {
                assert!(
                    q.message_count() as u64 <= max,
                    "seed {seed}: over the length limit"
                );
            }
        }
        let ready: Vec<u64> = bodies(&q);
        let dead_refused = dead.keys().filter(|m| refused.contains(m)).count();
        let total =
            acked.len() + held.len() + ready.len() + dead.len() + refused.len() - dead_refused;
        assert_eq!(
            total as u64, next_msg,
            "seed {seed}: messages lost or duplicated"
        );
        let mut all: HashSet<u64> = acked.clone();
        all.extend(held.values().map(|(m, _)| *m));
        all.extend(ready.iter().copied());
        all.extend(dead.keys().copied());
        all.extend(refused.iter().copied());
        assert_eq!(
            all.len() as u64,
            next_msg,
            "seed {seed}: a message is in two places"
        );
    }
    // The seeds exercise every way to die.
    assert_eq!(reasons_seen.len(), 4, "{reasons_seen:?}");
}

fn body_of_message(m: &Message) -> u64 {
    u64::from_be_bytes(m.body[..8].try_into().unwrap())
}
