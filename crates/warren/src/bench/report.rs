//! The outcome of one scenario, and its two renderings: one JSON object per line (for
//! scripts, e.g. `bench/compare`) and a row of the final table (for people).
//!
//! JSON is written by hand: the objects are flat, and the field list below is the format's
//! documentation. Rates are per second of measurement; latencies are microseconds; memory is
//! bytes; an unknown value is `null`.

use std::fmt::Write;

use super::histogram::Histogram;
use super::monitor::{group, millis, BrokerMemory};

/// Latency percentiles, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(histogram: &Histogram) -> Option<Latency> {
        Some(Latency {
            p50: histogram.quantile(0.5)?,
            p99: histogram.quantile(0.99)?,
            p999: histogram.quantile(0.999)?,
            max: histogram.max(),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub scenario: String,
    pub broker_url: String,
    /// What ran, in words (producers, queues, size, …), for the table and for readers of the JSON.
    pub setup: String,
    /// Length of the measurement.
    pub seconds: f64,
    pub published: u64,
    pub consumed: u64,
    pub confirmed: u64,
    pub nacked: u64,
    /// Overrides of `published / seconds` and `consumed / seconds` for scenarios whose
    /// phases differ in length (`backlog` publishes first, then drains).
    pub published_per_s: Option<f64>,
    pub consumed_per_s: Option<f64>,
    /// Publish to delivery, from the timestamp in each body.
    pub latency: Option<Latency>,
    /// Publish to its `basic.ack`, for scenarios with publisher confirms: timed from the moment
    /// the publish entered the bench's write buffer to the read that carried its ack (one
    /// `multiple` ack times every message it confirms).
    pub confirm_latency: Option<Latency>,
    pub bench_cpu_seconds: Option<f64>,
    pub broker_cpu_seconds: Option<f64>,
    pub broker_memory: Option<BrokerMemory>,
    /// Numbers only some scenarios have (`backlog`: phase lengths; `connections`: count and
    /// memory per connection), as `name: value`.
    pub extra: Vec<(&'static str, f64)>,
}

impl Report {
    pub fn published_per_s(&self) -> f64 {
        self.published_per_s
            .unwrap_or_else(|| per_second(self.published, self.seconds))
    }

    pub fn consumed_per_s(&self) -> f64 {
        self.consumed_per_s
            .unwrap_or_else(|| per_second(self.consumed, self.seconds))
    }

    /// The bench's CPU time per consumed message (or per published one when nothing was
    /// consumed), nanoseconds: the cost of both ends of a message in this client.
    pub fn bench_cpu_ns_per_message(&self) -> Option<f64> {
        let messages = if self.consumed > 0 {
            self.consumed
        } else {
            self.published
        };
        (messages > 0).then_some(self.bench_cpu_seconds? * 1e9 / messages as f64)
    }

    pub fn to_json(&self) -> String {
        let mut o = JsonObject::default();
        o.string("scenario", &self.scenario);
        o.string("broker_url", &self.broker_url);
        o.string("setup", &self.setup);
        o.number("seconds", Some(self.seconds));
        o.number("published", Some(self.published as f64));
        o.number("consumed", Some(self.consumed as f64));
        o.number("confirmed", Some(self.confirmed as f64));
        o.number("nacked", Some(self.nacked as f64));
        o.number("published_per_s", Some(self.published_per_s()));
        o.number("consumed_per_s", Some(self.consumed_per_s()));
        let us = |f: fn(&Latency) -> u64| self.latency.as_ref().map(|l| f(l) as f64 / 1e3);
        o.number("latency_p50_us", us(|l| l.p50));
        o.number("latency_p99_us", us(|l| l.p99));
        o.number("latency_p999_us", us(|l| l.p999));
        o.number("latency_max_us", us(|l| l.max));
        let confirm_us =
            |f: fn(&Latency) -> u64| self.confirm_latency.as_ref().map(|l| f(l) as f64 / 1e3);
        o.number("confirm_latency_p50_us", confirm_us(|l| l.p50));
        o.number("confirm_latency_p99_us", confirm_us(|l| l.p99));
        o.number("confirm_latency_p999_us", confirm_us(|l| l.p999));
        o.number("confirm_latency_max_us", confirm_us(|l| l.max));
        o.number("bench_cpu_seconds", self.bench_cpu_seconds);
        o.number(
            "bench_cpu_cores",
            self.bench_cpu_seconds.map(|c| c / self.seconds.max(1e-9)),
        );
        o.number("bench_cpu_ns_per_msg", self.bench_cpu_ns_per_message());
        o.number(
            "broker_cpu_cores",
            self.broker_cpu_seconds.map(|c| c / self.seconds.max(1e-9)),
        );
        let memory = |f: fn(&BrokerMemory) -> u64| self.broker_memory.as_ref().map(|m| f(m) as f64);
        o.number("broker_rss_start_bytes", memory(|m| m.start));
        o.number("broker_rss_peak_bytes", memory(|m| m.peak));
        o.number("broker_rss_end_bytes", memory(|m| m.end));
        o.number("broker_vmhwm_bytes", memory(|m| m.lifetime_peak));
        for (name, value) in &self.extra {
            o.number(name, Some(*value));
        }
        o.finish()
    }
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// The final table, one row per scenario.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:>11} {:>11} {:>9} {:>9} {:>9} {:>6} {:>8} {:>7} {:>10}",
        "scenario",
        "publish/s",
        "consume/s",
        "p50",
        "p99",
        "p99.9",
        "bench",
        "ns/msg",
        "broker",
        "broker rss"
    );
    let _ = writeln!(
        out,
        "{:<18} {:>11} {:>11} {:>9} {:>9} {:>9} {:>6} {:>8} {:>7} {:>10}",
        "", "", "", "", "", "", "cpu", "(bench)", "cpu", "peak"
    );
    for r in reports {
        let latency =
            |f: fn(&Latency) -> u64| r.latency.as_ref().map_or("-".to_owned(), |l| millis(f(l)));
        let cores = |s: Option<f64>| {
            s.map_or("-".to_owned(), |s| {
                format!("{:.2}", s / r.seconds.max(1e-9))
            })
        };
        let _ = writeln!(
            out,
            "{:<18} {:>11} {:>11} {:>9} {:>9} {:>9} {:>6} {:>8} {:>7} {:>10}",
            r.scenario,
            group(r.published_per_s()),
            group(r.consumed_per_s()),
            latency(|l| l.p50),
            latency(|l| l.p99),
            latency(|l| l.p999),
            cores(r.bench_cpu_seconds),
            r.bench_cpu_ns_per_message().map_or("-".to_owned(), group),
            cores(r.broker_cpu_seconds),
            r.broker_memory
                .map_or("-".to_owned(), |m| format!("{} MiB", m.peak >> 20)),
        );
    }
    let confirmed: Vec<(&Report, Latency)> = reports
        .iter()
        .filter_map(|r| Some((r, r.confirm_latency?)))
        .collect();
    if !confirmed.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<18} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9}",
            "confirm latency", "confirmed/s", "nacked", "p50", "p99", "p99.9", "max"
        );
        for (r, l) in confirmed {
            let _ = writeln!(
                out,
                "{:<18} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9}",
                r.scenario,
                group(per_second(r.confirmed, r.seconds)),
                group(r.nacked as f64),
                millis(l.p50),
                millis(l.p99),
                millis(l.p999),
                millis(l.max),
            );
        }
    }
    out
}

