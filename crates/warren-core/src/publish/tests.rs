use super::*;
use bytes::Bytes;
use std::convert::Infallible;
use warren_amqp::BasicProperties;

/// A test destination: a name, whether it answers confirms (durable) and whether it only
/// holds messages (a delay store).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dest {
    name: &'static str,
    durable: bool,
    holds: bool,
}

impl Destination for Dest {
    fn answers_confirm(&self, message: &Message) -> bool {
        self.durable && message.is_persistent()
    }
    fn counts_as_routed(&self) -> bool {
        !self.holds
    }
}

const DURABLE: Dest = Dest {
    name: "durable",
    durable: true,
    holds: false,
};
const TRANSIENT: Dest = Dest {
    name: "transient",
    durable: false,
    holds: false,
};
const DELAY: Dest = Dest {
    name: "delay",
    durable: true,
    holds: true,
};

fn message(key: &str, persistent: bool) -> Arc<Message> {
    Arc::new(Message {
        exchange: ShortStr::from("ex"),
        routing_key: ShortStr::from(key),
        properties: BasicProperties {
            delivery_mode: Some(if persistent { 2 } else { 1 }),
            ..Default::default()
        },
        properties_raw: Bytes::new(),
        body: Bytes::new(),
    })
}

fn route_to(dests: &[Dest]) -> impl FnOnce(&Message, &mut Vec<Dest>) -> Result<bool, Infallible> + '_ {
    move |_, out| {
        out.extend_from_slice(dests);
        Ok(true)
    }
}

#[test]
fn a_confirm_waits_for_every_durable_destination_of_a_persistent_message() {
    let mut p = Publisher::new();
    p.start_confirms();
    let published = p
        .publish(1, message("k", true), route_to(&[DURABLE, TRANSIENT, Dest { name: "d2", ..DURABLE }]))
        .unwrap();
    assert_eq!(published.confirm, Some(ConfirmId(1)));
    let batches = p.take_batches();
    assert_eq!(batches.len(), 3);
    let asked: Vec<_> = batches
        .iter()
        .map(|(d, b)| (d.name, b[0].confirm))
        .collect();
    assert_eq!(
        asked,
        vec![
            ("durable", Some(ConfirmId(1))),
            ("transient", None),
            ("d2", Some(ConfirmId(1)))
        ]
    );
    assert!(p.take_answers().is_empty());
    p.answered([ConfirmId(1)], true);
    assert!(p.take_answers().is_empty(), "one durable queue is still writing");
    p.answered([ConfirmId(1)], true);
    let answers = p.take_answers();
    assert_eq!(answers.acked, vec![ConfirmId(1)]);
    assert_eq!(answers.settled_below, ConfirmId(2));
}

#[test]
fn one_refusal_among_the_destinations_nacks_the_publish() {
    let mut p = Publisher::new();
    p.start_confirms();
    let d2 = Dest { name: "d2", ..DURABLE };
    p.publish(1, message("k", true), route_to(&[DURABLE, d2])).unwrap();
    p.answered([ConfirmId(1)], false);
    p.answered([ConfirmId(1)], true);
    let answers = p.take_answers();
    assert_eq!(answers.nacked, vec![ConfirmId(1)]);
    assert!(answers.acked.is_empty());
}

#[test]
fn transient_messages_and_unroutable_ones_are_confirmed_at_once() {
    let mut p = Publisher::new();
    p.start_confirms();
    p.publish(1, message("a", false), route_to(&[DURABLE])).unwrap();
    let unroutable = p.publish(1, message("b", true), route_to(&[])).unwrap();
    assert!(!unroutable.routed);
    let answers = p.take_answers();
    assert_eq!(answers.acked, vec![ConfirmId(1), ConfirmId(2)]);
    assert_eq!(answers.settled_below, ConfirmId(3));
}

