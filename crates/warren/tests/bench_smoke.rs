//! `warren bench` in smoke mode: every named scenario, a second each and scaled down, against
//! a broker from the test harness (a fresh `warren serve`, or `WARREN_TEST_URL`). It pins that
//! the bench runs each scenario to the end and that messages really flow; speed is never
//! asserted here (that is what BENCHMARKS.md is for).

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args([
            "bench",
            "--url",
            broker.url(),
            "--scenario",
            "all",
            "--duration",
            "1",
        ])
        .args([
            "--backlog-messages",
            "20000",
            "--connections",
            "100",
            "--json",
            "--quiet",
        ])
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
        "warren bench failed ({status}):\n{stderr}"
    );

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
