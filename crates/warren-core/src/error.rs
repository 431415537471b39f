//! `BrokerError`: what went wrong, as a protocol-neutral kind and a detail text, with the
//! AMQP 0-9-1 rendering (reply code + RabbitMQ's reply text) beside it. Another protocol
//! adapter renders the same kind as its own code (an MQTT reason code, a STOMP `ERROR`
//! frame) from [`BrokerError::kind`] and [`BrokerError::detail`].
//!
//! Constructors name the situation so texts stay uniform.

use warren_amqp::ReplyCode;

/// The situation an error reports, independent of the protocol that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named entity (queue, exchange, vhost, consumer) does not exist.
    NotFound,
    /// The client may not do this: permissions, reserved names, the default exchange.
    AccessRefused,
    /// The request conflicts with the entity's state or settings (inequivalent arguments,
    /// a queue in use or not empty, an invalid argument value).
    PreconditionFailed,
    /// Another connection holds the entity exclusively.
    ResourceLocked,
    /// The connection may not do this at all (an unknown or forbidden vhost, a closed session).
    NotAllowed,
    /// A feature the broker does not have.
    NotImplemented,
    /// A request that is not valid in the session's current state.
    InvalidCommand,
    /// Input that arrived out of the protocol's order (content without its method).
    OutOfOrder,
    /// A request on a channel (session) that is not open, or opened twice.
    ChannelState,
    /// Bytes that do not decode as the protocol's frames or fields.
    Malformed,
    /// A limit of the connection reached (channel-max, frame-max).
    LimitReached,
    /// The broker itself closes the connection (shutdown, an operator's request).
    Forced,
    /// The broker failed to do what it promised (storage failed).
    Internal,
}

/// An error with its kind and the detail a reader needs: `no queue 'q' in vhost '/'`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reply_text())]
pub struct BrokerError {
    pub kind: ErrorKind,
    pub detail: String,
}

impl BrokerError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> BrokerError {
        BrokerError { kind, detail: detail.into() }
    }

    pub fn not_found(detail: impl Into<String>) -> BrokerError {
        BrokerError::new(ErrorKind::NotFound, detail)
    }
    pub fn precondition(detail: impl Into<String>) -> BrokerError {
        BrokerError::new(ErrorKind::PreconditionFailed, detail)
    }
    pub fn access_refused(detail: impl Into<String>) -> BrokerError {
        BrokerError::new(ErrorKind::AccessRefused, detail)
    }
    pub fn resource_locked(detail: impl Into<String>) -> BrokerError {
        BrokerError::new(ErrorKind::ResourceLocked, detail)
    }
    pub fn not_allowed(detail: impl Into<String>) -> BrokerError {
        BrokerError::new(ErrorKind::NotAllowed, detail)
    }
    pub fn command_invalid(detail: impl Into<String>) -> BrokerError {
        BrokerError::new(ErrorKind::InvalidCommand, detail)
    }
    pub fn not_implemented(detail: impl Into<String>) -> BrokerError {
        BrokerError::new(ErrorKind::NotImplemented, detail)
    }
    pub fn unexpected_frame(detail: impl Into<String>) -> BrokerError {
        BrokerError::new(ErrorKind::OutOfOrder, detail)
    }
    pub fn channel_error(detail: impl Into<String>) -> BrokerError {
        BrokerError::new(ErrorKind::ChannelState, detail)
    }
    pub fn frame_error(detail: impl Into<String>) -> BrokerError {
        BrokerError::new(ErrorKind::Malformed, detail)
    }
    pub fn internal(detail: impl Into<String>) -> BrokerError {
        BrokerError::new(ErrorKind::Internal, detail)
    }
    pub fn forced(detail: impl Into<String>) -> BrokerError {
        BrokerError::new(ErrorKind::Forced, detail)
    }

    pub fn no_queue(name: &str, vhost: &str) -> BrokerError {
        BrokerError::not_found(format!("no queue '{name}' in vhost '{vhost}'"))
    }
    pub fn no_exchange(name: &str, vhost: &str) -> BrokerError {
        BrokerError::not_found(format!("no exchange '{name}' in vhost '{vhost}'"))
    }
}

impl ErrorKind {
    /// Every kind, for adapters' exhaustive tests of their renderings.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::NotFound,
        ErrorKind::AccessRefused,
        ErrorKind::PreconditionFailed,
        ErrorKind::ResourceLocked,
        ErrorKind::NotAllowed,
        ErrorKind::NotImplemented,
        ErrorKind::InvalidCommand,
        ErrorKind::OutOfOrder,
        ErrorKind::ChannelState,
        ErrorKind::Malformed,
        ErrorKind::LimitReached,
        ErrorKind::Forced,
        ErrorKind::Internal,
    ];
}

