//! Where each setting's value came from, so that an error or a warning names what the user wrote:
//! the flag (`--flush`), the environment variable (`PORTER_FLUSH`), or the file and key
//! (`c.toml: [storage] flush`). A newcomer who exported a variable months ago and forgot it must
//! not be told about a flag they never typed.
//!
//! Also here, for the same reason: clap's errors for a bad value taken from the environment
//! (clap names the flag) are reworded to name the variable, and `PORTER_*` variables that set
//! nothing (a typo such as `PORTER_DEFAULT_PARTITION`) are reported instead of silently ignored.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// `PORTER_*` variables that are not broker settings but are read by the test suite, the
/// benchmarks and the scripts. Setting one must not earn a warning from the broker.
pub const NOT_SETTINGS: &[&str] = &[
    // The management commands' (`porter status`, `porter queues`, ...), not the server's.
    "PORTER_URL",
    "PORTER_USER",
    "PORTER_PASSWORD",
    "PORTER_BIN",
    "PORTER_BENCH_BIN",
    "PORTER_BENCH_DIR",
    "PORTER_CRASH_CYCLES",
    "PORTER_CRASH_SEED",
    "PORTER_AMQP_CRASH_CYCLES",
    "PORTER_SKIP_E2E",
    "PORTER_TEST_VERBOSE",
    "PORTER_PID",
    "PORTER_URL",
    "PORTER_PYTHON",
];

/// The prefix of every setting's environment variable.
const ENV_PREFIX: &str = "PORTER_";

/// Where one value came from, displayed as the user would recognise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag, e.g. `--flush`.
    Flag(String),
    /// An environment variable, e.g. `PORTER_FLUSH`.
    Env(String),
    /// A key of the TOML file, e.g. `[storage] flush` of `c.toml`.
    File { path: PathBuf, key: &'static str },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => f.write_str(flag),
            Origin::Env(var) => f.write_str(var),
            Origin::File { path, key } => write!(f, "{}: {key}", path.display()),
        }
    }
}

/// A value that is present but unusable, said as `ORIGIN: PROBLEM`.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {problem}")]
pub struct InvalidSetting {
    pub origin: Origin,
    pub problem: String,
}

/// For each `serve` argument given, whether it came from its flag or its environment variable.
#[derive(Debug, Default, Clone)]
pub struct ArgOrigins {
    by_id: HashMap<String, Origin>,
}

impl ArgOrigins {
    /// Reads the sources clap recorded while parsing `matches` (the `serve` subcommand's).
    pub fn from_matches(command: &Command, matches: &ArgMatches) -> ArgOrigins {
        let mut by_id = HashMap::new();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            let origin = match matches.value_source(id) {
                Some(ValueSource::EnvVariable) => arg
                    .get_env()
                    .map(|var| Origin::Env(var.to_string_lossy().into_owned())),
                Some(ValueSource::CommandLine) => {
                    arg.get_long().map(|long| Origin::Flag(format!("--{long}")))
                }
                _ => None,
            };
            if let Some(origin) = origin {
                by_id.insert(id.to_string(), origin);
            }
        }
        ArgOrigins { by_id }
    }

    /// Where the argument `id` (the field name in [`crate::cli::ServeArgs`]) came from; a flag
    /// when unknown (arguments built in code, as the unit tests do).
    pub fn of(&self, id: &str) -> Origin {
        self.by_id
            .get(id)
            .cloned()
            .unwrap_or_else(|| Origin::Flag(format!("--{}", id.replace('_', "-"))))
    }
}

/// Rewords clap's error for a bad value that came from an environment variable: clap names the
/// flag (`'--default-partitions <N>'`), which the user never typed. `None` when the error is about
/// something else or the flag was on the command line.
pub fn env_value_error(
    command: &Command,
    error: &clap::Error,
    argv: &[OsString],
) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(shown)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let serve = command.find_subcommand("serve")?;
    let arg = serve.get_arguments().find(|arg| {
        arg.get_long().is_some_and(|long| {
            let flag = format!("--{long}");
            shown == &flag || shown.starts_with(&format!("{flag} "))
        })
    })?;
    let flag = format!("--{}", arg.get_long()?);
    let on_command_line = argv.iter().any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.starts_with(&format!("{flag}="))
    });
    let var = arg.get_env()?.to_string_lossy().into_owned();
    if on_command_line || std::env::var_os(&var).is_none() {
        return None;
    }
    // clap's plain text: "error: invalid value 'abc' for '--flag <N>': reason", possibly a
    // "[possible values: ...]" line, then a blank line and "For more information, ...".
    let text = error.render().to_string();
    let said: Vec<&str> = text
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let said = said.join(" ");
    let said = said.strip_prefix("error: ").unwrap_or(&said);
    Some(said.replace(
        &format!("'{shown}'"),
        &format!("{var} (the environment variable for {flag})"),
    ))
}

/// One warning per `PORTER_*` variable in `vars` that is neither a setting of `command`'s `serve`
/// nor in [`NOT_SETTINGS`], naming the closest setting when one is near (a likely typo).
pub fn unknown_env_vars(
    command: &Command,
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> Vec<String> {
    let settings: Vec<String> = command
        .find_subcommand("serve")
        .into_iter()
        .flat_map(Command::get_arguments)
        .filter_map(|arg| arg.get_env())
        .map(|var| var.to_string_lossy().into_owned())
        .collect();
    let mut warnings = Vec::new();
    let mut names: Vec<String> = vars
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .filter(|name| name.starts_with(ENV_PREFIX))
        .filter(|name| !settings.contains(name) && !NOT_SETTINGS.contains(&name.as_str()))
        .collect();
    names.sort();
    for name in names {
        let hint = closest(&name, &settings)
            .map(|near| format!(" (did you mean {near}?)"))
            .unwrap_or_default();
        warnings.push(format!(
            "environment variable {name} is not a Porter setting and is ignored{hint}"
        ));
    }
    warnings
}

/// The known name within a small edit distance of `name`: a typo, not a different word.
fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    /// Edits (insert, delete, substitute) a typo is assumed to make at most.
    const TYPO_EDITS_MAX: usize = 3;
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= TYPO_EDITS_MAX)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance over bytes (variable names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn a_typo_names_the_setting_it_resembles() {
        let command = crate::cli::Cli::command();
        let vars = [
            ("PORTER_DEFAULT_PARTITION", "3"),
            ("PORTER_FLUSH", "never"),
            ("PORTER_BIN", "/x"),
            ("PORTER_SOMETHING_ELSE_ENTIRELY", "1"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let warnings = unknown_env_vars(&command, vars.into_iter());
        assert_eq!(
            warnings,
            [
                "environment variable PORTER_DEFAULT_PARTITION is not a Porter setting and is \
                 ignored (did you mean PORTER_DEFAULT_PARTITIONS?)",
                "environment variable PORTER_SOMETHING_ELSE_ENTIRELY is not a Porter setting and \
                 is ignored",
            ]
        );
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("PORTER_LOG", "PORTER_LOG"), 0);
        assert_eq!(edit_distance("PORTER_LOGG", "PORTER_LOG"), 1);
        assert_eq!(edit_distance("PORTER_FLUHS", "PORTER_FLUSH"), 2);
    }

    #[test]
    fn origins_read_as_written() {
        let file = Origin::File {
            path: "c.toml".into(),
            key: "[storage] flush",
        };
        assert_eq!(file.to_string(), "c.toml: [storage] flush");
        assert_eq!(
            ArgOrigins::default().of("default_partitions"),
            Origin::Flag("--default-partitions".into())
        );
    }
}
