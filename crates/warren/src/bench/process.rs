//! What Linux's `/proc` says about a process: CPU time used and resident memory. The bench
//! reads its own CPU time (to show it was not the bottleneck) and, given `--broker-pid`, the
//! broker's CPU time and memory.
//!
//! Everything here returns `None` where `/proc` is missing or unreadable (another OS, a
//! process that exited): a report then lacks a column rather than failing the run.

use std::time::Duration;

/// Linux reports CPU time in clock ticks of `USER_HZ`, which is 100 on every mainstream
/// architecture (the kernel fixes it for user-space ABI stability).
const TICKS_PER_SECOND: u64 = 100;

/// Which process to read: this one, or another by pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    Me,
    Other(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Pid::Me => "/proc/self".to_owned(),
            Pid::Other(pid) => format!("/proc/{pid}"),
        }
    }
}

/// User plus system CPU time of every thread of the process so far.
pub fn cpu_time(pid: Pid) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("{}/stat", pid.dir())).ok()?;
    // The command name (field 2) is parenthesised and may contain spaces: count fields from
    // the last ')'. utime and stime are fields 14 and 15, i.e. the 12th and 13th after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

/// Resident memory now and at its peak (`VmRSS` and `VmHWM`), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

pub fn memory(pid: Pid) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("{}/status", pid.dir())).ok()?;
    Some(Memory {
        rss_bytes: status_kib(&status, "VmRSS:")? * 1024,
        peak_rss_bytes: status_kib(&status, "VmHWM:")? * 1024,
    })
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_grows_with_work() {
        let Some(before) = cpu_time(Pid::Me) else {
            return;
        }; // not Linux
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(cpu_time(Pid::Me).unwrap() > before);
    }

    #[test]
    fn own_memory_is_read_in_bytes() {
        let Some(memory) = memory(Pid::Me) else {
            return;
        }; // not Linux
        assert!(memory.rss_bytes > 100 * 1024, "{memory:?}");
        assert!(memory.peak_rss_bytes >= memory.rss_bytes);
    }

    #[test]
    fn missing_process_reads_as_none() {
        assert_eq!(cpu_time(Pid::Other(u32::MAX)), None);
        assert_eq!(memory(Pid::Other(u32::MAX)), None);
    }
}
