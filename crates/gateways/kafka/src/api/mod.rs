//! One module per Kafka API. [`handle`] routes a decoded request; each handler calls the core and
//! builds the response. Handlers never see sockets, so they are testable on their own.
//!
//! Ordering: Kafka clients pipeline requests and expect responses in order, and a produce must
//! be appended before the next request on the connection is looked at. So [`handle`] is split in
//! two stages: the `async fn` itself does the ordered part (a produce's append) and returns a
//! [`Pending`] future for the part that may overlap later requests (waiting for fsync, a fetch's
//! long poll). The connection runs pendings concurrently and writes their responses in order.

pub mod alter_configs;
pub mod api_versions;
pub mod config_resources;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod fetch;
pub mod group_admin;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod list_offsets;
pub mod membership;
pub mod metadata;
pub mod offsets;
pub mod produce;

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::frame::{RequestKind, ResponseKind};
use porter_core::Broker;

use crate::config::KafkaConfig;
use crate::frame::Request;

/// What every handler can reach.
pub struct Context {
    pub broker: Arc<Broker>,
    pub config: KafkaConfig,
}

/// The rest of a request's work; resolves to its response, or None when the client expects no
/// response (a produce with acks = 0).
pub type Pending = BoxFuture<'static, Option<ResponseKind>>;

/// The APIs and versions Porter serves; declared with the frame codec, in one table.
pub use crate::frame::supported_versions;

/// For each key, whether it occurs more than once: Kafka refuses every entry of a resource
/// (topic, partition, config resource) named twice in one request, as the answers would be
/// ambiguous.
pub fn duplicated<K: std::hash::Hash + Eq>(keys: impl IntoIterator<Item = K>) -> Vec<bool> {
    let keys: Vec<K> = keys.into_iter().collect();
    let mut counts: std::collections::HashMap<&K, usize> = std::collections::HashMap::new();
    for key in &keys {
        *counts.entry(key).or_default() += 1;
    }
    keys.iter().map(|k| counts[k] > 1).collect()
}

/// Handles one request: the ordered stage now, the rest as a [`Pending`].
pub async fn handle(ctx: &Arc<Context>, request: Request, peer: SocketAddr) -> Pending {
    let version = request.version;
    let ready = |response: ResponseKind| async move { Some(response) }.boxed();
    // Runs a handler as the concurrent stage.
    macro_rules! later {
        ($kind:ident, |$c:ident| $body:expr) => {{
            let $c = ctx.clone();
            async move { Some(ResponseKind::$kind($body)) }.boxed()
        }};
    }
    match request.body {
        RequestKind::ApiVersions(_) => ready(ResponseKind::ApiVersions(api_versions::handle())),
        RequestKind::Metadata(req) => {
            let ctx = ctx.clone();
            async move {
                Some(ResponseKind::Metadata(
                    metadata::handle(&ctx, req, version).await,
                ))
            }
            .boxed()
        }
        RequestKind::Produce(req) => produce::handle(ctx, req, version).await,
        RequestKind::Fetch(req) => {
            let ctx = ctx.clone();
            async move { Some(ResponseKind::Fetch(fetch::handle(&ctx, req, version).await)) }
                .boxed()
        }
        RequestKind::ListOffsets(req) => {
            let ctx = ctx.clone();
            async move {
                Some(ResponseKind::ListOffsets(
                    list_offsets::handle(&ctx, req).await,
                ))
            }
            .boxed()
        }
        RequestKind::CreateTopics(req) => {
            let ctx = ctx.clone();
            async move {
                Some(ResponseKind::CreateTopics(
                    create_topics::handle(&ctx, req, version).await,
                ))
            }
            .boxed()
        }
        RequestKind::DeleteTopics(req) => {
            let ctx = ctx.clone();
            async move {
                Some(ResponseKind::DeleteTopics(
                    delete_topics::handle(&ctx, req, version).await,
                ))
            }
            .boxed()
        }
        RequestKind::CreatePartitions(req) => {
            later!(CreatePartitions, |c| create_partitions::handle(&c, req)
                .await)
        }
        RequestKind::DeleteRecords(req) => {
            later!(DeleteRecords, |c| delete_records::handle(&c, req).await)
        }
        RequestKind::DescribeConfigs(req) => ready(ResponseKind::DescribeConfigs(
            describe_configs::handle(ctx, req),
        )),
        RequestKind::AlterConfigs(req) => {
            later!(AlterConfigs, |c| alter_configs::handle(&c, req).await)
        }
        RequestKind::IncrementalAlterConfigs(req) => {
            later!(IncrementalAlterConfigs, |c| {
                incremental_alter_configs::handle(&c, req).await
            })
        }
        RequestKind::DescribeCluster(req) => ready(ResponseKind::DescribeCluster(
            describe_cluster::handle(ctx, req, version),
        )),
        RequestKind::DescribeLogDirs(req) => ready(ResponseKind::DescribeLogDirs(
            describe_log_dirs::handle(ctx, req),
        )),
        RequestKind::FindCoordinator(req) => ready(ResponseKind::FindCoordinator(
            group_admin::find_coordinator(ctx, req, version),
        )),
        RequestKind::JoinGroup(req) => {
            let client_id = request
                .header
                .client_id
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default();
            later!(JoinGroup, |c| membership::join(
                &c, req, version, client_id, peer
            )
            .await)
        }
        RequestKind::SyncGroup(req) => {
            later!(SyncGroup, |c| membership::sync(&c, req, version).await)
        }
        RequestKind::Heartbeat(req) => {
            ready(ResponseKind::Heartbeat(membership::heartbeat(ctx, req)))
        }
        RequestKind::LeaveGroup(req) => {
            later!(LeaveGroup, |c| membership::leave(&c, req, version).await)
        }
        RequestKind::OffsetCommit(req) => {
            later!(OffsetCommit, |c| offsets::commit(&c, req, version).await)
        }
        RequestKind::OffsetFetch(req) => {
            ready(ResponseKind::OffsetFetch(offsets::fetch(ctx, req, version)))
        }
        RequestKind::OffsetDelete(req) => later!(OffsetDelete, |c| offsets::delete(&c, req).await),
        RequestKind::ListGroups(req) => ready(ResponseKind::ListGroups(group_admin::list(
            ctx, req, version,
        ))),
        RequestKind::DescribeGroups(req) => ready(ResponseKind::DescribeGroups(
            group_admin::describe(ctx, req, version),
        )),
        RequestKind::DescribeProducers(req) => ready(ResponseKind::DescribeProducers(
            describe_producers::handle(ctx, req),
        )),
        RequestKind::InitProducerId(req) => {
            later!(InitProducerId, |c| init_producer_id::handle(&c, req).await)
        }
        RequestKind::DeleteGroups(req) => {
            later!(DeleteGroups, |c| group_admin::delete(&c, req).await)
        }
    }
}
