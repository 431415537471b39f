//! `warren policy set|list|clear`: policies on a running broker, through its HTTP
//! management API (the same calls work against RabbitMQ's management plugin).

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::time::Duration;

/// How long one API call may take before the CLI gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
    /// The broker's management API
    #[arg(
        long,
        global = true,
        env = "WARREN_MANAGEMENT_URL",
        default_value = "http://127.0.0.1:15672"
    )]
    url: String,
    /// User to authenticate as
    #[arg(long, global = true, env = "WARREN_USER", default_value = "guest")]
    user: String,
    /// That user's password
    #[arg(long, global = true, env = "WARREN_PASSWORD", default_value = "guest")]
    password: String,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Set (create or replace) a policy: `warren policy set ttl '^orders\.' '{"message-ttl":60000}'`
    Set {
        /// The policy's name
        name: String,
        /// Regular expression on queue / exchange names (unanchored: use ^ and $)
        pattern: String,
        /// The definition, a JSON object such as '{"max-length":1000,"overflow":"reject-publish"}'
        definition: String,
        /// Of the policies matching a queue or exchange, the highest priority applies
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i64,
        /// What the policy applies to
        #[arg(long, default_value = "all", value_parser = ["queues", "exchanges", "all"])]
        apply_to: String,
        #[arg(long, default_value = "/")]
        vhost: String,
    },
    /// List policies (of every vhost unless --vhost is given), lowest priority first
    List {
        #[arg(long)]
        vhost: Option<String>,
    },
    /// Clear a policy: what it applied to falls back to its own arguments
    Clear {
        name: String,
        #[arg(long, default_value = "/")]
        vhost: String,
    },
}

pub fn run(args: PolicyArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.url, &args.user, &args.password);
    match args.command {
        PolicyCommand::Set {
            name,
            pattern,
            definition,
            priority,
            apply_to,
            vhost,
        } => {
            let definition: Value = serde_json::from_str(&definition)
                .with_context(|| format!("the definition is not JSON: {definition}"))?;
            let body = json!({
                "pattern": pattern,
                "definition": definition,
                "priority": priority,
                "apply-to": apply_to,
            });
            let path = format!("/api/policies/{}/{}", segment(&vhost), segment(&name));
            let (status, text) = api.call("PUT", &path, Some(body.to_string()))?;
            match status {
                201 | 204 => {
                    println!("Set policy '{name}' in vhost '{vhost}'");
                    Ok(())
                }
                400 => bail!("the broker refused the policy: {}", reason(&text)),
                404 => bail!("the broker has no vhost '{vhost}'"),
                _ => Err(api.unexpected(status, &text)),
            }
        }
        PolicyCommand::List { vhost } => {
            let path = match &vhost {
                Some(v) => format!("/api/policies/{}", segment(v)),
                None => "/api/policies".to_string(),
            };
            let (status, text) = api.call("GET", &path, None)?;
            match status {
                200 => print_policies(&text),
                404 => bail!("the broker has no vhost '{}'", vhost.unwrap_or_default()),
                _ => Err(api.unexpected(status, &text)),
            }
        }
        PolicyCommand::Clear { name, vhost } => {
            let path = format!("/api/policies/{}/{}", segment(&vhost), segment(&name));
            let (status, text) = api.call("DELETE", &path, None)?;
            match status {
                204 => {
                    println!("Cleared policy '{name}' in vhost '{vhost}'");
                    Ok(())
                }
                404 => bail!("no policy '{name}' in vhost '{vhost}'"),
                _ => Err(api.unexpected(status, &text)),
            }
        }
    }
}

/// `vhost  name  pattern  apply-to  definition  priority`, tab-separated as
/// `rabbitmqctl list_policies` prints them.
fn print_policies(text: &str) -> anyhow::Result<()> {
    let policies: Vec<Value> =
        serde_json::from_str(text).with_context(|| format!("unexpected answer: {text}"))?;
    println!("vhost\tname\tpattern\tapply-to\tdefinition\tpriority");
    for p in &policies {
        let field = |k: &str| match p.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            field("vhost"),
            field("name"),
            field("pattern"),
            field("apply-to"),
            field("definition"),
            field("priority")
        );
    }
    Ok(())
}

/// The `reason` of an API error object, else the whole answer.
fn reason(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_string))
        .map(|r| r.trim().replace("\n\n", ": "))
        .unwrap_or_else(|| text.to_string())
}

/// A path segment, percent-encoded (the vhost `/` becomes `%2F`).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Api {
    base: String,
    user: String,
    authorization: String,
    agent: ureq::Agent,
}

impl Api {
    fn new(url: &str, user: &str, password: &str) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(CALL_TIMEOUT))
            .build()
            .into();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Api {
            base: url.trim_end_matches('/').to_string(),
            user: user.to_string(),
            authorization: format!("Basic {token}"),
            agent,
        }
    }

    /// One call; returns the status and body. Refused credentials are an error here.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: ureq::Error| {
            anyhow!(
                "cannot reach the management API at {}: {e} (is `warren serve` running there, with its management listener on?)",
                self.base
            )
        };
        let auth = self.authorization.as_str();
        let response = match (method, body) {
            ("PUT", Some(body)) => self
                .agent
                .put(&url)
                .header("Authorization", auth)
                .header("Content-Type", "application/json")
                .send(body),
            ("DELETE", _) => self.agent.delete(&url).header("Authorization", auth).call(),
            _ => self.agent.get(&url).header("Authorization", auth).call(),
        };
        let mut response = response.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(unreachable)?;
        if status == 401 {
            bail!(
                "the broker at {} refused the credentials of user '{}' (401)",
                self.base,
                self.user
            );
        }
        Ok((status, text))
    }

    fn unexpected(&self, status: u16, text: &str) -> anyhow::Error {
        anyhow!(
            "the broker at {} answered {status}: {}",
            self.base,
            reason(text)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhost_slash_is_one_encoded_path_segment() {
        assert_eq!(segment("/"), "%2F");
        assert_eq!(segment("orders-ttl.v1"), "orders-ttl.v1");
        assert_eq!(segment("a b"), "a%20b");
    }

    #[test]
    fn validation_reason_is_shown_on_one_line() {
        let answer = r#"{"error":"bad_request","reason":"Validation failed\n\n-1 is not a valid maximum length\n"}"#;
        assert_eq!(
            reason(answer),
            "Validation failed: -1 is not a valid maximum length"
        );
    }
}
