//! The bench's own AMQP 0-9-1 client for everything but the hot path: the handshake (PLAIN,
//! tune), channel set-up, declarations and deletions, one synchronous call at a time.
//!
//! It speaks only the standard protocol (plus the confirm and nack extensions every broker
//! of RabbitMQ's family has), so it works against any 0-9-1 broker. Once a connection is set
//! up, the [`Driver`](super::driver::Driver) takes over its socket and buffers; frames that
//! arrived while a reply was awaited (early deliveries, say) are kept for it in `stash`.

use anyhow::{anyhow, bail, Context};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_amqp::{
    encode_method, BasicConsume, BasicQos, ChannelClose, ConnectionClose, ConnectionOpen,
    ConnectionStartOk, ConnectionTuneOk, ExchangeDeclare, ExchangeDelete, FieldTable, FieldValue,
    Frame, FrameDecoder, Method, QueueBind, QueueDeclare, QueueDelete, ShortStr, PROTOCOL_HEADER,
};

use super::url::AmqpUrl;

/// Largest frame the bench proposes when the broker sets no limit.
const DEFAULT_FRAME_MAX: u32 = 131_072;
/// How long an orderly close waits for `close-ok` before dropping the socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Initial buffer size: small, so that the `connections` scenario's idle clients stay cheap.
const INITIAL_BUFFER: usize = 4 * 1024;

/// One open AMQP connection, between its handshake and its hand-over to a driver.
pub struct Client {
    pub(super) stream: TcpStream,
    pub(super) read_buf: BytesMut,
    pub(super) decoder: FrameDecoder,
    pub(super) frame_max: u32,
    pub(super) stash: VecDeque<Frame>,
    write_buf: BytesMut,
}

