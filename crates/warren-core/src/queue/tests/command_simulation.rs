//! Seeded simulation of a durable queue driven purely by commands, with a stand-in runtime
//! that carries out the effects (a log, a page store, sessions holding deliveries) and feeds
//! back what storage answers. Invariants, checked from the effects alone:
//! - no confirmed message is lost: at the end each one was acked, is held, is still in the
//!   queue (drained by a final consumer) or died (dead-lettered), exactly once;
//! - no message is held by two sessions at once;
//! - fresh messages are delivered in publish order (FIFO apart from requeues);
//! - the log holds exactly the persistent messages still in the queue or held;
//! - the same command sequence, replayed into a new machine, yields the same effects.

use super::*;
use crate::args::{DeadLetterTarget, Overflow};
use std::collections::HashMap;

fn body(m: &Message) -> u64 {
    u64::from_be_bytes(m.body[..8].try_into().unwrap())
}

fn config(rng: &mut StdRng) -> QueueConfig {
    QueueConfig {
        name: ShortStr::from("q"),
        vhost: "/".into(),
        durable: true,
        auto_delete: false,
        args: QueueArgs {
            max_length: rng.gen_bool(0.3).then(|| rng.gen_range(1..10)),
            overflow: [Overflow::DropHead, Overflow::RejectPublish][rng.gen_range(0..2)],
            message_ttl_ms: rng.gen_bool(0.3).then(|| rng.gen_range(1..40)),
            dead_letter: Some(DeadLetterTarget {
                exchange: ShortStr::from("dlx"),
                routing_key: None,
            }),
            ..QueueArgs::default()
        },
    }
}

/// The runtime's side: what it did with the effects, and the commands it fed back.
#[derive(Default)]
struct World {
    log: HashMap<Seq, u64>,
    pages: HashMap<u64, Arc<Message>>,
    next_place: u64,
    held: HashMap<Seq, (u64, SessionId)>,
    acked: Vec<u64>,
    dead: Vec<u64>,
    confirmed: HashMap<u64, bool>,
    last_fresh: Option<u64>,
    trace: Vec<String>,
    recorded: Vec<(u64, Command)>,
    pending: Vec<Effect>,
}

impl World {
    /// Applies a command, then carries out its effects as the server's queue task does:
    /// all of one command's effects in order, then those the storage answers produced.
    fn apply(&mut self, q: &mut QueueMachine, now: u64, cmd: Command) -> Reply {
        let reply = self.apply_one(q, now, cmd);
        let mut pending = std::mem::take(&mut self.pending);
        while !pending.is_empty() {
            for e in pending {
                self.effect(q, now, e);
            }
            pending = std::mem::take(&mut self.pending);
        }
        reply
    }

    /// Applies one command; its effects wait in `pending`.
    fn apply_one(&mut self, q: &mut QueueMachine, now: u64, cmd: Command) -> Reply {
        self.recorded.push((now, cmd.clone()));
        let reply = q.apply(now, cmd);
        let effects = q.take_effects();
        self.trace.push(format!("{reply:?} {effects:?}"));
        self.pending.extend(effects);
        reply
    }

    fn effect(&mut self, q: &mut QueueMachine, now: u64, e: Effect) {
        match e {
            Effect::Deliver {
                session, delivery, ..
            } => {
                let m = body(&delivery.message);
                assert!(
                    self.held.insert(delivery.seq, (m, session)).is_none(),
                    "{m} held twice"
                );
                if !delivery.redelivered {
                    assert!(self.last_fresh.is_none_or(|l| l < m), "{m} out of order");
                    self.last_fresh = Some(m);
                }
            }
            Effect::Append {
                seq,
                message,
                confirm,
                ..
            } => {
                assert!(message.is_persistent());
                self.log.insert(seq, body(&message));
                if let Some(id) = confirm {
                    self.confirmed.insert(id.0, true);
                }
            }
            Effect::Confirm { id, ok } => {
                self.confirmed.insert(id.0, ok);
            }
            Effect::LogAck(seqs) => {
                for s in seqs {
                    assert!(self.log.remove(&s).is_some(), "ack of {s} not in the log");
                }
            }
            Effect::LogDelivered(seqs) => {
                for s in seqs {
                    assert!(self.log.contains_key(&s), "mark on {s} not in the log");
                }
            }
            Effect::PageOut {
                seq,
                message,
                in_log,
            } => {
                let place = if in_log {
                    u64::MAX
                } else {
                    self.next_place += 1;
                    self.pages.insert(self.next_place, message.clone());
                    self.next_place
                };
                let priority = message.properties.priority.unwrap_or(0);
                let reply = self.apply_one(
                    q,
                    now,
                    Command::PagedOut {
                        seq,
                        priority,
                        place,
                    },
                );
                if matches!(reply, Reply::PagedOut(false)) {
                    self.pages.remove(&place);
                }
            }
            Effect::ReadBack(ahead) => {
                let loaded = ahead
                    .into_iter()
                    .map(|(seq, p)| {
                        let m = if p.place == u64::MAX {
                            msg_with(self.log[&seq], |p| p.delivery_mode = Some(2))
                        } else {
                            self.pages.get(&p.place).expect("paged message stored").clone()
                        };
                        (seq, p, Some(m))
                    })
                    .collect();
                self.apply_one(q, now, Command::Loaded(loaded));
            }
            Effect::Release(p) => {
                if p.place != u64::MAX {
                    assert!(self.pages.remove(&p.place).is_some(), "released twice");
                }
            }
            Effect::DeadLetter(d) => {
                let m = match (&d.content, d.seq) {
                    (Content::Loaded(m), _) => body(m),
                    (Content::Paged(p), _) if p.place != u64::MAX => {
                        body(self.pages.get(&p.place).expect("paged"))
                    }
                    (Content::Paged(_), Some(seq)) => self.log[&seq],
                    (Content::Paged(_), None) => panic!("a refused publish is never paged"),
                };
                self.dead.push(m);
            }
            Effect::CreditWanted { .. }
            | Effect::CreditReturned { .. }
            | Effect::ConsumerCancelled { .. }
            | Effect::Deleted => {}
        }
    }
}

