//! A process's CPU time and peak RSS from /proc, so a run reports what the broker spent.

use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ProcSample {
    pub cpu_seconds: f64,
    pub rss_peak_kib: u64,
}

/// utime + stime (fields 14 and 15 of /proc/PID/stat) and VmHWM of /proc/PID/status.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields start after its closing parenthesis.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_peak_kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(ProcSample {
        cpu_seconds: ticks / clock_ticks_per_second(),
        rss_peak_kib,
    })
}

fn clock_ticks_per_second() -> f64 {
    // Linux has used 100 for USER_HZ on every architecture we run on.
    100.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn samples_this_process() {
        let s = super::sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_peak_kib > 0);
        assert!(s.cpu_seconds >= 0.0);
    }
}
