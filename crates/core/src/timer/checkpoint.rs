//! Checkpoints of the timer store: fdatasync every bucket file written since the last one, then
//! replace `checkpoint` with the log position they cover.
//!
//! Timers spread over many buckets make a checkpoint cost one fdatasync per touched bucket file
//! (a thousand timers over a day touch ~1,000 files): seconds the timer thread must not spend
//! while timers are due. So by default a checkpoint runs on its own thread; the store keeps
//! using the previous checkpoint (for replay and for deciding which files may be deleted) until
//! the new one is durable. Opening and closing checkpoint inline.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::files;
use super::format::{self, Pos};
use crate::error::{CoreError, Result};

/// What one checkpoint must make durable before it records `end`.
pub(super) struct Job {
    pub end: Pos,
    pub width_ms: i64,
    /// Bucket starts whose index files were appended to.
    pub buckets: Vec<i64>,
    /// A bucket file was created: the directory needs an fsync too.
    pub sync_dir: bool,
}

/// A finished checkpoint: the position now durable, or the error and the job to retry.
type Outcome = std::result::Result<Pos, (CoreError, Job)>;

pub(super) struct Checkpointer {
    dir: PathBuf,
    background: Option<Background>,
    /// A job is running in the background.
    running: bool,
}

struct Background {
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<Outcome>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    pub(super) fn new(dir: &Path, background: bool) -> Result<Checkpointer> {
        let background = if background {
            let (jobs, job_rx) = mpsc::channel::<Job>();
            let (done_tx, done) = mpsc::channel();
            let thread_dir = dir.to_path_buf();
            let thread = std::thread::Builder::new()
                .name("porter-timer-checkpoint".into())
                .spawn(move || {
                    for job in job_rx {
                        let outcome = run(&thread_dir, &job).map(|()| job.end);
                        if done_tx.send(outcome.map_err(|e| (e, job))).is_err() {
                            return;
                        }
                    }
                })
                .map_err(CoreError::Disk)?;
            Some(Background { jobs, done, thread })
        } else {
            None
        };
        Ok(Checkpointer {
            dir: dir.to_path_buf(),
            background,
            running: false,
        })
    }

    pub(super) fn running(&self) -> bool {
        self.running
    }

    /// Starts `job` in the background, or runs it now (then its outcome is returned at once).
    pub(super) fn start(&mut self, job: Job, inline: bool) -> Option<Outcome> {
        match &self.background {
            Some(background) if !inline => {
                debug_assert!(!self.running);
                match background.jobs.send(job) {
                    Ok(()) => {
                        self.running = true;
                        None
                    }
                    Err(mpsc::SendError(job)) => Some(Err((
                        CoreError::Disk(std::io::Error::other("checkpoint thread gone")),
                        job,
                    ))),
                }
            }
            _ => Some(run(&self.dir, &job).map(|()| job.end).map_err(|e| (e, job))),
        }
    }

    /// The outcome of the background job, if it finished (or, with `wait`, once it does).
    pub(super) fn finished(&mut self, wait: bool) -> Option<Outcome> {
        if !self.running {
            return None;
        }
        let background = self.background.as_ref()?;
        let outcome = if wait {
            background.done.recv().ok()
        } else {
            background.done.try_recv().ok()
        };
        if outcome.is_some() {
            self.running = false;
        }
        outcome
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Some(Background { jobs, thread, done }) = self.background.take() {
            drop(jobs);
            drop(done);
            let _ = thread.join();
        }
    }
}

fn run(dir: &Path, job: &Job) -> Result<()> {
    let buckets_dir = dir.join("buckets");
    for &start in &job.buckets {
        let path = files::bucket_path(&buckets_dir, start, "idx");
        // A file deleted meanwhile had every timer fired: nothing to keep.
        match std::fs::File::open(&path).and_then(|f| f.sync_data()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(files::io(&path)(e)),
            _ => {}
        }
    }
    if job.sync_dir {
        files::sync_dir(&buckets_dir)?;
    }
    files::write_durably(
        dir,
        &dir.join("checkpoint.tmp"),
        &dir.join("checkpoint"),
        &format::encode_checkpoint(job.end, job.width_ms),
    )
}
