//! One AMQP connection: a single task that reads frames, applies them, receives deliveries
//! from queues, and writes everything it produced in one write per wake-up.
//!
//! The task owns all per-connection state (channels, delivery tags, consumers), so nothing
//! here is shared or locked. The broker rules it applies are core's (`Publisher`,
//! `Subscriptions`, the queue machine behind each queue's inbox); this module reads frames,
//! dispatches methods, moves commands to queues and writes what comes back. Submodules:
//! `handshake` (start … open), `channel` (per-channel state), `definitions` (exchange.* and
//! queue.*), `basic` (basic.*, confirm.*, tx.*), `deliver` (message encoding), `reply_to`
//! (direct reply-to).

mod basic;
mod channel;
mod control;
mod definitions;
mod deliver;
mod handshake;
mod reply_to;

use crate::broker::Broker;
use crate::queue_task::{ConfirmTo, OutDelivery, Outbound, QueueRef, Sink};
use crate::stats::{ConnectionControl, ConnectionEntry, ConnectionInfo, Counter};
use crate::vhost::VHost;
use bytes::BytesMut;
use channel::{Channel, ChannelState};
use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::{debug, info};
use warren_amqp::{
    encode_heartbeat, encode_method, ChannelClose, ConnectionClose, Frame, FrameDecoder, Method,
    ShortStr, BASIC_PUBLISH,
};
use warren_core::queue::{Command, ConfirmId, ConsumerId, SessionId, Settlement};
use warren_core::BrokerError;

/// Read buffer growth step; small so idle connections stay cheap.
const READ_CHUNK: usize = 8 * 1024;
/// Buffers larger than this are given back after use.
const BUFFER_KEEP: usize = 256 * 1024;
/// How long we wait for `close-ok` after sending `connection.close`.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_secs(2);
/// Outbound queue messages handled per wake-up.
const OUTBOUND_BATCH: usize = 64;
/// Deliveries a consumer may have handed to this connection but not yet written to the
/// socket: keeps a no-ack or unlimited-prefetch consumer from flooding the memory of a
/// connection that writes slower than its queue delivers.
pub(crate) const WRITE_WINDOW: u32 = 4096;

/// A client's byte stream: plain TCP, or TLS over it. Writers flush after each write (a TLS
/// stream may hold written bytes until flushed; for TCP it costs nothing).
pub(crate) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientStream for T {}
pub(crate) type Socket = Box<dyn ClientStream>;

/// What the transport knows about the client: the local address it reached, and for the
/// EXTERNAL mechanism (offered on TLS listeners that verify peers) the user named by the
/// client's verified certificate.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    pub local: SocketAddr,
    pub external: bool,
    pub certificate_user: Option<String>,
}

/// Why the connection's main loop stops.
enum End {
    /// The peer closed the socket or an I/O error occurred.
    Gone,
    /// An orderly close finished (close/close-ok exchanged), for this reason.
    Closed(String),
}

pub(crate) struct Connection {
    id: u64,
    broker: Arc<Broker>,
    socket: Socket,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: FrameDecoder,
    vhost: Arc<VHost>,
    user: String,
    frame_max: u32,
    channel_max: u16,
    heartbeat: Duration,
    /// The client understands server-sent `basic.cancel`.
    cancel_notify: bool,
    channels: FxHashMap<u16, Channel>,
    /// Which channel each open session is (queues address deliveries to sessions).
    sessions: FxHashMap<SessionId, u16>,
    sink: Sink,
    outbound: mpsc::UnboundedReceiver<Outbound>,
    /// Direct reply-to consumers of this connection's channels.
    replies: reply_to::ReplyConsumers,
    /// Deliveries written per consumer since the last credit report.
    written: Vec<(QueueRef, ConsumerId, u32)>,
    exclusive_queues: Vec<QueueRef>,
    last_read: Instant,
    wrote_since_tick: bool,
    /// The client understands `connection.blocked`.
    blocked_notify: bool,
    /// This connection has published: a resource alarm blocks it.
    publishing: bool,
    /// Not read from while a resource alarm lasts.
    blocked: bool,
    /// This connection in the broker's registry: its counters, written only by this task.
    stats: Arc<ConnectionEntry>,
    /// Requests from the management API (describe, close).
    control: mpsc::UnboundedReceiver<ConnectionControl>,
}

