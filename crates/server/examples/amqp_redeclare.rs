//! lapin's part of the cross-client re-declare test (tests/node/amqp-redeclare.test.js): declares
//! the test's queue and exchange as a lapin user would, with lapin's integer encodings (a 64-bit
//! `long`, unsigned bytes and ints, where amqplib sent `short`/`byte` and pika `signedint`), then
//! re-declares the exchange with another alternate exchange, which must be refused.
//!
//!     cargo run -p porter --example amqp_redeclare -- AMQP_URL QUEUE EXCHANGE
//!
//! Prints one JSON object: `{"same":"ok","refused":[CODE,"TEXT"]}` (or `"same":"<error>"`).

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ErrorKind, ExchangeKind};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, queue, exchange] = args.as_slice() else {
        eprintln!("usage: amqp_redeclare AMQP_URL QUEUE EXCHANGE");
        std::process::exit(2);
    };
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect");

    let same = async {
        let channel = connection.create_channel().await?;
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                durable_exchange(),
                alternate("ae"),
            )
            .await?;
        let mut arguments = FieldTable::default();
        arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(5000));
        arguments.insert("x-max-length".into(), AMQPValue::ShortShortUInt(10));
        arguments.insert("x-max-length-bytes".into(), AMQPValue::LongUInt(1 << 20));
        arguments.insert("x-max-priority".into(), AMQPValue::LongLongInt(5));
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("dlx".into()),
        );
        arguments.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        // Not a queue argument RabbitMQ compares: may differ between clients.
        arguments.insert(
            "x-declared-by".into(),
            AMQPValue::LongString("lapin".into()),
        );
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            )
            .await?;
        Ok::<_, lapin::Error>(())
    }
    .await;
    let same = match same {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };

    let channel = connection.create_channel().await.expect("channel");
    let refused = channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            durable_exchange(),
            alternate("other"),
        )
        .await;
    let (code, text) = match refused {
        Ok(()) => (0, String::new()),
        Err(e) => match e.kind() {
            ErrorKind::ProtocolError(amqp) => (amqp.get_id(), amqp.get_message().to_string()),
            other => panic!("not a protocol error: {other:?}"),
        },
    };
    println!(
        "{{\"same\":{},\"refused\":[{code},{}]}}",
        json_string(&same),
        json_string(&text)
    );
    let _ = connection.close(200, "bye".into()).await;
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn alternate(name: &str) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString(name.into()),
    );
    arguments
}

/// A JSON string literal (the example has no JSON dependency).
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