#[test]
fn answers_arriving_out_of_order_report_the_lowest_unsettled_id() {
    let mut p = Publisher::new();
    p.start_confirms();
    for key in ["a", "b", "c"] {
        p.publish(1, message(key, true), route_to(&[DURABLE])).unwrap();
    }
    p.answered([ConfirmId(3), ConfirmId(2)], true);
    let answers = p.take_answers();
    assert_eq!(answers.acked, vec![ConfirmId(2), ConfirmId(3)]);
    assert_eq!(answers.settled_below, ConfirmId(1), "1 still waits");
    p.answered([ConfirmId(1)], true);
    let answers = p.take_answers();
    assert_eq!(answers.acked, vec![ConfirmId(1)]);
    assert_eq!(answers.settled_below, ConfirmId(4));
}

#[test]
fn a_message_only_a_delay_store_holds_is_unroutable_for_mandatory() {
    let mut p = Publisher::new();
    let held = p.publish(1, message("k", true), route_to(&[DELAY])).unwrap();
    assert!(!held.routed);
    let both = p
        .publish(1, message("j", true), route_to(&[DELAY, TRANSIENT]))
        .unwrap();
    assert!(both.routed);
}

#[test]
fn the_route_is_reused_while_generation_and_key_stay() {
    let mut p: Publisher<Dest> = Publisher::new();
    let mut calls = 0;
    for (generation, key) in [(1, "a"), (1, "a"), (1, "b"), (2, "b"), (2, "b")] {
        p.publish(generation, message(key, false), |_, out| {
            calls += 1;
            out.push(TRANSIENT);
            Ok::<_, Infallible>(true)
        })
        .unwrap();
    }
    assert_eq!(calls, 3);
    let batches = p.take_batches();
    assert_eq!(batches.len(), 1, "one batch per destination");
    assert_eq!(batches[0].1.len(), 5);
}

#[test]
fn a_route_that_depends_on_headers_is_not_cached() {
    let mut p: Publisher<Dest> = Publisher::new();
    let mut calls = 0;
    for _ in 0..3 {
        p.publish(1, message("a", false), |_, out| {
            calls += 1;
            out.push(TRANSIENT);
            Ok::<_, Infallible>(false)
        })
        .unwrap();
    }
    assert_eq!(calls, 3);
}

#[test]
fn a_routing_error_publishes_nothing() {
    let mut p: Publisher<Dest> = Publisher::new();
    p.start_confirms();
    let r = p.publish(1, message("a", true), |_, _| Err("no exchange"));
    assert_eq!(r, Err("no exchange"));
    assert!(!p.has_batches());
    // The failed publish took no confirm id.
    let ok = p.publish(1, message("a", true), route_to(&[DURABLE])).unwrap();
    assert_eq!(ok.confirm, Some(ConfirmId(1)));
}

#[test]
fn without_confirm_mode_nothing_is_tracked() {
    let mut p = Publisher::new();
    let published = p.publish(1, message("k", true), route_to(&[DURABLE])).unwrap();
    assert_eq!(published.confirm, None);
    assert!(p.take_batches()[0].1[0].confirm.is_none());
    assert!(p.take_answers().is_empty());
}

#[test]
fn a_publisher_with_its_own_numbers_learns_when_each_is_settled() {
    let mut p = Publisher::new();
    p.start_confirms();
    let d2 = Dest { name: "d2", ..DURABLE };
    p.publish_tracked(&[DURABLE, d2], message("a", true), Some(ConfirmId(41)));
    p.publish_tracked(&[TRANSIENT], message("b", true), Some(ConfirmId(42)));
    p.publish_tracked(&[DURABLE], message("c", true), None);
    let answers = p.take_answers();
    assert_eq!(answers.acked, vec![ConfirmId(42)], "nothing to wait for");
    p.answered([ConfirmId(41)], true);
    p.answered([ConfirmId(41)], false);
    assert_eq!(p.take_answers().nacked, vec![ConfirmId(41)]);
}
