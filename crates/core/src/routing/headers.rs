//! Headers-exchange matching: a binding's arguments are a pattern over the message's headers,
//! combined by the binding's `x-match` argument. Semantics follow RabbitMQ's
//! `rabbit_exchange_type_headers`:
//!
//! - `x-match` is `all` (the default when absent), `any`, `all-with-x` or `any-with-x`; any other
//!   value, or a non-string, is refused at bind time (406).
//! - `x-match` itself never takes part in matching. Other binding keys starting with `x-` are
//!   ignored too, unless the mode is `all-with-x` / `any-with-x`.
//! - A binding entry matches when the message has that key and either the binding value is
//!   `Void` (presence only) or the values are equal by value ([`HeaderValue::matches`]).
//! - `all`: every remaining binding entry matches (so a binding with none matches every message);
//!   `any`: at least one does (so a binding with none matches nothing).

use super::equivalence::{erlang_term, type_name};
use super::error::RoutingError;
use super::value::{FieldTable, HeaderValue, Headers};

/// The binding argument that selects how entries combine.
pub const X_MATCH: &str = "x-match";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchMode {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

impl MatchMode {
    fn parse(arguments: &FieldTable, exchange: &str) -> Result<MatchMode, RoutingError> {
        let Some(value) = arguments.get(X_MATCH) else {
            return Ok(MatchMode::All);
        };
        // RabbitMQ's texts (`rabbit_exchange_type_headers:validate_binding/2`).
        let invalid = |reason: String| RoutingError::precondition(exchange, reason);
        match value.as_str() {
            Some("all") => Ok(MatchMode::All),
            Some("any") => Ok(MatchMode::Any),
            Some("all-with-x") => Ok(MatchMode::AllWithX),
            Some("any-with-x") => Ok(MatchMode::AnyWithX),
            Some(_) => Err(invalid(format!(
                "Invalid x-match field value {}; expected all, any, all-with-x, or any-with-x",
                erlang_term(value)
            ))),
            None => Err(invalid(format!(
                "Invalid x-match field type {} (value {}); expected longstr",
                type_name(value),
                erlang_term(value)
            ))),
        }
    }

    fn with_x(self) -> bool {
        matches!(self, MatchMode::AllWithX | MatchMode::AnyWithX)
    }

    fn all(self) -> bool {
        matches!(self, MatchMode::All | MatchMode::AllWithX)
    }
}

/// A headers binding's arguments compiled for matching: the mode and the entries that count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadersPattern {
    mode: MatchMode,
    /// `None` is a `Void` binding value: presence only.
    entries: Vec<(String, Option<HeaderValue>)>,
}

impl HeadersPattern {
    /// Compiles and validates a binding's arguments; `exchange` names the source for the error.
    pub fn compile(arguments: &FieldTable, exchange: &str) -> Result<Self, RoutingError> {
        let mode = MatchMode::parse(arguments, exchange)?;
        let entries = arguments
            .iter()
            .filter(|(key, _)| key.as_str() != X_MATCH)
            .filter(|(key, _)| mode.with_x() || !key.starts_with("x-"))
            .map(|(key, value)| {
                let value = (*value != HeaderValue::Void).then(|| value.clone());
                (key.clone(), value)
            })
            .collect();
        Ok(HeadersPattern { mode, entries })
    }

    pub fn mode(&self) -> MatchMode {
        self.mode
    }

