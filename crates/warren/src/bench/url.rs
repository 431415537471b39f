//! AMQP URLs (`amqp://user:pass@host:port/vhost`), read as RabbitMQ's URI spec and the common
//! clients read them: user, password and vhost are percent-decoded, and a missing part takes
//! the usual default (`guest`, `guest`, `localhost`, 5672, vhost `/`).
//!
//! Only plain `amqp` is understood: the bench measures brokers, and TLS would measure the TLS
//! library instead.

use anyhow::{bail, Context};
use std::fmt;
use std::str::FromStr;

/// Where and as whom the bench connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
}

impl AmqpUrl {
    /// `host:port`, with IPv6 literals bracketed, as `TcpStream::connect` takes it.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for AmqpUrl {
    type Err = anyhow::Error;

    fn from_str(url: &str) -> anyhow::Result<AmqpUrl> {
        let Some(rest) = url.strip_prefix("amqp://") else {
            bail!("`{url}` is not an amqp:// URL (amqps is not supported by the bench)");
        };
        // Query parameters (heartbeat, frame_max, …) belong to other clients; the bench
        // negotiates its own.
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => ("guest".to_owned(), "guest".to_owned()),
            Some(info) => {
                let (u, p) = info.split_once(':').unwrap_or((info, ""));
                (decode(u).context("user")?, decode(p).context("password")?)
            }
        };
        let (host, port) = split_host_port(hostport)?;
        let vhost = match path {
            None | Some("") => "/".to_owned(),
            Some(p) => decode(p).context("vhost")?,
        };
        Ok(AmqpUrl {
            host,
            port,
            user,
            password,
            vhost,
        })
    }
}

impl fmt::Display for AmqpUrl {
    /// The URL without its password, for reports and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vhost = self.vhost.replace('%', "%25").replace('/', "%2F");
        write!(f, "amqp://{}@{}/{}", self.user, self.address(), vhost)
    }
}

fn split_host_port(hostport: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some(end) = v6.find(']') else {
            bail!("unterminated IPv6 address in `{hostport}`")
        };
        let after = &v6[end + 1..];
        (&v6[..end], after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => 5672,
        Some(p) => p.parse().with_context(|| format!("bad port `{p}`"))?,
    };
    let host = if host.is_empty() { "localhost" } else { host };
    Ok((host.to_owned(), port))
}

/// Percent-decoding; the result must be UTF-8 (user names and vhosts are AMQP short strings).
fn decode(s: &str) -> anyhow::Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).filter(|h| h.len() == 2);
            let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                bail!("bad percent escape in `{s}`");
            };
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).with_context(|| format!("`{s}` is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_url_is_decoded_part_by_part() {
        let url: AmqpUrl = "amqp://bob:s%40cret@broker.example:5673/%2Fprod"
            .parse()
            .unwrap();
        assert_eq!(url.user, "bob");
        assert_eq!(url.password, "s@cret");
        assert_eq!(url.host, "broker.example");
        assert_eq!(url.port, 5673);
        assert_eq!(url.vhost, "/prod");
    }

    #[test]
    fn missing_parts_take_rabbitmq_defaults() {
        let url: AmqpUrl = "amqp://".parse().unwrap();
        assert_eq!(
            url,
            AmqpUrl {
                host: "localhost".into(),
                port: 5672,
                user: "guest".into(),
                password: "guest".into(),
                vhost: "/".into()
            }
        );
        let url: AmqpUrl = "amqp://127.0.0.1/".parse().unwrap();
        assert_eq!(url.vhost, "/");
    }

    #[test]
    fn ipv6_literal_keeps_its_brackets_in_the_address() {
        let url: AmqpUrl = "amqp://[::1]:5800/%2F".parse().unwrap();
        assert_eq!(url.host, "::1");
        assert_eq!(url.address(), "[::1]:5800");
    }

    #[test]
    fn display_hides_the_password() {
        let url: AmqpUrl = "amqp://guest:topsecret@127.0.0.1:5672/%2F".parse().unwrap();
        assert_eq!(url.to_string(), "amqp://guest@127.0.0.1:5672/%2F");
    }

    #[test]
    fn other_schemes_and_bad_escapes_are_refused() {
        assert!("amqps://h/".parse::<AmqpUrl>().is_err());
        assert!("http://h/".parse::<AmqpUrl>().is_err());
        assert!("amqp://h/%zz".parse::<AmqpUrl>().is_err());
        assert!("amqp://h:notaport/".parse::<AmqpUrl>().is_err());
    }
}
