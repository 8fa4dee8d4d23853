//! Resource alarms, after RabbitMQ's: when the broker's memory passes its high watermark or the
//! data directory's free disk space falls under its limit, publishers are told to stop
//! (AMQP `connection.blocked`) until the alarm clears. This is the peak-shaving backpressure: a
//! burst fills queues up to a bound and then waits at the publisher, instead of the broker
//! running out of memory or disk.
//!
//! A sampler reads the process RSS (`/proc/self/statm`) and `statvfs` of the data directory
//! every [`ALARM_SAMPLE_INTERVAL_MS`]; gateways watch [`AlarmState`] changes.

use std::path::Path;

use serde::Serialize;

/// How often memory and disk are sampled.
pub const ALARM_SAMPLE_INTERVAL_MS: u64 = 500;

/// The limits; `None` disables an alarm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmLimits {
    /// Resident memory above which publishers are blocked (RabbitMQ: `vm_memory_high_watermark`,
    /// 40% of RAM by default, which is Porter's default too).
    pub memory_high_watermark_bytes: Option<u64>,
    /// Free space on the data directory's filesystem below which publishers are blocked
    /// (RabbitMQ: `disk_free_limit`, 50 MB by default).
    pub disk_free_limit_bytes: Option<u64>,
}

impl Default for AlarmLimits {
    fn default() -> Self {
        AlarmLimits {
            memory_high_watermark_bytes: total_memory_bytes().map(|total| total / 10 * 4),
            disk_free_limit_bytes: Some(50_000_000),
        }
    }
}

/// Which alarms are raised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AlarmState {
    pub memory: bool,
    pub disk: bool,
}

impl AlarmState {
    pub fn any(&self) -> bool {
        self.memory || self.disk
    }

    /// The reason text RabbitMQ sends in `connection.blocked`.
    pub fn reason(&self) -> &'static str {
        match (self.memory, self.disk) {
            (true, true) => "low on memory and disk",
            (true, false) => "low on memory",
            (false, true) => "low on disk",
            (false, false) => "",
        }
    }
}

/// One sample against the limits.
pub fn evaluate(limits: &AlarmLimits, data_dir: &Path) -> AlarmState {
    AlarmState {
        memory: match (limits.memory_high_watermark_bytes, resident_bytes()) {
            (Some(limit), Some(rss)) => rss > limit,
            _ => false,
        },
        disk: match (limits.disk_free_limit_bytes, free_disk_bytes(data_dir)) {
            (Some(limit), Some(free)) => free < limit,
            _ => false,
        },
    }
}

/// This process's resident set size.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

/// Free bytes (for unprivileged users) on the filesystem holding `path`.
pub fn free_disk_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a zeroed out-parameter of the right type.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

fn total_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_raise_and_clear_alarms() {
        let dir = tempfile::tempdir().unwrap();
        let rss = resident_bytes().unwrap();
        let free = free_disk_bytes(dir.path()).unwrap();
        assert!(rss > 0 && free > 0);
        let raised = evaluate(
            &AlarmLimits {
                memory_high_watermark_bytes: Some(rss / 2),
                disk_free_limit_bytes: Some(free.saturating_mul(2)),
            },
            dir.path(),
        );
        assert_eq!(
            raised,
            AlarmState {
                memory: true,
                disk: true
            }
        );
        assert_eq!(raised.reason(), "low on memory and disk");
        let clear = evaluate(
            &AlarmLimits {
                memory_high_watermark_bytes: None,
                disk_free_limit_bytes: Some(1),
            },
            dir.path(),
        );
        assert!(!clear.any());
    }
}
