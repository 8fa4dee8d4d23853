//! Each management command: the API calls it makes and how its answer is printed.

use serde_json::{json, Map, Value};

use super::args::{
    ApiArgs, BindingArgs, BindingsCommand, ConnectionsCommand, ConsumeArgs, DeadLettersCommand,
    DefinitionsCommand, ExchangesCommand, GroupsCommand, PermissionsCommand, ProduceArgs,
    QueuesCommand, TopicsCommand, UsersCommand,
};
use super::client::{exit, segment, Client, Failure};
use super::table::{cell, of_items, render};
use super::Printed;

/// The resource a management command works on.
#[derive(Debug)]
pub enum Resource {
    Status,
    Queues(QueuesCommand),
    Exchanges(ExchangesCommand),
    Bindings(BindingsCommand),
    Topics(TopicsCommand),
    Groups(GroupsCommand),
    Connections(ConnectionsCommand),
    Definitions(DefinitionsCommand),
    Produce(ProduceArgs),
    Consume(ConsumeArgs),
    Users(UsersCommand),
    Permissions(PermissionsCommand),
    DeadLetters(DeadLettersCommand),
}

pub fn run(client: &Client, api: &ApiArgs, resource: Resource) -> Result<Printed, Failure> {
    let vhost = segment(&api.vhost);
    let out = api.output;
    match resource {
        Resource::Status => {
            let overview = client.get("/api/overview")?;
            Ok(Printed::choose(out, overview, status_text))
        }
        Resource::Queues(command) => queues(client, out, &vhost, command),
        Resource::Exchanges(command) => exchanges(client, out, &vhost, command),
        Resource::Bindings(command) => bindings(client, out, &vhost, command),
        Resource::Topics(TopicsCommand::List) => {
            let topics = client.get("/api/topics")?;
            Ok(Printed::choose(out, topics, |t| {
                of_items(
                    &[
                        ("TOPIC", "name"),
                        ("PARTITIONS", "partitions"),
                        ("MESSAGES", "messages"),
                        ("BYTES", "size_bytes"),
                        ("TYPE", "message_type"),
                    ],
                    t,
                )
            }))
        }
        Resource::Topics(TopicsCommand::Describe { name }) => {
            let topic = client.get(&format!("/api/topics/{}", segment(&name)))?;
            Ok(Printed::choose(out, topic, topic_text))
        }
        Resource::Topics(TopicsCommand::Create {
            name,
            partitions,
            config,
        }) => {
            let body = json!({"partitions": partitions, "config": key_values("--config", &config, false)?});
            client.put(&format!("/api/topics/{}", segment(&name)), &body)?;
            Ok(done(out, format!("topic {name} created")))
        }
        Resource::Topics(TopicsCommand::Alter {
            name,
            config,
            delete_config,
            partitions,
        }) => {
            let mut changes = key_values("--config", &config, false)?;
            for key in delete_config {
                changes[key] = Value::Null;
            }
            let mut body = json!({ "config": changes });
            if let Some(partitions) = partitions {
                body["partitions"] = json!(partitions);
            }
            let topic = client.patch(&format!("/api/topics/{}", segment(&name)), &body)?;
            Ok(Printed::choose(out, topic, topic_text))
        }
        Resource::Topics(TopicsCommand::DeleteRecords {
            name,
            partition,
            before,
        }) => {
            let answer = client.post(
                &format!("/api/topics/{}/delete-records", segment(&name)),
                &json!({"partitions": [{"partition": partition, "offset": before}]}),
            )?;
            Ok(Printed::choose(out, answer, |a| {
                of_items(
                    &[
                        ("PARTITION", "partition"),
                        ("LOW-WATERMARK", "low_watermark"),
                    ],
                    &a["partitions"],
                )
            }))
        }
        Resource::DeadLetters(DeadLettersCommand::List) => {
            let listed = client.get("/api/dead-letters")?;
            Ok(Printed::choose(out, listed, |d| {
                of_items(
                    &[
                        ("GROUP", "group"),
                        ("TOPIC", "topic"),
                        ("MESSAGES", "messages"),
                    ],
                    d,
                )
            }))
        }
        Resource::DeadLetters(DeadLettersCommand::Redrive { group, limit }) => {
            let answer = client.post(
                &format!("/api/dead-letters/{}/redrive", segment(&group)),
                &json!({ "limit": limit }),
            )?;
            Ok(Printed::choose(out, answer, |a| {
                let mut text = format!("re-drove {} dead letters of {group}", a["moved"]);
                if let Some(stuck) = a["stuck"].as_object() {
                    text.push_str(&format!(
                        "\nstopped at offset {}: {}",
                        stuck["offset"],
                        stuck["reason"].as_str().unwrap_or_default()
                    ));
                }
                text
            }))
        }
        Resource::Topics(TopicsCommand::Lookup {
            name,
            key,
            message_id,
            since,
        }) => {
            let by = match (key, message_id) {
                (Some(key), _) => format!("key={}", segment(&key)),
                (_, Some(id)) => format!("message_id={}", segment(&id)),
                _ => unreachable!("clap requires one"),
            };
            let begin = match since {
                Some(time) => super::stream::epoch_ms(&time)?,
                None => 0,
            };
            let found = client.get(&format!(
                "/api/topics/{}/lookup?{by}&begin={begin}",
                segment(&name)
            ))?;
            Ok(Printed::choose(out, found, |f| {
                of_items(
                    &[
                        ("MESSAGE-ID", "message_id"),
                        ("PARTITION", "partition"),
                        ("OFFSET", "offset"),
                        ("TAG", "tag"),
                        ("BODY", "body"),
                    ],
                    &f["messages"],
                )
            }))
        }
        Resource::Users(command) => super::users::users(client, out, command),
        Resource::Permissions(command) => super::users::permissions(client, out, &vhost, command),
        Resource::Produce(args) => super::stream::produce(client, out, &vhost, args),
        Resource::Consume(args) => super::stream::consume(client, out, &vhost, args),
        Resource::Topics(TopicsCommand::Delete { name }) => {
            client.delete(&format!("/api/topics/{}", segment(&name)))?;
            Ok(done(out, format!("topic {name} deleted")))
        }
        Resource::Definitions(DefinitionsCommand::Export { file }) => {
            let definitions = client.get("/api/definitions")?;
            match file {
                None => Ok(Printed::Json(definitions)),
                Some(path) => {
                    let text = serde_json::to_string_pretty(&definitions).unwrap_or_default();
                    std::fs::write(&path, text + "\n").map_err(|e| {
                        Failure::new(exit::FAILED, format!("writing {}: {e}", path.display()))
                    })?;
                    Ok(done(
                        out,
                        format!("definitions written to {}", path.display()),
                    ))
                }
            }
        }
        Resource::Definitions(DefinitionsCommand::Import { file }) => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&file)
            }
            .map_err(|e| Failure::new(exit::FAILED, format!("reading {}: {e}", file.display())))?;
            let definitions: Value = serde_json::from_str(&text).map_err(|e| {
                Failure::new(
                    exit::BAD_REQUEST,
                    format!("{}: not JSON: {e}", file.display()),
                )
            })?;
            let answer = client.post("/api/definitions", &definitions)?;
            Ok(Printed::choose(out, answer, |a| {
                let mut text = format!("imported {}", a["imported"]);
                for skipped in a["skipped"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    text.push_str(&format!(
                        "\nskipped {}",
                        skipped.as_str().unwrap_or_default()
                    ));
                }
                text
            }))
        }
        Resource::Groups(GroupsCommand::List) => {
            let groups = client.get("/api/groups")?;
            Ok(Printed::choose(out, groups, |g| {
                of_items(
                    &[
                        ("GROUP", "group_id"),
                        ("STATE", "state"),
                        ("PROTOCOL", "protocol_type"),
                    ],
                    g,
                )
            }))
        }
        Resource::Groups(GroupsCommand::ResetOffsets {
            id,
            topic,
            to_earliest,
            to_latest,
            to_offset,
            to_datetime,
        }) => {
            let body = match (to_earliest, to_latest, to_offset, to_datetime) {
                (true, _, _, _) => json!({"topic": topic, "to": "earliest"}),
                (_, true, _, _) => json!({"topic": topic, "to": "latest"}),
                (_, _, Some(offset), _) => {
                    json!({"topic": topic, "to": "offset", "offset": offset})
                }
                (_, _, _, Some(time)) => json!({"topic": topic, "to": "timestamp",
                                                "timestamp": super::stream::epoch_ms(&time)?}),
                _ => return Err(Failure::new(
                    exit::BAD_REQUEST,
                    "say where: --to-earliest, --to-latest, --to-offset N or --to-datetime TIME",
                )),
            };
            let moved = client.post(
                &format!("/api/groups/{}/reset-offsets", segment(&id)),
                &body,
            )?;
            Ok(Printed::choose(out, moved, |m| {
                of_items(
                    &[
                        ("TOPIC", "topic"),
                        ("PARTITION", "partition"),
                        ("NEW-OFFSET", "offset"),
                    ],
                    m,
                )
            }))
        }
        Resource::Groups(GroupsCommand::Delete { id }) => {
            client.delete(&format!("/api/groups/{}", segment(&id)))?;
            Ok(done(out, format!("group {id} deleted")))
        }
        Resource::Groups(GroupsCommand::Describe { id }) => {
            let group = client.get(&format!("/api/groups/{}", segment(&id)))?;
            Ok(Printed::choose(out, group, group_text))
        }
        Resource::Connections(ConnectionsCommand::List) => {
            let connections = client.get("/api/connections")?;
            Ok(Printed::choose(out, connections, |c| {
                of_items(
                    &[
                        ("NAME", "name"),
                        ("PROTOCOL", "protocol"),
                        ("USER", "user"),
                        ("RECEIVED", "recv_oct"),
                        ("SENT", "send_oct"),
                    ],
                    c,
                )
            }))
        }
        Resource::Connections(ConnectionsCommand::Channels) => {
            let channels = client.get("/api/channels")?;
            Ok(Printed::choose(out, channels, |c| {
                of_items(
                    &[
                        ("CHANNEL", "name"),
                        ("USER", "user"),
                        ("CONSUMERS", "consumer_count"),
                        ("UNACKED", "messages_unacknowledged"),
                        ("PREFETCH", "prefetch_count"),
                        ("CONFIRM", "confirm"),
                    ],
                    c,
                )
            }))
        }
        Resource::Connections(ConnectionsCommand::Consumers) => {
            let consumers = client.get("/api/consumers")?;
            Ok(Printed::choose(out, consumers, |c| {
                let flat: Vec<Value> = c
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|c| {
                        json!({"tag": c["consumer_tag"], "queue": c["queue"]["name"],
                               "channel": c["channel_details"]["name"],
                               "ack": c["ack_required"], "prefetch": c["prefetch_count"]})
                    })
                    .collect();
                of_items(
                    &[
                        ("TAG", "tag"),
                        ("QUEUE", "queue"),
                        ("CHANNEL", "channel"),
                        ("ACK", "ack"),
                        ("PREFETCH", "prefetch"),
                    ],
                    &Value::Array(flat),
                )
            }))
        }
        Resource::Connections(ConnectionsCommand::Close { name }) => {
            client.delete(&format!("/api/connections/{}", segment(&name)))?;
            Ok(done(out, format!("connection {name} closed")))
        }
    }
}