/// Serves one accepted socket until it closes.
pub(crate) async fn serve(
    broker: Arc<Broker>,
    mut socket: Socket,
    peer: SocketAddr,
    id: u64,
    transport: Transport,
) {
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let session = match handshake::run(&broker, &mut socket, &mut rbuf, peer, &transport).await {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            debug!(connection = id, %peer, "handshake ended: {e}");
            return;
        }
    };
    let (control_tx, control) = mpsc::unbounded_channel();
    let local = transport.local;
    let registration = broker.registry.register(
        id,
        ConnectionInfo {
            peer,
            local,
            user: session.user.clone(),
            vhost: session.vhost.name.clone(),
            client_properties: session.client_properties.clone(),
            auth_mechanism: session.mechanism.clone(),
            frame_max: session.frame_max,
            channel_max: session.channel_max,
            heartbeat_secs: session.heartbeat,
            connected_at_ms: crate::clock::wall_clock_ms(),
        },
        control_tx,
    );
    let stats = registration.entry.clone();
    let client_name = stats.info.client_provided_name().unwrap_or("").to_string();
    info!(
        connection = id,
        peer = %crate::stats::addr(&peer),
        user = %session.user,
        vhost = %session.vhost.name,
        client_name = %client_name,
        "accepting AMQP connection {}",
        stats.name()
    );
    let (sink, outbound) = mpsc::unbounded_channel();
    let mut conn = Connection {
        id,
        broker,
        socket,
        rbuf,
        wbuf: BytesMut::new(),
        decoder: FrameDecoder::new(session.frame_max),
        vhost: session.vhost,
        user: session.user,
        frame_max: session.frame_max,
        channel_max: session.channel_max,
        heartbeat: Duration::from_secs(session.heartbeat as u64),
        cancel_notify: session.cancel_notify,
        channels: FxHashMap::default(),
        sessions: FxHashMap::default(),
        sink,
        outbound,
        replies: reply_to::ReplyConsumers::default(),
        written: Vec::new(),
        exclusive_queues: Vec::new(),
        last_read: Instant::now(),
        wrote_since_tick: false,
        blocked_notify: session.blocked_notify,
        publishing: false,
        blocked: false,
        stats,
        control,
    };
    let end = conn.run().await;
    conn.cleanup().await;
    let reason = match &end {
        End::Gone => "client unexpectedly closed TCP connection".to_string(),
        End::Closed(reason) => reason.clone(),
    };
    info!(
        connection = id,
        peer = %crate::stats::addr(&peer),
        user = %conn.user,
        vhost = %conn.vhost.name,
        client_name = %client_name,
        reason = %reason,
        "closing AMQP connection {}: {reason}",
        conn.stats.name()
    );
    drop(registration);
}