/// A flat JSON object written field by field.
#[derive(Default)]
struct JsonObject {
    text: String,
}

impl JsonObject {
    fn key(&mut self, key: &str) {
        self.text.push(if self.text.is_empty() { '{' } else { ',' });
        push_string(&mut self.text, key);
        self.text.push(':');
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        push_string(&mut self.text, value);
    }

    /// `null` for `None` and for values JSON cannot carry (NaN, infinities).
    fn number(&mut self, key: &str, value: Option<f64>) {
        self.key(key);
        match value.filter(|v| v.is_finite()) {
            Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => {
                let _ = write!(self.text, "{}", v as i64);
            }
            Some(v) => {
                let _ = write!(self.text, "{v:.3}");
            }
            None => self.text.push_str("null"),
        }
    }

    fn finish(mut self) -> String {
        if self.text.is_empty() {
            self.text.push('{');
        }
        self.text.push('}');
        self.text
    }
}

fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_rates_nulls_for_unknowns_and_escaped_strings() {
        let report = Report {
            scenario: "transient".into(),
            setup: "say \"hi\"\n".into(),
            seconds: 2.0,
            published: 10,
            consumed: 8,
            bench_cpu_seconds: Some(0.5),
            extra: vec![("connections", 100.0)],
            ..Report::default()
        };
        let json = report.to_json();
        assert!(json.starts_with("{\"scenario\":\"transient\""), "{json}");
        assert!(json.contains("\"setup\":\"say \\\"hi\\\"\\n\""), "{json}");
        assert!(json.contains("\"published_per_s\":5,"), "{json}");
        assert!(json.contains("\"consumed_per_s\":4,"), "{json}");
        assert!(json.contains("\"latency_p99_us\":null"), "{json}");
        assert!(json.contains("\"confirm_latency_p99_us\":null"), "{json}");
        assert!(json.contains("\"bench_cpu_cores\":0.250"), "{json}");
        assert!(json.contains("\"bench_cpu_ns_per_msg\":62500000"), "{json}");
        assert!(json.ends_with("\"connections\":100}"), "{json}");
    }

    #[test]
    fn table_has_a_row_per_scenario() {
        let reports = [
            Report {
                scenario: "transient".into(),
                seconds: 1.0,
                consumed: 1000,
                ..Report::default()
            },
            Report {
                scenario: "fanout".into(),
                seconds: 1.0,
                ..Report::default()
            },
        ];
        let table = table(&reports);
        assert_eq!(table.lines().count(), 4);
        assert!(table.lines().nth(2).unwrap().starts_with("transient"));
        assert!(table.contains("1,000"));
        assert!(
            !table.contains("confirm latency"),
            "no confirms, no section"
        );
    }

    #[test]
    fn confirm_latency_reaches_json_in_microseconds_and_its_own_table_section() {
        let report = Report {
            scenario: "persistent-confirm".into(),
            seconds: 2.0,
            published: 4000,
            confirmed: 4000,
            confirm_latency: Some(Latency {
                p50: 1_500_000,
                p99: 4_000_000,
                p999: 9_000_000,
                max: 12_000_000,
            }),
            ..Report::default()
        };
        let json = report.to_json();
        assert!(json.contains("\"confirm_latency_p50_us\":1500,"), "{json}");
        assert!(json.contains("\"confirm_latency_p99_us\":4000,"), "{json}");
        assert!(json.contains("\"confirm_latency_p999_us\":9000,"), "{json}");
        assert!(json.contains("\"latency_p50_us\":null"), "{json}");
        let table = table(&[report]);
        let row = table
            .lines()
            .skip_while(|l| !l.starts_with("confirm latency"))
            .nth(1)
            .unwrap_or_else(|| panic!("no confirm latency section:\n{table}"));
        assert!(row.starts_with("persistent-confirm"), "{row}");
        assert!(
            row.contains("2,000") && row.contains("1.50 ms") && row.contains("4.00 ms"),
            "{row}"
        );
    }
}
