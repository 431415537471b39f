//! Broker settings, each declared once, as a field of [`Config`]: its doc comment is the
//! `warren serve --help` text, `#[arg]` names its flag and `WARREN_*` variable and holds its
//! default (`skip = …` for the settings only the file sets), and its name is the TOML key.
//! Adding a setting is adding a field.
//!
//! Precedence: command-line flags, then `WARREN_*` environment variables (both read by clap),
//! then the optional TOML file, then the defaults; [`Config::load`] lays them over each other.
//! This module reads no socket and starts nothing: it only says what the broker will use.

use crate::resources::Limit;
use clap::parser::ValueSource;
use clap::{Args, FromArgMatches};
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, Args)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port for AMQP clients; the default takes IPv4 and IPv6 clients (falling
    /// back to 0.0.0.0 without IPv6); port 0 picks a free port, named in the start-up log
    #[arg(
        long,
        env = "WARREN_LISTEN",
        value_name = "ADDR:PORT",
        default_value = "[::]:5672"
    )]
    pub listen: SocketAddr,
    /// Address and port of the HTTP management API (IPv4 and IPv6 as --listen), or `off`;
    /// port 0 picks a free port
    // Spelled out so that clap takes the whole `Option` from `parse_listen_or_off` rather
    // than making the flag optional.
    #[arg(
        long,
        env = "WARREN_MANAGEMENT_LISTEN",
        value_name = "ADDR:PORT|off",
        default_value = "[::]:15672",
        value_parser = parse_listen_or_off
    )]
    #[serde(deserialize_with = "listen_or_off")]
    pub management_listen: std::option::Option<SocketAddr>,
    /// Directory for durable state
    #[arg(
        long,
        env = "WARREN_DATA_DIR",
        value_name = "DIR",
        default_value = "./warren-data"
    )]
    pub data_dir: PathBuf,
    /// Heartbeat the server proposes in `connection.tune`, seconds (RabbitMQ: 60).
    #[arg(skip = 60u16)]
    pub heartbeat_secs: u16,
    /// frame-max the server proposes and enforces, bytes (RabbitMQ: 131072).
    #[arg(skip = 131_072u32)]
    pub frame_max: u32,
    /// channel-max the server proposes and enforces (RabbitMQ: 2047).
    #[arg(skip = 2047u16)]
    pub channel_max: u16,
    /// Largest message body accepted, bytes (RabbitMQ: 128 MiB).
    #[arg(skip = 128u64 << 20)]
    pub max_message_size: u64,
    /// Block publishers past this resident memory: a fraction of RAM or a size such as 2GiB
    #[arg(
        long,
        env = "WARREN_MEMORY_HIGH_WATERMARK",
        value_name = "FRACTION|SIZE",
        default_value = "0.4"
    )]
    pub memory_high_watermark: Limit,
    /// Block publishers when the data directory's disk has less free space (a fraction is of
    /// RAM, as in RabbitMQ)
    #[arg(
        long,
        env = "WARREN_DISK_FREE_LIMIT",
        value_name = "SIZE",
        default_value = "1GiB"
    )]
    pub disk_free_limit: Limit,
    /// Memory one queue's ready messages may hold before more are paged to disk (and read
    /// back ahead of delivery): a size or a fraction of RAM
    #[arg(
        long,
        env = "WARREN_QUEUE_MEMORY_BUDGET",
        value_name = "FRACTION|SIZE",
        default_value = "32MiB"
    )]
    pub queue_memory_budget: Limit,
    /// Page queues out under memory pressure from this fraction of the high watermark
    /// (RabbitMQ's vm_memory_high_watermark_paging_ratio); above 1 never
    #[arg(
        long,
        env = "WARREN_MEMORY_PAGING_RATIO",
        value_name = "RATIO",
        default_value = "0.5"
    )]
    pub memory_paging_ratio: f64,
    /// Most connections served at once; further ones are refused at accept.
    #[arg(skip = 65_536usize)]
    pub max_connections: usize,
    /// Users allowed to log in. Default: `guest`/`guest`, which (as in RabbitMQ) may only
    /// connect from loopback.
    #[arg(skip = vec![User { name: "guest".into(), password: "guest".into() }])]
    pub users: Vec<User>,
    /// Drop a client that has not completed the AMQP handshake (protocol header to
    /// connection.open) within this many milliseconds (RabbitMQ's handshake_timeout)
    #[arg(
        long,
        env = "WARREN_HANDSHAKE_TIMEOUT_MS",
        value_name = "MS",
        default_value = "10000"
    )]
    pub handshake_timeout_ms: u64,
    /// The AMQPS listener: the `[tls]` table, `--tls-*` flags, `WARREN_TLS_*` variables.
    #[command(flatten)]
    pub tls: TlsConfig,
}

