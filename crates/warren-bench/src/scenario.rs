//! The named scenarios, as the performance issue defines them. Their shapes are fixed, so
//! that numbers from different runs and brokers compare; only the duration and the scale
//! knobs (`--backlog-messages`, `--connections`) change, so that CI can run tiny versions.
//!
//! A [`Shape`] given on the command line (`--size`, `--persistent`, `--confirm`) replaces
//! those parts of a named shape, for measurements the fixed shapes do not cover (a backlog
//! of 64 KiB persistent messages, say); the report's set-up line says what ran.

use std::time::Duration;

use super::backlog::{Backlog, Phases};
use super::connections::IdleConnections;
use super::consumer::AckMode;
use super::load::Load;

pub const NAMES: [&str; 8] = [
    "transient",
    "transient-autoack",
    "persistent-confirm",
    "fanout",
    "latency",
    "many-queues",
    "backlog",
    "connections",
];

/// What one scenario runs.
#[derive(Debug, Clone)]
pub enum Scenario {
    Load(Load),
    Backlog(Backlog),
    Connections(IdleConnections),
}

/// The knobs that apply to named scenarios.
#[derive(Debug, Clone)]
pub struct Scale {
    pub duration: Duration,
    pub backlog_messages: u64,
    pub connections: usize,
    /// The queue `backlog` uses instead of a fresh one (kept at the end).
    pub backlog_queue: Option<String>,
    pub backlog_phases: Phases,
}

/// Parts of the named shapes replaced from the command line; `None`/`false` keeps the
/// scenario's own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    pub body_bytes: Option<usize>,
    /// Durable queues and persistent messages.
    pub persistent: bool,
    pub confirm_window: Option<u64>,
}

impl Shape {
    fn apply_to_load(&self, load: &mut Load) {
        if let Some(bytes) = self.body_bytes {
            load.body_bytes = bytes;
        }
        if self.persistent {
            load.durable = true;
            load.persistent = true;
        }
        if self.confirm_window.is_some() {
            load.confirm_window = self.confirm_window;
        }
    }

    fn apply_to_backlog(&self, backlog: &mut Backlog) {
        if let Some(bytes) = self.body_bytes {
            backlog.body_bytes = bytes;
        }
        backlog.persistent |= self.persistent;
        if self.confirm_window.is_some() {
            backlog.confirm_window = self.confirm_window;
        }
    }
}

/// The scenario called `name`, or `None` if there is none.
pub fn named(name: &str, scale: &Scale, shape: &Shape) -> Option<Scenario> {
    // 1 producer -> 1 queue -> 1 consumer, 64 B, one ack per message, prefetch 1000.
    let transient = Load {
        name: name.to_owned(),
        queues: 1,
        durable: false,
        fanout: false,
        producers: 1,
        consumers: 1,
        connections: 0,
        body_bytes: 64,
        persistent: false,
        confirm_window: None,
        ack: AckMode::Each,
        prefetch: 1000,
        rate_per_s: None,
        duration: scale.duration,
    };
    let scenario = match name {
        "transient" => Scenario::Load(transient),
        "transient-autoack" => Scenario::Load(Load {
            ack: AckMode::Auto,
            ..transient
        }),
        "persistent-confirm" => Scenario::Load(Load {
            durable: true,
            persistent: true,
            body_bytes: 1024,
            confirm_window: Some(1000),
            ..transient
        }),
        "fanout" => Scenario::Load(Load {
            queues: 10,
            fanout: true,
            consumers: 10,
            ..transient
        }),
        "latency" => Scenario::Load(Load {
            rate_per_s: Some(10_000.0),
            ..transient
        }),
        "many-queues" => Scenario::Load(Load {
            queues: 100,
            producers: 100,
            consumers: 100,
            connections: 10,
            ..transient
        }),
        "backlog" => Scenario::Backlog(Backlog {
            name: name.to_owned(),
            messages: scale.backlog_messages,
            body_bytes: 64,
            persistent: false,
            confirm_window: None,
            ack: AckMode::Each,
            prefetch: 1000,
            queue: scale.backlog_queue.clone(),
            phases: scale.backlog_phases,
        }),
        "connections" => Scenario::Connections(IdleConnections {
            name: name.to_owned(),
            count: scale.connections,
            hold: scale.duration,
        }),
        _ => return None,
    };
    Some(match scenario {
        Scenario::Load(mut load) => {
            shape.apply_to_load(&mut load);
            Scenario::Load(load)
        }
        Scenario::Backlog(mut backlog) => {
            shape.apply_to_backlog(&mut backlog);
            Scenario::Backlog(backlog)
        }
        idle @ Scenario::Connections(_) => idle,
    })
}

