//! `porter produce` and `porter consume`: kcat's everyday uses through the management API, so a
//! test record or a look at what a topic or queue holds needs no Kafka or AMQP client.
//!
//! - produce: the values given, or one record per line of standard input (split into key and
//!   value with `-K`), sent in requests of [`PRODUCE_BATCH`] records; to a queue or exchange, one
//!   publish per message.
//! - consume: each partition read from the start position a page at a time
//!   (`GET /api/topics/{t}/messages`), printed as read; `--follow` keeps polling at the end. A
//!   browse moves no group's offsets. From a queue, messages are taken (acknowledged) until it
//!   is empty or `--count` is reached.
//!
//! Records print with kcat's `-f` tokens, or as one JSON object per line with `--output json`.

use std::io::{BufRead, Write};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Map, Value};

use super::args::{ConsumeArgs, Output, ProduceArgs};
use super::client::{exit, segment, Client, Failure};
use super::Printed;

/// Records one produce request carries.
const PRODUCE_BATCH: usize = 500;
/// Records one browse request asks for (the API's page limit).
const PAGE: u64 = 500;
/// How often `--follow` asks again at the end of every partition.
const FOLLOW_POLL: Duration = Duration::from_millis(500);
/// Messages one queue get takes at a time.
const QUEUE_GET: u64 = 100;

pub fn produce(
    client: &Client,
    out: Output,
    vhost: &str,
    args: ProduceArgs,
) -> Result<Printed, Failure> {
    let headers = headers_of(&args.headers)?;
    let from_stdin = args.values.is_empty();
    let mut lines: Box<dyn Iterator<Item = std::io::Result<String>>> = if from_stdin {
        Box::new(std::io::stdin().lock().lines())
    } else {
        Box::new(args.values.clone().into_iter().map(Ok))
    };
    let mut sent = 0u64;
    let mut offsets = Vec::new();
    loop {
        let mut batch = Vec::new();
        for line in lines.by_ref() {
            let line = line.map_err(|e| Failure::new(exit::FAILED, format!("stdin: {e}")))?;
            let (key, value) = match &args.key_delimiter {
                Some(delimiter) => match line.split_once(delimiter.as_str()) {
                    Some((k, v)) => (Some(k.to_string()), v.to_string()),
                    None => (None, line),
                },
                None => (args.key.clone(), line),
            };
            batch.push((key, value));
            if batch.len() == PRODUCE_BATCH {
                break;
            }
        }
        if batch.is_empty() {
            break;
        }
        sent += batch.len() as u64;
        if args.queue || args.exchange {
            for (key, value) in batch {
                publish(client, vhost, &args, key, value, &headers)?;
            }
            continue;
        }
        let records: Vec<Value> = batch
            .into_iter()
            .map(|(key, value)| {
                json!({"key": key, "value": value, "headers": headers, "partition": args.partition})
            })
            .collect();
        let answer = client.post(
            &format!("/api/topics/{}/messages", segment(&args.target)),
            &json!({ "records": records }),
        )?;
        if let Some(placed) = answer["offsets"].as_array() {
            offsets.extend(placed.iter().cloned());
        }
    }
    let kind = if args.queue {
        "queue"
    } else if args.exchange {
        "exchange"
    } else {
        "topic"
    };
    let text = format!("produced {sent} to {kind} {}", args.target);
    Ok(match out {
        Output::Json => Printed::Json(json!({"produced": sent, "offsets": offsets})),
        Output::Table => Printed::Text(text),
    })
}

/// One message to a queue (through the default exchange) or an exchange.
fn publish(
    client: &Client,
    vhost: &str,
    args: &ProduceArgs,
    key: Option<String>,
    value: String,
    headers: &Map<String, Value>,
) -> Result<(), Failure> {
    let (exchange, routing_key) = if args.queue {
        ("amq.default".to_string(), args.target.clone())
    } else {
        (args.target.clone(), key.unwrap_or_default())
    };
    let answer = client.post(
        &format!("/api/exchanges/{vhost}/{}/publish", segment(&exchange)),
        &json!({"routing_key": routing_key, "payload": value, "payload_encoding": "string",
                "properties": {"delivery_mode": 2, "headers": headers}}),
    )?;
    if answer["routed"] == Value::Bool(false) {
        return Err(Failure::new(
            exit::NOT_FOUND,
            format!("no queue is bound for routing key {routing_key:?}"),
        ));
    }
    Ok(())
}

fn headers_of(pairs: &[String]) -> Result<Map<String, Value>, Failure> {
    pairs
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .ok_or_else(|| {
                    Failure::new(exit::BAD_REQUEST, format!("-H {pair}: expected NAME=VALUE"))
                })
        })
        .collect()
}

