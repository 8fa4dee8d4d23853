//! Filter tests: each operator against RocketMQ's semantics, each error's message, and two
//! properties: a random expression printed and parsed back evaluates as the original on random
//! messages, and no input string makes the parser panic.

use std::collections::HashMap;

use proptest::prelude::*;

use super::expr::{CmpOp, Expr, TextOp};
use super::*;

#[derive(Default, Debug, Clone)]
struct Msg {
    tag: Option<String>,
    props: HashMap<String, String>,
}

impl Msg {
    fn new(tag: Option<&str>, props: &[(&str, &str)]) -> Self {
        Msg {
            tag: tag.map(str::to_owned),
            props: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

impl FilterSubject for Msg {
    fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    fn property(&self, name: &str) -> Option<&str> {
        self.props.get(name).map(String::as_str)
    }
}

fn sql(text: &str) -> FilterExpression {
    FilterExpression::parse(FilterKind::Sql, text)
        .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn sql_err(text: &str) -> String {
    match FilterExpression::parse(FilterKind::Sql, text) {
        Ok(e) => panic!("{text:?} should not parse, got {e}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts `text` matches exactly the messages marked true.
fn check(text: &str, cases: &[(&Msg, bool)]) {
    let expr = sql(text);
    for (msg, expected) in cases {
        assert_eq!(expr.matches(*msg), *expected, "{text:?} on {msg:?}");
    }
}

#[test]
fn tags_as_rocketmq() {
    let a = Msg::new(Some("a"), &[]);
    let b = Msg::new(Some("b"), &[]);
    let none = Msg::new(None, &[]);
    for all in ["*", "", "  ", " * "] {
        let e = FilterExpression::parse(FilterKind::Tag, all).unwrap();
        assert!(e.matches_all());
        assert!(e.matches(&a) && e.matches(&none), "{all:?}");
    }
    let e = FilterExpression::parse(FilterKind::Tag, " a ||c||  d ").unwrap();
    assert!(e.matches(&a));
    assert!(!e.matches(&b));
    assert!(!e.matches(&none), "a message without a tag matches only *");
    assert_eq!(e.to_string(), "a || c || d");
    let nothing = FilterExpression::parse(FilterKind::Tag, "||").unwrap();
    assert!(!nothing.matches(&a) && !nothing.matches(&none));
    let again = FilterExpression::parse(FilterKind::Tag, &nothing.to_string()).unwrap();
    assert_eq!(again, nothing);
}

#[test]
fn comparisons_convert_strings_to_numbers() {
    let five = Msg::new(None, &[("a", "5")]);
    let decimal = Msg::new(None, &[("a", "5.5")]);
    let word = Msg::new(None, &[("a", "abc")]);
    let missing = Msg::default();
    check(
        "a > 3",
        &[
            (&five, true),
            (&decimal, false),
            (&word, false),
            (&missing, false),
        ],
    );
    check("a >= 5", &[(&five, true), (&decimal, false)]);
    check(
        "a < 5.6",
        &[(&five, true), (&decimal, true), (&word, false)],
    );
    check("a <= 4", &[(&five, false)]);
    check("a = 5", &[(&five, true), (&decimal, false), (&word, false)]);
    check("a = 5.0", &[(&five, true)]);
    check(
        "a <> 5",
        &[(&five, false), (&decimal, false), (&missing, false)],
    );
    check("a <> 6", &[(&five, true)]);
    check(
        "a = 'abc'",
        &[(&word, true), (&five, false), (&missing, false)],
    );
    check(
        "a <> 'abc'",
        &[(&word, false), (&five, true), (&missing, false)],
    );
    check("a > -6", &[(&five, true)]);
    check("-a > -6", &[(&five, false)]);
    check("5 = a", &[(&five, true)]);
    // Two properties are compared as decimals.
    let pair = Msg::new(None, &[("a", "10"), ("b", "9.5")]);
    check("a > b", &[(&pair, true)]);
    check("b > a", &[(&pair, false)]);
}

#[test]
fn a_failed_conversion_drops_the_message_whatever_surrounds_it() {
    let word = Msg::new(None, &[("a", "abc")]);
    // RocketMQ throws, and a throw is "no match" even under NOT...
    check("NOT (a > 3)", &[(&word, false)]);
    check("a > 3 OR TRUE", &[(&word, false)]);
    // ...unless evaluation never reached it.
    check("TRUE OR a > 3", &[(&word, true)]);
    check("FALSE AND a > 3", &[(&word, false)]);
    check("NOT (FALSE AND a > 3)", &[(&word, true)]);
}

#[test]
fn three_valued_logic() {
    let missing = Msg::default();
    let one = Msg::new(None, &[("a", "1")]);
    check("NOT (a > 3)", &[(&missing, false), (&one, true)]);
    check("a > 3 OR a < 3", &[(&missing, false), (&one, true)]);
    check("(a > 3) OR TRUE", &[(&missing, true)]);
    check("(a > 3) AND FALSE", &[(&missing, false)]);
    check("NOT ((a > 3) AND FALSE)", &[(&missing, true)]);
    check("NOT ((a > 3) AND TRUE)", &[(&missing, false)]);
    check("NOT ((a > 3) OR FALSE)", &[(&missing, false)]);
    check("NULL", &[(&missing, false)]);
    check("NOT NULL", &[(&missing, false)]);
    check("TRUE", &[(&missing, true)]);
    check("NOT FALSE", &[(&missing, true)]);
    // RocketMQ's asymmetric NULL equality.
    check("a = b", &[(&missing, true)]);
    check("NOT (3 = a)", &[(&missing, true)]);
    check("NOT (a = 3)", &[(&missing, false)]);
}

#[test]
fn is_null() {
    let set = Msg::new(Some("t"), &[("a", "")]);
    let missing = Msg::default();
    check("a IS NULL", &[(&set, false), (&missing, true)]);
    check("a is not null", &[(&set, true), (&missing, false)]);
    check("TAGS IS NOT NULL", &[(&set, true), (&missing, false)]);
}

#[test]
fn between() {
    let m = |v| Msg::new(None, &[("a", v)]);
    let (low, mid, high, word) = (m("1"), m("5"), m("10"), m("x"));
    let missing = Msg::default();
    check(
        "a BETWEEN 1 AND 10",
        &[
            (&low, true),
            (&mid, true),
            (&high, true),
            (&m("11"), false),
            (&word, false),
            (&missing, false),
        ],
    );
    check(
        "a NOT BETWEEN 2 AND 9",
        &[
            (&low, true),
            (&mid, false),
            (&high, true),
            (&word, false),
            (&missing, false),
        ],
    );
    check("a between 0.5 and 1.5", &[(&low, true), (&mid, false)]);
    check(
        "a BETWEEN b AND 7",
        &[(&Msg::new(None, &[("a", "5"), ("b", "2")]), true)],
    );
    // Precedence: BETWEEN takes the AND, the next AND is logical.
    check("a BETWEEN 1 AND 10 AND TRUE", &[(&mid, true)]);
}

#[test]
fn in_lists() {
    let a = Msg::new(Some("a"), &[("k", "x'y")]);
    let b = Msg::new(Some("b"), &[]);
    let none = Msg::default();
    check(
        "TAGS IN ('a', 'c')",
        &[(&a, true), (&b, false), (&none, false)],
    );
    check(
        "TAGS NOT IN ('a', 'c')",
        &[(&a, false), (&b, true), (&none, false)],
    );
    check("k IN ('x''y')", &[(&a, true), (&b, false)]);
}

#[test]
fn text_operators() {
    let m = Msg::new(None, &[("s", "hello world")]);
    let missing = Msg::default();
    check("s CONTAINS 'lo w'", &[(&m, true), (&missing, false)]);
    check("s NOT CONTAINS 'xyz'", &[(&m, true), (&missing, false)]);
    check("s NOT CONTAINS 'hello'", &[(&m, false)]);
    check("s STARTSWITH 'hell'", &[(&m, true)]);
    check("s NOT STARTSWITH 'hell'", &[(&m, false)]);
    check("s ENDSWITH 'world'", &[(&m, true)]);
    check("s NOT ENDSWITH 'x'", &[(&m, true)]);
    // RocketMQ: an empty needle and a missing property are FALSE, not UNKNOWN.
    check("s CONTAINS ''", &[(&m, false)]);
    check("s NOT CONTAINS ''", &[(&m, false)]);
    check("NOT (s CONTAINS 'x')", &[(&missing, true)]);
}

#[test]
fn booleans_and_keywords() {
    let t = Msg::new(None, &[("b", "TRUE"), ("c", "yes")]);
    check("b = TRUE", &[(&t, true)]);
    check("c = FALSE", &[(&t, true)]);
    check("(b = TRUE) = TRUE", &[(&t, true)]);
    // A bare property is never TRUE (a string is not a boolean), and UNKNOWN when missing.
    check("b", &[(&t, false)]);
    check("NOT b", &[(&t, true), (&Msg::default(), false)]);
    // NOT binds tighter than '=' (JMS selector precedence): (NOT b) = 1 is never TRUE.
    check("NOT b = 1", &[(&t, false)]);
    check("tRuE aNd NoT fAlSe", &[(&t, true)]);
    // Property names are case-sensitive; the tag is only TAGS.
    let tagged = Msg::new(Some("x"), &[]);
    check("TAGS = 'x'", &[(&tagged, true)]);
    check("tags = 'x'", &[(&tagged, false)]);
    check(
        "a_1$ IS NULL -- comment\n AND /* c */ TRUE",
        &[(&tagged, true)],
    );
}

#[test]
fn long_or_chains_are_flat() {
    let text = (0..300)
        .map(|i| format!("a = {i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    check(&text, &[(&Msg::new(None, &[("a", "299")]), true)]);
}

#[test]
fn errors_name_the_problem_and_column() {
    let cases = [
        (
            "a >",
            "expected a value after '>', found the end of the expression at column 4",
        ),
        (
            "a > AND b",
            "expected a value after '>', found AND at column 5",
        ),
        (
            "a = 1 b",
            "expected an operator or the end of the expression, found 'b' at column 7",
        ),
        (
            "(a = 1",
            "expected ')', found the end of the expression at column 7",
        ),
        (
            "a IS 1",
            "expected NOT or NULL after IS, found a number at column 6",
        ),
        (
            "a IN 'x'",
            "expected '(' after IN, found a string at column 6",
        ),
        (
            "a IN ('x' 'y')",
            "expected ',' or ')' in the IN list, found a string at column 11",
        ),
        (
            "a IN (1)",
            "expected a string in the IN list, found a number at column 7",
        ),
        (
            "a CONTAINS 1",
            "expected a string after CONTAINS, found a number at column 12",
        ),
        (
            "a BETWEEN 1 OR 2",
            "expected AND after BETWEEN's lower bound, found OR at column 13",
        ),
        (
            "a BETWEEN 5 AND 1",
            "lower bound is above its upper bound at column 11",
        ),
        (
            "a > 'x'",
            "a string cannot be compared with > >= < <= or BETWEEN at column 5",
        ),
        ("TRUE < a", "TRUE, FALSE and NULL cannot be compared"),
        ("(a = 1) > 2", "a condition cannot be compared"),
        (
            "a = NULL",
            "NULL cannot be compared; use IS NULL at column 5",
        ),
        (
            "TRUE = 'x'",
            "a boolean cannot be compared with a value at column 6",
        ),
        (
            "'x' IN ('x')",
            "IN needs a property on its left at column 1",
        ),
        ("5", "this is a value, not a condition at column 1"),
        (
            "a = 1 AND 5",
            "this is a value, not a condition at column 11",
        ),
        ("NOT 'x'", "this is a value, not a condition at column 5"),
        ("a = )", "expected a value after '=', found ')' at column 5"),
        (
            "=",
            "expected a property, a value or '(', found '=' at column 1",
        ),
        ("a = 'é", "unterminated string at column 5"),
    ];
    for (text, expected) in cases {
        let error = sql_err(text);
        assert!(error.starts_with("SQL filter: "), "{error}");
        assert!(
            error.contains(expected),
            "{text:?}: got {error:?}, want {expected:?}"
        );
    }
    assert_eq!(sql_err("  "), "SQL filter: the expression is empty");
}

#[test]
fn hostile_expressions_are_bounded() {
    let long = format!("a = '{}'", "x".repeat(FILTER_EXPRESSION_BYTES_MAX));
    assert!(sql_err(&long).contains("exceeds the maximum of 4096 bytes"));
    let tags = "t||".repeat(FILTER_EXPRESSION_BYTES_MAX);
    assert!(FilterExpression::parse(FilterKind::Tag, &tags).is_err());
    let parens = format!("{}a = 1{}", "(".repeat(2000), ")".repeat(2000));
    assert!(sql_err(&parens).contains("nested deeper than 64 levels"));
    let nots = format!("{}TRUE", "NOT ".repeat(1000));
    assert!(sql_err(&nots).contains("nested deeper than 64 levels"));
    // (Spaced: "--" starts a comment.)
    let negs = format!("{}1 = a", "- ".repeat(1000));
    assert!(sql_err(&negs).contains("nested deeper than 64 levels"));
    // Left-deep chains of comparisons deepen the tree without recursing in the parser.
    let chain = format!("a{}", " = a".repeat(500));
    assert!(sql_err(&chain).contains("nested deeper than 64 levels"));
    // Just inside the limit is fine.
    let ok = format!("{}TRUE{}", "(".repeat(30), ")".repeat(30));
    assert!(sql(&ok).matches(&Msg::default()));
}

// ---- properties ----

/// Property names the generated expressions and messages share, so lookups hit and miss.
const NAMES: [&str; 3] = ["a", "b", "TAGS"];

fn value_strategy() -> impl Strategy<Value = Expr> {
    prop_oneof![
        (0i64..20).prop_map(Expr::Int),
        (0u32..40).prop_map(|x| Expr::Float(f64::from(x) / 4.0)),
        prop::sample::select(NAMES.to_vec()).prop_map(|n| Expr::Prop(n.into())),
    ]
}

fn string_strategy() -> impl Strategy<Value = Box<str>> {
    prop::sample::select(vec!["", "1", "x", "x'y", "2.5", "true", "7"]).prop_map(Box::from)
}

/// Random well-typed conditions (ones RocketMQ would accept), a few levels deep.
fn condition_strategy() -> impl Strategy<Value = Expr> {
    let ops = prop::sample::select(vec![
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Gt,
        CmpOp::Ge,
        CmpOp::Lt,
        CmpOp::Le,
    ]);
    let leaf = prop_oneof![
        prop::option::of(any::<bool>()).prop_map(Expr::Bool),
        prop::sample::select(NAMES.to_vec()).prop_map(|n| Expr::Truth(n.into())),
        (ops, value_strategy(), value_strategy()).prop_map(|(op, l, r)| Expr::Cmp(
            op,
            Box::new(l),
            Box::new(r)
        )),
        (
            prop::sample::select(NAMES.to_vec()),
            string_strategy(),
            any::<bool>()
        )
            .prop_map(|(n, s, eq)| {
                let op = if eq { CmpOp::Eq } else { CmpOp::Ne };
                Expr::Cmp(op, Box::new(Expr::Prop(n.into())), Box::new(Expr::Str(s)))
            }),
        (value_strategy(), any::<bool>()).prop_map(|(v, n)| Expr::IsNull(Box::new(v), n)),
        (
            value_strategy(),
            value_strategy(),
            value_strategy(),
            any::<bool>()
        )
            .prop_map(|(value, low, high, negated)| {
                let (low, high) = match (&low, &high) {
                    (Expr::Int(l), Expr::Int(h)) if l > h => (high, low),
                    (Expr::Float(l), Expr::Float(h)) if l > h => (high, low),
                    (Expr::Int(_), Expr::Float(_)) | (Expr::Float(_), Expr::Int(_)) => {
                        (low, Expr::Prop("a".into()))
                    }
                    _ => (low, high),
                };
                Expr::Between {
                    value: Box::new(value),
                    low: Box::new(low),
                    high: Box::new(high),
                    negated,
                }
            }),
        (
            prop::sample::select(NAMES.to_vec()),
            prop::collection::btree_set(string_strategy(), 1..4),
            any::<bool>()
        )
            .prop_map(|(n, list, negated)| Expr::In {
                prop: n.into(),
                list: list.into_iter().collect(),
                negated,
            }),
        (
            prop::sample::select(vec![TextOp::Contains, TextOp::StartsWith, TextOp::EndsWith]),
            value_strategy(),
            string_strategy(),
            any::<bool>()
        )
            .prop_map(|(op, v, needle, negated)| Expr::Text {
                op,
                value: Box::new(v),
                needle,
                negated
            }),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            (inner.clone(), inner, any::<bool>()).prop_map(|(l, r, eq)| {
                let op = if eq { CmpOp::Eq } else { CmpOp::Ne };
                Expr::Cmp(op, Box::new(operand(l)), Box::new(operand(r)))
            }),
        ]
    })
}

/// A condition as an operand of `=`: the text of a bare property there reads back as its
/// value, not its truth, and NULL cannot be compared, so those two are wrapped in a NOT.
fn operand(e: Expr) -> Expr {
    match e {
        Expr::Truth(_) | Expr::Bool(None) => Expr::Not(Box::new(e)),
        e => e,
    }
}

fn message_strategy() -> impl Strategy<Value = Msg> {
    let value = prop::sample::select(vec!["1", "7", "2.5", "x", "x'y", "true", "-3", ""]);
    (
        prop::option::of(value.clone()),
        prop::option::of(value.clone()),
        prop::option::of(value),
    )
        .prop_map(|(tag, a, b)| {
            let mut props = HashMap::new();
            if let Some(a) = a {
                props.insert("a".to_owned(), a.to_owned());
            }
            if let Some(b) = b {
                props.insert("b".to_owned(), b.to_owned());
            }
            Msg {
                tag: tag.map(str::to_owned),
                props,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Printing is a faithful serialization: what the printer writes, the parser reads back as
    /// an expression that decides every message the same way.
    #[test]
    fn printed_expressions_parse_back_to_the_same_decisions(
        tree in condition_strategy(),
        msgs in prop::collection::vec(message_strategy(), 8),
    ) {
        let original = FilterExpression { inner: Inner::Sql(tree) };
        let text = original.to_string();
        let reparsed = FilterExpression::parse(FilterKind::Sql, &text)
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(reparsed.to_string(), text.clone());
        for msg in &msgs {
            prop_assert_eq!(original.matches(msg), reparsed.matches(msg), "{} on {:?}", text, msg);
        }
    }

    /// Clients send arbitrary text: the parser answers with an expression or an error, never a
    /// panic; so does evaluating whatever it accepted.
    #[test]
    fn garbage_never_panics(text in "\\PC{0,80}", msg in message_strategy()) {
        for kind in [FilterKind::Sql, FilterKind::Tag] {
            if let Ok(e) = FilterExpression::parse(kind, &text) {
                let _ = e.matches(&msg);
            }
        }
    }

    /// Garbage made of the grammar's own pieces reaches deeper into the parser than random
    /// characters do.
    #[test]
    fn token_soup_never_panics(
        parts in prop::collection::vec(prop::sample::select(vec![
            "a", "TAGS", "1", "2.5", "'x'", "(", ")", ",", "=", "<>", ">", "<=", "-", "+",
            "NOT", "AND", "OR", "IS", "NULL", "TRUE", "BETWEEN", "IN", "CONTAINS", "--", "/*",
        ]), 0..24),
        msg in message_strategy(),
    ) {
        let text = parts.join(" ");
        if let Ok(e) = FilterExpression::parse(FilterKind::Sql, &text) {
            let _ = e.matches(&msg);
            let printed = e.to_string();
            let again = FilterExpression::parse(FilterKind::Sql, &printed)
                .map_err(|err| TestCaseError::fail(format!("{text} printed as {printed}: {err}")))?;
            prop_assert_eq!(e.matches(&msg), again.matches(&msg));
        }
    }
}