impl Connection {
    async fn run(&mut self) -> End {
        let mut shutdown = self.broker.shutdown_signal();
        let tick_every = if self.heartbeat.is_zero() {
            Duration::from_secs(3600)
        } else {
            self.heartbeat / 2
        };
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + tick_every, tick_every);
        let mut outbound = Vec::with_capacity(OUTBOUND_BATCH);
        let mut alarms = self.broker.alarms();
        loop {
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 2 {
                self.rbuf.reserve(READ_CHUNK);
            }
            tokio::select! {
                read = self.socket.read_buf(&mut self.rbuf), if !self.blocked => {
                    match read {
                        Ok(0) | Err(_) => return End::Gone,
                        Ok(n) => {
                            self.stats.received(n);
                            self.last_read = Instant::now();
                            if let Some(end) = self.on_readable().await {
                                return end;
                            }
                        }
                    }
                }
                n = self.outbound.recv_many(&mut outbound, OUTBOUND_BATCH) => {
                    if n > 0 {
                        for o in outbound.drain(..) {
                            self.on_outbound(o);
                        }
                    }
                }
                _ = ticker.tick() => {
                    if self.blocked {
                        // We are not reading: the client's heartbeats wait in the socket.
                        self.last_read = Instant::now();
                    }
                    if !self.heartbeat.is_zero() {
                        if self.last_read.elapsed() > self.heartbeat * 2 {
                            info!(connection = self.id, "missed heartbeats from client, timeout: {}s", self.heartbeat.as_secs());
                            return End::Gone;
                        }
                        if !self.wrote_since_tick {
                            encode_heartbeat(&mut self.wbuf);
                        }
                        self.wrote_since_tick = false;
                    }
                }
                Some(request) = self.control.recv() => {
                    if let Some(end) = self.on_control(request).await {
                        return end;
                    }
                }
                _ = alarms.changed() => {}
                _ = shutdown.changed() => {
                    let err = BrokerError::forced("broker forced connection closure with reason 'shutdown'");
                    return self.close_connection(err, 0, 0).await;
                }
            }
            self.apply_alarms(*alarms.borrow_and_update());
            if self.flush().await.is_err() {
                return End::Gone;
            }
        }
    }

    /// Blocks a publishing connection while an alarm lasts, and unblocks it after.
    fn apply_alarms(&mut self, alarms: crate::resources::Alarms) {
        let should_block = alarms.any() && self.publishing;
        if should_block == self.blocked {
            return;
        }
        self.blocked = should_block;
        if self.blocked_notify {
            let method = if should_block {
                Method::ConnectionBlocked(warren_amqp::ConnectionBlocked {
                    reason: ShortStr::from_static(alarms.reason()),
                })
            } else {
                Method::ConnectionUnblocked
            };
            encode_method(0, &method, &mut self.wbuf);
        }
    }

    /// Applies every whole frame in the read buffer.
    async fn on_readable(&mut self) -> Option<End> {
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(frame)) => {
                    if let Some(end) = self.on_frame(frame).await {
                        return Some(end);
                    }
                }
                Ok(None) => break,
                Err(e) => return Some(self.close_connection(e.into(), 0, 0).await),
            }
        }
        if self.rbuf.is_empty() && self.rbuf.capacity() > BUFFER_KEEP {
            self.rbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        None
    }

    async fn on_frame(&mut self, frame: Frame) -> Option<End> {
        let result = match frame {
            Frame::Heartbeat { channel: 0 } => Ok(()),
            Frame::Heartbeat { channel } => Err(Fault::conn(BrokerError::unexpected_frame(format!(
                "heartbeat frame on channel {channel}"
            )))),
            Frame::Method { channel: 0, method } => return self.on_connection_method(method).await,
            Frame::Method { channel, method } => self.on_channel_method(channel, method).await,
            Frame::Header { channel, header } => self.on_header(channel, header).await,
            Frame::Body { channel, payload } => self.on_body(channel, payload).await,
        };
        match result {
            Ok(()) => None,
            Err(Fault {
                error,
                channel,
                class_id,
                method_id,
            }) => {
                if error.is_hard() || channel == 0 {
                    Some(self.close_connection(error, class_id, method_id).await)
                } else {
                    self.close_channel(channel, error, class_id, method_id)
                        .await;
                    None
                }
            }
        }
    }

    async fn on_connection_method(&mut self, method: Method) -> Option<End> {
        match method {
            Method::ConnectionClose(_) => {
                self.release_channels().await;
                encode_method(0, &Method::ConnectionCloseOk, &mut self.wbuf);
                let _ = self.flush().await;
                // The client closes the socket once it has read close-ok; closing it under the
                // client first makes some (lapin) report a failed read.
                let mut scratch = [0u8; 256];
                let _ = tokio::time::timeout(CLOSE_OK_TIMEOUT, async {
                    while let Ok(n) = self.socket.read(&mut scratch).await {
                        if n == 0 {
                            break;
                        }
                    }
                })
                .await;
                Some(End::Closed("client initiated close".to_string()))
            }
            Method::ConnectionUpdateSecret(_) => {
                encode_method(0, &Method::ConnectionUpdateSecretOk, &mut self.wbuf);
                None
            }
            other => {
                let (c, m) = other.id();
                let err = BrokerError::channel_error(format!(
                    "unexpected method {} on channel 0",
                    other.name()
                ));
                Some(self.close_connection(err, c, m).await)
            }
        }
    }

    async fn on_channel_method(&mut self, ch: u16, method: Method) -> Result<(), Fault> {
        let (class_id, method_id) = method.id();
        let fault = |e: BrokerError| Fault {
            error: e,
            channel: ch,
            class_id,
            method_id,
        };
        let state = self.channels.get(&ch).map(|c| c.state);
        match (state, &method) {
            (None, Method::ChannelOpen) => {
                // RabbitMQ counts open channels and does not check ids against channel-max:
                // clients rely on it (aiormq's suite opens channel 65535 under 2047).
                if self.channels.len() >= self.channel_max as usize {
                    let max = self.channel_max;
                    let error = BrokerError::not_allowed(format!(
                        "number of channels opened ({}) has reached the negotiated channel_max ({max})",
                        self.channels.len()
                    ));
                    return Err(Fault::conn_at(error, class_id, method_id));
                }
                let session = self.broker.next_session_id();
                self.sessions.insert(session, ch);
                self.channels.insert(ch, Channel::new(ch, session));
                self.channels_changed(true);
                encode_method(ch, &Method::ChannelOpenOk, &mut self.wbuf);
                return Ok(());
            }
            (None, _) => {
                return Err(Fault::conn_at(
                    BrokerError::channel_error("expected 'channel.open'"),
                    class_id,
                    method_id,
                ));
            }
            (Some(ChannelState::Closing), Method::ChannelCloseOk) => {
                self.forget_channel(ch);
                return Ok(());
            }
            (Some(ChannelState::Closing), Method::ChannelClose(_)) => {
                encode_method(ch, &Method::ChannelCloseOk, &mut self.wbuf);
                return Ok(());
            }
            // After we closed a channel, everything else on it is discarded until close-ok.
            (Some(ChannelState::Closing), _) => return Ok(()),
            (Some(ChannelState::Open), Method::ChannelOpen) => {
                return Err(Fault::conn_at(
                    BrokerError::channel_error("second 'channel.open' seen"),
                    class_id,
                    method_id,
                ));
            }
            _ => {}
        }
        if let Some(a) = self.channels.get(&ch).and_then(|c| c.assembling.as_ref()) {
            // Reported against the publish whose content was interrupted, as RabbitMQ does.
            let (class_id, method_id) = BASIC_PUBLISH;
            let error = BrokerError::unexpected_frame(a.interrupted().to_string());
            return Err(Fault::conn_at(error, class_id, method_id));
        }
        // Publishes and acks are batched per read; anything else sees their effects first.
        if !matches!(method, Method::BasicPublish(_) | Method::BasicAck(_)) {
            self.flush_pending().await;
        }
        self.apply_channel_method(ch, method).await.map_err(fault)
    }

    async fn apply_channel_method(&mut self, ch: u16, method: Method) -> Result<(), BrokerError> {
        match method {
            Method::ChannelClose(_) => {
                self.release_channel(ch).await;
                self.forget_channel(ch);
                encode_method(ch, &Method::ChannelCloseOk, &mut self.wbuf);
                Ok(())
            }
            Method::ChannelCloseOk => Ok(()),
            Method::ChannelFlow(f) => {
                if !f.active {
                    // As RabbitMQ: consumers are throttled with prefetch instead.
                    return Err(BrokerError::not_implemented("active=false"));
                }
                encode_method(ch, &Method::ChannelFlowOk(f), &mut self.wbuf);
                Ok(())
            }
            Method::ChannelFlowOk(_) => Ok(()),
            Method::AccessRequest(_) => {
                encode_method(ch, &Method::AccessRequestOk, &mut self.wbuf);
                Ok(())
            }
            Method::ExchangeDeclare(m) => self.exchange_declare(ch, m),
            Method::ExchangeDelete(m) => self.exchange_delete(ch, m),
            Method::ExchangeBind(m) => self.exchange_bind(ch, m, true),
            Method::ExchangeUnbind(m) => self.exchange_bind(ch, m, false),
            Method::QueueDeclare(m) => self.queue_declare(ch, m).await,
            Method::QueueBind(m) => self.queue_bind(ch, m),
            Method::QueueUnbind(m) => self.queue_unbind(ch, m),
            Method::QueuePurge(m) => self.queue_purge(ch, m).await,
            Method::QueueDelete(m) => self.queue_delete(ch, m).await,
            Method::BasicQos(m) => self.basic_qos(ch, m),
            Method::BasicConsume(m) => self.basic_consume(ch, m).await,
            Method::BasicCancel(m) => self.basic_cancel(ch, m).await,
            Method::BasicPublish(m) => self.basic_publish_start(ch, m),
            Method::BasicGet(m) => self.basic_get(ch, m).await,
            Method::BasicAck(m) => self.basic_settle(ch, m.delivery_tag, m.multiple, Settlement::Ack),
            Method::BasicReject(m) => {
                self.basic_settle(ch, m.delivery_tag, false, Settlement::rejected(m.requeue))
            }
            Method::BasicNack(m) => self.basic_settle(
                ch,
                m.delivery_tag,
                m.multiple,
                Settlement::rejected(m.requeue),
            ),
            Method::BasicRecover { requeue } => self.basic_recover(ch, requeue, true).await,
            Method::BasicRecoverAsync { requeue } => self.basic_recover(ch, requeue, false).await,
            Method::ConfirmSelect { nowait } => self.confirm_select(ch, nowait),
            Method::TxSelect => self.tx_select(ch),
            Method::TxCommit => self.tx_commit(ch).await,
            Method::TxRollback => self.tx_rollback(ch),
            other => Err(BrokerError::command_invalid(format!(
                "method {} is not valid from a client",
                other.name()
            ))),
        }
    }

    /// Sends `channel.close`, releases the channel's deliveries and consumers, and waits for
    /// the client's close-ok (handled in `on_channel_method`).
    async fn close_channel(&mut self, ch: u16, error: BrokerError, class_id: u16, method_id: u16) {
        debug!(
            connection = self.id,
            channel = ch,
            "closing channel: {}",
            error.reply_text()
        );
        self.release_channel(ch).await;
        if let Some(c) = self.channels.get_mut(&ch) {
            c.state = ChannelState::Closing;
            c.assembling = None;
        }
        let close = ChannelClose {
            reply_code: error.reply_code().code(),
            reply_text: ShortStr::truncating(&error.reply_text()),
            class_id,
            method_id,
        };
        encode_method(ch, &Method::ChannelClose(close), &mut self.wbuf);
    }

    /// Releases the channels, sends `connection.close` and waits (bounded) for close-ok.
    async fn close_connection(&mut self, error: BrokerError, class_id: u16, method_id: u16) -> End {
        info!(connection = self.id, "closing connection: {}", error.reply_text());
        self.release_channels().await;
        let close = ConnectionClose {
            reply_code: error.reply_code().code(),
            reply_text: ShortStr::truncating(&error.reply_text()),
            class_id,
            method_id,
        };
        encode_method(0, &Method::ConnectionClose(close), &mut self.wbuf);
        if self.flush().await.is_err() {
            return End::Gone;
        }
        let _ = tokio::time::timeout(CLOSE_OK_TIMEOUT, self.await_close_ok()).await;
        End::Closed(error.reply_text())
    }

    async fn await_close_ok(&mut self) {
        loop {
            loop {
                match self.decoder.decode(&mut self.rbuf) {
                    Ok(Some(Frame::Method {
                        channel: 0,
                        method: Method::ConnectionCloseOk,
                    })) => return,
                    Ok(Some(Frame::Method {
                        channel: 0,
                        method: Method::ConnectionClose(_),
                    })) => {
                        encode_method(0, &Method::ConnectionCloseOk, &mut self.wbuf);
                        let _ = self.flush().await;
                        return;
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            self.rbuf.reserve(READ_CHUNK);
            match self.socket.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Sends the gathered work to queues, then writes whatever is buffered.
    async fn flush(&mut self) -> std::io::Result<()> {
        self.flush_pending().await;
        if self.wbuf.is_empty() {
            return Ok(());
        }
        self.socket.write_all(&self.wbuf).await?;
        self.stats.sent(self.wbuf.len());
        self.socket.flush().await?;
        self.wrote_since_tick = true;
        self.wbuf.clear();
        if self.wbuf.capacity() > BUFFER_KEEP {
            self.wbuf = BytesMut::new();
        }
        // Deliveries are written: give their queues the write credit back.
        for (queue, consumer, n) in std::mem::take(&mut self.written) {
            queue.tell(Command::Written { consumer, n });
        }
        Ok(())
    }

    /// Sends every channel's batched publishes, settlements and credit grants to their
    /// queues, then writes the confirms they earn.
    async fn flush_pending(&mut self) {
        let mut publishes = Vec::new();
        for channel in self.channels.values_mut() {
            if channel.publisher.has_batches() {
                publishes.push((channel.id, channel.session, channel.publisher.take_batches()));
            }
        }
        for (ch, session, batches) in publishes {
            for (target, batch) in batches {
                let ids: Vec<ConfirmId> = batch.iter().filter_map(|p| p.confirm).collect();
                let to = (!ids.is_empty()).then(|| ConfirmTo {
                    sink: self.sink.clone(),
                    session,
                });
                // A queue deleted meanwhile drops the message, as if it had been deleted
                // after; its publishes count as dealt with.
                if !target.publish(batch, to).await {
                    if let Some(c) = self.channels.get_mut(&ch) {
                        c.publisher.answered(ids, true);
                    }
                }
            }
        }
        for channel in self.channels.values_mut() {
            for (queue, how, seqs) in channel.subs.take_settlements() {
                if how == Settlement::Ack {
                    self.stats.counters.add(Counter::Ack, seqs.len() as u64);
                }
                queue.tell(Command::Settle { seqs, how });
            }
            for (queue, consumer, grant) in channel.subs.take_grants() {
                queue.tell(Command::Grant { consumer, grant });
            }
            let confirmed = channel.write_confirms(&mut self.wbuf);
            self.stats.counters.add(Counter::Confirm, confirmed as u64);
        }
    }

    fn on_outbound(&mut self, o: Outbound) {
        match o {
            Outbound::Deliveries(batch) => {
                for d in batch {
                    self.deliver(d);
                }
            }
            Outbound::Confirmed { session, ok, ids } => {
                if let Some(channel) = self.session_channel(session) {
                    channel.publisher.answered(ids, ok);
                }
            }
            Outbound::Credit {
                session,
                consumer,
                returned,
            } => {
                if let Some(channel) = self.session_channel(session) {
                    match returned {
                        None => channel.subs.credit_wanted(consumer),
                        Some(n) => channel.subs.credit_returned(consumer, n),
                    }
                }
            }
            Outbound::DirectReply {
                channel,
                caller,
                message,
            } => self.deliver_reply(channel, caller, message),
            Outbound::Cancelled { session, consumer } => {
                let notify = self.cancel_notify;
                let Some(channel) = self.session_channel(session) else {
                    return;
                };
                let Some(tag) = channel.subs.consumer(consumer).map(|c| c.tag.clone()) else {
                    return;
                };
                channel.subs.unsubscribe(&tag);
                if notify && channel.state == ChannelState::Open {
                    let cancel = warren_amqp::BasicCancel {
                        consumer_tag: tag,
                        nowait: true,
                    };
                    let ch = channel.id;
                    encode_method(ch, &Method::BasicCancel(cancel), &mut self.wbuf);
                }
            }
        }
    }

    /// The open channel a session is.
    fn session_channel(&mut self, session: SessionId) -> Option<&mut Channel> {
        let ch = self.sessions.get(&session)?;
        self.channels.get_mut(ch)
    }

    /// Writes one delivery from a queue to its consumer.
    fn deliver(&mut self, d: OutDelivery) {
        let frame_max = self.frame_max;
        let Some(ch) = self.sessions.get(&d.session).copied() else {
            // The channel closed after the queue sent this; the queue requeued it.
            return;
        };
        let Some(channel) = self.channels.get_mut(&ch) else {
            return;
        };
        if channel.state != ChannelState::Open {
            return;
        }
        let Some(tag) = channel.subs.delivered(d.consumer, d.delivery.seq) else {
            return;
        };
        let c = channel.subs.consumer(d.consumer).expect("delivered to a known consumer");
        let counter = if c.no_ack { Counter::DeliverNoAck } else { Counter::Deliver };
        self.stats.counters.add(counter, 1);
        if d.delivery.redelivered {
            self.stats.counters.add(Counter::Redeliver, 1);
        }
        deliver::write_delivery(
            &mut self.wbuf,
            ch,
            c.tag.as_bytes(),
            tag,
            &d.delivery,
            frame_max,
        );
        match self
            .written
            .iter_mut()
            .rev()
            .find(|(_, c, _)| *c == d.consumer)
        {
            Some((_, _, n)) => *n += 1,
            None => self.written.push((c.queue.clone(), d.consumer, 1)),
        }
    }

    /// Handles everything queues have already sent us (used before replies that must follow
    /// those deliveries or cancellations on the wire).
    fn drain_outbound(&mut self) {
        while let Ok(o) = self.outbound.try_recv() {
            self.on_outbound(o);
        }
    }

    /// Returns a channel's held deliveries to their queues and removes its consumers.
    async fn release_channel(&mut self, ch: u16) {
        self.flush_pending().await;
        let Some(channel) = self.channels.get_mut(&ch) else {
            return;
        };
        let session = channel.session;
        let queues = channel.subs.close();
        channel.tx = None;
        for q in &queues {
            q.session_closed(session).await;
            // An auto-delete queue may have gone with this channel's consumers.
            if q.is_gone() {
                self.vhost.forget_queue(q);
            }
        }
        self.replies.channel_closed(ch);
        // Deliveries sent before the queues saw the close were requeued by them: drop ours.
        self.drain_outbound();
    }

    /// The channel is gone from the connection.
    fn forget_channel(&mut self, ch: u16) {
        if let Some(channel) = self.channels.remove(&ch) {
            self.sessions.remove(&channel.session);
            self.channels_changed(false);
        }
    }

    /// Releases and removes every channel. RabbitMQ does this before it sends close-ok to a
    /// closing client, and before its own `connection.close`: whoever reads either frame
    /// finds the connection's unacked messages back in their queues and its consumers gone.
    async fn release_channels(&mut self) {
        let chans: Vec<u16> = self.channels.keys().copied().collect();
        for ch in chans {
            self.release_channel(ch).await;
            self.forget_channel(ch);
        }
    }

    /// Connection end: release every channel, delete exclusive queues.
    async fn cleanup(&mut self) {
        self.release_channels().await;
        for q in std::mem::take(&mut self.exclusive_queues) {
            let _ = q.delete(false, false).await;
            self.vhost.forget_queue(&q);
        }
    }
}

/// A protocol error with where it happened.
struct Fault {
    error: BrokerError,
    channel: u16,
    class_id: u16,
    method_id: u16,
}

impl Fault {
    /// A channel error reported against the `basic.publish` whose content was being received.
    fn publish(channel: u16, error: BrokerError) -> Fault {
        let (class_id, method_id) = BASIC_PUBLISH;
        Fault {
            error,
            channel,
            class_id,
            method_id,
        }
    }
    fn conn(error: BrokerError) -> Fault {
        Fault {
            error,
            channel: 0,
            class_id: 0,
            method_id: 0,
        }
    }
    fn conn_at(error: BrokerError, class_id: u16, method_id: u16) -> Fault {
        Fault {
            error,
            channel: 0,
            class_id,
            method_id,
        }
    }
}