/// A one-line confirmation (or `{"ok": true}` in JSON).
pub(super) fn done(out: super::args::Output, text: String) -> Printed {
    Printed::choose(out, json!({"ok": true, "message": text}), |_| text)
}

fn status_text(overview: &Value) -> String {
    let mut text = format!(
        "{} {} on {}, up {} s\n",
        cell(overview, "product_name"),
        cell(overview, "product_version"),
        cell(overview, "node"),
        overview["uptime_ms"].as_u64().unwrap_or(0) / 1000,
    );
    text.push_str(&format!(
        "connections {}  queues {}  exchanges {}  topics {}  consumers {}\n",
        cell(overview, "object_totals.connections"),
        cell(overview, "object_totals.queues"),
        cell(overview, "object_totals.exchanges"),
        cell(overview, "object_totals.topics"),
        cell(overview, "object_totals.consumers"),
    ));
    text.push_str(&format!(
        "messages in queues {} (ready {}, unacknowledged {})\n\n",
        cell(overview, "queue_totals.messages"),
        cell(overview, "queue_totals.messages_ready"),
        cell(overview, "queue_totals.messages_unacknowledged"),
    ));
    text.push_str(&of_items(
        &[
            ("LISTENER", "protocol"),
            ("ADDRESS", "ip_address"),
            ("PORT", "port"),
        ],
        &overview["listeners"],
    ));
    text
}

