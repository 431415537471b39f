//! `AmqpError`: a protocol error with the reply code and RabbitMQ-style text that closes the
//! channel or connection. Constructors name the situation so texts stay uniform.

use warren_amqp::ReplyCode;

/// A protocol error. `text` is the whole reply text, prefixed with the code's name as
/// RabbitMQ writes it: `NOT_FOUND - no queue 'q' in vhost '/'`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct AmqpError {
    pub code: ReplyCode,
    pub text: String,
}

impl AmqpError {
    pub fn new(code: ReplyCode, detail: impl AsRef<str>) -> AmqpError {
        AmqpError {
            code,
            text: format!("{} - {}", code.name(), detail.as_ref()),
        }
    }

    pub fn not_found(detail: impl AsRef<str>) -> AmqpError {
        AmqpError::new(ReplyCode::NotFound, detail)
    }
    pub fn precondition(detail: impl AsRef<str>) -> AmqpError {
        AmqpError::new(ReplyCode::PreconditionFailed, detail)
    }
    pub fn access_refused(detail: impl AsRef<str>) -> AmqpError {
        AmqpError::new(ReplyCode::AccessRefused, detail)
    }
    pub fn resource_locked(detail: impl AsRef<str>) -> AmqpError {
        AmqpError::new(ReplyCode::ResourceLocked, detail)
    }
    pub fn not_allowed(detail: impl AsRef<str>) -> AmqpError {
        AmqpError::new(ReplyCode::NotAllowed, detail)
    }
    pub fn command_invalid(detail: impl AsRef<str>) -> AmqpError {
        AmqpError::new(ReplyCode::CommandInvalid, detail)
    }
    pub fn not_implemented(detail: impl AsRef<str>) -> AmqpError {
        AmqpError::new(ReplyCode::NotImplemented, detail)
    }
    pub fn unexpected_frame(detail: impl AsRef<str>) -> AmqpError {
        AmqpError::new(ReplyCode::UnexpectedFrame, detail)
    }
    pub fn channel_error(detail: impl AsRef<str>) -> AmqpError {
        AmqpError::new(ReplyCode::ChannelError, detail)
    }
    pub fn frame_error(detail: impl AsRef<str>) -> AmqpError {
        AmqpError::new(ReplyCode::FrameError, detail)
    }
    pub fn internal(detail: impl AsRef<str>) -> AmqpError {
        AmqpError::new(ReplyCode::InternalError, detail)
    }

    pub fn no_queue(name: &str, vhost: &str) -> AmqpError {
        AmqpError::not_found(format!("no queue '{name}' in vhost '{vhost}'"))
    }
    pub fn no_exchange(name: &str, vhost: &str) -> AmqpError {
        AmqpError::not_found(format!("no exchange '{name}' in vhost '{vhost}'"))
    }

    /// True when the error closes the whole connection rather than one channel.
    pub fn is_hard(&self) -> bool {
        self.code.is_hard()
    }
}

impl From<warren_amqp::Error> for AmqpError {
    /// RabbitMQ answers a method or header whose fields do not parse with 501 FRAME_ERROR
    /// (it treats the frame as malformed), not the spec's 502 SYNTAX_ERROR: so do we.
    fn from(e: warren_amqp::Error) -> AmqpError {
        match e {
            warren_amqp::Error::Syntax(detail) => AmqpError::frame_error(detail),
            // The codec's Display already carries the code name prefix.
            other => AmqpError {
                code: other.reply_code(),
                text: other.to_string(),
            },
        }
    }
}
