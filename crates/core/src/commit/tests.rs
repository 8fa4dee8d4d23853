//! The committer's promises: writes to one log run in queue order; one fsync covers every
//! write of a batch; a failed fsync fails its waiters and halts only its log; a full queue
//! makes senders wait.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use porter_storage::records::{decode_batches, encode_batch, LogRecord};
use porter_storage::{FileCache, FlushMode, Log, LogConfig};
use proptest::prelude::*;

use super::*;

fn open_log(dir: &Path, flush: FlushMode) -> Arc<Log> {
    let config = LogConfig {
        flush,
        segment_bytes: 4096,
        ..LogConfig::default()
    };
    Arc::new(Log::open(dir, config, FileCache::new(16), false).unwrap())
}

fn one_writer(queue: usize) -> Arc<Committer> {
    one_writer_grouping(queue, 0)
}

/// One writer whose batches share a `syncfs` once they wrote `syncfs_min_logs` logs.
fn one_writer_grouping(queue: usize, syncfs_min_logs: usize) -> Arc<Committer> {
    Committer::start(&CommitConfig {
        writer_threads: 1,
        writer_queue_jobs: queue,
        syncfs_min_logs,
        ..CommitConfig::default()
    })
    .unwrap()
}

/// Registers `count` group-flushed logs under `dir`.
fn group_logs(committer: &Committer, dir: &Path, count: usize) -> Vec<LogWriter> {
    (0..count)
        .map(|i| committer.register(open_log(&dir.join(format!("p{i}")), FlushMode::Group)))
        .collect()
}

/// Appends one record to each log in a single batch (the writer held while they queue), and
/// returns each append's result.
async fn append_in_one_batch(writers: &[LogWriter]) -> Vec<Result<AppendInfo>> {
    let release = hold_writer(&writers[0]).await;
    let mut pending = Vec::new();
    for (i, writer) in writers.iter().enumerate() {
        pending.push(
            writer
                .enqueue(move |log| Ok(log.append(record(&format!("m{i}")), 0)?))
                .await
                .unwrap(),
        );
    }
    drop(release);
    let mut results = Vec::new();
    for written in pending {
        results.push(written.await);
    }
    results
}

fn record(value: &str) -> Bytes {
    encode_batch(&[LogRecord {
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        ..LogRecord::default()
    }])
    .unwrap()
}

/// Every committed value, in offset order.
fn values(log: &Log) -> Vec<String> {
    let mut values = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.high_watermark() {
        let slice = log.read(next, u32::MAX).unwrap();
        for record in decode_batches(slice.bytes).unwrap() {
            next = record.offset + 1;
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    values
}

/// Holds the writer thread inside a job until the returned sender is dropped or sent to, so
/// the jobs queued meanwhile form the next batch. Returns once the thread is inside the job.
async fn hold_writer(writer: &LogWriter) -> std::sync::mpsc::Sender<()> {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, inside) = tokio::sync::oneshot::channel();
    let writer = writer.clone();
    tokio::spawn(async move {
        writer
            .run(move || {
                started.send(()).unwrap();
                let _ = held.recv();
            })
            .await
            .unwrap();
    });
    inside.await.unwrap();
    release
}

fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test]
async fn many_waiters_share_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let committer = one_writer(1024);
    let writer = committer.register(open_log(dir.path(), FlushMode::Group));
    let release = hold_writer(&writer).await;
    let syncs = writer.log().sync_count();
    let mut pending = Vec::new();
    for i in 0..100 {
        pending.push(
            writer
                .enqueue(move |log| Ok(log.append(record(&format!("m{i}")), 0)?))
                .await
                .unwrap(),
        );
    }
    let waiters: Vec<_> = (1..=100)
        .map(|end| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.wait_committed(end).await })
        })
        .collect();
    assert_eq!(
        writer.committed(),
        0,
        "nothing commits while the writer is held"
    );
    drop(release);
    for (i, written) in pending.into_iter().enumerate() {
        assert_eq!(written.await.unwrap().base_offset, i as i64);
    }
    for waiter in waiters {
        waiter.await.unwrap().unwrap();
    }
    assert_eq!(
        writer.log().sync_count(),
        syncs + 1,
        "one fsync for the whole batch"
    );
    assert_eq!(writer.log().high_watermark(), 100);
    assert_eq!(values(writer.log()).len(), 100);
}

