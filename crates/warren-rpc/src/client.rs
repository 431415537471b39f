//! The client: sends requests and waits for their replies, with a deadline per call,
//! retries for idempotent methods, a circuit breaker and a rate limit per service.
//!
//! One [`Client`] is one AMQP channel that both publishes requests and consumes replies from
//! `amq.rabbitmq.reply-to` (direct reply-to needs both on one channel). Any number of calls
//! may be in flight on it at once; replies find their call by `correlation_id`. Cloning a
//! client is cheap and shares the channel, breakers and limiters; `with_options` clones with
//! other per-call options. Generated stubs (`FooClient`) wrap a `Client`.

use crate::breaker::{Admission, BreakerConfig, BreakerState, CircuitBreaker};
use crate::codec::{decode_reply, Envelope, Format};
use crate::error::RpcError;
use crate::limiter::{LimitMode, RateLimit, TokenBucket};
use crate::protocol::{self, service_queue, DEADLINE_HEADER, REPLY_TO};
use crate::replies::{Replies, Reply};
use crate::retry::RetryPolicy;
use crate::MethodInfo;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use rand::Rng;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Options of each call; a stub carries a set (see `with_options`).
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// How long a call may take in all, retries included. The request carries the time
    /// left as its `expiration`, so a server never starts work nobody waits for.
    pub deadline: Duration,
    /// How long one attempt waits before an idempotent method is retried (default: the
    /// whole deadline, so no retry after a timeout).
    pub attempt_timeout: Option<Duration>,
    pub retry: RetryPolicy,
    /// The format of requests (servers answer in it).
    pub format: Format,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            deadline: Duration::from_secs(30),
            attempt_timeout: None,
            retry: RetryPolicy::default(),
            format: Format::Json,
        }
    }
}

/// How a client guards the services it calls. The default has the default circuit breaker
/// and no rate limit.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub call: CallOptions,
    /// A circuit breaker per service; `None` disables it.
    pub breaker: Option<BreakerConfig>,
    /// A rate limit per service; `None` means unlimited.
    pub rate_limit: Option<RateLimit>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            call: CallOptions::default(),
            breaker: Some(BreakerConfig::default()),
            rate_limit: None,
        }
    }
}

impl ClientConfig {
    /// The defaults (same as `default()`).
    pub fn new() -> ClientConfig {
        ClientConfig::default()
    }
}

/// A raw reply, for callers that do not know the method's types (the CLI).
#[derive(Debug)]
pub struct RawReply {
    pub format: Format,
    /// The reply envelope: `{"ok": …}`, `{"err": …}` (faults are returned as errors).
    pub body: Vec<u8>,
}

struct Shared {
    connection: Arc<Connection>,
    channel: Channel,
    replies: Arc<Replies>,
    id_prefix: String,
    next_id: AtomicU64,
    breaker: Option<BreakerConfig>,
    breakers: Mutex<HashMap<String, CircuitBreaker>>,
    rate_limit: Option<RateLimit>,
    limiters: Mutex<HashMap<String, TokenBucket>>,
}

#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    options: CallOptions,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id_prefix", &self.shared.id_prefix)
            .field("options", &self.options)
            .finish()
    }
}

impl Client {
    /// Connects to `url` (e.g. `amqp://guest:guest@127.0.0.1:5672/%2F`) with the default config.
    pub async fn connect(url: &str) -> Result<Client, RpcError> {
        Client::connect_with(url, ClientConfig::new()).await
    }

    pub async fn connect_with(url: &str, config: ClientConfig) -> Result<Client, RpcError> {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        Client::on_connection(Arc::new(connection), config).await
    }

