//! `warren serve`'s settings as the binary applies them: a flag beats its `WARREN_*` variable,
//! which beats the `--config` file, which beats the default; a file with an unknown key is
//! refused naming the file and the key; `--help` shows the real defaults. (Every layer and
//! setting is pinned in `warren-server`'s `config` unit tests; these check that the binary
//! wires them together.) Always a spawned `warren`, even with `WARREN_TEST_URL` set.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// A config file in a directory of its own, removed on drop.
struct ConfigFile {
    dir: PathBuf,
    path: PathBuf,
}

impl ConfigFile {
    fn new(text: &str) -> ConfigFile {
        let dir = std::env::temp_dir().join(common::unique("warren-settings"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("warren.toml");
        std::fs::write(&path, text).unwrap();
        ConfigFile { dir, path }
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const MANAGEMENT_ON: &str = "management API listening on http://127.0.0.1:";
const MANAGEMENT_OFF: &str = "management API turned off";

#[test]
fn management_listener_takes_the_flag_over_the_variable_over_the_file() {
    let file = ConfigFile::new("management_listen = \"127.0.0.1:0\"\n");

    let from_file = common::Broker::spawn_with(|serve| {
        serve.arg("--config").arg(&file.path);
    });
    assert!(
        from_file.log().contains(MANAGEMENT_ON),
        "{}",
        from_file.log()
    );

    let variable_over_file = common::Broker::spawn_with(|serve| {
        serve
            .arg("--config")
            .arg(&file.path)
            .env("WARREN_MANAGEMENT_LISTEN", "off");
    });
    let log = variable_over_file.log();
    assert!(log.contains(MANAGEMENT_OFF), "{log}");

    let flag_over_variable = common::Broker::spawn_with(|serve| {
        serve
            .env("WARREN_CONFIG", &file.path)
            .env("WARREN_MANAGEMENT_LISTEN", "off")
            .args(["--management-listen", "127.0.0.1:0"]);
    });
    let log = flag_over_variable.log();
    assert!(log.contains(MANAGEMENT_ON), "{log}");
}

#[test]
fn config_file_with_an_unknown_key_is_refused_naming_the_file_and_the_key() {
    let file = ConfigFile::new("listen = \"127.0.0.1:0\"\nmanagment_listen = \"off\"\n");
    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("serve")
        .arg("--config")
        .arg(&file.path)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&file.path.display().to_string()) && stderr.contains("managment_listen"),
        "{stderr}"
    );
}

#[test]
fn serve_help_shows_the_defaults_the_broker_uses() {
    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, default) in [
        ("--listen", "[::]:5672"),
        ("--management-listen", "[::]:15672"),
        ("--data-dir", "./warren-data"),
        ("--memory-high-watermark", "0.4"),
        ("--disk-free-limit", "1GiB"),
        ("--queue-memory-budget", "32MiB"),
        ("--memory-paging-ratio", "0.5"),
    ] {
        let entry = help
            .split("\n      --")
            .find(|entry| entry.starts_with(&format!("{} <", &flag[2..])))
            .unwrap_or_else(|| panic!("no {flag} in:\n{help}"));
        assert!(
            entry.contains(&format!("[default: {default}]")),
            "{flag} does not show its default {default}:\n{entry}"
        );
    }
    assert!(help.contains("[env: WARREN_CONFIG=]"), "{help}");
}
