//! One file-system sync for the many logs a batch wrote.
//!
//! A QoS 1 message to a 40-member chat room, or a fan-out to 100 subscribers, is one append to
//! each subscriber's queue log. Synced log by log, a writer's batch costs as many fdatasyncs (and
//! on ext4 as many journal commits) as it touched logs: about 2,000 a second in the MQTT chat
//! benchmark. `syncfs(2)` writes every dirty file of the file system and commits its journal
//! once, so one call makes all those logs durable.
//!
//! Correctness: each log's end is captured before the call (`Log::sync_target`) and marked
//! durable only after it returned success (`Log::mark_synced`), so nothing written after the
//! capture is counted. Since Linux 5.8 `syncfs` reports write-back errors of the file system
//! (`errseq` per superblock, seen per open file). On any error the group falls back to one
//! fdatasync per log, whose per-file error state names the log that failed: only that log halts.
//!
//! Opt-in (`[storage] syncfs_min_logs`, off by default): `syncfs` also waits for every other
//! dirty file on the same file system, and measured here it raised fan-out throughput without
//! lowering the machine's CPU per delivery: the work is writing one page per queue file, which
//! it moves to the kernel's flusher threads (see `limits::SYNCFS_MIN_LOGS_DEFAULT`).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use porter_storage::StorageError;

use super::point::Halt;
use super::rule::CommitRule;
use super::writer::{commit, halt, publish_committed, Tracked};

/// The device of `dir`'s file system: logs are grouped by it, one `syncfs` per device. `None`
/// when it cannot be read: such a log is always synced on its own.
pub(super) fn device_of(dir: &Path) -> Option<u64> {
    std::fs::metadata(dir).ok().map(|m| m.dev())
}

/// Whether this kernel's `syncfs` reports write-back errors (Linux 5.8 and later). Before, it
/// returned success after a failed write-back, so grouping would acknowledge lost data.
pub(super) fn syncfs_reports_errors() -> bool {
    // SAFETY: uname fills the zeroed struct it is given.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut name) } != 0 {
        return false;
    }
    let release: String = name
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8 as char)
        .collect();
    kernel_at_least(&release, (5, 8))
}

/// Whether a kernel release string such as `6.1.0-18-amd64` is at least `major.minor`.
fn kernel_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// Flushes the whole file system holding `dir`.
fn sync_filesystem(dir: &Path) -> io::Result<()> {
    let handle = File::open(dir)?;
    // SAFETY: syncfs takes a file descriptor, which `handle` keeps open for the call.
    let rc = unsafe { libc::syncfs(handle.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The commit step of `logs` (all `Synced`, all on one device, each queued once): capture each
/// log's end, one `syncfs`, then publish every captured end.
pub(super) fn commit_group(logs: &[Arc<Tracked>]) {
    debug_assert!(logs
        .windows(2)
        .all(|pair| pair[0].device == pair[1].device && pair[0].device.is_some()));
    let mut targets = Vec::with_capacity(logs.len());
    for log in logs {
        // Cleared before the end is captured: writes after this queue another step.
        log.sync_queued.store(false, Ordering::Release);
        match log.log.sync_target() {
            Ok(Some(target)) => targets.push((log, target)),
            Ok(None) => publish_committed(log, log.log.durable_offset()),
            Err(StorageError::Closed) => halt(log, Halt::Closed),
            Err(error) => {
                tracing::error!(log = %log.dir.display(), %error, "fsync failed: the log's unacknowledged writes fail and it takes no more until a restart");
                halt(log, Halt::SyncFailed(error.to_string().into()));
            }
        }
    }
    let Some((first, _)) = targets.first() else {
        return;
    };
    let started = std::time::Instant::now();
    let synced = sync_filesystem(&first.dir);
    first.fsync.record(started.elapsed());
    match synced {
        Ok(()) => {
            for (log, target) in targets {
                let durable = log.log.mark_synced(target);
                publish_committed(log, durable);
            }
        }
        Err(error) => {
            tracing::warn!(dir = %first.dir.display(), logs = targets.len(), %error, "syncfs failed: syncing each log on its own to find which failed");
            for (log, _) in targets {
                commit(log, CommitRule::Synced);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::kernel_at_least;

    #[test]
    fn only_kernels_whose_syncfs_reports_errors_group() {
        assert!(kernel_at_least("6.1.0-18-amd64", (5, 8)));
        assert!(kernel_at_least("5.8.0", (5, 8)));
        assert!(kernel_at_least("5.10.209-198.858.amzn2.x86_64", (5, 8)));
        assert!(!kernel_at_least("5.4.0-150-generic", (5, 8)));
        assert!(!kernel_at_least("4.19.0", (5, 8)));
        assert!(!kernel_at_least("garbage", (5, 8)));
    }
}
