//! The wall clock every Walden timestamp comes from: record timestamps, slot activity, DLQ
//! entries, snapshot expiry. One function, so a test or a rule that changes how time is read
//! changes it everywhere.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (0 if the clock reads before it).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Milliseconds since the Unix epoch (0 if the clock reads before it).
pub fn now_ms() -> u64 {
    now_us() / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_after_2020_and_consistent() {
        let us = now_us();
        assert!(us > 1_577_836_800_000_000, "clock reads {us}");
        assert!(now_ms() >= us / 1_000);
    }
}