/// TLS settings, with the meaning of RabbitMQ's `ssl_options` (see [`crate::tls`]).
#[derive(Debug, Clone, Default, Deserialize, Args, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Address and port of the AMQPS (TLS) listener; default [::]:5671 once a certificate
    /// is configured
    #[arg(
        id = "tls_listen",
        long = "tls-listen",
        env = "WARREN_TLS_LISTEN",
        value_name = "ADDR:PORT"
    )]
    pub listen: Option<SocketAddr>,
    /// PEM file with the server's certificate chain (RabbitMQ's ssl_options.certfile)
    #[arg(
        id = "tls_cert_file",
        long = "tls-cert-file",
        env = "WARREN_TLS_CERT_FILE",
        value_name = "FILE"
    )]
    pub cert_file: Option<PathBuf>,
    /// PEM file with the server's private key (ssl_options.keyfile)
    #[arg(
        id = "tls_key_file",
        long = "tls-key-file",
        env = "WARREN_TLS_KEY_FILE",
        value_name = "FILE"
    )]
    pub key_file: Option<PathBuf>,
    /// PEM file with the CA certificates client certificates are verified against
    /// (ssl_options.cacertfile)
    #[arg(
        id = "tls_ca_file",
        long = "tls-ca-file",
        env = "WARREN_TLS_CA_FILE",
        value_name = "FILE"
    )]
    pub ca_file: Option<PathBuf>,
    /// Ask clients for a certificate and refuse one that the CA file does not vouch for
    /// (ssl_options.verify = verify_peer); enables the EXTERNAL mechanism
    #[arg(
        id = "tls_verify_peer",
        long = "tls-verify-peer",
        env = "WARREN_TLS_VERIFY_PEER",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub verify_peer: bool,
    /// With --tls-verify-peer, also refuse clients that send no certificate
    /// (ssl_options.fail_if_no_peer_cert)
    #[arg(
        id = "tls_fail_if_no_peer_cert",
        long = "tls-fail-if-no-peer-cert",
        env = "WARREN_TLS_FAIL_IF_NO_PEER_CERT",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub fail_if_no_peer_cert: bool,
    /// Serve the management API over HTTPS with the same certificate, key and peer checks
    #[arg(
        id = "tls_management",
        long = "tls-management",
        env = "WARREN_TLS_MANAGEMENT",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        default_value = "false"
    )]
    pub management: bool,
}

impl TlsConfig {
    /// RabbitMQ's default AMQPS port, on every address.
    pub const DEFAULT_LISTEN: &'static str = "[::]:5671";

