//! MQTT topic names and filters, and their AMQP form. MQTT messages route through the
//! `amq.topic` exchange, as RabbitMQ's MQTT plugin does, so AMQP and STOMP clients see them:
//! `/` becomes `.` and `.` becomes `/` (the swap keeps the mapping one-to-one), `+` becomes `*`,
//! `#` stays `#`. So MQTT `sensors/room1/temp` is routing key `sensors.room1.temp`, and the
//! filter `sensors/+/temp` the binding key `sensors.*.temp`.

/// Why a topic name or filter is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("empty topic")]
    Empty,
    #[error("a topic name may not contain wildcards")]
    WildcardInName,
    #[error("a topic may not contain NUL")]
    Nul,
    #[error("'#' must be the last level of a filter, alone")]
    BadMultiLevel,
    #[error("'+' must occupy a whole level")]
    BadSingleLevel,
    #[error("{levels} levels is over the limit of {max}")]
    TooManyLevels { levels: usize, max: usize },
    #[error("malformed shared subscription (expected $share/<group>/<filter>)")]
    BadShare,
}

/// Checks a PUBLISH topic name (MQTT 5 §4.7.3): non-empty, no wildcards, no NUL, at most
/// `levels_max` levels.
pub fn check_name(name: &str, levels_max: usize) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    if name.contains('\0') {
        return Err(TopicError::Nul);
    }
    check_levels(name, levels_max)
}

fn check_levels(topic: &str, levels_max: usize) -> Result<(), TopicError> {
    let levels = topic.split('/').count();
    if levels > levels_max {
        return Err(TopicError::TooManyLevels {
            levels,
            max: levels_max,
        });
    }
    Ok(())
}

/// Checks a SUBSCRIBE topic filter (MQTT 5 §4.7.1).
pub fn check_filter(filter: &str, levels_max: usize) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    if filter.contains('\0') {
        return Err(TopicError::Nul);
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(TopicError::BadMultiLevel);
        }
        if level.contains('+') && *level != "+" {
            return Err(TopicError::BadSingleLevel);
        }
    }
    check_levels(filter, levels_max)
}

/// A subscription's filter with its share group, if it is `$share/<group>/<filter>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFilter<'a> {
    pub group: Option<&'a str>,
    pub filter: &'a str,
}

/// Splits off `$share/<group>/` (MQTT 5 §4.8.2; also accepted from 3.1.1 clients, as most
/// brokers do).
pub fn parse_filter(raw: &str) -> Result<ParsedFilter<'_>, TopicError> {
    let Some(rest) = raw.strip_prefix("$share/") else {
        return Ok(ParsedFilter {
            group: None,
            filter: raw,
        });
    };
    let (group, filter) = rest.split_once('/').ok_or(TopicError::BadShare)?;
    if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
        return Err(TopicError::BadShare);
    }
    Ok(ParsedFilter {
        group: Some(group),
        filter,
    })
}

/// The MQTT topic (name or filter) as an AMQP routing or binding key.
pub fn to_routing_key(topic: &str) -> String {
    topic
        .chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            '+' => '*',
            c => c,
        })
        .collect()
}

/// The AMQP routing key as an MQTT topic name (the inverse of [`to_routing_key`] for names).
pub fn from_routing_key(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '.' => '/',
            '/' => '.',
            c => c,
        })
        .collect()
}

/// Whether `filter` matches topic `name` by MQTT's rules, including §4.7.2: a filter starting
/// with a wildcard does not match a name starting with `$` (so `#` does not see `$SYS/...`).
pub fn matches(filter: &str, name: &str) -> bool {
    if name.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut names = name.split('/');
    let mut filters = filter.split('/');
    loop {
        match (filters.next(), names.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(n)) if f == n => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_and_filters() {
        assert!(check_name("a/b", 8).is_ok());
        assert_eq!(check_name("a/+", 8), Err(TopicError::WildcardInName));
        assert_eq!(check_name("", 8), Err(TopicError::Empty));
        assert!(check_name("a/b/c", 2).is_err());
        assert!(check_filter("a/+/#", 8).is_ok());
        assert!(check_filter("#", 8).is_ok());
        assert_eq!(check_filter("a/#/b", 8), Err(TopicError::BadMultiLevel));
        assert_eq!(check_filter("a/b#", 8), Err(TopicError::BadMultiLevel));
        assert_eq!(check_filter("a+/b", 8), Err(TopicError::BadSingleLevel));
    }

    #[test]
    fn matching_follows_mqtt() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("+/+", "/x"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(!matches("#", "$SYS/broker"));
        assert!(!matches("+/broker", "$SYS/broker"));
        assert!(matches("$SYS/#", "$SYS/broker/uptime"));
    }

    #[test]
    fn shares() {
        let p = parse_filter("$share/g1/a/+").unwrap();
        assert_eq!((p.group, p.filter), (Some("g1"), "a/+"));
        assert!(parse_filter("$share/g1").is_err());
        assert!(parse_filter("$share//a").is_err());
        assert_eq!(parse_filter("a/b").unwrap().group, None);
    }

    #[test]
    fn routing_keys_swap_separators() {
        assert_eq!(to_routing_key("a/b.c/+/#"), "a.b/c.*.#");
        assert_eq!(from_routing_key("a.b/c"), "a/b.c");
    }

    proptest! {
        #[test]
        fn routing_key_mapping_is_one_to_one(name in "[a-z./]{1,30}") {
            prop_assert_eq!(from_routing_key(&to_routing_key(&name)), name);
        }

        /// An MQTT filter matches a name exactly when its AMQP binding key matches the routing
        /// key in the core's topic exchange (names without `$`).
        #[test]
        fn matching_agrees_with_amq_topic(
            name in proptest::collection::vec("[ab]{1,2}", 1..5),
            filter in proptest::collection::vec(prop_oneof!["[ab]{1,2}", Just("+".to_string())], 0..4),
            hash in any::<bool>(),
        ) {
            let name = name.join("/");
            let mut filter = filter;
            if hash || filter.is_empty() { filter.push("#".to_string()); }
            let filter = filter.join("/");
            let pattern = porter_core::routing::topic::TopicPattern::compile(&to_routing_key(&filter));
            prop_assert_eq!(matches(&filter, &name), pattern.matches(&to_routing_key(&name)), "{} vs {}", filter, name);
        }
    }
}
