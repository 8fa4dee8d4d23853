//! What a connection holds inside (channels and their consumers), asked of the connection
//! itself rather than mirrored in shared state: the channel state lives in the connection's
//! task, which answers a [`DescribeRequest`] between two bursts of frames. Nothing is copied on
//! the data path; a listing costs one round trip per connection, bounded by
//! [`DESCRIBE_TIMEOUT`] (a connection stuck behind a slow client is listed without its
//! channels rather than holding the listing up).

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// How long a listing waits for one connection's answer.
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_millis(500);

/// One channel (AMQP's; a protocol without channels has none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelInfo {
    pub number: u16,
    /// The virtual host of the channel's connection.
    pub vhost: String,
    /// `basic.qos` prefetch count for consumers created after it (0: unlimited).
    pub prefetch: u16,
    /// Deliveries not yet acknowledged on this channel.
    pub unacked: usize,
    /// In confirm mode.
    pub confirm: bool,
    /// In transaction mode.
    pub transactional: bool,
    pub consumers: Vec<ConsumerInfo>,
}

/// One consumer on a channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub tag: String,
    pub queue: String,
    /// Deliveries wait for an acknowledgement (not `no_ack`).
    pub ack_required: bool,
    pub prefetch: u16,
    pub exclusive: bool,
}

/// A request for a connection's channels; the connection sends them back on it.
pub type DescribeRequest = oneshot::Sender<Vec<ChannelInfo>>;

/// The connection's end: requests arrive here (at most one waits at a time).
pub type DescribeRequests = mpsc::Receiver<DescribeRequest>;

/// The registry's end.
pub(crate) type DescribeSender = mpsc::Sender<DescribeRequest>;

/// A request channel: the sender for the registry entry, the receiver for the connection.
pub(crate) fn channel() -> (DescribeSender, DescribeRequests) {
    mpsc::channel(1)
}

/// Asks through `sender`; `None` if the connection does not answer in time or is gone.
pub(crate) async fn ask(sender: DescribeSender) -> Option<Vec<ChannelInfo>> {
    let (reply, answer) = oneshot::channel();
    sender.try_send(reply).ok()?;
    tokio::time::timeout(DESCRIBE_TIMEOUT, answer)
        .await
        .ok()?
        .ok()
}
