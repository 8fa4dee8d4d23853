//! Broker-side message filtering as RocketMQ does it: a consumer subscribes with a tag
//! expression (`TagA || TagB`) or a SQL92 expression over message properties
//! (`TAGS IN ('a','b') AND price > 100`), and the broker delivers only the messages it matches.
//!
//! Filtering in the broker, not the client, is the point: a consumer that wants 1 % of a topic
//! should not be sent the other 99 %. It lives in the core so every protocol can use it; the
//! RocketMQ gateway compiles a subscription's expression once ([`FilterExpression::parse`]) and
//! asks [`FilterExpression::matches`] per message per consumer, so matching allocates nothing.
//!
//! The semantics follow RocketMQ's own (`FilterAPI` for tags, `org.apache.rocketmq.filter` for
//! SQL; see [`expr`] for the three-valued logic and the string-to-number conversions), so a
//! consumer moved from RocketMQ receives the same messages.
//!
//! Expressions come from clients, so parsing is bounded: at most [`FILTER_EXPRESSION_BYTES_MAX`]
//! bytes and [`FILTER_DEPTH_MAX`] levels of nesting. A compiled expression holds at most one node
//! per token, under 64 B each: with 4 KiB of text, under 256 KiB in the worst case (typically
//! a few hundred bytes).

use std::fmt;

mod expr;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use expr::Expr;

/// The longest expression accepted, in bytes. RocketMQ has no limit of its own; 4 KiB is far
/// above any real subscription (an `IN` list of a hundred tags) and bounds the parse work and
/// the compiled size a client can ask for.
pub const FILTER_EXPRESSION_BYTES_MAX: usize = 4096;

/// The deepest nesting accepted (parentheses, `NOT`, comparisons inside comparisons). Parsing,
/// evaluating and dropping an expression recurse once per level; 64 levels is a few KiB of
/// stack, where an unbounded `((((...` would overflow a thread's stack.
pub const FILTER_DEPTH_MAX: usize = 64;

/// Which language a subscription's expression is in (RocketMQ's `FilterType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterKind {
    /// `*`, or tags separated by `||`.
    Tag,
    /// A SQL92 condition over message properties.
    Sql,
}

/// What a filter reads from a message. Properties are strings, as in RocketMQ; a gateway
/// implements this over its message type without copying.
pub trait FilterSubject {
    /// The message's tag, if it has one. SQL expressions read it as the property `TAGS`.
    fn tag(&self) -> Option<&str>;
    /// A user property's value.
    fn property(&self, name: &str) -> Option<&str>;
}

/// An expression a client sent that cannot be compiled. The text is meant for the client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filter expression of {len} bytes exceeds the maximum of {max} bytes")]
    TooLong { len: usize, max: usize },
    #[error("SQL filter: the expression is empty")]
    Empty,
    #[error("SQL filter: {message} at column {column}")]
    Syntax { column: usize, message: String },
    #[error("SQL filter: nested deeper than {max} levels at column {column}")]
    TooDeep { column: usize, max: usize },
}

impl FilterError {
    fn syntax(text: &str, offset: usize, message: impl Into<String>) -> Self {
        FilterError::Syntax {
            column: parser::column(text, offset),
            message: message.into(),
        }
    }
}

/// A compiled subscription expression.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterExpression {
    inner: Inner,
}

#[derive(Clone, Debug, PartialEq)]
enum Inner {
    /// `*` or an empty tag expression: every message.
    All,
    /// Any of these tags (sorted, deduplicated). Empty when the expression held only `||`s,
    /// which in RocketMQ matches nothing.
    Tags(Box<[Box<str>]>),
    Sql(Expr),
}

