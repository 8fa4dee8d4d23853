//! The `porter` binary. `porter serve` runs the broker; see `porter serve --help`.
//!
//! - [`cli`]: command-line flags and their `PORTER_*` environment variables.
//! - [`settings`]: the TOML file, merged with flags and env (flags > env > file > defaults).
//! - [`serve`]: start-up, listeners and the ordered graceful shutdown.

mod cli;
mod limits;
mod serve;
mod settings;

use clap::Parser;

/// mimalloc returns freed memory to the OS; glibc's per-thread arenas kept a few hundred MiB
/// resident after a burst of large produce requests, although the broker's own buffers are
/// bounded and had been released.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Serve(args) => {
            let settings = match settings::Settings::load(&args) {
                Ok(settings) => settings,
                Err(e) => {
                    eprintln!("porter: {e:#}");
                    return std::process::ExitCode::from(2);
                }
            };
            serve::init_logging(&settings);
            match serve::run(settings) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("porter stopped: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