pub fn consume(
    client: &Client,
    out: Output,
    vhost: &str,
    args: ConsumeArgs,
) -> Result<Printed, Failure> {
    let format = Format::parse(&args.format);
    let mut printer = Printer {
        out,
        format,
        topic: args.target.clone(),
        printed: 0,
    };
    if args.queue {
        consume_queue(client, vhost, &args, &mut printer)?;
    } else if let Some(key) = &args.key {
        let limit = args.count.unwrap_or(20).clamp(1, PAGE);
        let page = client.get(&format!(
            "/api/topics/{}/messages?key={}&limit={limit}",
            segment(&args.target),
            segment(key)
        ))?;
        for message in items(&page["messages"]) {
            if args
                .partition
                .is_none_or(|p| message["partition"] == json!(p))
            {
                printer.print(message)?;
            }
        }
    } else {
        consume_topic(client, &args, &mut printer)?;
    }
    Ok(Printed::Nothing)
}

fn consume_topic(
    client: &Client,
    args: &ConsumeArgs,
    printer: &mut Printer,
) -> Result<(), Failure> {
    let topic = segment(&args.target);
    let start = match &args.from_time {
        Some(time) => format!("timestamp={}", epoch_ms(time)?),
        None => start_position(&args.offset)?,
    };
    let partitions: Vec<i64> = match args.partition {
        Some(p) => vec![i64::from(p)],
        None => {
            let described = client.get(&format!("/api/topics/{topic}"))?;
            (0..described["partitions"].as_i64().unwrap_or(0)).collect()
        }
    };
    // Each partition's position: the start position until its first page answers with an offset.
    let mut positions: Vec<String> = vec![start; partitions.len()];
    loop {
        let mut more = false;
        for (i, partition) in partitions.iter().enumerate() {
            let room = match args.count {
                Some(count) if printer.printed >= count => return Ok(()),
                Some(count) => (count - printer.printed).min(PAGE),
                None => PAGE,
            };
            let page = client.get(&format!(
                "/api/topics/{topic}/messages?partition={partition}&from={}&limit={room}",
                positions[i]
            ))?;
            for message in items(&page["messages"]) {
                printer.print(message)?;
            }
            if let Some(next) = page["next_offsets"][partition.to_string()].as_i64() {
                positions[i] = next.to_string();
            }
            more |= page["more"] == Value::Bool(true);
        }
        if !more {
            if !args.follow {
                return Ok(());
            }
            std::thread::sleep(FOLLOW_POLL);
        }
    }
}

fn consume_queue(
    client: &Client,
    vhost: &str,
    args: &ConsumeArgs,
    printer: &mut Printer,
) -> Result<(), Failure> {
    loop {
        let room = match args.count {
            Some(count) if printer.printed >= count => return Ok(()),
            Some(count) => (count - printer.printed).min(QUEUE_GET),
            None => QUEUE_GET,
        };
        let taken = client.post(
            &format!("/api/queues/{vhost}/{}/get", segment(&args.target)),
            &json!({"count": room, "ackmode": "ack_requeue_false", "encoding": "auto"}),
        )?;
        let taken = items(&taken);
        if taken.is_empty() {
            return Ok(());
        }
        for message in taken {
            // The topic record's shape, so one format prints both.
            let as_record = json!({
                "key": message["routing_key"],
                "key_encoding": "string",
                "value": message["payload"],
                "value_encoding": message["payload_encoding"],
                "headers": message["properties"]["headers"],
                "partition": -1,
                "offset": -1,
                "timestamp": message["properties"]["timestamp"],
            });
            printer.print(&as_record)?;
        }
    }
}

