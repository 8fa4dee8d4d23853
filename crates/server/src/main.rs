//! The `porter` binary. `porter serve` runs the broker; see `porter serve --help`.
//!
//! - [`cli`]: command-line flags and their `PORTER_*` environment variables.
//! - [`origin`]: where each value came from (flag, variable, file key), for errors and warnings.
//! - [`settings`]: the TOML file, merged with flags and env (flags > env > file > defaults).
//! - [`serve`]: start-up, listeners and the ordered graceful shutdown.
//! - [`admin`]: `porter status`, `porter queues ...` and the other commands that manage a
//!   running broker through its HTTP API.

mod admin;
mod cli;
mod limits;
mod origin;
mod serve;
mod settings;
mod tls;
mod users;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

/// jemalloc, with its background thread returning freed pages to the OS. glibc's per-thread
/// arenas kept a few hundred MiB resident after a burst of large produce requests; mimalloc
/// purges freed memory only when an allocating thread gets round to it, so a broker that went
/// quiet after a burst kept it: 125 MiB 30 s after a Kafka produce burst, against 19 MiB idle.
/// jemalloc's background thread purges on a clock whatever the worker threads do: 12 MiB 30 s
/// after the same burst, 10.5 MiB idle (BENCHMARKS.md, issue 14).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options (its `malloc_conf` symbol, under tikv-jemalloc-sys's `_rjem_`
/// prefix): the background purging thread on; freed ("dirty") pages not reused go back to the
/// OS over about a second, and straight back rather than through `MADV_FREE` ("muzzy"), which
/// the kernel reclaims only under memory pressure, so RSS would not show it.
#[used]
#[export_name = "_rjem_malloc_conf"]
static JEMALLOC_CONF: &[u8; 60] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// One line on stderr, `porter: ...`. Unlike `eprintln!`, it doesn't panic when stderr is a closed
/// pipe: the exit status still says what happened.
fn say(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "porter: {message}");
}

/// Exit status for a configuration the broker can't start with (as clap uses for bad usage).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let command = cli::Cli::command();
    let argv: Vec<OsString> = std::env::args_os().collect();
    let matches = match command.clone().try_get_matches_from(&argv) {
        Ok(matches) => matches,
        Err(e) => match origin::env_value_error(&command, &e, &argv) {
            Some(message) => {
                say(&message);
                return ExitCode::from(EXIT_USAGE);
            }
            None => e.exit(),
        },
    };
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    use admin::Resource;
    match cli.command {
        cli::Command::Status(api) => admin::run(&api, Resource::Status),
        cli::Command::Queues { api, command } => admin::run(&api, Resource::Queues(command)),
        cli::Command::Exchanges { api, command } => admin::run(&api, Resource::Exchanges(command)),
        cli::Command::Bindings { api, command } => admin::run(&api, Resource::Bindings(command)),
        cli::Command::Topics { api, command } => admin::run(&api, Resource::Topics(command)),
        cli::Command::Groups { api, command } => admin::run(&api, Resource::Groups(command)),
        cli::Command::Connections { api, command } => {
            admin::run(&api, Resource::Connections(command))
        }
        cli::Command::Definitions { api, command } => {
            admin::run(&api, Resource::Definitions(command))
        }
        cli::Command::DeadLetters { api, command } => {
            admin::run(&api, Resource::DeadLetters(command))
        }
        cli::Command::Users { api, command } => admin::run(&api, Resource::Users(command)),
        cli::Command::Permissions { api, command } => {
            admin::run(&api, Resource::Permissions(command))
        }
        cli::Command::Produce { api, args } => admin::run(&api, Resource::Produce(args)),
        cli::Command::Consume { api, args } => admin::run(&api, Resource::Consume(args)),
        cli::Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics on a closed pipe (`... | head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli::Cli::command(), "porter", &mut script);
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(&script);
            ExitCode::SUCCESS
        }
        cli::Command::Serve(args) => {
            let origins = match (
                command.find_subcommand("serve"),
                matches.subcommand_matches("serve"),
            ) {
                (Some(serve), Some(matches)) => origin::ArgOrigins::from_matches(serve, matches),
                _ => origin::ArgOrigins::default(),
            };
            let settings = match settings::Settings::load(&args, &origins) {
                Ok(settings) => settings,
                Err(e) => {
                    say(&sentence(&e));
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            serve::init_logging(&settings);
            for warning in origin::unknown_env_vars(&command, std::env::vars_os()) {
                tracing::warn!("{warning}");
            }
            match serve::run(settings) {
                Ok(()) => ExitCode::SUCCESS,
                Err(serve::ServeError::Startup(e)) => {
                    say(&sentence(&e));
                    ExitCode::FAILURE
                }
                Err(serve::ServeError::Running(e)) => {
                    tracing::error!("porter stopped: {}", sentence(&e));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// An error and its causes as one line, `context: cause: cause`, leaving out a cause whose text
/// the line already ends with: many errors (an I/O error on a path, say) include their source
/// in their own text, and printing the chain would say the OS error twice.
fn sentence(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_text_is_said_once() {
        // CoreError::Io says "{path}: {source}" and also has the OS error as its source.
        let io = porter_core::CoreError::Io {
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(20),
        };
        let error = anyhow::Error::new(io).context("opening /x");
        assert_eq!(
            sentence(&error),
            "opening /x: /x: Not a directory (os error 20)"
        );
        let two = anyhow::anyhow!("disk full").context("closing the broker");
        assert_eq!(sentence(&two), "closing the broker: disk full");
    }
}
