//! The outcome of one scenario, and its two renderings: one JSON object per line (for
//! scripts, e.g. `bench/compare`) and a row of the final table (for people).
//!
//! The JSON object is flat; `JsonReport`'s field list is the format's documentation. Rates
//! are per second of measurement; latencies are microseconds; memory is bytes; an unknown
//! value is `null`.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
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

    /// One JSON object on one line, fields in the order of [`JsonReport`].
    pub fn to_json(&self) -> String {
        serde_json::to_string(&JsonReport::of(self)).expect("a report always serializes")
    }
}

/// The JSON format, field by field: this struct is its documentation.
#[derive(Serialize)]
struct JsonReport<'a> {
    scenario: &'a str,
    broker_url: &'a str,
    setup: &'a str,
    seconds: Number,
    published: u64,
    consumed: u64,
    confirmed: u64,
    nacked: u64,
    published_per_s: Number,
    consumed_per_s: Number,
    latency_p50_us: Number,
    latency_p99_us: Number,
    latency_p999_us: Number,
    latency_max_us: Number,
    confirm_latency_p50_us: Number,
    confirm_latency_p99_us: Number,
    confirm_latency_p999_us: Number,
    confirm_latency_max_us: Number,
    bench_cpu_seconds: Number,
    bench_cpu_cores: Number,
    bench_cpu_ns_per_msg: Number,
    broker_cpu_cores: Number,
    broker_rss_start_bytes: Option<u64>,
    broker_rss_peak_bytes: Option<u64>,
    broker_rss_end_bytes: Option<u64>,
    broker_vmhwm_bytes: Option<u64>,
    /// The scenario's own numbers ([`Report::extra`]), last.
    #[serde(flatten)]
    extra: Extra<'a>,
}

impl JsonReport<'_> {
    fn of(r: &Report) -> JsonReport<'_> {
        let us = |l: Option<Latency>, f: fn(&Latency) -> u64| {
            Number(l.as_ref().map(|l| f(l) as f64 / 1e3))
        };
        let cores = |cpu: Option<f64>| Number(cpu.map(|c| c / r.seconds.max(1e-9)));
        let memory = |f: fn(&BrokerMemory) -> u64| r.broker_memory.as_ref().map(f);
        JsonReport {
            scenario: &r.scenario,
            broker_url: &r.broker_url,
            setup: &r.setup,
            seconds: Number(Some(r.seconds)),
            published: r.published,
            consumed: r.consumed,
            confirmed: r.confirmed,
            nacked: r.nacked,
            published_per_s: Number(Some(r.published_per_s())),
            consumed_per_s: Number(Some(r.consumed_per_s())),
            latency_p50_us: us(r.latency, |l| l.p50),
            latency_p99_us: us(r.latency, |l| l.p99),
            latency_p999_us: us(r.latency, |l| l.p999),
            latency_max_us: us(r.latency, |l| l.max),
            confirm_latency_p50_us: us(r.confirm_latency, |l| l.p50),
            confirm_latency_p99_us: us(r.confirm_latency, |l| l.p99),
            confirm_latency_p999_us: us(r.confirm_latency, |l| l.p999),
            confirm_latency_max_us: us(r.confirm_latency, |l| l.max),
            bench_cpu_seconds: Number(r.bench_cpu_seconds),
            bench_cpu_cores: cores(r.bench_cpu_seconds),
            bench_cpu_ns_per_msg: Number(r.bench_cpu_ns_per_message()),
            broker_cpu_cores: cores(r.broker_cpu_seconds),
            broker_rss_start_bytes: memory(|m| m.start),
            broker_rss_peak_bytes: memory(|m| m.peak),
            broker_rss_end_bytes: memory(|m| m.end),
            broker_vmhwm_bytes: memory(|m| m.lifetime_peak),
            extra: Extra(&r.extra),
        }
    }
}

/// A measured number: a whole number is written as an integer, any other with at most three
/// decimals, and `None` (or a value JSON cannot carry: NaN, infinities) as `null`.
struct Number(Option<f64>);

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self
            .0
            .filter(|v| v.is_finite())
            .map(|v| (v * 1e3).round() / 1e3)
        {
            Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => serializer.serialize_i64(v as i64),
            Some(v) => serializer.serialize_f64(v),
            None => serializer.serialize_none(),
        }
    }
}

/// [`Report::extra`] as fields of the object.
struct Extra<'a>(&'a [(&'static str, f64)]);

impl Serialize for Extra<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, &Number(Some(*value)))?;
        }
        map.end()
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
        assert!(json.contains("\"bench_cpu_cores\":0.25,"), "{json}");
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
