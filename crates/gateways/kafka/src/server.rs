//! Accepts Kafka clients. A connection slot is taken before `accept`, so past the limit new
//! clients wait in the kernel's backlog instead of costing memory here.

use std::sync::Arc;
use std::time::Duration;

use porter_core::Broker;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::Context;
use crate::config::KafkaConfig;
use crate::connection::{self, kib};

/// Serves until `shutdown` is cancelled, then waits for open connections to answer what they
/// have read (bounded by `drain_timeout`).
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: KafkaConfig,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) {
    assert!(
        config.request_memory_bytes_max >= config.request_bytes_max as u64,
        "request_memory_bytes_max must hold at least one maximal request"
    );
    let memory = Arc::new(Semaphore::new(kib(config.request_memory_bytes_max) as usize));
    let slots = Arc::new(Semaphore::new(config.connections_max));
    let ctx = Arc::new(Context { broker, config });
    let tracker = TaskTracker::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("semaphore never closed"),
            _ = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tracing::debug!(%peer, "kafka client connected");
        let (ctx, memory, shutdown) = (ctx.clone(), memory.clone(), shutdown.clone());
        tracker.spawn(async move {
            connection::run(stream, peer, ctx, memory, shutdown).await;
            drop(slot);
            tracing::debug!(%peer, "kafka client disconnected");
        });
    }
    tracker.close();
    if tokio::time::timeout(drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some Kafka connections were still busy at the shutdown deadline");
    }
}