fn items(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// `-o` as the API's `from`: kcat's beginning/end/N/-N/s@MS, and the API's own words.
fn start_position(offset: &str) -> Result<String, Failure> {
    let offset = offset.trim();
    if let Some(ms) = offset.strip_prefix("s@") {
        return Ok(format!("timestamp={}", epoch_ms(ms)?));
    }
    let known = matches!(
        offset,
        "beginning" | "first" | "earliest" | "end" | "latest" | "next" | "last"
    );
    let number = offset.strip_prefix('-').unwrap_or(offset);
    if known || number.parse::<u64>().is_ok() {
        return Ok(offset.to_string());
    }
    Err(Failure::new(
        exit::BAD_REQUEST,
        format!("-o {offset}: use beginning, end, an offset, -N or s@<ms since the epoch>"),
    ))
}

/// A time as ms since the epoch: RFC 3339 (`2026-12-05T10:00:00Z`) or a number of ms.
pub fn epoch_ms(time: &str) -> Result<i64, Failure> {
    if let Ok(ms) = time.trim().parse::<i64>() {
        return Ok(ms);
    }
    let parsed =
        time::OffsetDateTime::parse(time.trim(), &time::format_description::well_known::Rfc3339)
            .map_err(|e| {
                Failure::new(
                    exit::BAD_REQUEST,
                    format!(
                        "{time}: not RFC 3339 (2026-12-05T10:00:00Z) nor ms since the epoch: {e}"
                    ),
                )
            })?;
    Ok((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Prints records as they come, counting them.
struct Printer {
    out: Output,
    format: Format,
    topic: String,
    printed: u64,
}

impl Printer {
    fn print(&mut self, message: &Value) -> Result<(), Failure> {
        let mut bytes = match self.out {
            Output::Json => {
                let mut line = message.to_string().into_bytes();
                line.push(b'\n');
                line
            }
            Output::Table => self.format.render(&self.topic, message),
        };
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`porter consume t | head -3`) ends the command quietly.
        if stdout
            .write_all(&bytes)
            .and_then(|_| stdout.flush())
            .is_err()
        {
            return Err(Failure::new(0, String::new()));
        }
        bytes.clear();
        self.printed += 1;
        Ok(())
    }
}

/// kcat's `-f` format, parsed once.
#[derive(Debug, PartialEq, Eq)]
struct Format(Vec<Piece>);

#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    /// A `%` token's letter.
    Field(char),
}

impl Format {
    fn parse(text: &str) -> Format {
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            let escaped = match c {
                '\\' => match chars.next() {
                    Some('n') => Some('\n'),
                    Some('t') => Some('\t'),
                    Some('r') => Some('\r'),
                    Some('\\') => Some('\\'),
                    Some(other) => {
                        literal.push(b'\\');
                        Some(other)
                    }
                    None => Some('\\'),
                },
                '%' => match chars.next() {
                    Some('%') => Some('%'),
                    Some(field) => {
                        if !literal.is_empty() {
                            pieces.push(Piece::Text(std::mem::take(&mut literal)));
                        }
                        pieces.push(Piece::Field(field));
                        None
                    }
                    None => Some('%'),
                },
                other => Some(other),
            };
            if let Some(c) = escaped {
                let mut buf = [0u8; 4];
                literal.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Format(pieces)
    }

    fn render(&self, topic: &str, message: &Value) -> Vec<u8> {
        let mut line = Vec::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => line.extend_from_slice(text),
                Piece::Field('s') => line.extend(bytes_of(message, "value")),
                Piece::Field('k') => line.extend(bytes_of(message, "key")),
                Piece::Field('S') => line.extend(len_of(message, "value").into_bytes()),
                Piece::Field('K') => line.extend(len_of(message, "key").into_bytes()),
                Piece::Field('t') => line.extend_from_slice(topic.as_bytes()),
                Piece::Field('p') => line.extend(message["partition"].to_string().into_bytes()),
                Piece::Field('o') => line.extend(message["offset"].to_string().into_bytes()),
                Piece::Field('T') => line.extend(message["timestamp"].to_string().into_bytes()),
                Piece::Field('h') => {
                    let headers: Vec<String> = message["headers"]
                        .as_object()
                        .map(|h| {
                            h.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                                .collect()
                        })
                        .unwrap_or_default();
                    line.extend(headers.join(",").into_bytes());
                }
                Piece::Field(other) => line.extend(format!("%{other}").into_bytes()),
            }
        }
        line
    }
}

/// A key's or value's bytes (base64 in the JSON when they were not UTF-8); nothing for null.
fn bytes_of(message: &Value, field: &str) -> Vec<u8> {
    let Some(text) = message[field].as_str() else {
        return Vec::new();
    };
    if message[format!("{field}_encoding")] == "base64" {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text) {
            return bytes;
        }
    }
    text.as_bytes().to_vec()
}

/// A key's or value's length in bytes, or -1 for null (as kcat prints it).
fn len_of(message: &Value, field: &str) -> String {
    if message[field].is_null() {
        return "-1".to_string();
    }
    bytes_of(message, field).len().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kcat_formats_render() {
        let message = json!({"partition": 2, "offset": 7, "timestamp": 1000, "key": "k1",
                             "key_encoding": "string", "value": "aGk=", "value_encoding": "base64",
                             "headers": {"a": "1"}});
        let format = Format::parse("%t/%p@%o %k=%s (%S) [%h] 100%%\\n");
        assert_eq!(
            String::from_utf8(format.render("orders", &message)).unwrap(),
            "orders/2@7 k1=hi (2) [a=1] 100%\n"
        );
        let null_key = json!({"key": null, "value": "v", "value_encoding": "string"});
        assert_eq!(Format::parse("%K|%k|%s").render("t", &null_key), b"-1||v");
    }

    #[test]
    fn start_positions_follow_kcat() {
        assert_eq!(start_position("beginning").unwrap(), "beginning");
        assert_eq!(start_position("-10").unwrap(), "-10");
        assert_eq!(start_position("42").unwrap(), "42");
        assert_eq!(
            start_position("s@1700000000000").unwrap(),
            "timestamp=1700000000000"
        );
        assert!(start_position("yesterday").is_err());
        assert_eq!(epoch_ms("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(epoch_ms("1500").unwrap(), 1500);
        assert!(epoch_ms("noon").is_err());
    }
}