    /// Where the AMQPS listener binds: the configured address, or the default once a
    /// certificate is configured; `None` without TLS.
    pub fn effective_listen(&self) -> Option<SocketAddr> {
        match (self.listen, &self.cert_file) {
            (Some(addr), _) => Some(addr),
            (None, Some(_)) => Some(Self::DEFAULT_LISTEN.parse().expect("a valid address")),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub password: String,
}

impl Default for Config {
    /// The defaults declared on the fields, read by clap from an empty command line with the
    /// environment left out.
    fn default() -> Config {
        let command = Config::augment_args(clap::Command::new("defaults").no_binary_name(true))
            .mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(std::iter::empty::<&str>())
            .expect("every default parses (pinned by a test)");
        Config::from_arg_matches(&matches).expect("every setting has a default")
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
    #[error("TLS: {0}")]
    Tls(&'static str),
    #[error("settings from flags and environment: {0}")]
    Flags(#[from] clap::Error),
}

impl Config {
    /// The settings `warren serve` runs with: what `given` holds from the command line or a
    /// `WARREN_*` variable (the matches of a command that [`Config::augment_args`] built),
    /// over the TOML file at `file` if any, over the defaults.
    pub fn load(file: Option<&Path>, given: &clap::ArgMatches) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        // clap fills in a default for every flag left out; those must not hide the file's.
        let mut given = given.clone();
        let defaulted: Vec<String> = given
            .ids()
            .filter(|id| given.value_source(id.as_str()) == Some(ValueSource::DefaultValue))
            .map(|id| id.to_string())
            .collect();
        for id in &defaulted {
            given
                .try_clear_id(id)
                .expect("the id comes from these matches");
        }
        config.update_from_arg_matches_mut(&mut given)?;
        config.validate()?;
        Ok(config)
    }

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
        let tls = &self.tls;
        if tls.effective_listen().is_some() && (tls.cert_file.is_none() || tls.key_file.is_none()) {
            return Err(ConfigError::Tls(
                "a TLS listener needs tls.cert_file and tls.key_file",
            ));
        }
        if tls.management && (tls.cert_file.is_none() || tls.key_file.is_none()) {
            return Err(ConfigError::Tls("tls.management needs tls.cert_file and tls.key_file"));
        }
        if tls.verify_peer && tls.ca_file.is_none() {
            return Err(ConfigError::Tls("tls.verify_peer needs tls.ca_file"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Held by every test that parses flags: clap reads the process's `WARREN_*` variables,
    /// which the precedence test sets.
    static ENVIRONMENT: Mutex<()> = Mutex::new(());

    fn parse(args: &[&str]) -> clap::ArgMatches {
        Config::augment_args(clap::Command::new("serve").no_binary_name(true))
            .try_get_matches_from(args)
            .unwrap()
    }

    fn write_file(name: &str, text: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("warren-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("warren.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::default();
        assert_eq!(c.listen, "[::]:5672".parse().unwrap());
        assert_eq!(c.management_listen, Some("[::]:15672".parse().unwrap()));
        assert_eq!(c.data_dir, PathBuf::from("./warren-data"));
        assert_eq!(c.heartbeat_secs, 60);
        assert_eq!(c.frame_max, 131_072);
        assert_eq!(c.channel_max, 2047);
        assert_eq!(c.max_message_size, 128 << 20);
        assert_eq!(c.memory_high_watermark, Limit::Fraction(0.4));
        assert_eq!(c.disk_free_limit, Limit::Bytes(1 << 30));
        assert_eq!(c.queue_memory_budget, Limit::Bytes(32 << 20));
        assert_eq!(c.memory_paging_ratio, 0.5);
        assert_eq!(c.max_connections, 65_536);
        assert_eq!(
            c.users,
            vec![User {
                name: "guest".into(),
                password: "guest".into()
            }]
        );
    }

    #[test]
    fn flag_beats_environment_beats_file_beats_default() {
        let _env = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
        let (dir, path) = write_file(
            "precedence",
            "listen = \"127.0.0.3:1\"\ndata_dir = \"/from-file\"\nmemory_paging_ratio = 0.7\n\
             heartbeat_secs = 10\nmanagement_listen = \"127.0.0.1:0\"\n",
        );
        std::env::set_var("WARREN_LISTEN", "127.0.0.2:1");
        std::env::set_var("WARREN_DATA_DIR", "/from-env");
        std::env::set_var("WARREN_MANAGEMENT_LISTEN", "off");
        let given = parse(&["--listen", "127.0.0.1:1"]);
        let layered = Config::load(Some(&path), &given);
        let without_file = Config::load(None, &given);
        for var in [
            "WARREN_LISTEN",
            "WARREN_DATA_DIR",
            "WARREN_MANAGEMENT_LISTEN",
        ] {
            std::env::remove_var(var);
        }
        let file_only = Config::load(Some(&path), &parse(&["--memory-paging-ratio", "2"]));
        std::fs::remove_dir_all(&dir).unwrap();

        let c = layered.unwrap();
        assert_eq!(
            c.listen,
            "127.0.0.1:1".parse().unwrap(),
            "flag over variable"
        );
        assert_eq!(c.data_dir, PathBuf::from("/from-env"), "variable over file");
        assert_eq!(
            c.management_listen, None,
            "`off` from a variable, over the file"
        );
        assert_eq!(c.memory_paging_ratio, 0.7, "file over default");
        assert_eq!(c.heartbeat_secs, 10, "a setting only the file sets");
        assert_eq!(c.disk_free_limit, Limit::Bytes(1 << 30), "default");

        let c = without_file.unwrap();
        assert_eq!(c.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/from-env"));
        assert_eq!(c.memory_paging_ratio, 0.5);

        let c = file_only.unwrap();
        assert_eq!(
            c.listen,
            "127.0.0.3:1".parse().unwrap(),
            "file over default"
        );
        assert_eq!(c.management_listen, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(c.memory_paging_ratio, 2.0, "flag over file");
    }

    #[test]
    fn management_listener_is_turned_off_by_the_flag() {
        let _env = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
        let c = Config::load(None, &parse(&["--management-listen", "OFF"])).unwrap();
        assert_eq!(c.management_listen, None);
        let bad = Config::augment_args(clap::Command::new("serve").no_binary_name(true))
            .try_get_matches_from(["--management-listen", "nowhere"]);
        let err = bad.unwrap_err().to_string();
        assert!(err.contains("neither ADDR:PORT nor 'off'"), "{err}");
    }

    #[test]
    fn tls_settings_come_from_the_tls_table_flags_and_variables() {
        let _env = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(Config::default().tls, TlsConfig::default());
        assert_eq!(Config::default().tls.effective_listen(), None);
        assert_eq!(Config::default().handshake_timeout_ms, 10_000);
        let (dir, path) = write_file(
            "tls",
            "[tls]\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\nca_file = \"/ca.pem\"\n\
             verify_peer = true\nmanagement = true\n",
        );
        std::env::set_var("WARREN_TLS_FAIL_IF_NO_PEER_CERT", "true");
        let from_file = Config::load(Some(&path), &parse(&[]));
        std::env::remove_var("WARREN_TLS_FAIL_IF_NO_PEER_CERT");
        let flagged = Config::load(
            Some(&path),
            &parse(&[
                "--tls-listen",
                "127.0.0.1:5999",
                "--tls-verify-peer",
                "false",
            ]),
        );
        let no_ca = Config::load(
            None,
            &parse(&[
                "--tls-cert-file",
                "/c",
                "--tls-key-file",
                "/k",
                "--tls-verify-peer",
            ]),
        );
        let no_key = Config::load(None, &parse(&["--tls-cert-file", "/c"]));
        std::fs::remove_dir_all(&dir).unwrap();

        let tls = from_file.unwrap().tls;
        assert_eq!(tls.cert_file, Some(PathBuf::from("/c.pem")));
        assert_eq!(tls.key_file, Some(PathBuf::from("/k.pem")));
        assert_eq!(tls.ca_file, Some(PathBuf::from("/ca.pem")));
        assert!(tls.verify_peer && tls.fail_if_no_peer_cert && tls.management);
        assert_eq!(tls.effective_listen(), Some("[::]:5671".parse().unwrap()));
        let tls = flagged.unwrap().tls;
        assert_eq!(
            tls.effective_listen(),
            Some("127.0.0.1:5999".parse().unwrap())
        );
        assert!(!tls.verify_peer, "flag over file");
        assert!(no_ca.unwrap_err().to_string().contains("ca_file"));
        assert!(no_key.unwrap_err().to_string().contains("key_file"));
    }

    #[test]
    fn a_bad_value_in_the_file_is_reported_with_the_file_and_key() {
        let (dir, path) = write_file("badvalue", "memory_paging_ratio = \"lots\"\n");
        let err = Config::from_file(&path).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            err.contains("warren.toml") && err.contains("memory_paging_ratio"),
            "{err}"
        );
    }

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
