//! [`RpcError`]: every way a call can fail apart from the method's own typed error.
//!
//! A service method returns `Result<T, E>` with `E: From<RpcError>`, so a remote call has the
//! same signature as a local one: the method's errors come back as themselves, and failures
//! of the RPC layer (deadline, open breaker, unknown method, …) as `E::from(RpcError)`.
//! `RpcError` is serializable so that an `E` wrapping it can itself travel in a reply.

use crate::codec::{Fault, FaultKind};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RpcError {
    /// No reply before the call's deadline (the request also expires in the broker).
    #[error("{service}.{method}: no reply within {waited_ms} ms")]
    DeadlineExceeded {
        service: String,
        method: String,
        waited_ms: u64,
    },
    /// The client's circuit breaker for this service is open: the call was not sent.
    #[error("circuit breaker for service '{service}' is open; call not sent")]
    CircuitOpen { service: String },
    /// The client's rate limit for this service allows no call now (or not before the deadline).
    #[error("rate limit for service '{service}' exceeded; call not sent")]
    RateLimited { service: String },
    /// Nobody declared the service's queue: no instance of it ever started (or all were removed).
    #[error("no service '{service}': queue '{queue}' does not exist")]
    NoService { service: String, queue: String },
    #[error("service '{service}' has no method '{method}'")]
    UnknownMethod { service: String, method: String },
    /// The server could not decode the request.
    #[error("{service}.{method}: bad request: {message}")]
    BadRequest {
        service: String,
        method: String,
        message: String,
    },
    /// The handler panicked; the server answered instead of leaving the caller waiting.
    #[error("{service}.{method}: the handler panicked: {message}")]
    Panicked {
        service: String,
        method: String,
        message: String,
    },
    #[error("{service}.{method}: server error: {message}")]
    Internal {
        service: String,
        method: String,
        message: String,
    },
    /// The reply could not be decoded as the method's result.
    #[error("{service}.{method}: cannot decode the reply: {reason}")]
    BadReply {
        service: String,
        method: String,
        reason: String,
    },
    /// The arguments could not be encoded.
    #[error("{service}.{method}: cannot encode the request: {reason}")]
    Encode {
        service: String,
        method: String,
        reason: String,
    },
    /// The AMQP connection or channel failed.
    #[error("AMQP: {0}")]
    Transport(String),
}

impl RpcError {
    pub(crate) fn from_fault(service: &str, method: &str, fault: Fault) -> RpcError {
        let (service, method, message) = (service.to_string(), method.to_string(), fault.message);
        match fault.kind {
            FaultKind::UnknownMethod => RpcError::UnknownMethod { service, method },
            FaultKind::BadRequest => RpcError::BadRequest {
                service,
                method,
                message,
            },
            FaultKind::Panic => RpcError::Panicked {
                service,
                method,
                message,
            },
            FaultKind::Internal => RpcError::Internal {
                service,
                method,
                message,
            },
        }
    }

    /// Whether trying again may succeed (only ever done for idempotent methods): the request
    /// may not have reached a live instance, or its reply may have been lost.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RpcError::DeadlineExceeded { .. } | RpcError::NoService { .. } | RpcError::Transport(_)
        )
    }

    /// Whether this says the service is unhealthy (counts against the circuit breaker).
    /// Mistakes of the caller (unknown method, bad request) and the client's own refusals do not.
    pub fn is_service_failure(&self) -> bool {
        matches!(
            self,
            RpcError::DeadlineExceeded { .. }
                | RpcError::NoService { .. }
                | RpcError::Transport(_)
                | RpcError::Panicked { .. }
                | RpcError::Internal { .. }
        )
    }
}

impl From<lapin::Error> for RpcError {
    fn from(e: lapin::Error) -> Self {
        RpcError::Transport(e.to_string())
    }
}
