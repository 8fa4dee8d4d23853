//! A process's CPU time and peak RSS from /proc, so a run reports what the broker spent.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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

/// The resident set size now (VmRSS), for timelines: VmHWM is the peak over the process's whole
/// life, so it cannot show what one phase of a run did.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// What the broker spent between two samples, and its CPU seconds per million `records`.
pub fn cost(
    before: Option<ProcSample>,
    after: Option<ProcSample>,
    records: f64,
) -> (Option<ProcSample>, Option<f64>) {
    let (Some(b), Some(a)) = (before, after) else {
        return (None, None);
    };
    let cpu = a.cpu_seconds - b.cpu_seconds;
    let sample = ProcSample {
        cpu_seconds: cpu,
        rss_peak_kib: a.rss_peak_kib,
    };
    (Some(sample), (records > 0.0).then(|| cpu / (records / 1e6)))
}

/// CPU seconds the whole machine spent not idle (all CPUs; user, system, irq, softirq, steal —
/// everything but idle and iowait), from the first line of /proc/stat. Minus the broker's and the
/// driver's own CPU it shows what else ran during a run: the kernel's loopback TCP work that no
/// process is charged for, and any other tenant of a shared machine.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    busy_ticks(stat.lines().next()?).map(|ticks| ticks / clock_ticks_per_second())
}

/// Non-idle ticks of a `cpu  user nice system idle iowait irq softirq steal ...` line (guest time
/// is already inside user and nice).
fn busy_ticks(line: &str) -> Option<f64> {
    let fields: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 8 {
        return None;
    }
    Some(fields.iter().sum::<f64>() - fields[3] - fields[4])
}

fn clock_ticks_per_second() -> f64 {
    // Linux has used 100 for USER_HZ on every architecture we run on.
    100.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn busy_ticks_leave_out_idle_and_iowait() {
        let line = "cpu  100 5 50 1000 20 1 4 2 0 0";
        assert_eq!(super::busy_ticks(line), Some(162.0));
        assert_eq!(super::busy_ticks("cpu 1 2"), None);
        assert!(super::machine_busy_seconds().is_some());
    }

    #[test]
    fn samples_this_process() {
        let s = super::sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_peak_kib > 0);
        assert!(s.cpu_seconds >= 0.0);
        assert!(super::rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
        assert_eq!(super::rss_kib(u32::MAX), None);
    }

    #[test]
    fn cost_is_the_difference_per_million() {
        let at = |cpu, rss| {
            Some(super::ProcSample {
                cpu_seconds: cpu,
                rss_peak_kib: rss,
            })
        };
        let (sample, per_million) = super::cost(at(1.0, 10), at(3.0, 20), 500_000.0);
        assert_eq!(sample, at(2.0, 20));
        assert_eq!(per_million, Some(4.0));
        assert_eq!(super::cost(None, at(1.0, 1), 1.0), (None, None));
        assert_eq!(super::cost(at(1.0, 1), at(1.0, 1), 0.0).1, None);
    }
}
