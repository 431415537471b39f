//! `warren bench` in smoke mode: every named scenario, a second each and scaled down, against
//! a broker from the test harness (a fresh `warren serve`, or `WARREN_TEST_URL`). It pins that
//! the bench runs each scenario to the end and that messages really flow; speed is never
//! asserted here (that is what BENCHMARKS.md is for). Also: confirm latency is reported where
//! publishers use confirms, and `backlog`'s phases on a named queue leave messages for a
//! later run (how `bench/recovery` measures a restart).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Far more than smoke mode needs (about 15 s), so that only a hang fails the test.
const BENCH_TIMEOUT: Duration = Duration::from_secs(180);

const SCENARIOS: [&str; 8] = [
    "transient",
    "transient-autoack",
    "persistent-confirm",
    "fanout",
    "latency",
    "many-queues",
    "backlog",
    "connections",
];

#[test]
fn every_scenario_runs_to_the_end_and_moves_messages_in_smoke_mode() {
    let broker = common::Broker::start();
    let stdout = bench(&[
        "--url",
        broker.url(),
        "--scenario",
        "all",
        "--duration",
        "1",
        "--backlog-messages",
        "20000",
        "--connections",
        "100",
    ]);

    let reports: Vec<&str> = stdout.lines().filter(|l| l.starts_with('{')).collect();
    for scenario in SCENARIOS {
        let report = reports
            .iter()
            .find(|r| r.starts_with(&format!("{{\"scenario\":\"{scenario}\",")))
            .unwrap_or_else(|| panic!("no JSON report for {scenario}; stdout:\n{stdout}"));
        if scenario == "connections" {
            assert_eq!(number(report, "connections"), Some(100.0), "{report}");
        } else {
            let consumed =
                number(report, "consumed").unwrap_or_else(|| panic!("no consumed count: {report}"));
            assert!(consumed > 0.0, "{scenario} consumed nothing: {report}");
        }
        assert!(number(report, "bench_cpu_seconds").is_some(), "{report}");
    }
    let backlog = reports
        .iter()
        .find(|r| r.contains("\"scenario\":\"backlog\""))
        .unwrap();
    assert_eq!(
        number(backlog, "consumed"),
        Some(20_000.0),
        "the whole backlog is drained: {backlog}"
    );
    let latency = reports
        .iter()
        .find(|r| r.contains("\"scenario\":\"latency\""))
        .unwrap();
    assert!(
        number(latency, "latency_p99_us").is_some(),
        "latency percentiles come from body timestamps: {latency}"
    );
    assert_eq!(
        number(latency, "confirm_latency_p99_us"),
        None,
        "no confirms, no confirm latency: {latency}"
    );
    let confirmed = reports
        .iter()
        .find(|r| r.contains("\"scenario\":\"persistent-confirm\""))
        .unwrap();
    assert!(number(confirmed, "confirmed").unwrap() > 0.0, "{confirmed}");
    let p50 = number(confirmed, "confirm_latency_p50_us");
    let p99 = number(confirmed, "confirm_latency_p99_us");
    assert!(
        matches!((p50, p99), (Some(p50), Some(p99)) if p50 > 0.0 && p99 >= p50),
        "publish-to-ack latency of confirmed messages: {confirmed}"
    );
}

#[test]
fn a_filled_named_queue_keeps_its_messages_until_a_later_drain_takes_them_all() {
    let broker = common::Broker::start();
    // Unique, for brokers others use (WARREN_TEST_URL): a named queue is never deleted.
    let queue = format!("bench-smoke-kept-{}", std::process::id());
    let fill = |messages: &str| {
        bench(&[
            "--url",
            broker.url(),
            "--scenario",
            "backlog",
            "--backlog-queue",
            &queue,
            "--backlog-phase",
            "fill",
            "--backlog-messages",
            messages,
            "--size",
            "100",
            "--persistent",
            "--confirm",
            "64",
        ])
    };
    let first = fill("3000");
    assert_eq!(number(&first, "queue_depth_before"), Some(0.0), "{first}");
    assert_eq!(number(&first, "confirmed"), Some(3000.0), "{first}");
    assert_eq!(number(&first, "consumed"), Some(0.0), "{first}");
    assert!(
        number(&first, "confirm_latency_p50_us").is_some(),
        "{first}"
    );
    assert!(
        first.contains(&format!("into durable queue '{queue}'")),
        "{first}"
    );
    let second = fill("2000");
    assert_eq!(
        number(&second, "queue_depth_before"),
        Some(3000.0),
        "the first fill's messages are still there: {second}"
    );
    let drain = bench(&[
        "--url",
        broker.url(),
        "--scenario",
        "backlog",
        "--backlog-queue",
        &queue,
        "--backlog-phase",
        "drain",
    ]);
    assert_eq!(
        number(&drain, "queue_depth_before"),
        Some(5000.0),
        "{drain}"
    );
    assert_eq!(number(&drain, "drained"), Some(5000.0), "{drain}");
    assert_eq!(number(&drain, "consumed"), Some(5000.0), "{drain}");
    assert_eq!(number(&drain, "published"), Some(0.0), "{drain}");
}

#[test]
fn one_backlog_phase_without_a_named_queue_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["bench", "--scenario", "backlog", "--backlog-phase", "fill"])
        .output()
        .expect("cannot run warren bench");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs --backlog-queue"), "{stderr}");
}

/// Runs `warren bench ARGS --json --quiet` to the end and returns its stdout; fails the
/// test if it fails or hangs.
fn bench(args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .arg("bench")
        .args(args)
        .args(["--json", "--quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run warren bench");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + BENCH_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "warren bench did not finish within {BENCH_TIMEOUT:?}:\n{}",
                err_reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    assert!(
        status.success(),
        "warren bench {args:?} failed ({status}):\n{stderr}"
    );
    stdout
}

/// The number in `"key":NUMBER` of a flat JSON object; `None` if absent or `null`.
fn number(json: &str, key: &str) -> Option<f64> {
    let pattern = format!("\"{key}\":");
    let start = json.find(&pattern)? + pattern.len();
    let text: String = json[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+'))
        .collect();
    text.parse().ok()
}
