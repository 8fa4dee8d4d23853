//! One module per Kafka API. [`handle`] routes a decoded request; each handler calls the core and
//! builds the response. Handlers never see sockets, so they are testable on their own.
//!
//! Ordering: Kafka clients pipeline requests and expect responses in order; Kafka itself reads
//! a connection's next request only once the previous one is answered, so every effect happens
//! in the order the client sent it. Porter keeps that order while overlapping the waits: the
//! `async fn` [`handle`] does the ordered part — everything that changes state (a produce's
//! append, an offset commit, a member joining, any admin change) — and returns a [`Pending`]
//! future for the part that only waits (fsync, a fetch's long poll, the other members of a
//! rebalance). The connection runs pendings concurrently and writes their responses in order.
//! A handler that changes state therefore never runs whole in [`Pending`]; read-only ones may.

pub mod acls;
pub mod admin_acls;
pub mod alter_configs;
pub mod api_versions;
pub mod client_quotas;
pub mod config_resources;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod fetch;
pub mod group_acls;
pub mod group_admin;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod list_offsets;
pub mod membership;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod quotas;
pub mod scram_credentials;

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};

use crate::frame::{RequestKind, ResponseKind};
use crate::throttle::Direction;
use porter_core::Broker;
use porter_gateway_kit::auth::Principal;

use crate::config::KafkaConfig;
use crate::frame::Request;

/// Who sent a request: the client's address and, on a SASL listener, the user it
/// authenticated as.
#[derive(Clone, Debug)]
pub struct Caller {
    pub peer: SocketAddr,
    pub principal: Option<Arc<Principal>>,
}

/// What every handler can reach.
pub struct Context {
    pub broker: Arc<Broker>,
    pub config: KafkaConfig,
    /// Byte rates of the clients with quotas.
    pub throttle: crate::throttle::Throttle,
}