impl Client {
    /// Connects, authenticates with PLAIN, tunes (heartbeats off: the bench's connections are
    /// never silent long enough to need them, and idle ones must cost the broker nothing)
    /// and opens the URL's vhost.
    pub async fn connect(url: &AmqpUrl) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(url.address())
            .await
            .with_context(|| format!("cannot connect to {}", url.address()))?;
        stream.set_nodelay(true)?;
        let mut client = Client {
            stream,
            read_buf: BytesMut::with_capacity(INITIAL_BUFFER),
            decoder: FrameDecoder::new(DEFAULT_FRAME_MAX),
            frame_max: DEFAULT_FRAME_MAX,
            stash: VecDeque::new(),
            write_buf: BytesMut::with_capacity(INITIAL_BUFFER),
        };
        client.stream.write_all(PROTOCOL_HEADER).await?;
        let start = match client
            .next_method(0)
            .await
            .context("waiting for connection.start")?
        {
            Method::ConnectionStart(start) => start,
            other => bail!("expected connection.start, got {}", other.name()),
        };
        if !start
            .mechanisms
            .split(|&b| b == b' ')
            .any(|m| m == b"PLAIN")
        {
            bail!("the broker does not offer PLAIN authentication");
        }
        let response = format!("\0{}\0{}", url.user, url.password);
        let start_ok = ConnectionStartOk {
            client_properties: client_properties(),
            mechanism: ShortStr::from_static("PLAIN"),
            response: Bytes::from(response.into_bytes()),
            locale: ShortStr::from_static("en_US"),
        };
        client.send(0, &Method::ConnectionStartOk(start_ok)).await?;
        let tune = match client
            .next_method(0)
            .await
            .context("waiting for connection.tune (bad credentials?)")?
        {
            Method::ConnectionTune(tune) => tune,
            other => bail!("expected connection.tune, got {}", other.name()),
        };
        let frame_max = if tune.frame_max == 0 {
            DEFAULT_FRAME_MAX
        } else {
            tune.frame_max
        };
        client.frame_max = frame_max;
        client.decoder.set_max_frame_size(frame_max);
        let tune_ok = ConnectionTuneOk {
            channel_max: tune.channel_max,
            frame_max,
            heartbeat: 0,
        };
        client.send(0, &Method::ConnectionTuneOk(tune_ok)).await?;
        let open = ConnectionOpen {
            virtual_host: ShortStr::truncating(&url.vhost),
        };
        match client.call(0, &Method::ConnectionOpen(open)).await? {
            Method::ConnectionOpenOk => Ok(client),
            other => bail!("expected connection.open-ok, got {}", other.name()),
        }
    }

    pub async fn open_channel(&mut self, channel: u16) -> anyhow::Result<()> {
        self.expect(channel, Method::ChannelOpen, "channel.open-ok", |m| {
            matches!(m, Method::ChannelOpenOk)
        })
        .await
    }

    /// Declares a queue (classic, no arguments) and returns its ready message count.
    pub async fn declare_queue(
        &mut self,
        channel: u16,
        name: &str,
        durable: bool,
    ) -> anyhow::Result<u32> {
        self.queue_declare(channel, name, durable, false).await
    }

    /// A passive declare: the queue's ready message count, or an error if it does not exist.
    pub async fn queue_depth(&mut self, channel: u16, name: &str) -> anyhow::Result<u32> {
        self.queue_declare(channel, name, false, true).await
    }

    async fn queue_declare(
        &mut self,
        channel: u16,
        name: &str,
        durable: bool,
        passive: bool,
    ) -> anyhow::Result<u32> {
        let declare = QueueDeclare {
            queue: ShortStr::truncating(name),
            passive,
            durable,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::new(),
        };
        match self.call(channel, &Method::QueueDeclare(declare)).await? {
            Method::QueueDeclareOk(ok) => Ok(ok.message_count),
            other => bail!("expected queue.declare-ok, got {}", other.name()),
        }
    }

    pub async fn declare_exchange(
        &mut self,
        channel: u16,
        name: &str,
        kind: &'static str,
        durable: bool,
    ) -> anyhow::Result<()> {
        let declare = ExchangeDeclare {
            exchange: ShortStr::truncating(name),
            kind: ShortStr::from_static(kind),
            passive: false,
            durable,
            auto_delete: false,
            internal: false,
            nowait: false,
            arguments: FieldTable::new(),
        };
        self.expect(
            channel,
            Method::ExchangeDeclare(declare),
            "exchange.declare-ok",
            |m| matches!(m, Method::ExchangeDeclareOk),
        )
        .await
    }

    pub async fn bind_queue(
        &mut self,
        channel: u16,
        queue: &str,
        exchange: &str,
    ) -> anyhow::Result<()> {
        let bind = QueueBind {
            queue: ShortStr::truncating(queue),
            exchange: ShortStr::truncating(exchange),
            routing_key: ShortStr::default(),
            nowait: false,
            arguments: FieldTable::new(),
        };
        self.expect(channel, Method::QueueBind(bind), "queue.bind-ok", |m| {
            matches!(m, Method::QueueBindOk)
        })
        .await
    }

    pub async fn delete_queue(&mut self, channel: u16, name: &str) -> anyhow::Result<()> {
        let delete = QueueDelete {
            queue: ShortStr::truncating(name),
            if_unused: false,
            if_empty: false,
            nowait: false,
        };
        self.expect(
            channel,
            Method::QueueDelete(delete),
            "queue.delete-ok",
            |m| matches!(m, Method::QueueDeleteOk { .. }),
        )
        .await
    }

    pub async fn delete_exchange(&mut self, channel: u16, name: &str) -> anyhow::Result<()> {
        let delete = ExchangeDelete {
            exchange: ShortStr::truncating(name),
            if_unused: false,
            nowait: false,
        };
        self.expect(
            channel,
            Method::ExchangeDelete(delete),
            "exchange.delete-ok",
            |m| matches!(m, Method::ExchangeDeleteOk),
        )
        .await
    }

    /// `basic.qos` with a per-consumer prefetch count (0 = unlimited).
    pub async fn qos(&mut self, channel: u16, prefetch: u16) -> anyhow::Result<()> {
        let qos = BasicQos {
            prefetch_size: 0,
            prefetch_count: prefetch,
            global: false,
        };
        self.expect(channel, Method::BasicQos(qos), "basic.qos-ok", |m| {
            matches!(m, Method::BasicQosOk)
        })
        .await
    }

    pub async fn consume(
        &mut self,
        channel: u16,
        queue: &str,
        tag: &str,
        no_ack: bool,
    ) -> anyhow::Result<()> {
        let consume = BasicConsume {
            queue: ShortStr::truncating(queue),
            consumer_tag: ShortStr::truncating(tag),
            no_local: false,
            no_ack,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::new(),
        };
        self.expect(
            channel,
            Method::BasicConsume(consume),
            "basic.consume-ok",
            |m| matches!(m, Method::BasicConsumeOk { .. }),
        )
        .await
    }

    pub async fn confirm_select(&mut self, channel: u16) -> anyhow::Result<()> {
        self.expect(
            channel,
            Method::ConfirmSelect { nowait: false },
            "confirm.select-ok",
            |m| matches!(m, Method::ConfirmSelectOk),
        )
        .await
    }

    /// An orderly `connection.close`; gives up (dropping the socket) after [`CLOSE_TIMEOUT`].
    pub async fn close(mut self) {
        let close = ConnectionClose {
            reply_code: 200,
            reply_text: ShortStr::from_static("bench done"),
            class_id: 0,
            method_id: 0,
        };
        if self.send(0, &Method::ConnectionClose(close)).await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            loop {
                match self.next_frame().await {
                    Ok(Frame::Method {
                        channel: 0,
                        method: Method::ConnectionCloseOk | Method::ConnectionClose(_),
                    })
                    | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }

    async fn expect(
        &mut self,
        channel: u16,
        request: Method,
        reply_name: &str,
        is_reply: fn(&Method) -> bool,
    ) -> anyhow::Result<()> {
        let request_name = request.name();
        let reply = self
            .call(channel, &request)
            .await
            .with_context(|| format!("{request_name} on channel {channel}"))?;
        if !is_reply(&reply) {
            bail!(
                "{request_name}: expected {reply_name}, got {}",
                reply.name()
            );
        }
        Ok(())
    }

    /// Sends a synchronous request and returns the broker's reply on the same channel. A
    /// `channel.close` or `connection.close` in its place becomes an error carrying the
    /// broker's reply text.
    async fn call(&mut self, channel: u16, request: &Method) -> anyhow::Result<Method> {
        self.send(channel, request).await?;
        self.next_method(channel).await
    }

    async fn send(&mut self, channel: u16, method: &Method) -> anyhow::Result<()> {
        self.write_buf.clear();
        encode_method(channel, method, &mut self.write_buf);
        self.stream.write_all(&self.write_buf).await?;
        Ok(())
    }

    /// The next method on `channel` that is not asynchronous traffic; everything else is
    /// stashed for the driver.
    async fn next_method(&mut self, channel: u16) -> anyhow::Result<Method> {
        loop {
            let frame = self.next_frame().await?;
            match frame {
                Frame::Method {
                    channel: 0,
                    method: Method::ConnectionClose(close),
                } => {
                    let _ = self.send(0, &Method::ConnectionCloseOk).await;
                    return Err(anyhow!(
                        "the broker closed the connection: {} ({})",
                        close.reply_text.as_str(),
                        close.reply_code
                    ));
                }
                Frame::Method {
                    channel: c,
                    method: Method::ChannelClose(close),
                } if c == channel => {
                    let _ = self.send(channel, &Method::ChannelCloseOk).await;
                    return Err(closed_channel(&close));
                }
                Frame::Method { channel: c, method }
                    if c == channel && !is_asynchronous(&method) =>
                {
                    return Ok(method)
                }
                Frame::Heartbeat { .. } => {}
                other => self.stash.push_back(other),
            }
        }
    }

    async fn next_frame(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.read_buf)? {
                return Ok(frame);
            }
            self.read_buf.reserve(INITIAL_BUFFER);
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                bail!("the broker closed the socket");
            }
        }
    }
}

/// Methods the broker sends on its own initiative, never as the reply to a request.
fn is_asynchronous(method: &Method) -> bool {
    matches!(
        method,
        Method::BasicDeliver(_)
            | Method::BasicAck(_)
            | Method::BasicNack(_)
            | Method::BasicReturn(_)
            | Method::BasicCancel(_)
            | Method::ChannelFlow(_)
            | Method::ConnectionBlocked(_)
            | Method::ConnectionUnblocked
    )
}

pub(super) fn closed_channel(close: &ChannelClose) -> anyhow::Error {
    anyhow!(
        "the broker closed the channel: {} ({})",
        close.reply_text.as_str(),
        close.reply_code
    )
}

fn client_properties() -> FieldTable {
    let mut capabilities = FieldTable::new();
    for name in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
    ] {
        capabilities.insert(name, FieldValue::Bool(true));
    }
    let mut props = FieldTable::new();
    props.insert("product", FieldValue::string("warren bench"));
    props.insert("version", FieldValue::string(env!("CARGO_PKG_VERSION")));
    props.insert("platform", FieldValue::string("Rust"));
    props.insert("capabilities", FieldValue::Table(capabilities));
    props
}
