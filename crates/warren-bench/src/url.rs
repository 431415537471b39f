//! AMQP URLs (`amqp://user:pass@host:port/vhost`), split by the `url` crate and read as
//! RabbitMQ's URI spec and the common clients read them: user, password and vhost are
//! percent-decoded, and a missing part takes the usual default (`guest`, `guest`, `localhost`,
//! 5672, vhost `/`).
//!
//! Only plain `amqp` is understood: the bench measures brokers, and TLS would measure the TLS
//! library instead.

use anyhow::{bail, Context};
use std::fmt;
use std::str::FromStr;
use url::{Host, Url};

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

    fn from_str(text: &str) -> anyhow::Result<AmqpUrl> {
        let url = Url::parse(text).with_context(|| format!("`{text}` is not a URL"))?;
        if url.scheme() != "amqp" || url.cannot_be_a_base() {
            bail!("`{text}` is not an amqp:// URL (amqps is not supported by the bench)");
        }
        // Query parameters (heartbeat, frame_max, …) belong to other clients; the bench
        // negotiates its own.
        let (user, password) = match (url.username(), url.password()) {
            ("", None) => ("guest".to_owned(), "guest".to_owned()),
            (user, password) => (
                decode(user).context("user")?,
                decode(password.unwrap_or_default()).context("password")?,
            ),
        };
        let host = match url.host() {
            Some(Host::Ipv6(v6)) => v6.to_string(),
            Some(Host::Ipv4(v4)) => v4.to_string(),
            Some(Host::Domain(name)) if !name.is_empty() => name.to_owned(),
            _ => "localhost".to_owned(),
        };
        let vhost = match url.path().strip_prefix('/').unwrap_or(url.path()) {
            "" => "/".to_owned(),
            path => decode(path).context("vhost")?,
        };
        Ok(AmqpUrl {
            host,
            port: url.port().unwrap_or(5672),
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

/// Percent-decoding; the result must be UTF-8 (user names and vhosts are AMQP short strings).
/// A `%` not followed by two hex digits is refused: the URL standard passes it through, but
/// here it is a typo in a vhost or password, better reported than used.
fn decode(s: &str) -> anyhow::Result<String> {
    let well_formed = s.match_indices('%').all(|(i, _)| {
        s.get(i + 1..i + 3)
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if !well_formed {
        bail!("bad percent escape in `{s}`");
    }
    let decoded = percent_encoding::percent_decode_str(s).decode_utf8();
    let decoded = decoded.with_context(|| format!("`{s}` is not UTF-8 once decoded"))?;
    Ok(decoded.into_owned())
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
    fn query_and_fragment_are_ignored_and_a_lone_user_has_an_empty_password() {
        let url: AmqpUrl = "amqp://bob@h:5673/%2F?heartbeat=10&frame_max=x#top"
            .parse()
            .unwrap();
        assert_eq!((url.user.as_str(), url.password.as_str()), ("bob", ""));
        assert_eq!((url.host.as_str(), url.port), ("h", 5673));
        assert_eq!(url.vhost, "/");
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
