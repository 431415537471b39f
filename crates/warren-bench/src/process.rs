//! What Linux's `/proc` says about a process, read through `procfs`: CPU time used and resident
//! memory. The bench reads its own CPU time (to show it was not the bottleneck) and, given
//! `--broker-pid`, the broker's CPU time and memory.
//!
//! Everything here returns `None` where `/proc` is missing or unreadable (another OS, a
//! process that exited): a report then lacks a column rather than failing the run.

use procfs::process::Process;
use std::time::Duration;

/// Which process to read: this one, or another by pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    Me,
    Other(u32),
}

impl Pid {
    fn open(self) -> Option<Process> {
        match self {
            Pid::Me => Process::myself().ok(),
            Pid::Other(pid) => Process::new(i32::try_from(pid).ok()?).ok(),
        }
    }
}

/// User plus system CPU time of every thread of the process so far.
pub fn cpu_time(pid: Pid) -> Option<Duration> {
    let stat = pid.open()?.stat().ok()?;
    let ticks = stat.utime + stat.stime;
    Some(Duration::from_millis(
        ticks * 1000 / procfs::ticks_per_second(),
    ))
}

/// Resident memory now and at its peak (`VmRSS` and `VmHWM`), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

pub fn memory(pid: Pid) -> Option<Memory> {
    let status = pid.open()?.status().ok()?;
    Some(Memory {
        rss_bytes: status.vmrss? * 1024,
        peak_rss_bytes: status.vmhwm? * 1024,
    })
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
        assert_eq!(cpu_time(Pid::Other(i32::MAX as u32)), None);
    }
}
