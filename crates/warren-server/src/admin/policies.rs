//! `/api/policies`: list, show, set and clear policies, as RabbitMQ's management API does.
//!
//! - `GET /api/policies`, `GET /api/policies/{vhost}`: a JSON array, lowest priority first.
//! - `GET /api/policies/{vhost}/{name}`: the policy, or 404.
//! - `PUT /api/policies/{vhost}/{name}` with `{"pattern": …, "definition": {…},
//!   "priority": 0, "apply-to": "all"}`: 201 when created, 204 when replaced, 400 with the
//!   validation reason when refused, 404 for an unknown vhost.
//! - `DELETE /api/policies/{vhost}/{name}`: 204, or 404 when there is no such policy.
//!
//! The vhost is a path segment, so `/` is written `%2F`.

use super::{bad_request, error, json_response, not_found};
use crate::broker::Broker;
use crate::vhost::VHost;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use warren_core::policy::Policy;

/// A policy as the API shows it, with RabbitMQ's field order.
fn policy_json(vhost: &str, p: &Policy) -> Value {
    json!({
        "vhost": vhost,
        "name": p.name,
        "pattern": p.pattern,
        "apply-to": p.apply_to.as_str(),
        "definition": p.definition,
        "priority": p.priority,
    })
}

/// A vhost's policies, lowest priority first (RabbitMQ's listing order).
fn vhost_policies(vhost: &VHost) -> Vec<Value> {
    let mut all = vhost.policies();
    all.reverse();
    all.iter().map(|p| policy_json(&vhost.name, p)).collect()
}

pub async fn list_all(State(broker): State<Arc<Broker>>) -> Response {
    let all: Vec<Value> = broker
        .vhosts()
        .iter()
        .flat_map(|v| vhost_policies(v))
        .collect();
    json_response(StatusCode::OK, &Value::Array(all))
}

pub async fn list_vhost(State(broker): State<Arc<Broker>>, Path(vhost): Path<String>) -> Response {
    match broker.vhost(&vhost) {
        Some(v) => json_response(StatusCode::OK, &Value::Array(vhost_policies(&v))),
        None => not_found(),
    }
}

pub async fn show(
    State(broker): State<Arc<Broker>>,
    Path((vhost, name)): Path<(String, String)>,
) -> Response {
    match broker.vhost(&vhost).and_then(|v| v.policy(&name)) {
        Some(p) => json_response(StatusCode::OK, &policy_json(&vhost, &p)),
        None => not_found(),
    }
}

pub async fn set(
    State(broker): State<Arc<Broker>>,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(vhost) = broker.vhost(&vhost) else {
        return error(StatusCode::NOT_FOUND, "not_found", "vhost_not_found");
    };
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("not_json: {e}")),
    };
    let Value::Object(fields) = body else {
        return bad_request("the body must be a JSON object");
    };
    let (Some(pattern), Some(definition)) = (fields.get("pattern"), fields.get("definition"))
    else {
        let missing = if fields.contains_key("pattern") {
            "definition"
        } else {
            "pattern"
        };
        return bad_request(&format!("[{{key_missing,{missing}}}]"));
    };
    let policy = match Policy::new(
        &name,
        pattern,
        definition,
        fields.get("priority"),
        fields.get("apply-to"),
    ) {
        Ok(p) => p,
        Err(e) => return bad_request(&format!("Validation failed\n\n{e}\n")),
    };
    // The store's fsync blocks; `set_policy` runs it through `durability::blocking`.
    match vhost.set_policy(policy) {
        Ok(true) => {
            tracing::info!("policy '{name}' set in vhost '{}'", vhost.name);
            StatusCode::CREATED.into_response()
        }
        Ok(false) => {
            tracing::info!("policy '{name}' replaced in vhost '{}'", vhost.name);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", &e.reply_text()),
    }
}

pub async fn clear(
    State(broker): State<Arc<Broker>>,
    Path((vhost, name)): Path<(String, String)>,
) -> Response {
    let Some(vhost) = broker.vhost(&vhost) else {
        return not_found();
    };
    match vhost.clear_policy(&name) {
        Ok(true) => {
            tracing::info!("policy '{name}' cleared in vhost '{}'", vhost.name);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => not_found(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", &e.reply_text()),
    }
}
