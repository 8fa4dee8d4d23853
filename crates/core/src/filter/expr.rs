//! The compiled SQL filter and its evaluation, with RocketMQ's semantics (its
//! `org.apache.rocketmq.filter.expression` classes), so a consumer moved from RocketMQ to Porter
//! receives the same messages:
//!
//! - **Three values.** A missing property is `NULL`; comparing with it gives UNKNOWN (`Null`
//!   here), `NOT UNKNOWN` is UNKNOWN, `FALSE AND UNKNOWN` is FALSE, `TRUE OR UNKNOWN` is TRUE,
//!   and a message matches only when the whole expression is TRUE.
//! - **Strings become numbers when compared with numbers.** Properties are strings; `a > 3`
//!   parses `a` as an integer, `a > 3.5` as a decimal, `a = TRUE` compares `a` with "true"
//!   ignoring case, and `a > b` between two properties parses both as decimals.
//! - **A failed conversion drops the message.** RocketMQ throws when `a > 3` meets `a = 'abc'`
//!   (or `'5.5'`: an integer literal wants an integer) and its broker counts a thrown evaluation
//!   as "no match", whatever `NOT` or `OR` surrounds it. [`Abort`] is that throw: it ends the
//!   evaluation as RocketMQ's exception does, in the same left-to-right order, so
//!   `TRUE OR a > 3` still matches (the right side is never evaluated) while `a > 3 OR TRUE`
//!   does not.
//! - **RocketMQ's quirks are kept** where a consumer could notice them: `CONTAINS` and friends
//!   give FALSE (not UNKNOWN) for a missing property, and for an empty needle; `a = b` is TRUE
//!   when both are missing; `3 = a` with `a` missing is FALSE while `a = 3` is UNKNOWN; a bare
//!   property used as a condition is never TRUE (a string is not a boolean).
//!
//! Evaluation allocates nothing: values borrow from the expression or the message.

use std::cmp::Ordering;

use super::FilterSubject;

/// The property RocketMQ stores a message's tag under.
pub(super) const TAGS_PROPERTY: &str = "TAGS";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        }
    }

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            CmpOp::Eq => ordering.is_eq(),
            CmpOp::Ne => ordering.is_ne(),
            CmpOp::Gt => ordering.is_gt(),
            CmpOp::Ge => ordering.is_ge(),
            CmpOp::Lt => ordering.is_lt(),
            CmpOp::Le => ordering.is_le(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TextOp {
    Contains,
    StartsWith,
    EndsWith,
}

impl TextOp {
    pub(super) fn keyword(self) -> &'static str {
        match self {
            TextOp::Contains => "CONTAINS",
            TextOp::StartsWith => "STARTSWITH",
            TextOp::EndsWith => "ENDSWITH",
        }
    }
}

/// A node of a compiled SQL filter. AND and OR are n-ary (RocketMQ's left fold, flattened) so
/// a long `a = 1 OR a = 2 OR ...` chain does not count against the nesting limit.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Expr {
    /// `TRUE`, `FALSE`, `NULL` (a boolean constant: `None` is UNKNOWN).
    Bool(Option<bool>),
    Int(i64),
    Float(f64),
    Str(Box<str>),
    /// A property's value.
    Prop(Box<str>),
    /// A property used as a condition (RocketMQ's boolean cast): UNKNOWN when missing, FALSE
    /// otherwise, since a property is a string and never a boolean.
    Truth(Box<str>),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// `IS NULL`, or `IS NOT NULL` when `negated`.
    IsNull(Box<Expr>, bool),
    Between {
        value: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    /// `prop IN (...)`: the list sorted for a binary search.
    In {
        prop: Box<str>,
        list: Box<[Box<str>]>,
        negated: bool,
    },
    Text {
        op: TextOp,
        value: Box<Expr>,
        needle: Box<str>,
        negated: bool,
    },
}

impl Expr {
    /// Whether the node yields a boolean (a condition) rather than a value.
    pub(super) fn is_condition(&self) -> bool {
        !matches!(
            self,
            Expr::Int(_) | Expr::Float(_) | Expr::Str(_) | Expr::Prop(_) | Expr::Neg(_)
        )
    }
}