fn topic_text(topic: &Value) -> String {
    let mut text = format!(
        "topic {} ({} partitions, {} messages, {} bytes)\n\n",
        cell(topic, "name"),
        cell(topic, "partitions"),
        cell(topic, "messages"),
        cell(topic, "size_bytes"),
    );
    text.push_str(&of_items(
        &[
            ("PARTITION", "partition"),
            ("LOG-START", "log_start_offset"),
            ("HIGH-WATERMARK", "high_watermark"),
            ("LOG-END", "log_end_offset"),
            ("BYTES", "size_bytes"),
        ],
        &topic["partition_details"],
    ));
    if let Some(config) = topic["config"].as_object().filter(|c| !c.is_empty()) {
        text.push('\n');
        let rows: Vec<Vec<String>> = config
            .iter()
            .map(|(k, v)| vec![k.clone(), v.as_str().unwrap_or_default().to_string()])
            .collect();
        text.push_str(&render(&["CONFIG", "VALUE"], &rows));
    }
    text
}

/// As `kafka-consumer-groups --describe` prints a group.
fn group_text(group: &Value) -> String {
    let id = cell(group, "group_id");
    let rows: Vec<Vec<String>> = group["offsets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|o| {
            vec![
                id.clone(),
                cell(o, "topic"),
                cell(o, "partition"),
                cell(o, "committed_offset"),
                cell(o, "log_end_offset"),
                cell(o, "lag"),
            ]
        })
        .collect();
    let mut text = format!(
        "group {id}: {}, {} members, total lag {}\n\n",
        cell(group, "state"),
        group["members"].as_array().map_or(0, Vec::len),
        cell(group, "lag"),
    );
    text.push_str(&render(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
        ],
        &rows,
    ));
    text
}

