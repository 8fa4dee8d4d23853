//! The management commands' flags: which broker to talk to (`--url`, `--user`, `--password`,
//! each with a `PORTER_*` variable) and how to print (`--output table|json`), then one
//! subcommand per resource.

use clap::{Args, Subcommand, ValueEnum};

/// Where the broker's management API is and who asks. These are global arguments: a
/// subcommand's own argument must not reuse their ids (`url`, `user`, `password`, `output`,
/// `vhost`), or its value would silently replace the login (give it another `id`).
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// The broker's HTTP listener.
    #[arg(
        long,
        env = "PORTER_URL",
        default_value = "http://localhost:15672",
        global = true
    )]
    pub url: String,
    /// A broker user (RabbitMQ's default user works from loopback).
    #[arg(long, env = "PORTER_USER", default_value = "guest", global = true)]
    pub user: String,
    /// Its password.
    #[arg(
        long,
        env = "PORTER_PASSWORD",
        default_value = "guest",
        hide_default_value = true,
        hide_env_values = true,
        global = true
    )]
    pub password: String,
    /// An API token (`porter users create-token`) to use instead of --user/--password.
    #[arg(long, env = "PORTER_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Human tables, or the API's JSON for scripts.
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// Virtual host of queues, exchanges and bindings.
    #[arg(long, default_value = "/", global = true)]
    pub vhost: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum QueuesCommand {
    /// Queues with their ready, unacknowledged and consumer counts.
    List,
    /// Declares a queue (durable unless --transient); succeeds if an equivalent one exists.
    Declare {
        name: String,
        /// Not durable: gone at a restart.
        #[arg(long)]
        transient: bool,
        /// Deleted when its last consumer goes.
        #[arg(long)]
        auto_delete: bool,
        /// A queue argument, KEY=VALUE (repeatable); numbers stay numbers: --arg x-max-length=1000.
        #[arg(long = "arg", value_name = "KEY=VALUE")]
        arguments: Vec<String>,
    },
    /// Removes every ready message.
    Purge { name: String },
    /// Deletes a queue and its messages.
    Delete {
        name: String,
        /// Only if it has no consumers.
        #[arg(long)]
        if_unused: bool,
        /// Only if it holds no messages.
        #[arg(long)]
        if_empty: bool,
    },
    /// Shows up to --count messages; they stay in the queue unless --consume.
    Get {
        name: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Take them out of the queue (acknowledge) instead of putting them back.
        #[arg(long)]
        consume: bool,
    },
    /// Publishes PAYLOAD to the queue through the default exchange, persistent.
    Publish { name: String, payload: String },
}

