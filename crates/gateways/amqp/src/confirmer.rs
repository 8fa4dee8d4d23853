//! [`Confirmer`]: a channel in confirm mode. Each publish gets the next sequence number and is
//! handed to the channel's confirmer task, which answers them in order once each is durable (or
//! refused), coalescing runs of acks with `multiple`, and sends the results to the session's
//! confirm feed. Channel state, below the commands that push to it.

use std::sync::atomic::Ordering;
use std::task::Poll;

use porter_core::vhost::DurableWait;
use tokio::sync::mpsc;

use crate::session::{ConfirmResult, Session};

/// What a confirmer answers for one publish.
pub enum Pending {
    /// Refused (overflow `reject-publish`, a failed store): `basic.nack`.
    Nack,
    /// `basic.ack` once this resolves, `basic.nack` if it fails.
    Wait(DurableWait),
}

/// A channel in confirm mode: the next sequence number and the feed of its confirmer task.
pub struct Confirmer {
    next_seq: u64,
    feed: mpsc::UnboundedSender<(u64, Pending)>,
}

impl Confirmer {
    /// Starts the channel's confirmer task; it ends when the `Confirmer` is dropped and it has
    /// answered what it holds.
    pub fn start(channel: u16, session: &Session) -> Confirmer {
        let (feed, mut items) = mpsc::unbounded_channel::<(u64, Pending)>();
        let results = session.confirms.clone();
        let pending = session.confirms_pending.clone();
        tokio::spawn(async move {
            // The end of a run of acks not yet sent: (first, last).
            let mut run: Option<(u64, u64)> = None;
            let flush = |run: &mut Option<(u64, u64)>| {
                if let Some((first, last)) = run.take() {
                    let _ = results.send(ConfirmResult {
                        channel,
                        delivery_tag: last,
                        multiple: last > first,
                        ack: true,
                    });
                }
            };
            while let Some((seq, item)) = items.recv().await {
                let ack = match item {
                    Pending::Nack => false,
                    Pending::Wait(wait) => {
                        let mut durable = Box::pin(wait.wait());
                        let durable = match futures::poll!(durable.as_mut()) {
                            Poll::Ready(durable) => durable,
                            // Not durable yet: what is decided goes out now rather than
                            // after this one's commit step.
                            Poll::Pending => {
                                flush(&mut run);
                                durable.await
                            }
                        };
                        match durable {
                            Ok(()) => true,
                            Err(e) => {
                                tracing::warn!(error = %e, "publish not made durable: nack");
                                false
                            }
                        }
                    }
                };
                pending.fetch_sub(1, Ordering::Relaxed);
                if ack {
                    run = Some(run.map_or((seq, seq), |(first, _)| (first, seq)));
                } else {
                    flush(&mut run);
                    let _ = results.send(ConfirmResult {
                        channel,
                        delivery_tag: seq,
                        multiple: false,
                        ack: false,
                    });
                }
                if items.is_empty() {
                    flush(&mut run);
                }
            }
            flush(&mut run);
        });
        Confirmer { next_seq: 1, feed }
    }

    /// The next publish's outcome, counted in the session's pending confirms until answered.
    pub fn push(&mut self, session: &Session, item: Pending) {
        let seq = self.next_seq;
        self.next_seq += 1;
        session.confirms_pending.fetch_add(1, Ordering::Relaxed);
        if self.feed.send((seq, item)).is_err() {
            session.confirms_pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The channel closed: the task ends once it has answered what it holds.
    pub fn close(self) {}
}
