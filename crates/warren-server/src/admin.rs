//! The HTTP management API, in the shape of RabbitMQ's management plugin (same paths, JSON
//! bodies, status codes and error objects), so that tools written against RabbitMQ's API
//! work. So far it serves policies (`policies`); more resources come later.
//!
//! Every request needs HTTP basic auth with one of the broker's configured users; `guest`
//! only from loopback, as on the AMQP port. (RabbitMQ also checks user tags such as
//! `policymaker`; Warren has no tags yet, so every user may use the API.)
//!
//! This module translates HTTP to calls on `Broker` and `VHost`; it holds no broker state.

mod policies;

use crate::broker::Broker;
use crate::tls::{HttpsListener, Tls};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{Listener, ListenerExt};
use axum::Router;
use base64::Engine;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::info;

/// What RabbitMQ's management API names itself in `WWW-Authenticate`.
const REALM: &str = "Basic realm=\"Warren Management\"";

/// Binds the management listener if one is configured, and says where it listens.
pub async fn bind(
    addr: Option<std::net::SocketAddr>,
    https: bool,
) -> std::io::Result<Option<TcpListener>> {
    let Some(addr) = addr else {
        info!("management API turned off");
        return Ok(None);
    };
    let listener = crate::listener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen for the management API on {addr}: {e}"),
        )
    })?;
    let local = listener.local_addr()?;
    let scheme = if https { "https" } else { "http" };
    info!("management API listening on {scheme}://{local}");
    Ok(Some(listener))
}

/// Serves the API until the broker shuts down, over HTTPS when `tls` is given.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>, tls: Option<Arc<Tls>>) {
    match tls {
        Some(tls) => serve_on(HttpsListener::new(listener, tls, &broker), broker).await,
        None => serve_on(listener, broker).await,
    }
}

async fn serve_on<L: Listener<Addr = SocketAddr>>(listener: L, broker: Arc<Broker>) {
    let mut shutdown = broker.shutdown_signal();
    let app = Router::new()
        .route("/api/policies", get(policies::list_all))
        .route("/api/policies/{vhost}", get(policies::list_vhost))
        .route(
            "/api/policies/{vhost}/{name}",
            get(policies::show)
                .put(policies::set)
                .delete(policies::clear),
        )
        .fallback(|| async { not_found() })
        .layer(middleware::from_fn_with_state(broker.clone(), authenticate))
        .with_state(broker);
    let served = axum::serve(
        listener.tap_io(|_| {}),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    })
    .await;
    if let Err(e) = served {
        tracing::error!("management API stopped: {e}");
    }
}

/// Lets a request through only with a configured user's credentials.
async fn authenticate(
    State(broker): State<Arc<Broker>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match credentials(request.headers()) {
        None => unauthorized(None),
        Some((user, password)) if broker.authenticate(&user, &password, peer) => {
            next.run(request).await
        }
        Some(_) => unauthorized(Some("Login failed")),
    }
}

/// The user and password of an `Authorization: Basic …` header.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// 401 as RabbitMQ answers it: an empty body without credentials, an error object with
/// wrong ones.
fn unauthorized(reason: Option<&str>) -> Response {
    let body = match reason {
        Some(r) => json_body(&json!({"error": "not_authorized", "reason": r})),
        None => Body::empty(),
    };
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::WWW_AUTHENTICATE, REALM)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("static response parts are valid")
}

fn json_body(value: &serde_json::Value) -> Body {
    Body::from(value.to_string())
}

/// A JSON response.
fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// RabbitMQ's error object: `{"error": "...", "reason": "..."}`.
fn error(status: StatusCode, error: &str, reason: &str) -> Response {
    json_response(status, &json!({"error": error, "reason": reason}))
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Object Not Found", "Not Found")
}

fn bad_request(reason: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", reason)
}
