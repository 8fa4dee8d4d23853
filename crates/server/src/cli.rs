//! Command-line interface. Each `serve` flag has a `PORTER_*` environment variable; both override
//! the TOML file given with `--config`. Every protocol listener has a `--<protocol>-listen` flag
//! that takes `off`, so Porter can start beside a RabbitMQ or Kafka that holds the usual port.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::admin::args::{
    ApiArgs, BindingsCommand, ConnectionsCommand, ConsumeArgs, DeadLettersCommand,
    DefinitionsCommand, ExchangesCommand, GroupsCommand, PermissionsCommand, ProduceArgs,
    QueuesCommand, TopicsCommand, UsersCommand,
};

#[derive(Parser, Debug)]
#[command(
    name = "porter",
    version,
    about = "Porter: a message broker that speaks Kafka, AMQP 0-9-1 (RabbitMQ's protocol), \
        RocketMQ 5, MQTT 3.1.1/5.0 and STOMP 1.2, over one store.",
    long_about = "Porter: a message broker that speaks Kafka, AMQP 0-9-1 (RabbitMQ's protocol), \
        RocketMQ 5, MQTT 3.1.1/5.0 and STOMP 1.2, over one store: a message published with one \
        protocol can be read with any other. Kafka clients connect to port 9092, AMQP to 5672, \
        RocketMQ (gRPC) to 8081, MQTT to 1883, STOMP to 61613; WebSocket (MQTT at /mqtt, STOMP \
        at /ws), the chat example (/chat/) and the management web UI (/) are on the HTTP port 15672. \
        `porter serve --help` says how to change or turn off each listener. The other commands \
        (status, queues, exchanges, bindings, topics, groups, connections, definitions, produce, \
        consume, users, permissions, dead-letters) manage a running \
        broker through its HTTP API (--url, default http://localhost:15672); they exit 0 when \
        done, 1 on failure, 2 on bad usage, 3 when the broker refuses the request as invalid, \
        4 when something named does not exist, 5 when the login is refused and 6 when the broker \
        cannot be reached."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the broker. With no options: data in ./porter-data, Kafka on 0.0.0.0:9092, AMQP 0-9-1 on
    /// 0.0.0.0:5672, RocketMQ 5 (gRPC) on 0.0.0.0:8081, MQTT on 0.0.0.0:1883, STOMP on
    /// 0.0.0.0:61613, HTTP (WebSocket, chat page) on 0.0.0.0:15672. Beside a running broker that
    /// holds one of those ports, give another port or `off` (e.g. --amqp-listen off).
    Serve(ServeArgs),
    /// What a running broker is doing: version, uptime, listeners, connections, queues, topics.
    #[command(
        after_help = "Examples:\n  porter status\n  porter status --url http://broker:15672 --user admin --password secret\n  porter status --output json"
    )]
    Status(ApiArgs),
    /// Queues (AMQP, and MQTT sessions): list, declare, purge, delete, peek, publish.
    #[command(
        after_help = "Examples:\n  porter queues list\n  porter queues declare orders --arg x-max-length=10000\n  porter queues publish orders 'hello'\n  porter queues get orders --count 5\n  porter queues purge orders\n  porter queues delete orders --if-empty"
    )]
    Queues {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: QueuesCommand,
    },
    /// Exchanges: list, declare, delete, publish through one.
    #[command(
        after_help = "Examples:\n  porter exchanges list\n  porter exchanges declare shop --type topic\n  porter exchanges publish shop order.created '{\"id\": 1}'"
    )]
    Exchanges {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: ExchangesCommand,
    },
    /// Bindings between exchanges and queues: list, declare, delete.
    #[command(
        after_help = "Examples:\n  porter bindings declare shop orders --routing-key 'order.*'\n  porter bindings list\n  porter bindings delete shop orders --routing-key 'order.*'"
    )]
    Bindings {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: BindingsCommand,
    },
    /// Topics (Kafka, RocketMQ): list, describe partitions and offsets, create, alter, delete.
    #[command(
        after_help = "Examples:\n  porter topics list\n  porter topics create clicks --partitions 6 --config retention.ms=86400000\n  porter topics describe clicks\n  porter topics alter clicks --config retention.ms=3600000 --partitions 12\n  porter topics delete-records clicks --partition 0 --before 1000\n  porter topics lookup orders --key order-42\n  porter topics delete clicks"
    )]
    Topics {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Consumer groups: list, describe with lag per partition, reset offsets, delete.
    #[command(
        after_help = "Examples:\n  porter groups list\n  porter groups describe reports\n  porter groups reset-offsets reports --topic clicks --to-earliest\n  porter groups reset-offsets reports --topic clicks --to-datetime 2026-12-05T08:00:00Z\n  porter groups delete reports"
    )]
    Groups {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: GroupsCommand,
    },
    /// Client connections on every listener: list, close one; AMQP channels and consumers.
    #[command(
        after_help = "Examples:\n  porter connections list\n  porter connections channels\n  porter connections consumers\n  porter connections close '127.0.0.1:53412 -> 127.0.0.1:5672'"
    )]
    Connections {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: ConnectionsCommand,
    },
    /// Definitions (vhosts, exchanges, queues, bindings, topics, users with their permissions and
    /// limits): export to JSON, import.
    #[command(
        after_help = "Examples:\n  porter definitions export backup.json\n  porter definitions import backup.json\n  porter definitions import rabbitmq-export.json"
    )]
    Definitions {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: DefinitionsCommand,
    },
    /// The broker's users: their tags, passwords, limits, RocketMQ access secrets and API tokens.
    #[command(
        after_help = "Examples:\n  porter users list\n  porter users add ops 's3cret' --tags administrator\n  porter users add billing-service 'p4ss'\n  porter users set-password billing-service 'n3w-p4ss'\n  porter users set-tags ops --tags monitoring\n  porter users set-limit billing-service max-connections 20\n  porter users set-access-secret billing-service\n  porter users create-token ci --expires-in-secs 86400\n  porter users delete ops"
    )]
    Users {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Users' permissions per virtual host (configure, write, read regular expressions).
    #[command(
        after_help = "Examples:\n  porter permissions list\n  porter permissions set billing-service\n  porter permissions set reporter --configure '' --write '' --read '.*'\n  porter permissions clear reporter --vhost staging\n  porter permissions set-topic chat amq.topic --write '^chat\\.{username}\\.' --read '^chat\\.'"
    )]
    Permissions {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: PermissionsCommand,
    },
    /// Consumer groups' dead letters (RocketMQ's %DLQ%): list, re-drive to where they came from.
    #[command(
        after_help = "Examples:\n  porter dead-letters list\n  porter dead-letters redrive settle\n  porter dead-letters redrive settle --limit 10"
    )]
    DeadLetters {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: DeadLettersCommand,
    },
    /// Sends records to a topic (or messages to a queue or exchange), from arguments or one per
    /// line of standard input.
    #[command(
        after_help = "Examples:\n  porter produce clicks 'hello'\n  porter produce clicks --key user-7 -H source=cli '{\"page\": \"/\"}'\n  seq 1 100 | porter produce clicks\n  printf 'user-1:a\\nuser-2:b\\n' | porter produce clicks -K :\n  porter produce orders --queue 'order 1'\n  porter produce shop --exchange --key order.created '{\"id\": 1}'"
    )]
    Produce {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        args: ProduceArgs,
    },
    /// Prints records of a topic from a position (or takes messages from a queue), as kcat -C.
    #[command(
        after_help = "Examples:\n  porter consume clicks\n  porter consume clicks -o -10 -f '%p/%o %k: %s\\n'\n  porter consume clicks --from-time 2026-12-05T08:00:00Z --count 100\n  porter consume clicks --key user-7\n  porter consume clicks -o end --follow\n  porter consume orders --queue --count 5\n  porter consume clicks --output json"
    )]
    Consume {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        args: ConsumeArgs,
    },
    /// Prints a shell completion script: porter completions bash > /etc/bash_completion.d/porter
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML configuration file (see docs/configuration.md). Flags and env vars override it.
    #[arg(long, env = "PORTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory for logs and metadata. [default: ./porter-data]
    #[arg(long, env = "PORTER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address the Kafka listener binds, or `off` for no Kafka listener. Port 0 lets the OS
    /// choose (the start-up line says which). [default: 0.0.0.0:9092]
    #[arg(long, env = "PORTER_KAFKA_LISTEN", value_name = "ADDR")]
    pub kafka_listen: Option<String>,

    /// Host:port given to Kafka clients in Metadata; what they connect to after bootstrap.
    /// [default: the bound listen address, with 0.0.0.0 replaced by localhost]
    #[arg(long, env = "PORTER_KAFKA_ADVERTISED", value_name = "HOST:PORT")]
    pub kafka_advertised: Option<String>,

    /// SASL mechanisms Kafka clients must authenticate with, comma-separated (PLAIN,
    /// SCRAM-SHA-256, SCRAM-SHA-512), or `none`: Kafka's SASL_PLAINTEXT listener with
    /// `sasl.enabled.mechanisms`. Users are the broker's (`porter users`). [default: none]
    #[arg(long, env = "PORTER_KAFKA_SASL_MECHANISMS", value_name = "LIST")]
    pub kafka_sasl_mechanisms: Option<String>,

    /// Address the AMQP 0-9-1 listener binds, or `off` for no AMQP listener. Port 0 lets the OS
    /// choose (the start-up line says which). [default: 0.0.0.0:5672]
    #[arg(long, env = "PORTER_AMQP_LISTEN", value_name = "ADDR")]
    pub amqp_listen: Option<String>,

    /// Address the RocketMQ 5 gRPC listener binds (what RocketMQ clients name as their
    /// endpoint), or `off`. Port 0 lets the OS choose. [default: 0.0.0.0:8081]
    #[arg(long, env = "PORTER_ROCKETMQ_LISTEN", value_name = "ADDR")]
    pub rocketmq_listen: Option<String>,

    /// Address the MQTT 3.1.1/5.0 listener binds, or `off`. Port 0 lets the OS choose.
    /// [default: 0.0.0.0:1883]
    #[arg(long, env = "PORTER_MQTT_LISTEN", value_name = "ADDR")]
    pub mqtt_listen: Option<String>,
    /// Address the STOMP listener binds, or `off`. Port 0 lets the OS choose.
    /// [default: 0.0.0.0:61613]
    #[arg(long, env = "PORTER_STOMP_LISTEN", value_name = "ADDR")]
    pub stomp_listen: Option<String>,

    /// Address the HTTP listener binds (WebSocket endpoints /mqtt and /ws, the chat page at
    /// /chat/, /healthz), or `off`. Port 0 lets the OS choose. [default: 0.0.0.0:15672]
    #[arg(long, env = "PORTER_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<String>,

    /// Largest Kafka request accepted, in bytes. [default: 104857600]
    #[arg(long, env = "PORTER_KAFKA_REQUEST_BYTES_MAX", value_name = "BYTES")]
    pub kafka_request_bytes_max: Option<u32>,

    /// Default durability of topics: group (ack after fdatasync, shared by concurrent writers),
    /// interval (fsync every flush-interval-ms, ack on write), never (page cache only).
    /// [default: group]
    #[arg(long, env = "PORTER_FLUSH", value_name = "MODE")]
    pub flush: Option<String>,

    /// fsync period for flush = interval, in milliseconds. [default: 1000]
    #[arg(long, env = "PORTER_FLUSH_INTERVAL_MS", value_name = "MS")]
    pub flush_interval_ms: Option<u64>,

    /// Segment size at which a partition's log rolls, in bytes. [default: 1073741824]
    #[arg(long, env = "PORTER_SEGMENT_BYTES", value_name = "BYTES")]
    pub segment_bytes: Option<u64>,

    /// Default retention by age in milliseconds; -1 keeps data forever. [default: 604800000]
    #[arg(
        long,
        env = "PORTER_RETENTION_MS",
        value_name = "MS",
        allow_hyphen_values = true
    )]
    pub retention_ms: Option<i64>,

    /// Default retention by size per partition in bytes; -1 for no limit. [default: -1]
    #[arg(
        long,
        env = "PORTER_RETENTION_BYTES",
        value_name = "BYTES",
        allow_hyphen_values = true
    )]
    pub retention_bytes: Option<i64>,

    /// Largest record batch accepted, in bytes (Kafka's message.max.bytes). [default: 1048588]
    #[arg(long, env = "PORTER_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub max_message_bytes: Option<u32>,

    /// Create topics on first produce or metadata request. [default: true]
    #[arg(long, env = "PORTER_AUTO_CREATE_TOPICS", value_name = "BOOL")]
    pub auto_create_topics: Option<bool>,

    /// Partitions of auto-created topics. [default: 1]
    #[arg(long, env = "PORTER_DEFAULT_PARTITIONS", value_name = "N")]
    pub default_partitions: Option<u32>,

    /// Log format: human or json. [default: human]
    #[arg(long, env = "PORTER_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Log filter, e.g. info or porter_storage=debug,info. [default: info]
    #[arg(long, env = "PORTER_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks (unique short flags, valid defaults) over every command,
    /// which otherwise fire only when that command is run.
    #[test]
    fn every_command_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
