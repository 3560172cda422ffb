//! The memory watermark: above `[edge] shed_above_memory_mb` of resident memory, new
//! requests are shed (503) while those in flight go on. The process's RSS is read from
//! `/proc/self/status` at most every [`SAMPLE_EVERY`], by whichever request comes first
//! after that, so the check costs one atomic load per request and no background task.

use once_cell::sync::Lazy;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SAMPLE_EVERY: Duration = Duration::from_millis(100);

static START: Lazy<Instant> = Lazy::new(Instant::now);

#[derive(Debug, Default)]
pub struct MemoryWatch {
    /// When the RSS was last read, in ms since [`START`] (0: never).
    sampled_at_ms: AtomicU64,
    over: AtomicBool,
}

/// Resident memory in bytes, when the platform says (Linux).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl MemoryWatch {
    /// Whether the process is above `limit_bytes` (0: no watermark).
    pub fn over(&self, limit_bytes: u64) -> bool {
        if limit_bytes == 0 {
            return false;
        }
        let now = START.elapsed().as_millis() as u64 + 1;
        let last = self.sampled_at_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= SAMPLE_EVERY.as_millis() as u64;
        if due
            && self
                .sampled_at_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let over = resident_bytes().is_some_and(|rss| rss > limit_bytes);
            self.over.store(over, Ordering::Relaxed);
        }
        self.over.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_reads_this_process_and_zero_is_off() {
        let w = MemoryWatch::default();
        assert!(!w.over(0));
        assert!(w.over(1), "any running process holds more than a byte");
        assert!(!MemoryWatch::default().over(u64::MAX));
        assert!(resident_bytes().is_some_and(|b| b > 1024 * 1024));
    }
}
