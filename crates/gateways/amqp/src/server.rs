//! Accepts AMQP clients. A connection slot is taken before `accept`, so past
//! `connections_max` new clients wait in the kernel's backlog instead of costing memory here.

use std::sync::Arc;
use std::time::Duration;

use porter_core::Broker;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AmqpConfig;
use crate::connection::{self, Context};

/// Serves until `shutdown` is cancelled, then tells open connections (320 CONNECTION_FORCED)
/// and waits for them, at most `drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: AmqpConfig,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) {
    let slots = Arc::new(Semaphore::new(config.connections_max));
    let ctx = Arc::new(Context {
        broker,
        config: Arc::new(config),
        replies: Default::default(),
    });
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
                tracing::warn!(error = %e, "amqp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
        tracker.spawn(async move {
            connection::run(stream, peer, ctx, shutdown).await;
            drop(slot);
        });
    }
    tracker.close();
    if tokio::time::timeout(drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("amqp connections still open after the drain timeout");
    }
}
