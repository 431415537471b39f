//! The queue task as a runtime shell: commands in through its inboxes, the machine's effects
//! out to sessions, the log and other queues. The rules themselves are tested in core; these
//! pin the wiring (who hears what, in which order, and when).

use super::*;
use crate::target::{QueueGone, Routes, Target};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warren_amqp::{BasicProperties, FieldTable, FieldValue};
use warren_core::args::{DeadLetterTarget, QueueArgs};
use warren_core::queue::{Command, ConfirmId, ConsumerId, ConsumerSpec, Settlement};

/// Routes every message from any exchange to the queues it was given.
#[derive(Default)]
struct FixedRoutes(Mutex<Vec<QueueRef>>);

impl Routes for FixedRoutes {
    fn route(&self, _: &str, _: &Message, out: &mut Vec<Target>) -> Result<bool, BrokerError> {
        out.extend(self.0.lock().unwrap().iter().cloned().map(Target::Queue));
        Ok(true)
    }
}

struct Fixture {
    routes: Arc<FixedRoutes>,
    gone: mpsc::UnboundedReceiver<QueueGone>,
    events: QueueEvents,
    next_id: u64,
}

impl Fixture {
    fn new() -> Fixture {
        let (events, gone) = mpsc::unbounded_channel();
        Fixture {
            routes: Arc::new(FixedRoutes::default()),
            gone,
            events,
            next_id: 1,
        }
    }

    fn queue(&mut self, name: &str, args: QueueArgs) -> QueueRef {
        self.next_id += 1;
        let meta = QueueMeta {
            name: ShortStr::from(name),
            durable: false,
            exclusive_owner: None,
            auto_delete: false,
            arguments: FieldTable::new(),
        };
        let routes: Arc<dyn Routes> = self.routes.clone();
        let env = QueueEnv {
            durability: None,
            routes: Arc::downgrade(&routes),
            events: self.events.clone(),
        };
        spawn(self.next_id, meta, "/", args, None, env).expect("no log to recover")
    }
}

fn message(body: &'static [u8]) -> Arc<Message> {
    Arc::new(Message {
        exchange: ShortStr::from(""),
        routing_key: ShortStr::from("q"),
        properties: BasicProperties::default(),
        properties_raw: Bytes::new(),
        body: Bytes::from_static(body),
    })
}

fn consumer(id: u64, session: u64, no_ack: bool) -> ConsumerSpec {
    ConsumerSpec {
        id: ConsumerId(id),
        tag: ShortStr::from(format!("c{id}")),
        session: SessionId(session),
        no_ack,
        prefetch: 0,
        exclusive: false,
        priority: 0,
        window: 100,
        session_credit: None,
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Outbound>) -> Outbound {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an outbound message in time")
        .expect("sink open")
}

fn bodies(o: &Outbound) -> Vec<Bytes> {
    match o {
        Outbound::Deliveries(ds) => ds.iter().map(|d| d.delivery.message.body.clone()).collect(),
        other => panic!("expected deliveries, got {other:?}"),
    }
}

#[tokio::test]
async fn a_batch_reaches_its_consumer_as_one_message_and_confirms_go_to_the_publisher() {
    let mut f = Fixture::new();
    let q = f.queue("q", QueueArgs::default());
    let (sink, mut rx) = mpsc::unbounded_channel();
    assert!(matches!(q.consume(consumer(1, 7, true), sink.clone()).await, Some(Ok(()))));
    let batch = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, b)| Incoming {
            message: message(b.as_bytes()),
            confirm: Some(ConfirmId(i as u64 + 1)),
        })
        .collect();
    let to = ConfirmTo {
        sink,
        session: SessionId(9),
    };
    assert!(q.publish(batch, Some(to)).await);
    assert_eq!(bodies(&next(&mut rx).await), vec!["a", "b", "c"]);
    match next(&mut rx).await {
        Outbound::Confirmed { session, ok, ids } => {
            assert_eq!((session, ok), (SessionId(9), true));
            assert_eq!(ids, vec![ConfirmId(1), ConfirmId(2), ConfirmId(3)]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn closing_a_session_requeues_what_it_held_for_the_next_consumer() {
    let mut f = Fixture::new();
    let q = f.queue("q", QueueArgs::default());
    let (sink, mut rx) = mpsc::unbounded_channel();
    q.consume(consumer(1, 1, false), sink.clone()).await;
    q.publish(vec![Incoming { message: message(b"m"), confirm: None }], None)
        .await;
    assert_eq!(bodies(&next(&mut rx).await), vec!["m"]);
    q.session_closed(SessionId(1)).await;
    q.consume(consumer(2, 2, false), sink).await;
    match next(&mut rx).await {
        Outbound::Deliveries(ds) => {
            assert_eq!(ds[0].session, SessionId(2));
            assert!(ds[0].delivery.redelivered);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn delete_answers_its_caller_before_the_consumers_hear_and_reports_the_queue_gone() {
    let mut f = Fixture::new();
    let q = f.queue("q", QueueArgs::default());
    let (sink, mut rx) = mpsc::unbounded_channel();
    q.consume(consumer(1, 1, false), sink).await;
    assert_eq!(q.delete(false, false).await, Ok(0));
    assert!(q.is_gone(), "gone as soon as delete answered");
    assert!(matches!(
        next(&mut rx).await,
        Outbound::Cancelled { consumer: ConsumerId(1), .. }
    ));
    let QueueGone(gone) = f.gone.recv().await.unwrap();
    assert_eq!(gone, q);
    assert!(q.declared().await.is_none());
}

#[tokio::test]
async fn rejected_messages_are_dead_lettered_to_the_routed_queue() {
    let mut f = Fixture::new();
    let dlq = f.queue("dlq", QueueArgs::default());
    f.routes.0.lock().unwrap().push(dlq.clone());
    let args = QueueArgs {
        dead_letter: Some(DeadLetterTarget {
            exchange: ShortStr::from("dlx"),
            routing_key: None,
        }),
        ..QueueArgs::default()
    };
    let q = f.queue("q", args);
    let (sink, mut rx) = mpsc::unbounded_channel();
    q.consume(consumer(1, 1, false), sink.clone()).await;
    q.publish(vec![Incoming { message: message(b"m"), confirm: None }], None)
        .await;
    let Outbound::Deliveries(ds) = next(&mut rx).await else {
        panic!()
    };
    q.tell(Command::Settle {
        seqs: vec![ds[0].delivery.seq],
        how: Settlement::Discard,
    });
    dlq.consume(consumer(2, 2, true), sink).await;
    let Outbound::Deliveries(ds) = next(&mut rx).await else {
        panic!()
    };
    let headers = ds[0].delivery.message.properties.headers.clone().unwrap();
    assert_eq!(
        headers.get("x-first-death-reason").and_then(FieldValue::as_str),
        Some("rejected")
    );
    assert_eq!(ds[0].delivery.message.exchange.as_str(), "dlx");
}