/// `KEY=VALUE` pairs given with `flag` as a JSON object. With `typed`, a value that parses as
/// a JSON number or boolean keeps that type (queue and exchange arguments); otherwise every value
/// is a string (Kafka's topic configs).
fn key_values(flag: &str, pairs: &[String], typed: bool) -> Result<Value, Failure> {
    let mut map = Map::new();
    for pair in pairs {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            Failure::new(
                exit::BAD_REQUEST,
                format!("{flag} {pair}: expected KEY=VALUE"),
            )
        })?;
        let value = serde_json::from_str::<Value>(value)
            .ok()
            .filter(|v| typed && (v.is_number() || v.is_boolean()))
            .unwrap_or_else(|| Value::String(value.to_string()));
        map.insert(key.to_string(), value);
    }
    Ok(Value::Object(map))
}

fn queues(
    client: &Client,
    out: super::args::Output,
    vhost: &str,
    command: QueuesCommand,
) -> Result<Printed, Failure> {
    match command {
        QueuesCommand::List => {
            let queues = client.get(&format!("/api/queues/{vhost}"))?;
            Ok(Printed::choose(out, queues, |q| {
                of_items(
                    &[
                        ("NAME", "name"),
                        ("MESSAGES", "messages"),
                        ("READY", "messages_ready"),
                        ("UNACKED", "messages_unacknowledged"),
                        ("CONSUMERS", "consumers"),
                        ("DURABLE", "durable"),
                    ],
                    q,
                )
            }))
        }
        QueuesCommand::Declare {
            name,
            transient,
            auto_delete,
            arguments: pairs,
        } => {
            let body = json!({"durable": !transient, "auto_delete": auto_delete,
                              "arguments": key_values("--arg", &pairs, true)?});
            client.put(&format!("/api/queues/{vhost}/{}", segment(&name)), &body)?;
            Ok(done(out, format!("queue {name} declared")))
        }
        QueuesCommand::Purge { name } => {
            client.delete(&format!("/api/queues/{vhost}/{}/contents", segment(&name)))?;
            Ok(done(out, format!("queue {name} purged")))
        }
        QueuesCommand::Delete {
            name,
            if_unused,
            if_empty,
        } => {
            client.delete(&format!(
                "/api/queues/{vhost}/{}?if-unused={if_unused}&if-empty={if_empty}",
                segment(&name)
            ))?;
            Ok(done(out, format!("queue {name} deleted")))
        }
        QueuesCommand::Get {
            name,
            count,
            consume,
        } => {
            let ackmode = if consume {
                "ack_requeue_false"
            } else {
                "ack_requeue_true"
            };
            let messages = client.post(
                &format!("/api/queues/{vhost}/{}/get", segment(&name)),
                &json!({"count": count, "ackmode": ackmode, "encoding": "auto"}),
            )?;
            Ok(Printed::choose(out, messages, |m| {
                of_items(
                    &[
                        ("ROUTING-KEY", "routing_key"),
                        ("EXCHANGE", "exchange"),
                        ("REDELIVERED", "redelivered"),
                        ("BYTES", "payload_bytes"),
                        ("PAYLOAD", "payload"),
                    ],
                    m,
                )
            }))
        }
        QueuesCommand::Publish { name, payload } => {
            publish(client, out, vhost, "amq.default", &name, payload)
        }
    }
}

