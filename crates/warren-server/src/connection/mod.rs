//! One AMQP connection: a single task that reads frames, applies them, receives deliveries
//! from queues, and writes everything it produced in one write per wake-up.
//!
//! The task owns all per-connection state (channels, delivery tags, consumers), so nothing
//! here is shared or locked. Submodules split the work: `handshake` (start … open),
//! `channel` (per-channel state), `definitions` (exchange.* and queue.*), `basic` (basic.*,
//! confirm.*, tx.*).

mod basic;
mod channel;
mod definitions;
mod handshake;
mod reply_to;

use crate::broker::Broker;
use crate::queue_task::{OutDelivery, Outbound, Publish, QueueCmd, QueueRef, Sink};
use crate::vhost::VHost;
use bytes::BytesMut;
use channel::{Channel, ChannelState};
use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, info};
use warren_amqp::{
    encode_heartbeat, encode_method, ChannelClose, ConnectionClose, Frame, FrameDecoder, Method,
    ReplyCode, ShortStr,
};
use warren_core::queue::{ChannelKey, ConsumerId, Seq};
use warren_core::AmqpError;

/// Read buffer growth step; small so idle connections stay cheap.
const READ_CHUNK: usize = 8 * 1024;
/// Buffers larger than this are given back after use.
const BUFFER_KEEP: usize = 256 * 1024;
/// How long we wait for `close-ok` after sending `connection.close`.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_secs(2);
/// Outbound queue messages handled per wake-up.
const OUTBOUND_BATCH: usize = 64;

/// Why the connection's main loop stops.
enum End {
    /// The peer closed the socket or an I/O error occurred.
    Gone,
    /// An orderly close finished (close/close-ok exchanged).
    Closed,
}

/// A consumer of this connection, by id (deliveries name it by id).
struct ConsumerEntry {
    channel: u16,
    tag: ShortStr,
    queue: QueueRef,
    no_ack: bool,
}

/// Work gathered while applying one read's worth of frames, sent to queues afterwards so
/// each queue gets one command per batch instead of one per message.
#[derive(Default)]
struct Pending {
    publishes: Vec<(QueueRef, Vec<Publish>)>,
    acks: Vec<(QueueRef, Vec<Seq>)>,
    requeues: Vec<(QueueRef, Vec<Seq>)>,
    discards: Vec<(QueueRef, Vec<Seq>)>,
    /// Queues to poke because channel credit was released.
    pokes: Vec<QueueRef>,
}

fn push_to(list: &mut Vec<(QueueRef, Vec<Seq>)>, queue: &QueueRef, seq: Seq) {
    match list.iter_mut().find(|(q, _)| q == queue) {
        Some((_, seqs)) => seqs.push(seq),
        None => list.push((queue.clone(), vec![seq])),
    }
}

pub(crate) struct Connection {
    id: u64,
    broker: Arc<Broker>,
    socket: TcpStream,
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
    consumers: FxHashMap<ConsumerId, ConsumerEntry>,
    sink: Sink,
    outbound: mpsc::UnboundedReceiver<Outbound>,
    /// Direct reply-to consumers of this connection's channels.
    replies: reply_to::ReplyConsumers,
    pending: Pending,
    /// Deliveries written per consumer since the last credit report.
    written: Vec<(QueueRef, ConsumerId, u32)>,
    exclusive_queues: Vec<QueueRef>,
    route_scratch: Vec<QueueRef>,
    route_cache: Option<basic::RouteCache>,
    last_read: Instant,
    wrote_since_tick: bool,
    /// The client understands `connection.blocked`.
    blocked_notify: bool,
    /// This connection has published: a resource alarm blocks it.
    publishing: bool,
    /// Not read from while a resource alarm lasts.
    blocked: bool,
}

