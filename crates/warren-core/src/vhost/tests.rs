//! Tests of the vhost model through a fixture that plays the runtime: it creates queue
//! handles, inserts what the model validated, and keeps the changes it would persist.

mod definitions;
mod exclusive;
mod routing;

use super::*;
use crate::message::Message;
use crate::policy::Policy;
use bytes::Bytes;
use warren_amqp::{BasicProperties, FieldValue, ReplyCode};

/// A queue handle: identity by id, so a queue redeclared under the same name is another one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct TestQueue {
    id: u32,
    name: ShortStr,
}

impl QueueHandle for TestQueue {
    fn name(&self) -> &ShortStr {
        &self.name
    }
}

/// What the runtime keeps per exchange in these tests: a delay store, or a deduplication
/// verdict for every message.
#[derive(Clone, Default)]
struct TestState {
    delay_store: Option<TestQueue>,
    drop_all: bool,
}

type Model = VHostState<TestQueue, TestState>;

struct Fixture {
    vhost: Model,
    policies: PolicySet,
    next_id: u32,
    /// The connection declaring and binding.
    connection: u64,
}

fn durable_vhost() -> Fixture {
    Fixture {
        vhost: Model::new("/", true),
        policies: PolicySet::new(),
        next_id: 1,
        connection: 1,
    }
}

fn transient_vhost() -> Fixture {
    Fixture {
        vhost: Model::new("/", false),
        ..durable_vhost()
    }
}

fn exchange_meta(name: &str, kind: &str) -> ExchangeMeta {
    ExchangeMeta {
        name: ShortStr::from(name),
        kind: ExchangeType::parse(kind).expect("a known type"),
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: FieldTable::new(),
    }
}

fn queue_meta(name: &str) -> QueueMeta {
    QueueMeta {
        name: ShortStr::from(name),
        durable: true,
        exclusive_owner: None,
        auto_delete: false,
        arguments: FieldTable::new(),
    }
}

fn args(pairs: &[(&str, FieldValue)]) -> FieldTable {
    let mut t = FieldTable::new();
    for (k, v) in pairs {
        t.insert(*k, v.clone());
    }
    t
}

fn message(routing_key: &str) -> Message {
    message_with(routing_key, None)
}

fn message_with(routing_key: &str, headers: Option<FieldTable>) -> Message {
    Message {
        exchange: ShortStr::from(""),
        routing_key: ShortStr::from(routing_key),
        properties: BasicProperties {
            headers,
            ..BasicProperties::default()
        },
        properties_raw: Bytes::new(),
        body: Bytes::new(),
    }
}

fn key(k: &str) -> ShortStr {
    ShortStr::from(k)
}

fn to_exchange(name: &str) -> Destination<TestQueue> {
    Destination::Exchange(ShortStr::from(name))
}

impl Fixture {
    /// Declares an exchange as the runtime does; returns what it would persist.
    fn declare_exchange(&mut self, meta: ExchangeMeta) -> Result<Vec<DefinitionChange>, BrokerError> {
        self.declare_exchange_with(meta, TestState::default())
    }

    fn declare_exchange_with(
        &mut self,
        meta: ExchangeMeta,
        state: TestState,
    ) -> Result<Vec<DefinitionChange>, BrokerError> {
        match self.vhost.check_exchange_declaration(&meta)? {
            ExchangeDeclaration::Existing(_) => Ok(Vec::new()),
            ExchangeDeclaration::New(new) => {
                let changes = new.changes();
                self.vhost.insert_exchange(new, state, &self.policies);
                Ok(changes)
            }
        }
    }

    fn exchange(&mut self, name: &str, kind: &str) {
        self.declare_exchange(exchange_meta(name, kind)).unwrap();
    }

    fn auto_delete_exchange(&mut self, name: &str, kind: &str) {
        let meta = ExchangeMeta {
            auto_delete: true,
            ..exchange_meta(name, kind)
        };
        self.declare_exchange(meta).unwrap();
    }

    /// Declares a queue as the runtime does: check, persist, create the handle, insert.
    fn declare_queue(
        &mut self,
        meta: QueueMeta,
        passive: bool,
    ) -> Result<(TestQueue, Vec<DefinitionChange>), BrokerError> {
        match self
            .vhost
            .check_queue_declaration(&meta, passive, self.connection)?
        {
            QueueDeclaration::Existing(q) => Ok((q, Vec::new())),
            QueueDeclaration::New(new) => {
                let changes = new.changes();
                let q = self.new_handle(&meta.name);
                self.vhost.insert_queue(new, q.clone());
                Ok((q, changes))
            }
        }
    }

    fn new_handle(&mut self, name: &str) -> TestQueue {
        self.next_id += 1;
        TestQueue {
            id: self.next_id,
            name: ShortStr::from(name),
        }
    }

    fn queue(&mut self, name: &str) -> TestQueue {
        self.declare_queue(queue_meta(name), false).unwrap().0
    }

    fn bind(&mut self, source: &str, dest: Destination<TestQueue>, k: &str) -> Vec<DefinitionChange> {
        self.vhost
            .bind(source, dest, &key(k), &FieldTable::new())
            .unwrap()
            .changes
    }

    fn bind_queue(&mut self, source: &str, q: &TestQueue, k: &str) {
        self.bind(source, Destination::Queue(q.clone()), k);
    }

    fn bind_exchange(&mut self, source: &str, dest: &str, k: &str) {
        self.bind(source, to_exchange(dest), k);
    }

    fn set_policy(&mut self, name: &str, pattern: &str, definition: serde_json::Value) {
        let p = Policy::new(
            name,
            &serde_json::json!(pattern),
            &definition,
            None,
            Some(&serde_json::json!("exchanges")),
        )
        .unwrap();
        self.policies.put(p);
        self.vhost.apply_policies(&self.policies);
    }

    /// Routes `message` from `exchange`; returns the queue names reached, in the order
    /// appended, and whether the result may be cached.
    fn route_message(&self, exchange: &str, message: &Message) -> (Vec<String>, bool) {
        let ex = self.vhost.exchange(exchange).expect("exchange exists");
        let mut out = Vec::new();
        let cacheable = self.vhost.route(ex, message, admit, &mut out);
        (out.iter().map(|q| q.name.to_string()).collect(), cacheable)
    }

    /// The queue names a message with this routing key reaches, sorted.
    fn route(&self, exchange: &str, k: &str) -> Vec<String> {
        let mut names = self.route_message(exchange, &message(k)).0;
        names.sort();
        names
    }

    fn exchange_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.vhost.exchanges().map(|e| e.meta.name.to_string()).collect();
        names.sort();
        names
    }
}

/// The runtime's admission step, played by [`TestState`].
fn admit(ex: &Exchange<TestQueue, TestState>, _: &Message) -> Admission<TestQueue> {
    match (&ex.state.delay_store, ex.state.drop_all) {
        (Some(store), _) => Admission::Hold(store.clone()),
        (None, true) => Admission::Drop,
        (None, false) => Admission::Route,
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
