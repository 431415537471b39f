//! The connection handshake: protocol header, start/start-ok (PLAIN, AMQPLAIN), tune/tune-ok
//! negotiation as RabbitMQ does it, and open. EXTERNAL where the transport offers it (a TLS
//! listener verifying peers): the user named by the client certificate, without a password.
//! Until tune-ok only frames of the protocol minimum (4096 bytes, RabbitMQ's frame_max
//! before tuning) are accepted, so an unauthenticated peer cannot make the broker buffer more.

use super::{Socket, Transport};
use crate::broker::Broker;
use crate::vhost::VHost;
use bytes::{Buf, Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::info;
use warren_amqp::{
    encode_method, ConnectionClose, ConnectionStart, ConnectionTune, FieldTable, FieldValue, Frame,
    FrameDecoder, Method, ShortStr, FRAME_MIN_SIZE, PROTOCOL_HEADER,
};
use warren_core::BrokerError;

/// What the handshake negotiated.
pub struct Session {
    pub vhost: Arc<VHost>,
    pub user: String,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    pub cancel_notify: bool,
    pub blocked_notify: bool,
    /// What the client said about itself in `connection.start-ok` (shown by the management
    /// API; `connection_name` goes into the logs).
    pub client_properties: warren_amqp::FieldTable,
    pub mechanism: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("peer closed the connection")]
    Eof,
    /// Answered with the protocol header we speak, as the spec asks.
    #[error("client sent an unsupported protocol header")]
    BadHeader,
    #[error("{0}")]
    Protocol(BrokerError),
}