/// A batch that wrote more logs than the writer has fsync helpers commits every one of them,
/// each with one fsync (side by side on the helpers, the rest on the writer).
#[tokio::test]
async fn a_batch_over_many_logs_syncs_and_commits_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let committer = one_writer(1024);
    let writers = group_logs(&committer, dir.path(), SYNC_HELPERS_PER_WRITER + 3);
    let syncs: Vec<u64> = writers.iter().map(|w| w.log().sync_count()).collect();
    for result in append_in_one_batch(&writers).await {
        result.unwrap();
    }
    for (writer, before) in writers.iter().zip(syncs) {
        writer.wait_committed(1).await.unwrap();
        assert_eq!(writer.log().high_watermark(), 1);
        assert_eq!(writer.log().sync_count(), before + 1, "one fsync per log");
    }
}

/// With grouping on, a batch over at least `syncfs_min_logs` logs commits them all through one
/// `syncfs`: every log is durable and committed, and none made an fdatasync of its own.
#[tokio::test]
async fn a_batch_over_enough_logs_shares_one_filesystem_sync() {
    let dir = tempfile::tempdir().unwrap();
    let committer = one_writer_grouping(1024, SYNCFS_MIN_LOGS_SUGGESTED);
    let writers = group_logs(&committer, dir.path(), 6);
    for result in append_in_one_batch(&writers).await {
        result.unwrap();
    }
    for writer in &writers {
        writer.wait_committed(1).await.unwrap();
        assert_eq!(writer.log().durable_offset(), 1);
        assert_eq!(writer.log().high_watermark(), 1);
        assert_eq!(writer.log().sync_count(), 0, "no fdatasync of its own");
    }
    // Below the threshold, each log syncs on its own again.
    let few = &writers[..3];
    for result in append_in_one_batch(few).await {
        result.unwrap();
    }
    for writer in few {
        writer.wait_committed(2).await.unwrap();
        assert_eq!(writer.log().sync_count(), 1);
    }
}

/// A log of a group that fails its sync halts alone: the group's other logs commit.
#[tokio::test]
async fn a_failing_log_in_a_group_halts_alone() {
    let dir = tempfile::tempdir().unwrap();
    let committer = one_writer_grouping(1024, SYNCFS_MIN_LOGS_SUGGESTED);
    let writers = group_logs(&committer, dir.path(), 5);
    writers[2].log().fail_next_sync();
    for result in append_in_one_batch(&writers).await {
        result.unwrap();
    }
    for (i, writer) in writers.iter().enumerate() {
        let waited = writer.wait_committed(1).await;
        if i == 2 {
            assert!(matches!(waited, Err(CoreError::Io { .. })), "{waited:?}");
            assert_eq!(writer.log().high_watermark(), 0, "never visible");
        } else {
            waited.unwrap();
            assert_eq!(values(writer.log()), [format!("m{i}")]);
        }
    }
}

#[tokio::test]
async fn written_rule_commits_without_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let committer = one_writer(8);
    let writer = committer.register(open_log(dir.path(), FlushMode::Never));
    let info = writer.append(record("a"), 0).await.unwrap();
    writer.wait_committed(info.last_offset + 1).await.unwrap();
    assert_eq!(writer.log().sync_count(), 0);
    assert_eq!(values(writer.log()), ["a"]);
}

#[tokio::test]
async fn leaving_group_mode_commits_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let committer = one_writer(8);
    let writer = committer.register(open_log(dir.path(), FlushMode::Group));
    // Written without a commit step (as if the fsync were still pending).
    let end = writer.log().append(record("a"), 0).unwrap().last_offset + 1;
    assert_eq!(writer.committed(), 0);
    writer.log().set_config(LogConfig {
        flush: FlushMode::Never,
        ..writer.log().config()
    });
    writer.recommit().await.unwrap();
    writer.wait_committed(end).await.unwrap();
    assert_eq!(writer.log().sync_count(), 0);
}

#[tokio::test]
async fn failed_fsync_fails_waiters_and_halts_only_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let committer = one_writer(8);
    let failing = committer.register(open_log(&dir.path().join("a"), FlushMode::Group));
    let healthy = committer.register(open_log(&dir.path().join("b"), FlushMode::Group));
    let first = failing.append(record("acked"), 0).await.unwrap();
    failing.wait_committed(first.last_offset + 1).await.unwrap();

    failing.log().fail_next_sync();
    let lost = failing.append(record("never acked"), 0).await.unwrap();
    let error = failing
        .wait_committed(lost.last_offset + 1)
        .await
        .unwrap_err();
    assert!(matches!(error, CoreError::Io { .. }), "{error}");
    assert_eq!(
        failing.log().high_watermark(),
        1,
        "the failed write is not visible"
    );
    // What was committed before stays committed.
    failing.wait_committed(first.last_offset + 1).await.unwrap();
    // The log takes no more writes...
    assert!(failing.append(record("refused"), 0).await.is_err());
    // ...while the thread serves its other logs.
    let info = healthy.append(record("fine"), 0).await.unwrap();
    healthy.wait_committed(info.last_offset + 1).await.unwrap();
    assert_eq!(values(healthy.log()), ["fine"]);
}