/// Serves one accepted socket until it closes.
pub(crate) async fn serve(broker: Arc<Broker>, mut socket: TcpStream, peer: SocketAddr, id: u64) {
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let session = match handshake::run(&broker, &mut socket, &mut rbuf, peer).await {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            debug!(connection = id, %peer, "handshake ended: {e}");
            return;
        }
    };
    info!(connection = id, %peer, user = %session.user, vhost = %session.vhost.name, "connection opened");
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
        consumers: FxHashMap::default(),
        sink,
        outbound,
        replies: reply_to::ReplyConsumers::default(),
        pending: Pending::default(),
        written: Vec::new(),
        exclusive_queues: Vec::new(),
        route_scratch: Vec::new(),
        route_cache: None,
        last_read: Instant::now(),
        wrote_since_tick: false,
        blocked_notify: session.blocked_notify,
        publishing: false,
        blocked: false,
    };
    let end = conn.run().await;
    conn.cleanup().await;
    info!(connection = id, %peer, "connection closed{}", if matches!(end, End::Gone) { " by peer" } else { "" });
}

impl Connection {
    fn channel_key(&self, channel: u16) -> ChannelKey {
        ChannelKey {
            connection: self.id,
            channel,
        }
    }

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
                        Ok(_) => {
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
                _ = alarms.changed() => {}
                _ = shutdown.changed() => {
                    let err = AmqpError::new(ReplyCode::ConnectionForced, "broker forced connection closure with reason 'shutdown'");
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
            Frame::Heartbeat { channel } => Err(Fault::conn(AmqpError::unexpected_frame(format!(
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
                Some(End::Closed)
            }
            Method::ConnectionUpdateSecret(_) => {
                encode_method(0, &Method::ConnectionUpdateSecretOk, &mut self.wbuf);
                None
            }
            other => {
                let (c, m) = other.id();
                let err = AmqpError::channel_error(format!(
                    "unexpected method {} on channel 0",
                    other.name()
                ));
                Some(self.close_connection(err, c, m).await)
            }
        }
    }

    async fn on_channel_method(&mut self, ch: u16, method: Method) -> Result<(), Fault> {
        let (class_id, method_id) = method.id();
        let fault = |e: AmqpError| Fault {
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
                    let error = AmqpError::not_allowed(format!(
                        "number of channels opened ({}) has reached the negotiated channel_max ({max})",
                        self.channels.len()
                    ));
                    return Err(Fault::conn_at(error, class_id, method_id));
                }
                self.channels.insert(ch, Channel::new(ch));
                encode_method(ch, &Method::ChannelOpenOk, &mut self.wbuf);
                return Ok(());
            }
            (None, _) => {
                return Err(Fault::conn_at(
                    AmqpError::channel_error("expected 'channel.open'"),
                    class_id,
                    method_id,
                ));
            }
            (Some(ChannelState::Closing), Method::ChannelCloseOk) => {
                self.channels.remove(&ch);
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
                    AmqpError::channel_error("second 'channel.open' seen"),
                    class_id,
                    method_id,
                ));
            }
            _ => {}
        }
        if let Some(a) = self.channels.get(&ch).and_then(|c| c.assembling.as_ref()) {
            // Reported against the publish whose content was interrupted, as RabbitMQ does.
            let expected = if a.header.is_none() {
                "expected content header for class 60, got non content header frame instead"
            } else {
                "expected content body, got non content body frame instead"
            };
            return Err(Fault::conn_at(
                AmqpError::unexpected_frame(expected),
                60,
                40,
            ));
        }
        // Publishes and acks are batched per read; anything else sees their effects first.
        if !matches!(method, Method::BasicPublish(_) | Method::BasicAck(_)) {
            self.flush_pending().await;
        }
        self.apply_channel_method(ch, method).await.map_err(fault)
    }

    async fn apply_channel_method(&mut self, ch: u16, method: Method) -> Result<(), AmqpError> {
        match method {
            Method::ChannelClose(_) => {
                self.release_channel(ch).await;
                self.channels.remove(&ch);
                encode_method(ch, &Method::ChannelCloseOk, &mut self.wbuf);
                Ok(())
            }
            Method::ChannelCloseOk => Ok(()),
            Method::ChannelFlow(f) => {
                if !f.active {
                    // As RabbitMQ: consumers are throttled with prefetch instead.
                    return Err(AmqpError::not_implemented("active=false"));
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
            Method::BasicAck(m) => self.basic_ack(ch, m.delivery_tag, m.multiple),
            Method::BasicReject(m) => self.basic_nack(ch, m.delivery_tag, false, m.requeue),
            Method::BasicNack(m) => self.basic_nack(ch, m.delivery_tag, m.multiple, m.requeue),
            Method::BasicRecover { requeue } => self.basic_recover(ch, requeue, true).await,
            Method::BasicRecoverAsync { requeue } => self.basic_recover(ch, requeue, false).await,
            Method::ConfirmSelect { nowait } => self.confirm_select(ch, nowait),
            Method::TxSelect => self.tx_select(ch),
            Method::TxCommit => self.tx_commit(ch).await,
            Method::TxRollback => self.tx_rollback(ch),
            other => Err(AmqpError::command_invalid(format!(
                "method {} is not valid from a client",
                other.name()
            ))),
        }
    }

    /// Sends `channel.close`, releases the channel's deliveries and consumers, and waits for
    /// the client's close-ok (handled in `on_channel_method`).
    async fn close_channel(&mut self, ch: u16, error: AmqpError, class_id: u16, method_id: u16) {
        debug!(
            connection = self.id,
            channel = ch,
            "closing channel: {}",
            error.text
        );
        self.release_channel(ch).await;
        if let Some(c) = self.channels.get_mut(&ch) {
            c.state = ChannelState::Closing;
            c.assembling = None;
        }
        let close = ChannelClose {
            reply_code: error.code.code(),
            reply_text: ShortStr::truncating(&error.text),
            class_id,
            method_id,
        };
        encode_method(ch, &Method::ChannelClose(close), &mut self.wbuf);
    }

    /// Releases the channels, sends `connection.close` and waits (bounded) for close-ok.
    async fn close_connection(&mut self, error: AmqpError, class_id: u16, method_id: u16) -> End {
        info!(connection = self.id, "closing connection: {}", error.text);
        self.release_channels().await;
        let close = ConnectionClose {
            reply_code: error.code.code(),
            reply_text: ShortStr::truncating(&error.text),
            class_id,
            method_id,
        };
        encode_method(0, &Method::ConnectionClose(close), &mut self.wbuf);
        if self.flush().await.is_err() {
            return End::Gone;
        }
        let _ = tokio::time::timeout(CLOSE_OK_TIMEOUT, self.await_close_ok()).await;
        End::Closed
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
        self.wrote_since_tick = true;
        self.wbuf.clear();
        if self.wbuf.capacity() > BUFFER_KEEP {
            self.wbuf = BytesMut::new();
        }
        // Deliveries are written: give their queues the write credit back.
        for (queue, consumer, n) in std::mem::take(&mut self.written) {
            queue.send(QueueCmd::Credit { consumer, n }).await;
        }
        Ok(())
    }

    /// Sends batched publishes, acks and pokes to their queues, then the confirms they earn.
    async fn flush_pending(&mut self) {
        let p = std::mem::take(&mut self.pending);
        for (queue, batch) in p.publishes {
            let wants_confirm: Vec<(u16, u64)> = batch.iter().filter_map(|p| p.confirm).collect();
            let sink = (!wants_confirm.is_empty()).then(|| self.sink.clone());
            // A queue deleted meanwhile drops the message, as if it had been deleted after;
            // its publishes count as dealt with.
            if !queue.publish(batch, sink).await {
                self.on_confirmed(true, wants_confirm);
            }
        }
        for (queue, seqs) in p.acks {
            queue.send(QueueCmd::Ack(seqs)).await;
        }
        for (queue, seqs) in p.requeues {
            queue.send(QueueCmd::Requeue(seqs)).await;
        }
        for (queue, seqs) in p.discards {
            queue.send(QueueCmd::Discard(seqs)).await;
        }
        for queue in p.pokes {
            queue.send(QueueCmd::Dispatch).await;
        }
        for channel in self.channels.values_mut() {
            channel.write_confirms(&mut self.wbuf);
        }
    }

    fn on_outbound(&mut self, o: Outbound) {
        match o {
            Outbound::Deliveries(batch) => {
                for d in batch {
                    self.deliver(d);
                }
            }
            Outbound::Confirmed { ok, publishes } => self.on_confirmed(ok, publishes),
            Outbound::DirectReply {
                channel,
                caller,
                message,
            } => self.deliver_reply(channel, caller, message),
            Outbound::Cancelled { channel, consumer } => {
                if let Some(entry) = self.consumers.remove(&consumer) {
                    if let Some(ch) = self.channels.get_mut(&channel) {
                        ch.consumers.remove(&entry.tag);
                        if self.cancel_notify && ch.state == ChannelState::Open {
                            let cancel = warren_amqp::BasicCancel {
                                consumer_tag: entry.tag,
                                nowait: true,
                            };
                            encode_method(channel, &Method::BasicCancel(cancel), &mut self.wbuf);
                        }
                    }
                }
            }
        }
    }

    /// Queues report persistent publishes on disk; each is confirmed once every durable queue
    /// it went to has it.
    fn on_confirmed(&mut self, ok: bool, publishes: Vec<(u16, u64)>) {
        for (ch, seq) in publishes {
            if let Some(channel) = self.channels.get_mut(&ch) {
                channel.queue_confirmed(seq, ok);
            }
        }
    }

    /// Writes one delivery from a queue to its consumer.
    fn deliver(&mut self, d: OutDelivery) {
        let Some(entry) = self.consumers.get(&d.consumer) else {
            // The consumer's channel closed after the queue sent this; the queue requeued it.
            return;
        };
        let Some(ch) = self.channels.get_mut(&d.channel) else {
            return;
        };
        if ch.state != ChannelState::Open {
            return;
        }
        let tag = ch.next_delivery_tag(&entry.queue, d.delivery.seq, !entry.no_ack, true);
        basic::write_delivery(
            &mut self.wbuf,
            d.channel,
            &entry.tag,
            tag,
            &d.delivery,
            self.frame_max,
        );
        match self
            .written
            .iter_mut()
            .rev()
            .find(|(_, c, _)| *c == d.consumer)
        {
            Some((_, _, n)) => *n += 1,
            None => self.written.push((entry.queue.clone(), d.consumer, 1)),
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
        let queues: Vec<QueueRef> = channel.touched_queues.drain().map(|(_, q)| q).collect();
        channel.unacked.clear();
        channel.consumers.clear();
        channel.tx = None;
        let owner = self.channel_key(ch);
        for q in &queues {
            q.call(|reply| QueueCmd::ChannelClosed {
                owner,
                reply: Some(reply),
            })
            .await;
        }
        self.consumers.retain(|_, c| c.channel != ch);
        self.replies.channel_closed(ch);
        // Deliveries sent before the queues saw the close were requeued by them: drop ours.
        self.drain_outbound();
    }

    /// Releases and removes every channel. RabbitMQ does this before it sends close-ok to a
    /// closing client, and before its own `connection.close`: whoever reads either frame
    /// finds the connection's unacked messages back in their queues and its consumers gone.
    async fn release_channels(&mut self) {
        let chans: Vec<u16> = self.channels.keys().copied().collect();
        for ch in chans {
            self.release_channel(ch).await;
        }
        self.channels.clear();
    }

    /// Connection end: release every channel, delete exclusive queues.
    async fn cleanup(&mut self) {
        self.release_channels().await;
        for q in std::mem::take(&mut self.exclusive_queues) {
            q.call(|reply| QueueCmd::Delete {
                if_unused: false,
                if_empty: false,
                reply,
            })
            .await;
        }
    }
}

/// A protocol error with where it happened.
struct Fault {
    error: AmqpError,
    channel: u16,
    class_id: u16,
    method_id: u16,
}

impl Fault {
    /// A channel error reported against the `basic.publish` whose content was being received.
    fn publish(channel: u16, error: AmqpError) -> Fault {
        Fault {
            error,
            channel,
            class_id: 60,
            method_id: 40,
        }
    }
    fn conn(error: AmqpError) -> Fault {
        Fault {
            error,
            channel: 0,
            class_id: 0,
            method_id: 0,
        }
    }
    fn conn_at(error: AmqpError, class_id: u16, method_id: u16) -> Fault {
        Fault {
            error,
            channel: 0,
            class_id,
            method_id,
        }
    }
}