/// Runs the handshake. `Ok(None)` when the client was refused and told so.
pub async fn run(
    broker: &Broker,
    socket: &mut Socket,
    rbuf: &mut BytesMut,
    peer: SocketAddr,
    transport: &Transport,
) -> Result<Option<Session>, HandshakeError> {
    let timeout = Duration::from_millis(broker.config.handshake_timeout_ms);
    match tokio::time::timeout(timeout, negotiate(broker, socket, rbuf, peer, transport)).await {
        Ok(Ok(s)) => Ok(Some(s)),
        Ok(Err(HandshakeError::Protocol(err))) => {
            info!(%peer, "handshake refused: {}", err.reply_text());
            let mut out = BytesMut::new();
            let close = ConnectionClose {
                reply_code: err.reply_code().code(),
                reply_text: ShortStr::truncating(&err.reply_text()),
                class_id: 0,
                method_id: 0,
            };
            encode_method(0, &Method::ConnectionClose(close), &mut out);
            send(socket, &out).await?;
            // Give the client a moment to read the close before the socket goes.
            let mut scratch = [0u8; 256];
            let _ = tokio::time::timeout(Duration::from_secs(1), socket.read(&mut scratch)).await;
            Ok(None)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(HandshakeError::Timeout),
    }
}

async fn negotiate(
    broker: &Broker,
    socket: &mut Socket,
    rbuf: &mut BytesMut,
    peer: SocketAddr,
    transport: &Transport,
) -> Result<Session, HandshakeError> {
    // Protocol header. Anything else: answer with the header we speak, then close.
    while rbuf.len() < 8 {
        if socket.read_buf(rbuf).await? == 0 {
            return Err(HandshakeError::Eof);
        }
        if rbuf.len() < 8 && !PROTOCOL_HEADER.starts_with(&rbuf[..]) {
            break;
        }
    }
    if rbuf.len() < 8 || &rbuf[..8] != PROTOCOL_HEADER {
        send(socket, PROTOCOL_HEADER).await?;
        socket.shutdown().await.ok();
        return Err(HandshakeError::BadHeader);
    }
    rbuf.advance(8);

    let config = &broker.config;
    let mut decoder = FrameDecoder::new(FRAME_MIN_SIZE);
    let mut out = BytesMut::new();
    let mechanisms: &'static [u8] = if transport.external {
        b"PLAIN AMQPLAIN EXTERNAL"
    } else {
        b"PLAIN AMQPLAIN"
    };
    let start = ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties: server_properties(),
        mechanisms: Bytes::from_static(mechanisms),
        locales: Bytes::from_static(b"en_US"),
    };
    encode_method(0, &Method::ConnectionStart(start), &mut out);
    send(socket, &out).await?;
    out.clear();

    let Method::ConnectionStartOk(start_ok) = next_method(socket, rbuf, &mut decoder).await? else {
        return Err(protocol(BrokerError::command_invalid(
            "expected 'connection.start-ok'",
        )));
    };
    let mechanism = start_ok.mechanism.as_str();
    let user = if mechanism == "EXTERNAL" && transport.external {
        transport
            .certificate_user
            .clone()
            .filter(|user| broker.authenticate_certificate(user, peer))
    } else {
        let (user, password) = credentials(mechanism, &start_ok.response)?;
        broker
            .authenticate(&user, &password, peer)
            .then_some(user)
    };
    let Some(user) = user else {
        return Err(protocol(BrokerError::access_refused(format!(
            "Login was refused using authentication mechanism {}. For details see the broker logfile.",
            start_ok.mechanism
        ))));
    };
    let cancel_notify = client_capability(&start_ok.client_properties, "consumer_cancel_notify");
    let blocked_notify = client_capability(&start_ok.client_properties, "connection.blocked");

    let tune = ConnectionTune {
        channel_max: config.channel_max,
        frame_max: config.frame_max,
        heartbeat: config.heartbeat_secs,
    };
    encode_method(0, &Method::ConnectionTune(tune), &mut out);
    send(socket, &out).await?;
    out.clear();

    let Method::ConnectionTuneOk(tune_ok) = next_method(socket, rbuf, &mut decoder).await? else {
        return Err(protocol(BrokerError::command_invalid(
            "expected 'connection.tune-ok'",
        )));
    };
    let frame_max = match tune_ok.frame_max {
        0 => config.frame_max,
        f if f < FRAME_MIN_SIZE => {
            return Err(protocol(BrokerError::not_allowed(format!(
                "frame_max={f} < {FRAME_MIN_SIZE} min size"
            ))));
        }
        f if f > config.frame_max => {
            return Err(protocol(BrokerError::not_allowed(format!(
                "frame_max={f} > {} max size",
                config.frame_max
            ))));
        }
        f => f,
    };
    let channel_max = match tune_ok.channel_max {
        0 => config.channel_max,
        c if c > config.channel_max => {
            return Err(protocol(BrokerError::not_allowed(format!(
                "negotiated channel_max = {c} is higher than the maximum allowed value ({})",
                config.channel_max
            ))));
        }
        c => c,
    };
    decoder.set_max_frame_size(frame_max);

    let Method::ConnectionOpen(open) = next_method(socket, rbuf, &mut decoder).await? else {
        return Err(protocol(BrokerError::command_invalid(
            "expected 'connection.open'",
        )));
    };
    let Some(vhost) = broker.vhost(open.virtual_host.as_str()) else {
        return Err(protocol(BrokerError::not_allowed(format!(
            "vhost {} not found",
            open.virtual_host
        ))));
    };
    encode_method(0, &Method::ConnectionOpenOk, &mut out);
    send(socket, &out).await?;
    Ok(Session {
        vhost,
        user,
        frame_max,
        channel_max,
        heartbeat: tune_ok.heartbeat,
        cancel_notify,
        blocked_notify,
        client_properties: start_ok.client_properties,
        mechanism: start_ok.mechanism.to_string(),
    })
}

fn protocol(e: BrokerError) -> HandshakeError {
    HandshakeError::Protocol(e)
}

async fn send(socket: &mut Socket, bytes: &[u8]) -> std::io::Result<()> {
    socket.write_all(bytes).await?;
    socket.flush().await
}

