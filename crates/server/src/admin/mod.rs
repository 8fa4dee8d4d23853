//! `porter status`, `porter queues ...`, `porter topics ...` and the other management commands:
//! each is one or two calls to the broker's management API ([`client`]), printed as a table
//! ([`table`]) or, with `--output json`, as the API's JSON for scripts. Exit statuses mean
//! something ([`client::exit`]): 0 done, 1 failed, 2 bad usage, 3 refused as invalid, 4 not
//! found, 5 not allowed (login), 6 broker unreachable.

pub mod args;
pub mod client;
mod commands;
mod stream;
pub mod table;
mod users;

use std::process::ExitCode;

use serde_json::Value;

use args::{ApiArgs, Output};
use client::{Client, Failure};

pub use commands::Resource;

/// Runs one management command and prints its result; the exit status says how it went.
pub fn run(api: &ApiArgs, resource: Resource) -> ExitCode {
    let client = Client::new(api);
    match commands::run(&client, api, resource) {
        Ok(Printed::Json(value)) => {
            print(&serde_json::to_string_pretty(&value).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(Printed::Text(text)) => {
            print(text.trim_end());
            ExitCode::SUCCESS
        }
        Ok(Printed::Nothing) => ExitCode::SUCCESS,
        Err(Failure { message, status }) if message.is_empty() => ExitCode::from(status),
        Err(Failure { message, status }) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "porter: {message}");
            ExitCode::from(status)
        }
    }
}

/// What a command prints.
pub enum Printed {
    Json(Value),
    Text(String),
    /// The command printed as it went (`porter consume`).
    Nothing,
}

impl Printed {
    /// The API's JSON with `--output json`, else `text` made from it.
    fn choose(output: Output, value: Value, text: impl FnOnce(&Value) -> String) -> Printed {
        match output {
            Output::Json => Printed::Json(value),
            Output::Table => Printed::Text(text(&value)),
        }
    }
}

fn print(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    // A closed pipe (`porter queues list | head -1`) is not an error worth a panic.
    let _ = writeln!(out, "{text}");
}