/// A value during evaluation; `Null` is SQL's NULL and, as a condition, UNKNOWN.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

/// RocketMQ's evaluation threw: the message does not match, whatever surrounds the throw.
#[derive(Debug)]
struct Abort;

type Eval<'a> = Result<Val<'a>, Abort>;

/// Whether `expr` is TRUE for `msg`.
pub(super) fn matches(expr: &Expr, msg: &dyn FilterSubject) -> bool {
    matches!(eval(expr, msg), Ok(Val::Bool(true)))
}

fn lookup<'a>(msg: &'a dyn FilterSubject, name: &str) -> Option<&'a str> {
    if name == TAGS_PROPERTY {
        msg.tag()
    } else {
        msg.property(name)
    }
}

fn truth(value: Val<'_>) -> Result<Option<bool>, Abort> {
    match value {
        Val::Null => Ok(None),
        Val::Bool(b) => Ok(Some(b)),
        // The parser only puts conditions where a boolean is read; Java would throw a
        // ClassCastException here.
        _ => Err(Abort),
    }
}

fn from_truth<'a>(value: Option<bool>) -> Val<'a> {
    value.map_or(Val::Null, Val::Bool)
}

fn eval<'a>(expr: &'a Expr, msg: &'a dyn FilterSubject) -> Eval<'a> {
    Ok(match expr {
        Expr::Bool(b) => from_truth(*b),
        Expr::Int(i) => Val::Int(*i),
        Expr::Float(f) => Val::Float(*f),
        Expr::Str(s) => Val::Str(s),
        Expr::Prop(name) => lookup(msg, name).map_or(Val::Null, Val::Str),
        Expr::Truth(name) => match lookup(msg, name) {
            None => Val::Null,
            Some(_) => Val::Bool(false),
        },
        Expr::Neg(inner) => match eval(inner, msg)? {
            Val::Int(i) => i.checked_neg().map(Val::Int).ok_or(Abort)?,
            Val::Float(f) => Val::Float(-f),
            _ => Val::Null,
        },
        Expr::Not(inner) => from_truth(truth(eval(inner, msg)?)?.map(|b| !b)),
        Expr::And(terms) => {
            let mut unknown = false;
            for term in terms {
                match truth(eval(term, msg)?)? {
                    Some(false) => return Ok(Val::Bool(false)),
                    Some(true) => {}
                    None => unknown = true,
                }
            }
            if unknown {
                Val::Null
            } else {
                Val::Bool(true)
            }
        }
        Expr::Or(terms) => {
            let mut unknown = false;
            for term in terms {
                match truth(eval(term, msg)?)? {
                    Some(true) => return Ok(Val::Bool(true)),
                    Some(false) => {}
                    None => unknown = true,
                }
            }
            if unknown {
                Val::Null
            } else {
                Val::Bool(false)
            }
        }
        Expr::Cmp(op @ (CmpOp::Eq | CmpOp::Ne), left, right) => {
            let equal = equal(eval(left, msg)?, eval(right, msg)?)?;
            match (op, equal) {
                (CmpOp::Ne, Val::Bool(b)) => Val::Bool(!b),
                _ => equal,
            }
        }
        Expr::Cmp(op, left, right) => {
            let lv = eval(left, msg)?;
            if lv == Val::Null {
                return Ok(Val::Null);
            }
            ordering(*op, lv, eval(right, msg)?)?
        }
        Expr::IsNull(inner, negated) => Val::Bool((eval(inner, msg)? == Val::Null) != *negated),
        Expr::Between {
            value,
            low,
            high,
            negated,
        } => {
            // RocketMQ rewrites these as `v >= low AND v <= high` and `v < low OR v > high`.
            let v = eval(value, msg)?;
            let (first, second, stop) = if *negated {
                (CmpOp::Lt, CmpOp::Gt, true)
            } else {
                (CmpOp::Ge, CmpOp::Le, false)
            };
            let a = truth(ordering_lazy(first, v, low, msg)?)?;
            if a == Some(stop) {
                return Ok(Val::Bool(stop));
            }
            let b = truth(ordering_lazy(second, v, high, msg)?)?;
            match (a, b) {
                (_, Some(x)) if x == stop => Val::Bool(stop),
                (Some(_), Some(_)) => Val::Bool(!stop),
                _ => Val::Null,
            }
        }
        Expr::In {
            prop,
            list,
            negated,
        } => match lookup(msg, prop) {
            None => Val::Null,
            Some(s) => Val::Bool(list.binary_search_by(|x| (**x).cmp(s)).is_ok() != *negated),
        },
        Expr::Text {
            op,
            value,
            needle,
            negated,
        } => {
            if needle.is_empty() {
                return Ok(Val::Bool(false));
            }
            match eval(value, msg)? {
                Val::Str(s) => {
                    let found = match op {
                        TextOp::Contains => s.contains(&**needle),
                        TextOp::StartsWith => s.starts_with(&**needle),
                        TextOp::EndsWith => s.ends_with(&**needle),
                    };
                    Val::Bool(found != *negated)
                }
                _ => Val::Bool(false),
            }
        }
    })
}