fn publish(
    client: &Client,
    out: super::args::Output,
    vhost: &str,
    exchange: &str,
    routing_key: &str,
    payload: String,
) -> Result<Printed, Failure> {
    let answer = client.post(
        &format!("/api/exchanges/{vhost}/{}/publish", segment(exchange)),
        &json!({"routing_key": routing_key, "payload": payload, "payload_encoding": "string",
                "properties": {"delivery_mode": 2}}),
    )?;
    if answer["routed"] == Value::Bool(false) {
        return Err(Failure::new(
            exit::NOT_FOUND,
            format!("published, but no queue is bound for routing key {routing_key:?}"),
        ));
    }
    Ok(done(out, "published".to_string()))
}

fn exchanges(
    client: &Client,
    out: super::args::Output,
    vhost: &str,
    command: ExchangesCommand,
) -> Result<Printed, Failure> {
    match command {
        ExchangesCommand::List => {
            let exchanges = client.get(&format!("/api/exchanges/{vhost}"))?;
            Ok(Printed::choose(out, exchanges, |e| {
                of_items(
                    &[
                        ("NAME", "name"),
                        ("TYPE", "type"),
                        ("DURABLE", "durable"),
                        ("INTERNAL", "internal"),
                    ],
                    e,
                )
            }))
        }
        ExchangesCommand::Declare {
            name,
            kind,
            transient,
            arguments: pairs,
        } => {
            let body = json!({"type": kind, "durable": !transient, "arguments": key_values("--arg", &pairs, true)?});
            client.put(&format!("/api/exchanges/{vhost}/{}", segment(&name)), &body)?;
            Ok(done(out, format!("exchange {name} declared")))
        }
        ExchangesCommand::Delete { name, if_unused } => {
            client.delete(&format!(
                "/api/exchanges/{vhost}/{}?if-unused={if_unused}",
                segment(&name)
            ))?;
            Ok(done(out, format!("exchange {name} deleted")))
        }
        ExchangesCommand::Publish {
            name,
            routing_key,
            payload,
        } => publish(client, out, vhost, &name, &routing_key, payload),
    }
}

fn bindings(
    client: &Client,
    out: super::args::Output,
    vhost: &str,
    command: BindingsCommand,
) -> Result<Printed, Failure> {
    let path = |exchange: &str, destination: &str, to_exchange: bool| {
        let kind = if to_exchange { "e" } else { "q" };
        format!(
            "/api/bindings/{vhost}/e/{}/{kind}/{}",
            segment(exchange),
            segment(destination)
        )
    };
    match command {
        BindingsCommand::List => {
            let bindings = client.get(&format!("/api/bindings/{vhost}"))?;
            Ok(Printed::choose(out, bindings, |b| {
                of_items(
                    &[
                        ("SOURCE", "source"),
                        ("DESTINATION", "destination"),
                        ("TYPE", "destination_type"),
                        ("ROUTING-KEY", "routing_key"),
                    ],
                    b,
                )
            }))
        }
        BindingsCommand::Declare(BindingArgs {
            exchange,
            queue,
            routing_key,
            to_exchange,
        }) => {
            client.post(
                &path(&exchange, &queue, to_exchange),
                &json!({"routing_key": routing_key}),
            )?;
            Ok(done(
                out,
                format!("{exchange} bound to {queue} with {routing_key:?}"),
            ))
        }
        BindingsCommand::Delete(BindingArgs {
            exchange,
            queue,
            routing_key,
            to_exchange,
        }) => {
            let key = if routing_key.is_empty() {
                "~".to_string()
            } else {
                segment(&routing_key)
            };
            client.delete(&format!("{}/{key}", path(&exchange, &queue, to_exchange)))?;
            Ok(done(
                out,
                format!("binding {exchange} -> {queue} ({routing_key:?}) deleted"),
            ))
        }
    }
}
