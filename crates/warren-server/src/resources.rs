//! Resource alarms: the memory high watermark and the disk free limit.
//!
//! A monitor samples the broker's resident memory and the data directory's free space; past
//! either limit it raises an alarm, and publishing connections are blocked (not read, and
//! told `connection.blocked` if they understand it) until the broker is back under the
//! limit. Consumers keep being served, so the backlog can drain. As in RabbitMQ.
//!
//! Memory is read from `/proc` through `procfs` and free disk space with `statvfs` through
//! `rustix`: no `unsafe` here.

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// How often the monitor samples memory and disk.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A limit given either as a fraction of something (RAM) or as an absolute byte count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    Fraction(f64),
    Bytes(u64),
}

impl Limit {
    /// The limit in bytes, given the whole it is a fraction of.
    pub fn resolve(self, whole: u64) -> u64 {
        match self {
            Limit::Fraction(f) => (whole as f64 * f) as u64,
            Limit::Bytes(b) => b,
        }
    }
}

impl FromStr for Limit {
    type Err = String;

    /// `0.4` (a fraction, below 1), or a size: `1073741824`, `512MB`, `2GiB`, `100MiB`, `1GB`.
    fn from_str(s: &str) -> Result<Limit, String> {
        let s = s.trim();
        let bad = || {
            format!(
                "'{s}' is neither a fraction like 0.4 nor a size like 2GiB, 512MB or 1073741824"
            )
        };
        if let Ok(f) = s.parse::<f64>() {
            if s.contains('.') || f < 1.0 {
                return if (0.0..=1.0).contains(&f) {
                    Ok(Limit::Fraction(f))
                } else {
                    Err(bad())
                };
            }
        }
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "kib" | "k" => 1 << 10,
            "mb" => 1_000_000,
            "mib" | "m" => 1 << 20,
            "gb" => 1_000_000_000,
            "gib" | "g" => 1 << 30,
            "tb" => 1_000_000_000_000,
            "tib" | "t" => 1 << 40,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(Limit::Bytes).ok_or_else(bad)
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Fraction(x) => write!(f, "{x}"),
            Limit::Bytes(b) => write!(f, "{b} bytes"),
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Limit, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) if n <= 1.0 => Ok(Limit::Fraction(n)),
            Raw::Num(n) => Ok(Limit::Bytes(n as u64)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Which alarms are raised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Alarms {
    pub memory: bool,
    pub disk: bool,
}

impl Alarms {
    pub fn any(self) -> bool {
        self.memory || self.disk
    }

    /// The reason given in `connection.blocked`, as RabbitMQ words it.
    pub fn reason(self) -> &'static str {
        if self.memory {
            "low on memory"
        } else {
            "low on disk"
        }
    }
}

/// Resident memory of this process, bytes (`/proc/self/statm`).
pub fn resident_bytes() -> Option<u64> {
    let statm = procfs::process::Process::myself().ok()?.statm().ok()?;
    Some(statm.resident * procfs::page_size())
}

/// Memory available to the broker: the machine's RAM, or a smaller cgroup (v2) limit.
pub fn total_memory_bytes() -> u64 {
    use procfs::Current as _;
    let ram = procfs::Meminfo::current().map_or(u64::MAX, |m| m.mem_total);
    // `max` (no limit) does not parse and leaves the RAM.
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    cgroup.map_or(ram, |c| c.min(ram))
}

/// Free space for unprivileged use on the filesystem holding `path`, bytes.
pub fn free_disk_bytes(path: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Starts the monitor task; the returned receiver always holds the current alarms.
pub fn start_monitor(
    memory_limit: Limit,
    disk_limit: Limit,
    data_dir: PathBuf,
    paging_ratio: f64,
    paging_pressure: watch::Sender<bool>,
) -> watch::Receiver<Alarms> {
    let total = total_memory_bytes();
    let memory_limit_bytes = memory_limit.resolve(total);
    // A fractional disk limit is relative to RAM, as RabbitMQ's `mem_relative`.
    let disk_limit_bytes = disk_limit.resolve(total);
    info!("memory high watermark {memory_limit_bytes} bytes ({memory_limit} of {total}), disk free limit {disk_limit_bytes} bytes");
    let (tx, rx) = watch::channel(Alarms::default());
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(SAMPLE_EVERY);
        loop {
            ticker.tick().await;
            let rss = resident_bytes().unwrap_or(0);
            // Queues page out before the alarm (at half the watermark by default, as
            // RabbitMQ), so that blocking publishers is the last resort.
            let pressure = rss as f64 > memory_limit_bytes as f64 * paging_ratio;
            if *paging_pressure.borrow() != pressure {
                if pressure {
                    info!("memory pressure: resident memory {rss} bytes is past {paging_ratio} of the high watermark; queues page messages to disk");
                }
                paging_pressure.send_replace(pressure);
            }
            let free = free_disk_bytes(&data_dir).unwrap_or(u64::MAX);
            let now = Alarms {
                memory: rss > memory_limit_bytes,
                disk: free < disk_limit_bytes,
            };
            let before = *tx.borrow();
            if now != before {
                if now.memory != before.memory {
                    if now.memory {
                        warn!("memory alarm set: resident memory {rss} bytes is above the high watermark {memory_limit_bytes}; publishers blocked");
                    } else {
                        info!("memory alarm cleared: resident memory {rss} bytes");
                    }
                }
                if now.disk != before.disk {
                    if now.disk {
                        warn!("disk alarm set: {free} bytes free is below the limit {disk_limit_bytes}; publishers blocked");
                    } else {
                        info!("disk alarm cleared: {free} bytes free");
                    }
                }
                if tx.send(now).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_as_fractions_or_sizes() {
        assert_eq!("0.4".parse::<Limit>().unwrap(), Limit::Fraction(0.4));
        assert_eq!("2GiB".parse::<Limit>().unwrap(), Limit::Bytes(2 << 30));
        assert_eq!("512MB".parse::<Limit>().unwrap(), Limit::Bytes(512_000_000));
        assert_eq!(
            "1073741824".parse::<Limit>().unwrap(),
            Limit::Bytes(1 << 30)
        );
        assert!("lots".parse::<Limit>().is_err());
        assert!("1.5".parse::<Limit>().is_err());
    }

    #[test]
    fn fraction_resolves_against_the_whole() {
        assert_eq!(Limit::Fraction(0.5).resolve(1000), 500);
        assert_eq!(Limit::Bytes(7).resolve(1000), 7);
    }

    #[test]
    fn this_process_has_resident_memory_and_its_disk_has_free_space() {
        assert!(resident_bytes().unwrap() > 0);
        assert!(free_disk_bytes(Path::new("/")).is_some());
        assert!(total_memory_bytes() > 0);
    }
}