#[tokio::test]
async fn a_full_queue_makes_senders_wait() {
    let dir = tempfile::tempdir().unwrap();
    let committer = one_writer(2);
    let writer = committer.register(open_log(dir.path(), FlushMode::Never));
    let release = hold_writer(&writer).await;
    let first = writer
        .enqueue(|log| Ok(log.append(record("1"), 0)?))
        .await
        .unwrap();
    let second = writer
        .enqueue(|log| Ok(log.append(record("2"), 0)?))
        .await
        .unwrap();
    assert_eq!(committer.queued_jobs(), 2);
    let mut third = pin!(writer.enqueue(|log| Ok(log.append(record("3"), 0)?)));
    assert!(
        poll_once(third.as_mut()).is_pending(),
        "no room: the sender waits"
    );
    assert!(poll_once(third.as_mut()).is_pending());
    drop(release);
    let third = third.await.unwrap();
    assert_eq!(first.await.unwrap().base_offset, 0);
    assert_eq!(second.await.unwrap().base_offset, 1);
    assert_eq!(third.await.unwrap().base_offset, 2);
    writer.wait_committed(3).await.unwrap();
    assert_eq!(values(writer.log()), ["1", "2", "3"]);
}

#[tokio::test]
async fn shutdown_finishes_queued_writes_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let committer = one_writer(8);
    let writer = committer.register(open_log(dir.path(), FlushMode::Group));
    let queued = writer
        .enqueue(|log| Ok(log.append(record("last"), 0)?))
        .await
        .unwrap();
    let stopper = Arc::clone(&committer);
    tokio::task::spawn_blocking(move || stopper.shutdown())
        .await
        .unwrap();
    let info = queued.await.unwrap();
    writer.wait_committed(info.last_offset + 1).await.unwrap();
    assert!(matches!(
        writer.append(record("late"), 0).await,
        Err(CoreError::ShuttingDown)
    ));
}

#[tokio::test]
async fn a_panicking_job_reaches_its_caller_not_the_thread() {
    let dir = tempfile::tempdir().unwrap();
    let committer = one_writer(8);
    let writer = committer.register(open_log(dir.path(), FlushMode::Never));
    let panicking = writer.clone();
    let joined =
        tokio::spawn(async move { panicking.write(|_| -> Result<()> { panic!("bug") }).await })
            .await;
    assert!(joined.unwrap_err().is_panic());
    writer.append(record("after"), 0).await.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Tasks writing to logs spread over two writers with tiny queues: every log holds each
    /// task's records in the order that task wrote them, and everything acknowledged is
    /// committed.
    #[test]
    fn writes_to_one_log_keep_their_order(
        plan in prop::collection::vec((0usize..3, 0usize..4), 1..80)
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let committer = Committer::start(&CommitConfig { writer_threads: 2, writer_queue_jobs: 2, ..CommitConfig::default() }).unwrap();
            let modes = [FlushMode::Group, FlushMode::Never, FlushMode::Group];
            let writers: Vec<LogWriter> = (0..3)
                .map(|i| committer.register(open_log(&dir.path().join(i.to_string()), modes[i])))
                .collect();
            let tasks: Vec<_> = (0..4)
                .map(|task| {
                    let mine: Vec<usize> = plan.iter().filter(|(_, t)| *t == task).map(|(l, _)| *l).collect();
                    let writers = writers.clone();
                    tokio::spawn(async move {
                        for (n, log) in mine.into_iter().enumerate() {
                            let info = writers[log].append(record(&format!("{task}:{n}")), 0).await.unwrap();
                            writers[log].wait_committed(info.last_offset + 1).await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            for (log, writer) in writers.iter().enumerate() {
                let seen = values(writer.log());
                assert_eq!(seen.len(), plan.iter().filter(|(l, _)| *l == log).count());
                for task in 0..4 {
                    let order: Vec<usize> = seen
                        .iter()
                        .filter_map(|v| v.strip_prefix(&format!("{task}:")))
                        .map(|n| n.parse().unwrap())
                        .collect();
                    assert!(order.windows(2).all(|w| w[0] < w[1]), "task {task} on log {log}: {order:?}");
                }
            }
        });
    }
}
