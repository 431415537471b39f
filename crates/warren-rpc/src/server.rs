//! The server: one running instance of a service.
//!
//! Every instance of service `S` consumes from the queue `rpc.S` (competing consumers: the
//! broker spreads requests over instances) with a prefetch of `concurrency`, which bounds how
//! many requests the instance works on at once, so a busy instance is never overrun: the rest
//! wait in the queue. A request is acked only after its reply has been confirmed by the
//! broker, so the requests of an instance that dies mid-call are redelivered to another.
//!
//! Each instance also answers discovery pings (see [`crate::discovery`]) from an exclusive
//! queue bound to the `warren.rpc.discovery` fanout exchange.

use crate::codec::{Fault, Format, HandlerFuture};
use crate::discovery::{InstanceInfo, MethodDesc};
use crate::error::RpcError;
use crate::protocol::{self, service_queue, DEADLINE_HEADER, DISCOVERY_EXCHANGE};
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use rand::Rng;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// How long shutdown waits for requests being worked on.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A method as the skeleton and the stub know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    pub name: &'static str,
    /// Safe to run twice: only such methods are retried.
    pub idempotent: bool,
}

/// The methods of a generated skeleton, available without an instance (stubs use it).
pub trait Methods {
    const METHODS: &'static [MethodInfo];
}

/// A service a [`Server`] can run; `#[warren_rpc::service]` implements it for `FooServer<S>`.
pub trait Service: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn methods(&self) -> &'static [MethodInfo];
    /// Decodes the arguments of `method` and returns the handler's future, or the fault
    /// that answers the request at once (unknown method, undecodable arguments).
    fn call(&self, method: &str, format: Format, body: &[u8]) -> Result<HandlerFuture, Fault>;
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Requests worked on at once (the consumer's prefetch).
    pub concurrency: u16,
    /// This instance's name (its consumer tag, and what discovery shows); random if `None`.
    pub instance: Option<String>,
    /// Serve under this service name instead of the trait's (stubs call it with `named`).
    pub name: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            concurrency: 16,
            instance: None,
            name: None,
        }
    }
}

/// What every request handler of an instance shares.
struct Instance {
    service: Arc<dyn Service>,
    /// The service name it serves under.
    service_name: String,
    channel: Channel,
    name: String,
    concurrency: u16,
    in_flight: AtomicU32,
}

/// A running instance; [`Server::shutdown`] stops it cleanly.
pub struct Server {
    instance: Arc<Instance>,
    connection: Arc<Connection>,
    owns_connection: bool,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Connects to `url` and starts serving `service`.
    pub async fn start<S: Service>(
        url: &str,
        service: S,
        config: ServerConfig,
    ) -> Result<Server, RpcError> {
        let connection = Arc::new(Connection::connect(url, ConnectionProperties::default()).await?);
        let mut server = Server::start_on(connection, service, config).await?;
        server.owns_connection = true;
        Ok(server)
    }