impl Context {
    pub fn new(broker: Arc<Broker>, config: KafkaConfig) -> Context {
        Context {
            broker,
            config,
            throttle: Default::default(),
        }
    }
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

/// Handles one request: the ordered stage now, the rest as a [`Pending`]. The ordered stage's
/// time is what the caller's `request_percentage` quota counts (durability and long-poll waits
/// are in the rest, as Kafka's purgatory is outside its request threads' time).
pub async fn handle(ctx: &Arc<Context>, request: Request, caller: Caller) -> Pending {
    let started = std::time::Instant::now();
    let client_id = request
        .header
        .client_id
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let pending = dispatch(ctx, request, &caller, &client_id).await;
    quotas::request_time(ctx, &caller, &client_id, started.elapsed(), pending)
}

async fn dispatch(
    ctx: &Arc<Context>,
    request: Request,
    caller: &Caller,
    client_id: &str,
) -> Pending {
    let version = request.version;
    let ready = |response: ResponseKind| async move { Some(response) }.boxed();
    // Runs a read-only handler as the concurrent stage.
    macro_rules! later {
        ($kind:ident, |$c:ident| $body:expr) => {{
            let $c = ctx.clone();
            async move { Some(ResponseKind::$kind($body)) }.boxed()
        }};
    }
    // Runs a handler that changes state whole in the ordered stage.
    macro_rules! ordered {
        ($kind:ident, $body:expr) => {
            ready(ResponseKind::$kind($body))
        };
    }
    // Kafka ACLs on requests whose handlers do not check them themselves.
    let refused = group_acls::refusal(ctx, &request.body, caller)
        .or_else(|| admin_acls::refusal(ctx, &request.body, caller));
    if let Some(refused) = refused {
        return ready(refused);
    }
    match request.body {
        RequestKind::ApiVersions(_) => ready(ResponseKind::ApiVersions(api_versions::handle())),
        // Metadata may auto-create topics: ordered.
        RequestKind::Metadata(req) => {
            ordered!(Metadata, metadata::handle(ctx, req, version, caller).await)
        }
        RequestKind::Produce(req) => {
            let bytes = quotas::produce_bytes(&req);
            let hold = quotas::hold(ctx, caller, client_id, Direction::Produce, bytes);
            quotas::held(produce::handle(ctx, req, version, caller).await, hold)
        }
        RequestKind::Fetch(req) => {
            let for_fetch = caller.clone();
            let pending = later!(Fetch, |c| fetch::handle(&c, req, version, &for_fetch).await);
            quotas::fetch(ctx, caller, client_id, pending)
        }
        RequestKind::ListOffsets(req) => {
            later!(ListOffsets, |c| list_offsets::handle(&c, req).await)
        }
        RequestKind::CreateTopics(req) => {
            ordered!(
                CreateTopics,
                create_topics::handle(ctx, req, version, caller).await
            )
        }
        RequestKind::DeleteTopics(req) => {
            ordered!(
                DeleteTopics,
                delete_topics::handle(ctx, req, version, caller).await
            )
        }
        RequestKind::CreatePartitions(req) => {
            ordered!(CreatePartitions, create_partitions::handle(ctx, req).await)
        }
        RequestKind::DeleteRecords(req) => {
            ordered!(DeleteRecords, delete_records::handle(ctx, req).await)
        }
        RequestKind::DescribeConfigs(req) => ready(ResponseKind::DescribeConfigs(
            describe_configs::handle(ctx, req),
        )),
        RequestKind::AlterConfigs(req) => {
            ordered!(AlterConfigs, alter_configs::handle(ctx, req).await)
        }
        RequestKind::IncrementalAlterConfigs(req) => ordered!(
            IncrementalAlterConfigs,
            incremental_alter_configs::handle(ctx, req).await
        ),
        RequestKind::DescribeCluster(req) => ready(ResponseKind::DescribeCluster(
            describe_cluster::handle(ctx, req, version),
        )),
        RequestKind::DescribeLogDirs(req) => ready(ResponseKind::DescribeLogDirs(
            describe_log_dirs::handle(ctx, req),
        )),
        RequestKind::FindCoordinator(req) => ready(ResponseKind::FindCoordinator(
            group_admin::find_coordinator(ctx, req, version, caller),
        )),
        RequestKind::JoinGroup(req) => {
            membership::join(ctx, req, version, client_id.to_string(), caller.peer)
        }
        RequestKind::SyncGroup(req) => membership::sync(ctx, req, version),
        RequestKind::Heartbeat(req) => {
            ready(ResponseKind::Heartbeat(membership::heartbeat(ctx, req)))
        }
        RequestKind::LeaveGroup(req) => {
            ordered!(LeaveGroup, membership::leave(ctx, req, version).await)
        }
        RequestKind::OffsetCommit(req) => offsets::commit(ctx, req).await,
        RequestKind::OffsetFetch(req) => {
            ready(ResponseKind::OffsetFetch(offsets::fetch(ctx, req, version)))
        }
        RequestKind::OffsetDelete(req) => offsets::delete(ctx, req).await,
        RequestKind::ListGroups(req) => ready(ResponseKind::ListGroups(group_admin::list(
            ctx, req, version, caller,
        ))),
        RequestKind::DescribeGroups(req) => ready(ResponseKind::DescribeGroups(
            group_admin::describe(ctx, req, version, caller),
        )),
        RequestKind::DescribeTopicPartitions(req) => ready(ResponseKind::DescribeTopicPartitions(
            describe_topic_partitions::handle(ctx, req),
        )),
        RequestKind::DescribeProducers(req) => ready(ResponseKind::DescribeProducers(
            describe_producers::handle(ctx, req),
        )),
        RequestKind::InitProducerId(req) => {
            ordered!(InitProducerId, init_producer_id::handle(ctx, req).await)
        }
        RequestKind::DeleteGroups(req) => group_admin::delete(ctx, req).await,
        // The connection's SASL state answers these before they could get here.
        RequestKind::SaslHandshake(_) => ready(ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code()),
        )),
        RequestKind::SaslAuthenticate(_) => ready(ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code()),
        )),
        RequestKind::DescribeUserScramCredentials(req) => {
            ready(ResponseKind::DescribeUserScramCredentials(
                scram_credentials::describe(ctx, req, caller),
            ))
        }
        RequestKind::DescribeClientQuotas(req) => ready(ResponseKind::DescribeClientQuotas(
            client_quotas::describe(ctx, req, caller),
        )),
        RequestKind::AlterClientQuotas(req) => ordered!(
            AlterClientQuotas,
            client_quotas::alter(ctx, req, caller).await
        ),
        RequestKind::DescribeAcls(req) => {
            ready(ResponseKind::DescribeAcls(acls::describe(ctx, req, caller)))
        }
        RequestKind::CreateAcls(req) => {
            ordered!(CreateAcls, acls::create(ctx, req, caller).await)
        }
        RequestKind::DeleteAcls(req) => {
            ordered!(DeleteAcls, acls::delete(ctx, req, caller).await)
        }
        RequestKind::AlterUserScramCredentials(req) => ordered!(
            AlterUserScramCredentials,
            scram_credentials::alter(ctx, req, caller).await
        ),
    }
}
