//! A `warren serve` process for one test, or the broker `WARREN_TEST_URL` names: the part of
//! the test harness that the integration tests of `warren` and of `warren-rpc` share (the
//! latter includes this file by path, so that its tests run against the real binary without
//! compiling the broker into them).
//!
//! Contract:
//! - If `WARREN_TEST_URL` is set (e.g. `amqp://guest:guest@127.0.0.1:5672/%2F`), tests use that
//!   already-running broker.
//! - Otherwise every test spawns its own `warren serve --listen 127.0.0.1:0 --management-listen
//!   off --data-dir <fresh temp dir>`, reads the broker's stderr until a line containing
//!   `listening on 127.0.0.1:PORT` (20 s at most), keeps draining stderr in a thread (and shows
//!   its tail if the test fails), and on drop sends SIGTERM, waits up to 5 s, then kills it and
//!   removes the data dir.
//! - The binary: the one Cargo builds for `warren`'s own tests (`CARGO_BIN_EXE_warren`); for
//!   another crate's tests, `WARREN_BIN` if set, else the `warren` that `cargo build` left in
//!   the same target directory. `cargo test --workspace` (and `scripts/test`) builds it before
//!   any test runs; a lone `cargo test -p warren-rpc` needs `cargo build -p warren` first.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a freshly spawned broker may take to print its listening line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a broker gets to exit after SIGTERM before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Broker log lines kept to show when a test fails.
const LOG_TAIL_LINES: usize = 200;

/// A broker for one test: either the external one named by `WARREN_TEST_URL` or a `warren`
/// process owned by this guard.
pub struct Broker {
    url: String,
    process: Option<Process>,
}

struct Process {
    child: Child,
    data_dir: PathBuf,
    log_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Broker {
    /// Uses `WARREN_TEST_URL` if set, else spawns a fresh `warren serve`.
    pub fn start() -> Broker {
        match std::env::var("WARREN_TEST_URL") {
            Ok(url) if !url.is_empty() => Broker { url, process: None },
            _ => Broker::spawn(),
        }
    }

    /// The AMQP URL of this broker, vhost included.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The last lines the spawned broker wrote to stderr (empty for an external one).
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map_or_else(String::new, Process::log_text)
    }

    fn spawn() -> Broker {
        Broker::spawn_with(|serve| {
            serve.args(["--management-listen", "off"]);
        })
    }

    /// Spawns `warren serve --listen 127.0.0.1:0 --data-dir <fresh temp dir>` with whatever
    /// flags and variables `configure` adds, whether or not `WARREN_TEST_URL` is set: for the
    /// tests of the binary itself.
    pub fn spawn_with(configure: impl FnOnce(&mut Command)) -> Broker {
        let data_dir = fresh_data_dir();
        let mut serve = Command::new(warren_binary());
        serve
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        configure(&mut serve);
        let mut child = serve.spawn().expect("cannot spawn the warren binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log_tail = Arc::new(Mutex::new(VecDeque::new()));
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let tail = Arc::clone(&log_tail);
        // The broker must never block on a full stderr pipe, so a thread drains it for the
        // broker's whole life, keeping a tail for diagnostics.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                {
                    let mut tail = tail.lock().unwrap();
                    if tail.len() == LOG_TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.clone());
                }
                let _ = lines_tx.send(line);
            }
        });
        let mut process = Process {
            child,
            data_dir,
            log_tail,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(port) = listening_port(&line) {
                        break port;
                    }
                }
                Err(why) => {
                    let log = process.log_text();
                    let _ = process.child.kill();
                    let _ = process.child.wait();
                    panic!(
                        "warren did not print `listening on 127.0.0.1:PORT` ({why:?}); its stderr:\n{log}"
                    );
                }
            }
        };
        Broker {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2F"),
            process: Some(process),
        }
    }
}

impl Process {
    fn log_text(&self) -> String {
        let tail = self.log_tail.lock().unwrap();
        tail.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn stop(&mut self) {
        #[cfg(unix)]
        {
            // SIGTERM first, so a broker's graceful shutdown path is exercised too.
            let pid = self.child.id() as libc::pid_t;
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
            if std::thread::panicking() {
                eprintln!("--- warren stderr (tail) ---\n{}", process.log_text());
            }
            let _ = std::fs::remove_dir_all(&process.data_dir);
        }
    }
}

/// Extracts PORT from a log line containing `listening on 127.0.0.1:PORT`.
fn listening_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("listening on 127.0.0.1:")? + "listening on 127.0.0.1:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Removes terminal colour sequences, in case the broker's log formatter emits them anyway.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `warren` binary to spawn (see the contract above).
fn warren_binary() -> PathBuf {
    if let Some(own) = option_env!("CARGO_BIN_EXE_warren") {
        return PathBuf::from(own);
    }
    if let Some(named) = std::env::var_os("WARREN_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(named);
    }
    // A test runs as target/<profile>/deps/<test>-<hash>; the binary is target/<profile>/warren.
    let test = std::env::current_exe().expect("the test knows its own path");
    let beside = test
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("warren"));
    match beside.filter(|path| path.is_file()) {
        Some(path) => path,
        None => panic!(
            "no warren binary beside {}: build it first (`cargo build -p warren`; `cargo test \
             --workspace` and scripts/test do), name one with WARREN_BIN, or name a running \
             broker with WARREN_TEST_URL",
            test.display()
        ),
    }
}

fn fresh_data_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warren-test-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).expect("cannot create the broker's data dir");
    dir
}

/// Unique within this machine: pid, time and a counter.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos:x}-{n}", std::process::id())
}