/// Expands `all` and comma-separated lists into scenario names, checking each.
pub fn select(list: &str) -> anyhow::Result<Vec<&'static str>> {
    let mut names = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "all" {
            names.extend(NAMES);
        } else {
            match NAMES.iter().find(|n| **n == item) {
                Some(name) => names.push(*name),
                None => anyhow::bail!(
                    "no scenario `{item}`; the scenarios are: all, {}",
                    NAMES.join(", ")
                ),
            }
        }
    }
    if names.is_empty() {
        anyhow::bail!(
            "no scenario named; the scenarios are: all, {}",
            NAMES.join(", ")
        );
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCALE: Scale = Scale {
        duration: Duration::from_secs(5),
        backlog_messages: 1000,
        connections: 10,
        backlog_queue: None,
        backlog_phases: Phases::Both,
    };
    const KEEP: Shape = Shape {
        body_bytes: None,
        persistent: false,
        confirm_window: None,
    };

    #[test]
    fn every_name_is_a_scenario() {
        for name in NAMES {
            assert!(named(name, &SCALE, &KEEP).is_some(), "{name}");
        }
        assert!(named("nonsense", &SCALE, &KEEP).is_none());
    }

    #[test]
    fn all_expands_in_order_and_unknown_names_are_refused() {
        assert_eq!(select("all").unwrap(), NAMES.to_vec());
        assert_eq!(
            select("fanout, latency").unwrap(),
            vec!["fanout", "latency"]
        );
        assert!(select("fanout,nope").is_err());
        assert!(select("").is_err());
    }

    #[test]
    fn persistent_confirm_is_durable_persistent_and_confirmed() {
        let Some(Scenario::Load(load)) = named("persistent-confirm", &SCALE, &KEEP) else {
            panic!()
        };
        assert!(load.durable && load.persistent);
        assert_eq!(
            (load.body_bytes, load.confirm_window, load.ack),
            (1024, Some(1000), AckMode::Each)
        );
    }

    #[test]
    fn scale_knobs_reach_backlog_and_connections() {
        let scale = Scale {
            backlog_queue: Some("kept".into()),
            backlog_phases: Phases::Fill,
            ..SCALE
        };
        let Some(Scenario::Backlog(backlog)) = named("backlog", &scale, &KEEP) else {
            panic!()
        };
        assert_eq!(backlog.messages, 1000);
        assert_eq!(
            (backlog.queue.as_deref(), backlog.phases),
            (Some("kept"), Phases::Fill)
        );
        assert!(!backlog.persistent && backlog.confirm_window.is_none());
        let Some(Scenario::Connections(idle)) = named("connections", &SCALE, &KEEP) else {
            panic!()
        };
        assert_eq!(idle.count, 10);
    }

    #[test]
    fn a_shape_from_the_command_line_replaces_only_what_it_names() {
        let shape = Shape {
            body_bytes: Some(65_536),
            persistent: true,
            confirm_window: Some(50),
        };
        let Some(Scenario::Backlog(backlog)) = named("backlog", &SCALE, &shape) else {
            panic!()
        };
        assert_eq!(
            (
                backlog.body_bytes,
                backlog.persistent,
                backlog.confirm_window
            ),
            (65_536, true, Some(50))
        );
        assert_eq!(backlog.prefetch, 1000, "the rest of the shape stays");
        let Some(Scenario::Load(load)) = named("transient", &SCALE, &shape) else {
            panic!()
        };
        assert!(load.durable && load.persistent);
        assert_eq!((load.body_bytes, load.confirm_window), (65_536, Some(50)));
        let size_only = Shape {
            body_bytes: Some(10),
            ..KEEP
        };
        let Some(Scenario::Load(load)) = named("persistent-confirm", &SCALE, &size_only) else {
            panic!()
        };
        assert_eq!(
            (load.body_bytes, load.persistent, load.confirm_window),
            (10, true, Some(1000))
        );
    }
}
