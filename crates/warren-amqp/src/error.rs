//! Codec errors and the AMQP reply codes they map to.

/// AMQP 0-9-1 reply codes (spec section 1.5.3 "Constants"), as RabbitMQ uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ReplyCode {
    ReplySuccess = 200,
    ContentTooLarge = 311,
    NoRoute = 312,
    NoConsumers = 313,
    ConnectionForced = 320,
    InvalidPath = 402,
    AccessRefused = 403,
    NotFound = 404,
    ResourceLocked = 405,
    PreconditionFailed = 406,
    FrameError = 501,
    SyntaxError = 502,
    CommandInvalid = 503,
    ChannelError = 504,
    UnexpectedFrame = 505,
    ResourceError = 506,
    NotAllowed = 530,
    NotImplemented = 540,
    InternalError = 541,
}

impl ReplyCode {
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The constant's name as RabbitMQ prints it at the start of a reply text,
    /// e.g. `NOT_FOUND` in `NOT_FOUND - no queue 'q' in vhost '/'`.
    pub fn name(self) -> &'static str {
        match self {
            ReplyCode::ReplySuccess => "REPLY_SUCCESS",
            ReplyCode::ContentTooLarge => "CONTENT_TOO_LARGE",
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::NoConsumers => "NO_CONSUMERS",
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::InvalidPath => "INVALID_PATH",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::SyntaxError => "SYNTAX_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ReplyCode::ResourceError => "RESOURCE_ERROR",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::NotImplemented => "NOT_IMPLEMENTED",
            ReplyCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// True for the codes the spec marks as connection-level (hard) errors.
    pub fn is_hard(self) -> bool {
        matches!(
            self,
            ReplyCode::ConnectionForced
                | ReplyCode::InvalidPath
                | ReplyCode::FrameError
                | ReplyCode::SyntaxError
                | ReplyCode::CommandInvalid
                | ReplyCode::ChannelError
                | ReplyCode::UnexpectedFrame
                | ReplyCode::ResourceError
                | ReplyCode::NotAllowed
                | ReplyCode::NotImplemented
                | ReplyCode::InternalError
        )
    }
}

/// A decoding failure. Every variant says which reply code closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Frame-level damage: bad frame-end octet, unknown frame type, frame larger than frame-max.
    #[error("FRAME_ERROR - {0}")]
    Frame(String),
    /// A method or header whose fields do not parse (truncated, bad field-table type, bad UTF-8).
    #[error("SYNTAX_ERROR - {0}")]
    Syntax(String),
    /// A class/method id pair this codec does not know.
    #[error("COMMAND_INVALID - unknown method class {class_id} method {method_id}")]
    UnknownMethod { class_id: u16, method_id: u16 },
}

impl Error {
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            Error::Frame(_) => ReplyCode::FrameError,
            Error::Syntax(_) => ReplyCode::SyntaxError,
            Error::UnknownMethod { .. } => ReplyCode::CommandInvalid,
        }
    }
}
