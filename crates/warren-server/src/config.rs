//! Broker settings. Precedence: command-line flags, then `WARREN_*` environment variables,
//! then the optional TOML file, then these defaults (the CLI applies the first two).

use crate::resources::Limit;
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the AMQP listener binds. Port 0 picks a free port (logged at start-up). The
    /// default `[::]:5672` takes IPv4 and IPv6 clients.
    pub listen: SocketAddr,
    /// Where the HTTP management API listens (RabbitMQ's port 15672, on every address as
    /// `listen`); port 0 picks a free port (logged at start-up); `None` (`"off"` in the
    /// file) turns it off.
    #[serde(deserialize_with = "listen_or_off")]
    pub management_listen: Option<SocketAddr>,
    /// Where durable state lives.
    pub data_dir: PathBuf,
    /// Heartbeat the server proposes in `connection.tune`, seconds (RabbitMQ: 60).
    pub heartbeat_secs: u16,
    /// frame-max the server proposes and enforces, bytes (RabbitMQ: 131072).
    pub frame_max: u32,
    /// channel-max the server proposes and enforces (RabbitMQ: 2047).
    pub channel_max: u16,
    /// Largest message body accepted, bytes (RabbitMQ: 128 MiB).
    pub max_message_size: u64,
    /// Past this resident memory, publishers are blocked: a fraction of RAM (default 0.4)
    /// or a size such as `2GiB`.
    pub memory_high_watermark: Limit,
    /// Below this free disk space in the data directory's filesystem, publishers are
    /// blocked (default 1GiB; a fraction is relative to RAM, as in RabbitMQ).
    pub disk_free_limit: Limit,
    /// Memory the loaded ready messages of one queue may hold before further ones are paged
    /// to disk (bodies read back ahead of delivery): a size such as `32MiB` or a fraction of
    /// RAM. Under memory pressure (half the high watermark) every queue keeps far less.
    pub queue_memory_budget: Limit,
    /// Queues page messages out (down to a small read-ahead) once resident memory passes
    /// this fraction of the high watermark (RabbitMQ's `vm_memory_high_watermark_paging_ratio`,
    /// default 0.5); above 1 they never do before the alarm.
    pub memory_paging_ratio: f64,
    /// Most connections served at once; further ones are refused at accept.
    pub max_connections: usize,
    /// Users allowed to log in. Default: `guest`/`guest`, which (as in RabbitMQ) may only
    /// connect from loopback.
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub password: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "[::]:5672".parse().expect("valid literal"),
            management_listen: Some("[::]:15672".parse().expect("valid literal")),
            data_dir: PathBuf::from("./warren-data"),
            heartbeat_secs: 60,
            frame_max: 131_072,
            channel_max: 2047,
            max_message_size: 128 * 1024 * 1024,
            memory_high_watermark: Limit::Fraction(0.4),
            disk_free_limit: Limit::Bytes(1 << 30),
            queue_memory_budget: Limit::Bytes(32 << 20),
            memory_paging_ratio: 0.5,
            max_connections: 65_536,
            users: vec![User {
                name: "guest".into(),
                password: "guest".into(),
            }],
        }
    }
}

/// Parses a listener setting that can be turned off: `ADDR:PORT`, or `off`.
pub fn parse_listen_or_off(s: &str) -> Result<Option<SocketAddr>, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| format!("'{s}' is neither ADDR:PORT nor 'off'"))
}

fn listen_or_off<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    parse_listen_or_off(&s).map_err(serde::de::Error::custom)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("frame_max {0} is below the protocol minimum of 4096")]
    FrameMaxTooSmall(u32),
}

impl Config {
    /// Reads a TOML file; fields it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.frame_max < warren_amqp::FRAME_MIN_SIZE {
            return Err(ConfigError::FrameMaxTooSmall(self.frame_max));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_only_the_fields_it_names() {
        let dir = std::env::temp_dir().join(format!("warren-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("warren.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:5673\"\nheartbeat_secs = 10\n").unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.listen.port(), 5673);
        assert_eq!(c.heartbeat_secs, 10);
        assert_eq!(c.frame_max, 131_072);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn management_listener_is_on_by_default_and_can_be_turned_off() {
        assert_eq!(
            Config::default().management_listen.map(|a| a.port()),
            Some(15672)
        );
        let off: Config = toml::from_str("management_listen = \"off\"").unwrap();
        assert_eq!(off.management_listen, None);
        let on: Config = toml::from_str("management_listen = \"127.0.0.1:0\"").unwrap();
        assert_eq!(on.management_listen, Some("127.0.0.1:0".parse().unwrap()));
        assert!(toml::from_str::<Config>("management_listen = \"nowhere\"").is_err());
    }

    #[test]
    fn unknown_keys_are_refused_with_the_file_name() {
        let dir = std::env::temp_dir().join(format!("warren-config-test2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:5673\"\n").unwrap();
        let err = Config::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("lisen"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
