//! The cluster-wide dynamic broker default (AlterConfigs on the broker resource with the empty
//! name), which confluent-kafka's ConfigResource can't name: every broker's topic default, below
//! a broker's own dynamic value and a topic's override.

mod common;

use common::*;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

const BROKER: i8 = 4;
const TOPIC: i8 = 2;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;

fn set(client: &mut Client, broker: &str, key: &str, value: &str) -> i16 {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(StrBytes::from_string(broker.to_string()))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_string(key.to_string()))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(value.to_string())))]),
    ]);
    client.call(1, &request).responses[0].error_code
}

/// (value, source) of `key` on a resource.
fn described(client: &mut Client, kind: i8, name: &str, key: &str) -> Option<(String, i8)> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configuration_keys(None)]);
    let response = client.call(4, &request);
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "{response:?}");
    result
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .map(|c| (c.value.as_ref().unwrap().to_string(), c.config_source))
}

#[test]
fn the_cluster_default_is_below_the_brokers_own_value() {
    let server = Server::start(&[]);
    let mut client = server.connect();
    assert_eq!(client.create_topic("defaults", 1), 0);

    assert_eq!(set(&mut client, "", "log.segment.bytes", "1048576"), 0);
    assert_eq!(
        described(&mut client, BROKER, "", "log.segment.bytes"),
        Some(("1048576".into(), DYNAMIC_DEFAULT_BROKER_CONFIG))
    );
    assert_eq!(
        described(&mut client, TOPIC, "defaults", "segment.bytes"),
        Some(("1048576".into(), DYNAMIC_DEFAULT_BROKER_CONFIG))
    );
    assert_eq!(set(&mut client, "0", "log.segment.bytes", "2097152"), 0);
    assert_eq!(
        described(&mut client, TOPIC, "defaults", "segment.bytes"),
        Some(("2097152".into(), DYNAMIC_BROKER_CONFIG))
    );
    assert_eq!(
        described(&mut client, BROKER, "0", "log.segment.bytes"),
        Some(("2097152".into(), DYNAMIC_BROKER_CONFIG))
    );
    // Another broker id is not this broker.
    assert_eq!(set(&mut client, "7", "log.segment.bytes", "1048576"), 42);
}