/// Reads frames until a method on channel 0 (heartbeats are skipped).
async fn next_method(
    socket: &mut Socket,
    rbuf: &mut BytesMut,
    decoder: &mut FrameDecoder,
) -> Result<Method, HandshakeError> {
    loop {
        match decoder.decode(rbuf) {
            Ok(Some(Frame::Heartbeat { .. })) => continue,
            Ok(Some(Frame::Method { channel: 0, method })) => {
                if let Method::ConnectionClose(_) = method {
                    return Err(HandshakeError::Eof);
                }
                return Ok(method);
            }
            Ok(Some(_)) => {
                return Err(protocol(BrokerError::command_invalid(
                    "unexpected frame during the connection handshake",
                )))
            }
            Ok(None) => {}
            Err(e) => return Err(protocol(e.into())),
        }
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(4096);
        }
        if socket.read_buf(rbuf).await? == 0 {
            return Err(HandshakeError::Eof);
        }
    }
}

/// User name and password from a start-ok response.
fn credentials(mechanism: &str, response: &Bytes) -> Result<(String, String), HandshakeError> {
    let bad = || {
        protocol(BrokerError::access_refused(format!("Login was refused using authentication mechanism {mechanism}. For details see the broker logfile.")))
    };
    match mechanism {
        "PLAIN" => {
            // authzid \0 authcid \0 password
            let mut parts = response.split(|b| *b == 0);
            let _authzid = parts.next().ok_or_else(bad)?;
            let user = parts.next().ok_or_else(bad)?;
            let password = parts.next().ok_or_else(bad)?;
            Ok((
                String::from_utf8_lossy(user).into_owned(),
                String::from_utf8_lossy(password).into_owned(),
            ))
        }
        "AMQPLAIN" => {
            // A field table without its length prefix.
            let mut framed = BytesMut::with_capacity(response.len() + 4);
            framed.extend_from_slice(&(response.len() as u32).to_be_bytes());
            framed.extend_from_slice(response);
            let table = FieldTable::decode(&framed.freeze()).map_err(|_| bad())?;
            let get = |k: &str| table.get(k).and_then(FieldValue::as_str).map(str::to_owned);
            Ok((
                get("LOGIN").ok_or_else(bad)?,
                get("PASSWORD").ok_or_else(bad)?,
            ))
        }
        other => Err(protocol(BrokerError::access_refused(format!(
            "unsupported authentication mechanism '{other}'"
        )))),
    }
}

fn client_capability(props: &FieldTable, name: &str) -> bool {
    match props.get("capabilities") {
        Some(FieldValue::Table(caps)) => caps
            .get(name)
            .and_then(FieldValue::as_bool)
            .unwrap_or(false),
        _ => false,
    }
}

/// `server-properties`: who we are, and exactly the capabilities implemented.
fn server_properties() -> FieldTable {
    let mut caps = FieldTable::new();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
        "consumer_priorities",
    ] {
        caps.insert(cap, FieldValue::Bool(true));
    }
    let mut props = FieldTable::new();
    props.insert("product", FieldValue::string("Warren"));
    props.insert("version", FieldValue::string(env!("CARGO_PKG_VERSION")));
    props.insert("platform", FieldValue::string("Rust"));
    props.insert("copyright", FieldValue::string("The Warren authors"));
    props.insert(
        "information",
        FieldValue::string("A message broker speaking AMQP 0-9-1; see README.md"),
    );
    props.insert("cluster_name", FieldValue::string("warren"));
    props.insert("capabilities", FieldValue::Table(caps));
    props
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_amqp::ReplyCode;

    #[test]
    fn plain_response_yields_user_and_password() {
        let (u, p) = credentials("PLAIN", &Bytes::from_static(b"\0guest\0secret")).unwrap();
        assert_eq!((u.as_str(), p.as_str()), ("guest", "secret"));
    }

    #[test]
    fn malformed_plain_response_is_refused() {
        assert!(credentials("PLAIN", &Bytes::from_static(b"guest")).is_err());
    }

    #[test]
    fn unknown_mechanism_is_refused_with_its_name() {
        match credentials("EXTERNAL", &Bytes::new()) {
            Err(HandshakeError::Protocol(e)) => {
                assert_eq!(e.reply_code(), ReplyCode::AccessRefused);
                assert!(e.reply_text().contains("EXTERNAL"));
            }
            _ => panic!("expected refusal"),
        }
    }
}