#[derive(Subcommand, Debug)]
pub enum ExchangesCommand {
    /// Exchanges with their types.
    List,
    /// Declares an exchange (durable unless --transient).
    Declare {
        name: String,
        /// direct, fanout, topic, headers, or x-delayed-message (with --arg x-delayed-type=...).
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        #[arg(long)]
        transient: bool,
        #[arg(long = "arg", value_name = "KEY=VALUE")]
        arguments: Vec<String>,
    },
    /// Deletes an exchange and its bindings.
    Delete {
        name: String,
        #[arg(long)]
        if_unused: bool,
    },
    /// Publishes PAYLOAD through the exchange with ROUTING_KEY, persistent.
    Publish {
        name: String,
        routing_key: String,
        payload: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum BindingsCommand {
    /// Bindings, the default exchange's implicit ones included.
    List,
    /// Binds queue QUEUE (or exchange, with --to-exchange) to EXCHANGE.
    Declare(BindingArgs),
    /// Removes the binding with that routing key.
    Delete(BindingArgs),
}

/// One binding, as `bindings declare` and `bindings delete` name it.
#[derive(Args, Debug)]
pub struct BindingArgs {
    pub exchange: String,
    pub queue: String,
    #[arg(long, default_value = "")]
    pub routing_key: String,
    /// QUEUE names an exchange (exchange-to-exchange binding).
    #[arg(long)]
    pub to_exchange: bool,
}

#[derive(Subcommand, Debug)]
pub enum TopicsCommand {
    /// Topics with partitions, messages held and size.
    List,
    /// A topic's partitions (offsets, sizes) and its config overrides.
    Describe { name: String },
    /// Creates a topic: porter topics create clicks --partitions 6 --config retention.ms=86400000
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// A Kafka topic config, KEY=VALUE (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
    /// Changes a topic's config overrides (others stay) or grows its partitions:
    /// porter topics alter clicks --config retention.ms=3600000 --delete-config cleanup.policy
    Alter {
        name: String,
        /// Sets a Kafka topic config, KEY=VALUE (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Removes an override, so the broker's default applies again (repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_config: Vec<String>,
        /// Grows the topic to this many partitions (never fewer).
        #[arg(long)]
        partitions: Option<u32>,
    },
    /// Deletes a topic and its records.
    Delete { name: String },
    /// Finds messages by key or message id (RocketMQ's query by key / id), newest time range
    /// first: porter topics lookup orders --key order-42
    Lookup {
        name: String,
        #[arg(
            long,
            conflicts_with = "message_id",
            required_unless_present = "message_id"
        )]
        key: Option<String>,
        #[arg(long)]
        message_id: Option<String>,
        /// From this time (RFC 3339 or ms since the epoch; default: the beginning).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
    },
    /// Deletes the records below OFFSET (-1: all) in one partition, as kafka-delete-records does.
    DeleteRecords {
        name: String,
        #[arg(long, default_value_t = 0)]
        partition: i32,
        #[arg(long, allow_negative_numbers = true)]
        before: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum DefinitionsCommand {
    /// Prints the definitions (RabbitMQ's JSON format plus topics), or writes them to FILE.
    Export { file: Option<std::path::PathBuf> },
    /// Loads definitions from FILE (a Porter or RabbitMQ export); `-` reads standard input.
    Import { file: std::path::PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// Consumer groups and their state.
    List,
    /// A group's members and lag per partition, as kafka-consumer-groups --describe shows it.
    Describe { id: String },
    /// Moves an inactive group's committed offsets on TOPIC (as kafka-consumer-groups
    /// --reset-offsets --execute).
    ResetOffsets {
        id: String,
        #[arg(long)]
        topic: String,
        /// The first offset each partition still holds.
        #[arg(long, conflicts_with_all = ["to_latest", "to_offset"])]
        to_earliest: bool,
        /// The high watermark: skip everything not yet read.
        #[arg(long, conflicts_with = "to_offset")]
        to_latest: bool,
        /// This offset on every partition (clamped to what each holds).
        #[arg(long, value_name = "OFFSET", conflicts_with = "to_datetime")]
        to_offset: Option<i64>,
        /// The first offset stored at or after this time: RFC 3339
        /// (2026-12-05T10:00:00Z) or ms since the epoch.
        #[arg(long, value_name = "TIME", conflicts_with_all = ["to_earliest", "to_latest"])]
        to_datetime: Option<String>,
    },
    /// Deletes a group without members, and its committed offsets.
    Delete { id: String },
}

#[derive(Subcommand, Debug)]
pub enum ConnectionsCommand {
    /// Open connections on every listener.
    List,
    /// AMQP channels: prefetch, unacknowledged deliveries, consumers, confirm mode.
    Channels,
    /// AMQP consumers: tag, queue, channel, acknowledgement mode and prefetch.
    Consumers,
    /// Closes a connection (NAME as `list` shows it: "peer -> local").
    Close { name: String },
}

/// `porter produce`: records to a topic (or, with --queue / --exchange, messages to a queue).
#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// The topic (or the queue with --queue, the exchange with --exchange).
    pub target: String,
    /// Values to send, one record each; without any, each line of standard input is one.
    pub values: Vec<String>,
    /// The record key (with --exchange: the routing key).
    #[arg(short = 'k', long)]
    pub key: Option<String>,
    /// Splits each input line into key and value at DELIM (kcat's -K): -K :
    #[arg(short = 'K', long, value_name = "DELIM", conflicts_with = "key")]
    pub key_delimiter: Option<String>,
    /// A header, NAME=VALUE (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// The partition (default: by the key's hash as Kafka clients choose, else round robin).
    #[arg(short = 'p', long)]
    pub partition: Option<i32>,
    /// TARGET is a queue: publish through the default exchange, persistent.
    #[arg(long, conflicts_with = "exchange")]
    pub queue: bool,
    /// TARGET is an exchange: publish with --key as the routing key, persistent.
    #[arg(long)]
    pub exchange: bool,
}

/// `porter consume`: records from a topic (or, with --queue, messages taken from a queue).
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// The topic (or the queue with --queue).
    pub target: String,
    /// Where to start in each partition: beginning, end, an offset, -N (N before the end), or
    /// s@MS (the first record stored at or after that time, as kcat writes it).
    #[arg(
        short = 'o',
        long,
        default_value = "beginning",
        allow_hyphen_values = true
    )]
    pub offset: String,
    /// Start at the first record stored at or after this time (RFC 3339 or ms since the epoch).
    #[arg(long, value_name = "TIME", conflicts_with = "offset")]
    pub from_time: Option<String>,
    /// One partition only.
    #[arg(short = 'p', long)]
    pub partition: Option<i32>,
    /// Stop after this many.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// The newest records with this key instead (up to --count, default 20).
    #[arg(long, conflicts_with_all = ["follow", "from_time"])]
    pub key: Option<String>,
    /// Keep waiting for new records at the end, as kcat does without -e.
    #[arg(long)]
    pub follow: bool,
    /// How to print each record, as kcat's -f: %s value, %k key, %t topic, %p partition,
    /// %o offset, %T timestamp (ms), %h headers, %S and %K lengths, \n \t.
    #[arg(short = 'f', long, default_value = "%s\\n")]
    pub format: String,
    /// TARGET is a queue: take messages out of it (acknowledged), until it is empty.
    #[arg(long, conflicts_with_all = ["follow", "key", "partition", "from_time"])]
    pub queue: bool,
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Users with their tags.
    List,
    /// Creates a user (or replaces its password and tags).
    Add {
        name: String,
        /// The user's password (the API's own login is --user/--password).
        #[arg(id = "new_password", value_name = "PASSWORD")]
        password: String,
        /// Comma-separated: administrator (everything), monitoring or management (read the
        /// API), or none for a client-only user.
        #[arg(long, default_value = "")]
        tags: String,
    },
    /// Changes a user's password, keeping its tags.
    SetPassword {
        name: String,
        #[arg(id = "new_password", value_name = "PASSWORD")]
        password: String,
    },
    /// Changes a user's tags, keeping its password.
    SetTags {
        name: String,
        #[arg(long)]
        tags: String,
    },
    /// Deletes a user and its permissions.
    Delete { name: String },
    /// Sets one of a user's limits (RabbitMQ's): max-connections or max-channels; a negative
    /// VALUE removes it.
    SetLimit {
        name: String,
        #[arg(value_name = "LIMIT")]
        limit: String,
        #[arg(value_name = "VALUE", allow_hyphen_values = true)]
        value: i64,
    },
    /// Gives a user an access secret, RocketMQ's SecretKey (its AccessKey is the user's name),
    /// and prints the pair: the only time the secret is shown. Without SECRET, a random one.
    SetAccessSecret {
        name: String,
        #[arg(value_name = "SECRET")]
        secret: Option<String>,
    },
    /// Removes a user's access secret: its signed RocketMQ requests are refused.
    ClearAccessSecret { name: String },
    /// Makes an API token for the calling user (--user/--password) and prints it: the only
    /// time it is shown. Use it as `--token` / PORTER_TOKEN, or `Authorization: Bearer`.
    CreateToken {
        #[arg(value_name = "TOKEN_NAME")]
        token_name: String,
        /// Lifetime in seconds; without it, the token works until deleted.
        #[arg(long)]
        expires_in_secs: Option<u64>,
    },
    /// The calling user's API tokens (names and dates).
    Tokens,
    /// Revokes one of the calling user's API tokens.
    DeleteToken {
        #[arg(value_name = "TOKEN_NAME")]
        token_name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PermissionsCommand {
    /// Every user's permissions in every virtual host.
    List,
    /// Sets USER's permissions in --vhost (regular expressions over names; default ".*").
    Set {
        #[arg(id = "grantee", value_name = "USER")]
        user: String,
        #[arg(long, default_value = ".*")]
        configure: String,
        #[arg(long, default_value = ".*")]
        write: String,
        #[arg(long, default_value = ".*")]
        read: String,
    },
    /// Clears USER's permissions in --vhost.
    Clear {
        #[arg(id = "grantee", value_name = "USER")]
        user: String,
    },
    /// Every topic permission (routing keys per topic exchange).
    ListTopic,
    /// Sets USER's topic permission on topic EXCHANGE in --vhost: the routing keys USER may
    /// publish with (--write) and bind or subscribe with (--read), regular expressions in which
    /// {username} and {vhost} stand for USER and the vhost.
    SetTopic {
        #[arg(id = "grantee", value_name = "USER")]
        user: String,
        exchange: String,
        #[arg(long, default_value = ".*")]
        write: String,
        #[arg(long, default_value = ".*")]
        read: String,
    },
    /// Clears USER's topic permissions in --vhost (on EXCHANGE only, if given).
    ClearTopic {
        #[arg(id = "grantee", value_name = "USER")]
        user: String,
        exchange: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeadLettersCommand {
    /// Consumer groups' dead-letter topics and how many messages each holds.
    List,
    /// Publishes a group's dead letters back to the topics they came from, then removes them.
    Redrive {
        group: String,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}