/// `v op bound`, evaluating `bound` only when `v` is not NULL (as RocketMQ does).
fn ordering_lazy<'a>(
    op: CmpOp,
    v: Val<'a>,
    bound: &'a Expr,
    msg: &'a dyn FilterSubject,
) -> Eval<'a> {
    if v == Val::Null {
        return Ok(Val::Null);
    }
    ordering(op, v, eval(bound, msg)?)
}

/// `> >= < <=` (RocketMQ's `ComparisonExpression.evaluate`): NULL on either side is UNKNOWN;
/// two strings (two properties) are compared as decimals.
fn ordering<'a>(op: CmpOp, lv: Val<'a>, rv: Val<'a>) -> Eval<'a> {
    match (lv, rv) {
        (Val::Null, _) | (_, Val::Null) => Ok(Val::Null),
        (Val::Str(a), Val::Str(b)) => {
            let ordering = parse_float(a)?.total_cmp(&parse_float(b)?);
            Ok(Val::Bool(op.holds(ordering)))
        }
        _ => Ok(Val::Bool(op.holds(compare(lv, rv)?))),
    }
}

/// `=` (RocketMQ's `doCreateEqual`), NULLs included: both NULL is TRUE (what makes `IS NULL`
/// work there), a NULL left is UNKNOWN, a NULL right is FALSE.
fn equal<'a>(lv: Val<'a>, rv: Val<'a>) -> Eval<'a> {
    Ok(match (lv, rv) {
        (Val::Null, Val::Null) => Val::Bool(true),
        (Val::Null, _) => Val::Null,
        (_, Val::Null) => Val::Bool(false),
        _ => Val::Bool(compare(lv, rv)?.is_eq()),
    })
}

/// RocketMQ's `__compare` with string conversion on: numbers widen to each other, a string
/// meeting a number or boolean is converted to it (a failed conversion throws), unrelated
/// types compare as "less" (Java's `-1`).
fn compare(lv: Val<'_>, rv: Val<'_>) -> Result<Ordering, Abort> {
    use Val::*;
    Ok(match (lv, rv) {
        (Int(a), Int(b)) => a.cmp(&b),
        (Int(a), Float(b)) => (a as f64).total_cmp(&b),
        (Float(a), Int(b)) => a.total_cmp(&(b as f64)),
        (Float(a), Float(b)) => a.total_cmp(&b),
        (Str(a), Str(b)) => a.cmp(b),
        (Bool(a), Bool(b)) => a.cmp(&b),
        (Int(a), Str(b)) => a.cmp(&parse_int(b)?),
        (Float(a), Str(b)) => a.total_cmp(&parse_float(b)?),
        (Str(a), Int(b)) => parse_int(a)?.cmp(&b),
        (Str(a), Float(b)) => parse_float(a)?.total_cmp(&b),
        (Str(a), Bool(b)) => a.eq_ignore_ascii_case("true").cmp(&b),
        // Java casts the Boolean to a String here and throws.
        (Bool(_), Str(_)) => return Err(Abort),
        _ => Ordering::Less,
    })
}

fn parse_int(s: &str) -> Result<i64, Abort> {
    s.parse().map_err(|_| Abort)
}

/// Java's `Double.valueOf` ignores surrounding whitespace.
fn parse_float(s: &str) -> Result<f64, Abort> {
    s.trim().parse().map_err(|_| Abort)
}