    /// Serves `service` on a channel of its own of an existing connection.
    pub async fn start_on<S: Service>(
        connection: Arc<Connection>,
        service: S,
        config: ServerConfig,
    ) -> Result<Server, RpcError> {
        let service: Arc<dyn Service> = Arc::new(service);
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .basic_qos(config.concurrency.max(1), BasicQosOptions::default())
            .await?;
        let service_name = config.name.unwrap_or_else(|| service.name().to_string());
        let queue = service_queue(&service_name);
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let name = config
            .instance
            .unwrap_or_else(|| format!("{service_name}-{:08x}", rand::thread_rng().gen::<u32>()));
        let requests = channel
            .basic_consume(
                queue.as_str().into(),
                name.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let pings = discovery_consumer(&channel).await?;
        let instance = Arc::new(Instance {
            service,
            service_name,
            channel,
            name,
            concurrency: config.concurrency.max(1),
            in_flight: AtomicU32::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(instance.clone(), requests, pings, stopped));
        Ok(Server {
            instance,
            connection,
            owns_connection: false,
            stop,
            task,
        })
    }

    /// This instance's name.
    pub fn instance(&self) -> &str {
        &self.instance.name
    }

    /// Stops taking requests, lets those in progress finish (up to a grace period), and
    /// closes the channel (and the connection if the server opened it). Requests taken but
    /// not answered go back to the queue for other instances.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let _ = self
            .instance
            .channel
            .close(200, "server shut down".into())
            .await;
        if self.owns_connection {
            let _ = self.connection.close(200, "server shut down".into()).await;
        }
    }
}

/// An exclusive queue bound to the discovery exchange, consumed without acks.
async fn discovery_consumer(channel: &Channel) -> Result<lapin::Consumer, RpcError> {
    declare_discovery_exchange(channel).await?;
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare("".into(), exclusive, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            DISCOVERY_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    Ok(channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            no_ack,
            FieldTable::default(),
        )
        .await?)
}

/// Servers and clients declare it alike, so either may come first.
pub(crate) async fn declare_discovery_exchange(channel: &Channel) -> Result<(), RpcError> {
    channel
        .exchange_declare(
            DISCOVERY_EXCHANGE.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

async fn run(
    instance: Arc<Instance>,
    mut requests: lapin::Consumer,
    mut pings: lapin::Consumer,
    mut stopped: watch::Receiver<bool>,
) {
    let mut handlers = JoinSet::new();
    loop {
        tokio::select! {
            request = requests.next() => match request {
                Some(Ok(delivery)) => {
                    instance.in_flight.fetch_add(1, Ordering::Relaxed);
                    handlers.spawn(handle(instance.clone(), delivery));
                }
                Some(Err(e)) => {
                    warn!(instance = %instance.name, "request consumer failed: {e}");
                    break;
                }
                None => break,
            },
            Some(Ok(ping)) = pings.next() => answer_ping(&instance, ping).await,
            Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
            _ = stopped.changed() => break,
        }
    }
    let _ = instance
        .channel
        .basic_cancel(instance.name.as_str().into(), BasicCancelOptions::default())
        .await;
    let drain = async { while handlers.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        warn!(instance = %instance.name, "requests still running after {SHUTDOWN_GRACE:?}; their callers will time out or be retried");
    }
}

/// Works on one request: decode, call, reply, then ack.
async fn handle(instance: Arc<Instance>, delivery: Delivery) {
    let props = &delivery.properties;
    let content_type = props.content_type().as_ref().map(|c| c.to_string());
    let format = Format::from_content_type(content_type.as_deref());
    let expired = match props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(DEADLINE_HEADER).cloned())
    {
        Some(AMQPValue::LongLongInt(ms)) => protocol::unix_ms_passed(ms),
        _ => false,
    };
    if expired {
        debug!(instance = %instance.name, "request past its deadline; dropped unanswered");
    } else {
        let outcome = match (format, props.kind().as_ref()) {
            (None, _) => Err(Fault::bad_request(format!(
                "unsupported content type '{}'; use application/json or application/msgpack",
                content_type.unwrap_or_default()
            ))),
            (_, None) => Err(Fault::bad_request(
                "the request names no method (its `type` property is empty)",
            )),
            (Some(format), Some(method)) => {
                run_handler(&instance, method.as_str(), format, &delivery.data).await
            }
        };
        let reply_format = format.unwrap_or_default();
        let body = outcome.unwrap_or_else(|fault| fault.encode(reply_format));
        if let Some(reply_to) = props.reply_to() {
            let mut reply =
                BasicProperties::default().with_content_type(reply_format.content_type().into());
            if let Some(id) = props.correlation_id() {
                reply = reply.with_correlation_id(id.clone());
            }
            if let Err(e) =
                publish_confirmed(&instance.channel, reply_to.as_str(), &body, reply).await
            {
                // The channel is gone: the request returns to the queue with it.
                warn!(instance = %instance.name, "cannot send a reply: {e}");
                instance.in_flight.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        }
    }
    if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
        warn!(instance = %instance.name, "cannot ack a request: {e}");
    }
    instance.in_flight.fetch_sub(1, Ordering::Relaxed);
}

/// Runs the method's handler; a panic in it becomes a fault reply.
async fn run_handler(
    instance: &Instance,
    method: &str,
    format: Format,
    body: &[u8],
) -> Result<Vec<u8>, Fault> {
    let service = instance.service.clone();
    let future = std::panic::catch_unwind(AssertUnwindSafe(|| service.call(method, format, body)))
        .map_err(|payload| Fault::panic(panic_message(payload)))??;
    match tokio::spawn(future).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(Fault::panic(panic_message(e.into_panic()))),
        Err(e) => Err(Fault::internal(format!("the handler did not finish: {e}"))),
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_string())
}

async fn publish_confirmed(
    channel: &Channel,
    routing_key: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), lapin::Error> {
    channel
        .basic_publish(
            "".into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await?
        .await?;
    Ok(())
}

async fn answer_ping(instance: &Instance, ping: Delivery) {
    let Some(reply_to) = ping.properties.reply_to() else {
        return;
    };
    let info = InstanceInfo {
        service: instance.service_name.clone(),
        instance: instance.name.clone(),
        methods: instance
            .service
            .methods()
            .iter()
            .map(|m| MethodDesc {
                name: m.name.to_string(),
                idempotent: m.idempotent,
            })
            .collect(),
        concurrency: instance.concurrency,
        in_flight: instance.in_flight.load(Ordering::Relaxed),
    };
    let Ok(body) = Format::Json.encode(&info) else {
        return;
    };
    let mut props =
        BasicProperties::default().with_content_type(Format::Json.content_type().into());
    if let Some(id) = ping.properties.correlation_id() {
        props = props.with_correlation_id(id.clone());
    }
    if let Err(e) = publish_confirmed(&instance.channel, reply_to.as_str(), &body, props).await {
        debug!(instance = %instance.name, "cannot answer a discovery ping: {e}");
    }
}
