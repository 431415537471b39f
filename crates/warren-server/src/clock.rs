//! The wall clock, the one place the server reads it for broker rules: milliseconds since
//! the Unix epoch. Message deadlines are kept in it because they outlive the process (stored
//! enqueue times), and `x-death` records it. Core state machines never read a clock: the
//! server passes this value in with every command.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