#[test]
fn command_simulation_loses_nothing_confirmed_and_replays_identically() {
    for seed in 0..200u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let config = config(&mut rng);
        let mut q = QueueMachine::new(config.clone());
        let mut w = World::default();
        let sessions = [CH1, CH2];
        let (mut now, mut next_msg, mut next_consumer) = (1_000u64, 0u64, 1u64);
        let mut live: Vec<ConsumerId> = Vec::new();
        if rng.gen_bool(0.5) {
            w.apply(&mut q, now, Command::SetMemoryBudget(msg(0).footprint() * 3));
        }
        for _ in 0..300 {
            match rng.gen_range(0..10) {
                0..=3 => {
                    let batch = (0..rng.gen_range(1..4))
                        .map(|_| {
                            next_msg += 1;
                            let persistent = rng.gen_bool(0.7);
                            Incoming {
                                message: msg_with(next_msg, |p| {
                                    p.delivery_mode = Some(if persistent { 2 } else { 1 })
                                }),
                                confirm: Some(ConfirmId(next_msg)),
                            }
                        })
                        .collect();
                    w.apply(&mut q, now, Command::Enqueue(batch));
                }
                4 => {
                    let session = sessions[rng.gen_range(0..2)];
                    let spec = consumer(next_consumer, session, rng.gen_range(0..3), false);
                    w.apply(&mut q, now, Command::Consume(spec));
                    live.push(ConsumerId(next_consumer));
                    next_consumer += 1;
                }
                5 if !live.is_empty() => {
                    let c = live.remove(rng.gen_range(0..live.len()));
                    w.apply(&mut q, now, Command::Cancel(c));
                }
                6 | 7 if !w.held.is_empty() => {
                    let mut seqs: Vec<Seq> = w.held.keys().copied().collect();
                    seqs.sort_unstable();
                    seqs.retain(|_| rng.gen_bool(0.6));
                    let how = [Settlement::Ack, Settlement::Requeue, Settlement::Discard]
                        [rng.gen_range(0..3)];
                    for s in &seqs {
                        let (m, _) = w.held.remove(s).unwrap();
                        if how == Settlement::Ack {
                            w.acked.push(m);
                        }
                    }
                    w.apply(&mut q, now, Command::Settle { seqs, how });
                }
                8 => {
                    let session = sessions[rng.gen_range(0..2)];
                    w.held.retain(|_, (_, s)| *s != session);
                    w.apply(&mut q, now, Command::SessionClosed(session));
                    live.clear();
                }
                _ => {
                    now += rng.gen_range(0..20);
                    w.apply(&mut q, now, Command::Tick);
                }
            }
        }
        // Drain what is left with a no-ack consumer: it counts as acked.
        for session in sessions {
            w.held.retain(|_, (_, s)| *s != session);
            w.apply(&mut q, now, Command::SessionClosed(session));
        }
        w.apply(
            &mut q,
            now,
            Command::Consume(consumer(9_999, SessionId(9), 0, true)),
        );
        for (m, _) in w.held.values() {
            w.acked.push(*m);
        }
        assert_eq!(q.message_count(), 0, "seed {seed}: drained");
        assert!(w.log.is_empty(), "seed {seed}: log holds {:?}", w.log);
        assert!(w.pages.is_empty(), "seed {seed}: stored pages never released");
        let mut out: Vec<u64> = w.acked.iter().chain(&w.dead).copied().collect();
        out.sort_unstable();
        let before_dedup = out.len();
        out.dedup();
        assert_eq!(out.len(), before_dedup, "seed {seed}: a message left twice");
        for (id, ok) in &w.confirmed {
            if *ok {
                assert!(
                    out.binary_search(id).is_ok(),
                    "seed {seed}: confirmed message {id} lost"
                );
            }
        }
        // Replay the recorded commands (storage feedback included) into a fresh machine.
        let mut replay = QueueMachine::new(config);
        let mut trace = Vec::new();
        for (now, cmd) in &w.recorded {
            let reply = replay.apply(*now, cmd.clone());
            trace.push(format!("{reply:?} {:?}", replay.take_effects()));
        }
        assert_eq!(trace, w.trace, "seed {seed}: replay differs");
    }
}