    /// A client on its own channel of an existing connection.
    pub async fn on_connection(
        connection: Arc<Connection>,
        config: ClientConfig,
    ) -> Result<Client, RpcError> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                REPLY_TO.into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let replies = Arc::new(Replies::default());
        tokio::spawn(replies.clone().run(consumer));
        let id_prefix = format!("{:016x}", rand::thread_rng().gen::<u64>());
        let shared = Shared {
            connection,
            channel,
            replies,
            id_prefix,
            next_id: AtomicU64::new(1),
            breaker: config.breaker,
            breakers: Mutex::new(HashMap::new()),
            rate_limit: config.rate_limit,
            limiters: Mutex::new(HashMap::new()),
        };
        Ok(Client {
            shared: Arc::new(shared),
            options: config.call,
        })
    }

    /// The connection this client uses (for discovery's throwaway channels, or to share).
    pub fn connection(&self) -> &Arc<Connection> {
        &self.shared.connection
    }

    pub(crate) fn channel(&self) -> &Channel {
        &self.shared.channel
    }

    pub(crate) fn replies(&self) -> &Replies {
        &self.shared.replies
    }

    pub(crate) fn new_correlation_id(&self) -> String {
        format!(
            "{}-{}",
            self.shared.id_prefix,
            self.shared.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// The same client (channel, breakers, limiters) with other call options.
    pub fn with_options(&self, options: CallOptions) -> Client {
        Client {
            shared: self.shared.clone(),
            options,
        }
    }

    pub fn with_deadline(&self, deadline: Duration) -> Client {
        self.with_options(CallOptions {
            deadline,
            ..self.options.clone()
        })
    }

    pub fn with_format(&self, format: Format) -> Client {
        self.with_options(CallOptions {
            format,
            ..self.options.clone()
        })
    }

    /// The state of the breaker guarding `service` (closed if there is none).
    pub fn breaker_state(&self, service: &str) -> BreakerState {
        let breakers = self.shared.breakers.lock().expect("breakers lock");
        breakers
            .get(service)
            .map_or(BreakerState::Closed, |b| b.state(Instant::now()))
    }

    /// Calls `method` of `service` and waits for its result.
    pub async fn call<A: Serialize, T: DeserializeOwned, E: DeserializeOwned + From<RpcError>>(
        &self,
        service: &str,
        method: &MethodInfo,
        args: A,
    ) -> Result<T, E> {
        let format = self.options.format;
        let body = format
            .encode(&args)
            .map_err(|reason| encode_error(service, method.name, reason))?;
        let reply = self
            .invoke(service, method.name, method.idempotent, &body, true)
            .await?;
        let reply = reply.expect("a call asks for a reply");
        let format = reply_format(&reply, format);
        decode_reply(format, &reply.body, service, method.name)
    }

    /// Starts a call now; its result is awaited later through the returned [`Pending`].
    pub fn start<A, T, E>(&self, service: &str, method: &MethodInfo, args: A) -> Pending<T, E>
    where
        A: Serialize + Send + 'static,
        T: DeserializeOwned + Send + 'static,
        E: DeserializeOwned + From<RpcError> + Send + 'static,
    {
        let client = self.clone();
        let label = format!("{service}.{}", method.name);
        let (service, method) = (service.to_string(), *method);
        let task =
            tokio::spawn(async move { client.call::<A, T, E>(&service, &method, args).await });
        Pending {
            task,
            label,
            _types: std::marker::PhantomData,
        }
    }

    /// Sends `method` without a `reply_to`: the server runs it and answers nobody. Returns
    /// once the broker has taken the request (or the service does not exist).
    pub async fn notify<A: Serialize, E: From<RpcError>>(
        &self,
        service: &str,
        method: &MethodInfo,
        args: A,
    ) -> Result<(), E> {
        let format = self.options.format;
        let body = format
            .encode(&args)
            .map_err(|reason| encode_error(service, method.name, reason))?;
        self.invoke(service, method.name, method.idempotent, &body, false)
            .await?;
        Ok(())
    }

    /// Calls a method by name with an already encoded argument object (the CLI's way in).
    pub async fn call_raw(
        &self,
        service: &str,
        method: &str,
        body: &[u8],
    ) -> Result<RawReply, RpcError> {
        let reply = self
            .invoke(service, method, false, body, true)
            .await?
            .expect("a call asks for a reply");
        Ok(RawReply {
            format: reply_format(&reply, self.options.format),
            body: reply.body,
        })
    }

    /// Sends one request under the call's deadline, retrying idempotent methods; returns the
    /// reply (not for notifications), with faults already turned into errors.
    async fn invoke(
        &self,
        service: &str,
        method: &str,
        idempotent: bool,
        body: &[u8],
        want_reply: bool,
    ) -> Result<Option<Reply>, RpcError> {
        let started = Instant::now();
        let deadline = started + self.options.deadline;
        let max_attempts = if idempotent {
            self.options.retry.max_attempts.max(1)
        } else {
            1
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(deadline_exceeded(service, method, started.elapsed()));
            }
            self.take_rate_token(service, remaining).await?;
            let ticket = self.admit(service)?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let wait = self
                .options
                .attempt_timeout
                .map_or(remaining, |t| t.min(remaining));
            let outcome = self.attempt(service, method, body, want_reply, wait).await;
            ticket.settle(
                outcome
                    .as_ref()
                    .err()
                    .is_some_and(RpcError::is_service_failure),
            );
            match outcome {
                Err(e) if e.is_retryable() && attempt < max_attempts => {
                    let backoff = self.options.retry.backoff(attempt);
                    if Instant::now() + backoff >= deadline {
                        return Err(e);
                    }
                    tracing::debug!(service, method, attempt, ?backoff, "retrying after: {e}");
                    tokio::time::sleep(backoff).await;
                }
                other => return other,
            }
        }
    }

    /// One request and its reply, within `wait`.
    async fn attempt(
        &self,
        service: &str,
        method: &str,
        body: &[u8],
        want_reply: bool,
        wait: Duration,
    ) -> Result<Option<Reply>, RpcError> {
        let until = tokio::time::Instant::now() + wait;
        let id = self.new_correlation_id();
        let closed = || RpcError::Transport("the client's reply consumer has stopped".into());
        let reply = if want_reply {
            Some(self.shared.replies.expect_one(&id).ok_or_else(closed)?)
        } else {
            None
        };
        let _forget = Forget {
            replies: &self.shared.replies,
            id: &id,
        };
        let mut headers = FieldTable::default();
        headers.insert(
            DEADLINE_HEADER.into(),
            AMQPValue::LongLongInt(protocol::unix_ms_after(wait)),
        );
        let mut properties = BasicProperties::default()
            .with_content_type(self.options.format.content_type().into())
            .with_type(method.into())
            .with_correlation_id(id.as_str().into())
            .with_delivery_mode(1)
            .with_expiration(wait.as_millis().max(1).to_string().into())
            .with_headers(headers);
        if want_reply {
            properties = properties.with_reply_to(REPLY_TO.into());
        }
        let queue = service_queue(service);
        let publish = async {
            let options = BasicPublishOptions {
                mandatory: true,
                immediate: false,
            };
            self.shared
                .channel
                .basic_publish("".into(), queue.as_str().into(), options, body, properties)
                .await?
                .await
        };
        let timed_out = || deadline_exceeded(service, method, wait);
        let confirmation = tokio::time::timeout_at(until, publish)
            .await
            .map_err(|_| timed_out())??;
        if confirmation.is_nack() {
            return Err(RpcError::Transport(format!(
                "the broker refused the request to '{queue}'"
            )));
        }
        if confirmation.take_message().is_some() {
            return Err(RpcError::NoService {
                service: service.to_string(),
                queue,
            });
        }
        let Some(reply) = reply else { return Ok(None) };
        let reply = tokio::time::timeout_at(until, reply)
            .await
            .map_err(|_| timed_out())?
            .map_err(|_| closed())?;
        let format = reply_format(&reply, self.options.format);
        if let Ok(Envelope::Fault(fault)) =
            format.decode::<Envelope<IgnoredAny, IgnoredAny>>(&reply.body)
        {
            return Err(RpcError::from_fault(service, method, fault));
        }
        Ok(Some(reply))
    }

    async fn take_rate_token(&self, service: &str, max_wait: Duration) -> Result<(), RpcError> {
        let Some(limit) = &self.shared.rate_limit else {
            return Ok(());
        };
        let wait = {
            let mut limiters = self.shared.limiters.lock().expect("limiters lock");
            let now = Instant::now();
            let bucket = limiters
                .entry(service.to_string())
                .or_insert_with(|| TokenBucket::new(limit, now));
            match limit.mode {
                LimitMode::Reject => bucket.try_take(now).then_some(Duration::ZERO),
                LimitMode::Wait => bucket.reserve(now, max_wait),
            }
        };
        match wait {
            None => Err(RpcError::RateLimited {
                service: service.to_string(),
            }),
            Some(d) if d.is_zero() => Ok(()),
            Some(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        }
    }

    fn admit(&self, service: &str) -> Result<Ticket<'_>, RpcError> {
        let Some(config) = &self.shared.breaker else {
            return Ok(Ticket {
                shared: &self.shared,
                service: None,
            });
        };
        let mut breakers = self.shared.breakers.lock().expect("breakers lock");
        let breaker = breakers
            .entry(service.to_string())
            .or_insert_with(|| CircuitBreaker::new(config.clone()));
        match breaker.admit(Instant::now()) {
            Some(admission) => Ok(Ticket {
                shared: &self.shared,
                service: Some((service.to_string(), admission)),
            }),
            None => Err(RpcError::CircuitOpen {
                service: service.to_string(),
            }),
        }
    }

    /// Closes the client's connection; pending calls fail. A client made with
    /// [`Client::on_connection`] closes the connection it was given, for everyone using it.
    pub async fn close(&self) {
        let _ = self
            .shared
            .connection
            .close(200, "client closed".into())
            .await;
    }
}