/// The AMQP 0-9-1 rendering.
impl ErrorKind {
    pub fn reply_code(self) -> ReplyCode {
        match self {
            ErrorKind::NotFound => ReplyCode::NotFound,
            ErrorKind::AccessRefused => ReplyCode::AccessRefused,
            ErrorKind::PreconditionFailed => ReplyCode::PreconditionFailed,
            ErrorKind::ResourceLocked => ReplyCode::ResourceLocked,
            ErrorKind::NotAllowed => ReplyCode::NotAllowed,
            ErrorKind::NotImplemented => ReplyCode::NotImplemented,
            ErrorKind::InvalidCommand => ReplyCode::CommandInvalid,
            ErrorKind::OutOfOrder => ReplyCode::UnexpectedFrame,
            ErrorKind::ChannelState => ReplyCode::ChannelError,
            ErrorKind::Malformed => ReplyCode::FrameError,
            ErrorKind::LimitReached => ReplyCode::ResourceError,
            ErrorKind::Forced => ReplyCode::ConnectionForced,
            ErrorKind::Internal => ReplyCode::InternalError,
        }
    }

    /// The kind an AMQP reply code reports; codes that are not errors (200, 311-313) and the
    /// spec's 402/502, which RabbitMQ does not send for the situations above, fold into the
    /// nearest kind.
    pub fn from_reply_code(code: ReplyCode) -> ErrorKind {
        match code {
            ReplyCode::NotFound => ErrorKind::NotFound,
            ReplyCode::AccessRefused => ErrorKind::AccessRefused,
            ReplyCode::PreconditionFailed | ReplyCode::ContentTooLarge => {
                ErrorKind::PreconditionFailed
            }
            ReplyCode::ResourceLocked => ErrorKind::ResourceLocked,
            ReplyCode::NotAllowed | ReplyCode::InvalidPath => ErrorKind::NotAllowed,
            ReplyCode::NotImplemented => ErrorKind::NotImplemented,
            ReplyCode::CommandInvalid => ErrorKind::InvalidCommand,
            ReplyCode::UnexpectedFrame => ErrorKind::OutOfOrder,
            ReplyCode::ChannelError => ErrorKind::ChannelState,
            ReplyCode::FrameError | ReplyCode::SyntaxError => ErrorKind::Malformed,
            ReplyCode::ResourceError => ErrorKind::LimitReached,
            ReplyCode::ConnectionForced
            | ReplyCode::ReplySuccess
            | ReplyCode::NoRoute
            | ReplyCode::NoConsumers => ErrorKind::Forced,
            ReplyCode::InternalError => ErrorKind::Internal,
        }
    }
}

/// The AMQP 0-9-1 rendering.
impl BrokerError {
    pub fn reply_code(&self) -> ReplyCode {
        self.kind.reply_code()
    }

    /// The reply text as RabbitMQ writes it: the code's name, then the detail —
    /// `NOT_FOUND - no queue 'q' in vhost '/'`.
    pub fn reply_text(&self) -> String {
        format!("{} - {}", self.reply_code().name(), self.detail)
    }

    /// True when AMQP closes the whole connection for this error rather than one channel.
    pub fn is_hard(&self) -> bool {
        self.reply_code().is_hard()
    }
}

impl From<warren_amqp::Error> for BrokerError {
    /// RabbitMQ answers a method or header whose fields do not parse with 501 FRAME_ERROR
    /// (it treats the frame as malformed), not the spec's 502 SYNTAX_ERROR: so do we.
    fn from(e: warren_amqp::Error) -> BrokerError {
        match e {
            warren_amqp::Error::Frame(detail) | warren_amqp::Error::Syntax(detail) => {
                BrokerError::frame_error(detail)
            }
            warren_amqp::Error::UnknownMethod { class_id, method_id } => BrokerError::command_invalid(
                format!("unknown method class {class_id} method {method_id}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_renders_to_a_code_that_maps_back() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_reply_code(kind.reply_code()), kind);
        }
    }

    #[test]
    fn reply_text_is_rabbitmqs() {
        let e = BrokerError::no_queue("q", "/");
        assert_eq!(e.reply_code().code(), 404);
        assert_eq!(e.reply_text(), "NOT_FOUND - no queue 'q' in vhost '/'");
        assert_eq!(e.to_string(), e.reply_text());
        assert!(!e.is_hard());
        assert!(BrokerError::not_allowed("vhost 'x' not found").is_hard());
    }

    #[test]
    fn codec_errors_render_as_rabbitmq_answers_them() {
        let e = BrokerError::from(warren_amqp::Error::Syntax("bad table".into()));
        assert_eq!(e.reply_text(), "FRAME_ERROR - bad table");
        let e = BrokerError::from(warren_amqp::Error::UnknownMethod { class_id: 9, method_id: 9 });
        assert_eq!(e.reply_code().code(), 503);
        assert_eq!(e.detail, "unknown method class 9 method 9");
    }
}
