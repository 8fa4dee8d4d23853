//! DescribeCluster (v0–v2): the one broker, which is also the controller. Porter has no ACLs, so
//! every cluster operation is authorized.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::Context;

/// KIP-919 endpoint types: brokers answer for `BROKER`; a request meant for a controller
/// endpoint reached the wrong kind of endpoint.
const ENDPOINT_BROKER: i8 = 1;
const ENDPOINT_CONTROLLER: i8 = 2;

/// Kafka's `AclOperation` codes of the operations a cluster resource supports: CREATE, ALTER,
/// DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
const CLUSTER_OPERATIONS: [u8; 7] = [5, 7, 8, 9, 10, 11, 12];

pub fn handle(
    ctx: &Arc<Context>,
    request: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default();
    if version >= 1 && request.endpoint_type != ENDPOINT_BROKER {
        let code = if request.endpoint_type == ENDPOINT_CONTROLLER {
            ResponseError::MismatchedEndpointType
        } else {
            ResponseError::UnsupportedEndpointType
        };
        return response
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "Porter serves only broker endpoints",
            )));
    }
    let node = BrokerId(ctx.config.node_id);
    let broker = DescribeClusterBroker::default()
        .with_broker_id(node)
        .with_host(StrBytes::from_string(ctx.config.advertised_host.clone()))
        .with_port(ctx.config.advertised_port as i32)
        .with_rack(None);
    let mut response = response
        .with_cluster_id(StrBytes::from_string(ctx.config.cluster_id.clone()))
        .with_controller_id(node)
        .with_brokers(vec![broker]);
    if request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = CLUSTER_OPERATIONS
            .iter()
            .fold(0i32, |bits, op| bits | (1 << op));
    }
    response
}