    pub fn matches(&self, headers: &Headers) -> bool {
        let entry_matches =
            |(key, expected): &(String, Option<HeaderValue>)| match (headers.get(key), expected) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(actual), Some(expected)) => actual.matches(expected),
            };
        if self.mode.all() {
            self.entries.iter().all(entry_matches)
        } else {
            self.entries.iter().any(entry_matches)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::value::HeaderValue as V;

    fn table(entries: &[(&str, V)]) -> FieldTable {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn matches(binding: &[(&str, V)], headers: &[(&str, V)]) -> bool {
        HeadersPattern::compile(&table(binding), "x")
            .unwrap()
            .matches(&table(headers))
    }

    #[test]
    fn all_is_the_default_and_needs_every_entry() {
        let binding = [("a", V::from("1")), ("b", V::I32(2))];
        assert!(matches(
            &binding,
            &[("a", "1".into()), ("b", V::I64(2)), ("c", V::Void)]
        ));
        assert!(!matches(&binding, &[("a", "1".into())]));
        assert!(!matches(&binding, &[("a", "1".into()), ("b", V::I32(3))]));
        let explicit = [
            ("x-match", V::from("all")),
            ("a", V::from("1")),
            ("b", V::I32(2)),
        ];
        assert!(matches(&explicit, &[("a", "1".into()), ("b", V::I64(2))]));
        assert!(!matches(&explicit, &[("b", V::I64(2))]));
    }

    #[test]
    fn any_needs_one_entry() {
        let binding = [
            ("x-match", V::from("any")),
            ("a", V::from("1")),
            ("b", V::I32(2)),
        ];
        assert!(matches(&binding, &[("b", V::U8(2))]));
        assert!(matches(&binding, &[("a", "1".into()), ("b", V::I32(9))]));
        assert!(!matches(&binding, &[("a", "2".into()), ("b", V::I32(9))]));
        assert!(!matches(&binding, &[]));
    }

    #[test]
    fn empty_binding_all_matches_everything_any_nothing() {
        assert!(matches(&[], &[]));
        assert!(matches(&[("x-match", "all".into())], &[("a", V::I8(1))]));
        assert!(!matches(&[("x-match", "any".into())], &[("a", V::I8(1))]));
        assert!(!matches(&[("x-match", "any".into())], &[]));
    }

    #[test]
    fn void_binding_value_matches_on_presence() {
        let binding = [("a", V::Void)];
        assert!(matches(&binding, &[("a", V::I32(5))]));
        assert!(matches(&binding, &[("a", V::Void)]));
        assert!(!matches(&binding, &[("b", V::Void)]));
        let any = [
            ("x-match", V::from("any")),
            ("a", V::Void),
            ("b", V::from("x")),
        ];
        assert!(matches(&any, &[("a", V::from("anything"))]));
        // A void message value only matches a void (presence) binding entry.
        assert!(!matches(&[("a", V::from("x"))], &[("a", V::Void)]));
    }

    #[test]
    fn x_keys_are_ignored_unless_with_x() {
        let all = [
            ("x-match", V::from("all")),
            ("x-k", V::from("v")),
            ("a", V::from("1")),
        ];
        assert!(matches(&all, &[("a", "1".into())]));
        let any = [("x-match", V::from("any")), ("x-k", V::from("v"))];
        assert!(
            !matches(&any, &[("x-k", "v".into())]),
            "x-k is ignored, so nothing is left"
        );

        let all_x = [
            ("x-match", V::from("all-with-x")),
            ("x-k", V::from("v")),
            ("a", V::from("1")),
        ];
        assert!(!matches(&all_x, &[("a", "1".into())]));
        assert!(matches(&all_x, &[("a", "1".into()), ("x-k", "v".into())]));
        let any_x = [
            ("x-match", V::from("any-with-x")),
            ("x-k", V::from("v")),
            ("a", V::from("1")),
        ];
        assert!(matches(&any_x, &[("x-k", "v".into())]));
        assert!(!matches(&any_x, &[("x-k", "w".into())]));
    }

    #[test]
    fn x_match_itself_never_counts() {
        // Even with -with-x, the message need not carry x-match.
        let all_x = [("x-match", V::from("all-with-x")), ("a", V::from("1"))];
        assert!(matches(&all_x, &[("a", "1".into())]));
        let any_x = [("x-match", V::from("any-with-x"))];
        assert!(!matches(&any_x, &[("x-match", "any-with-x".into())]));
    }

    #[test]
    fn invalid_x_match_is_refused() {
        for bad in [V::from("some"), V::from("ALL"), V::I32(1), V::Void] {
            let err = HeadersPattern::compile(&table(&[("x-match", bad)]), "ex").unwrap_err();
            assert!(matches!(err, RoutingError::Precondition { ref name, .. } if name == "ex"));
        }
        let reason = |v: V| match HeadersPattern::compile(&table(&[("x-match", v)]), "ex") {
            Err(RoutingError::Precondition { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(V::from("some")),
            "Invalid x-match field value <<\"some\">>; expected all, any, all-with-x, or any-with-x"
        );
        assert_eq!(
            reason(V::I32(1)),
            "Invalid x-match field type signedint (value 1); expected longstr"
        );
        let bytes = table(&[("x-match", V::Bytes(b"any".to_vec()))]);
        assert_eq!(
            HeadersPattern::compile(&bytes, "ex").unwrap().mode(),
            MatchMode::Any
        );
    }
}