/// A call let through by the breaker; tells it the outcome, or that the caller gave up.
struct Ticket<'a> {
    shared: &'a Shared,
    service: Option<(String, Admission)>,
}

impl Ticket<'_> {
    fn settle(mut self, failed: bool) {
        if let Some((service, admission)) = self.service.take() {
            let mut breakers = self.shared.breakers.lock().expect("breakers lock");
            if let Some(b) = breakers.get_mut(&service) {
                b.record(admission, failed, Instant::now());
            }
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some((service, admission)) = self.service.take() {
            if let Ok(mut breakers) = self.shared.breakers.lock() {
                if let Some(b) = breakers.get_mut(&service) {
                    b.abandon(admission);
                }
            }
        }
    }
}

/// Stops waiting for a reply when the attempt ends, however it ends.
struct Forget<'a> {
    replies: &'a Replies,
    id: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.replies.forget(self.id);
    }
}

fn reply_format(reply: &Reply, sent: Format) -> Format {
    reply
        .content_type
        .as_deref()
        .and_then(|c| Format::from_content_type(Some(c)))
        .unwrap_or(sent)
}

fn deadline_exceeded(service: &str, method: &str, waited: Duration) -> RpcError {
    RpcError::DeadlineExceeded {
        service: service.into(),
        method: method.into(),
        waited_ms: waited.as_millis() as u64,
    }
}

fn encode_error(service: &str, method: &str, reason: String) -> RpcError {
    RpcError::Encode {
        service: service.into(),
        method: method.into(),
        reason,
    }
}

/// A call in flight, started by [`Client::start`] (or a stub's `start_*`); await it for the
/// result. Dropping it does not cancel the call.
pub struct Pending<T, E> {
    task: tokio::task::JoinHandle<Result<T, E>>,
    /// `Service.method`, for the error if the call's task dies.
    label: String,
    _types: std::marker::PhantomData<fn() -> (T, E)>,
}

impl<T, E: From<RpcError>> Future for Pending<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(e)) => Poll::Ready(Err(E::from(RpcError::Transport(format!(
                "call {} ended: {e}",
                self.label
            ))))),
        }
    }
}