impl FilterExpression {
    /// Compiles `text` as a `kind` expression.
    ///
    /// Tags as RocketMQ's `FilterAPI`: `*` or empty (or blank) is every message; otherwise the
    /// `||`-separated names, trimmed, and a message matches when its tag is one of them (a
    /// message without a tag matches only `*`). SQL as RocketMQ's `SqlFilter`; an empty SQL
    /// expression is an error, as there.
    pub fn parse(kind: FilterKind, text: &str) -> Result<FilterExpression, FilterError> {
        if text.len() > FILTER_EXPRESSION_BYTES_MAX {
            return Err(FilterError::TooLong {
                len: text.len(),
                max: FILTER_EXPRESSION_BYTES_MAX,
            });
        }
        let inner = match kind {
            FilterKind::Tag => {
                let text = text.trim();
                if text.is_empty() || text == "*" {
                    Inner::All
                } else {
                    let mut tags: Vec<Box<str>> = text
                        .split("||")
                        .map(str::trim)
                        .filter(|tag| !tag.is_empty())
                        .map(Box::from)
                        .collect();
                    tags.sort_unstable();
                    tags.dedup();
                    Inner::Tags(tags.into_boxed_slice())
                }
            }
            FilterKind::Sql => {
                if text.trim().is_empty() {
                    return Err(FilterError::Empty);
                }
                Inner::Sql(parser::parse(text)?)
            }
        };
        Ok(FilterExpression { inner })
    }

    /// An expression that matches every message (a subscription without a filter).
    pub fn all() -> FilterExpression {
        FilterExpression { inner: Inner::All }
    }

    /// Whether `msg` passes. Allocation-free.
    pub fn matches(&self, msg: &dyn FilterSubject) -> bool {
        match &self.inner {
            Inner::All => true,
            Inner::Tags(tags) => msg
                .tag()
                .is_some_and(|tag| tags.binary_search_by(|t| (**t).cmp(tag)).is_ok()),
            Inner::Sql(expr) => expr::matches(expr, msg),
        }
    }

    /// Whether every message passes, so a caller can skip [`Self::matches`].
    pub fn matches_all(&self) -> bool {
        self.inner == Inner::All
    }

    pub fn kind(&self) -> FilterKind {
        match self.inner {
            Inner::All | Inner::Tags(_) => FilterKind::Tag,
            Inner::Sql(_) => FilterKind::Sql,
        }
    }
}

/// The expression in a canonical form that parses back to the same expression (fully
/// parenthesized for SQL), for logs and for the round-trip tests.
impl fmt::Display for FilterExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::All => f.write_str("*"),
            // Only separators: an empty text would read back as "every message".
            Inner::Tags(tags) if tags.is_empty() => f.write_str("||"),
            Inner::Tags(tags) => {
                for (i, tag) in tags.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" || ")?;
                    }
                    f.write_str(tag)?;
                }
                Ok(())
            }
            Inner::Sql(expr) => write!(f, "{expr}"),
        }
    }
}

fn write_str_literal(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("'")?;
    for (i, part) in s.split('\'').enumerate() {
        if i > 0 {
            f.write_str("''")?;
        }
        f.write_str(part)?;
    }
    f.write_str("'")
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, terms: &[Expr], op: &str| {
            f.write_str("(")?;
            for (i, term) in terms.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{term}")?;
            }
            f.write_str(")")
        };
        let not = |negated: bool| if negated { "NOT " } else { "" };
        match self {
            Expr::Bool(Some(true)) => f.write_str("TRUE"),
            Expr::Bool(Some(false)) => f.write_str("FALSE"),
            Expr::Bool(None) => f.write_str("NULL"),
            Expr::Int(i) => write!(f, "{i}"),
            // `{:?}` always prints a '.' or an exponent, so it reads back as a decimal.
            Expr::Float(x) => write!(f, "{x:?}"),
            Expr::Str(s) => write_str_literal(f, s),
            Expr::Prop(name) | Expr::Truth(name) => f.write_str(name),
            Expr::Neg(inner) => write!(f, "(-{inner})"),
            Expr::Not(inner) => write!(f, "(NOT {inner})"),
            Expr::And(terms) => join(f, terms, "AND"),
            Expr::Or(terms) => join(f, terms, "OR"),
            Expr::Cmp(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            Expr::IsNull(inner, negated) => write!(f, "({inner} IS {}NULL)", not(*negated)),
            Expr::Between {
                value,
                low,
                high,
                negated,
            } => write!(f, "({value} {}BETWEEN {low} AND {high})", not(*negated)),
            Expr::In {
                prop,
                list,
                negated,
            } => {
                write!(f, "({prop} {}IN (", not(*negated))?;
                for (i, item) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_str_literal(f, item)?;
                }
                f.write_str("))")
            }
            Expr::Text {
                op,
                value,
                needle,
                negated,
            } => {
                write!(f, "({value} {}{} ", not(*negated), op.keyword())?;
                write_str_literal(f, needle)?;
                f.write_str(")")
            }
        }
    }
}
