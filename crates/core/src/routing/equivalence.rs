//! Declare equivalence: whether a re-declare of an existing queue or exchange asks for the same
//! thing, and RabbitMQ's words when it does not. One rule for queues and exchanges, because
//! services written in different languages declare the same queue: amqplib sends `5000` as a
//! 16-bit `short`, pika as a 32-bit `signedint`, lapin as whatever its user picked. RabbitMQ
//! accepts all of them, so Porter must too.
//!
//! RabbitMQ's rule (`rabbit_misc:assert_args_equivalence/4`, `type_class/1`,
//! `assert_field_equivalence/4`): only the listed keys are compared; an argument absent on both
//! sides is equal; present on both, it is equal when the two types are of the same class
//! (`byte`, `short`, `signedint`, `long`, `unsigned*` and `decimal` are "int", `float` and
//! `double` are "float") and the values are `==`, or when the bare values are identical Erlang
//! terms (so a `timestamp` equals a `long` of the same value and a `longstr` equals a byte array
//! with the same bytes, but `1` never equals `1.0`). [`equivalent`] is that rule.
//!
//! The refusal is 406 PRECONDITION_FAILED, worded by `rabbit_misc:equivalence_fail/4`:
//! `inequivalent arg 'KEY' for queue 'NAME' in vhost 'VHOST': received R but current is C`, where
//! a value present on both sides is shown bare (`'5000'`), a value present on one side only with
//! its type (`the value '5000' of type 'long'`), and an absent one as `none`. [`Inequivalent`]
//! carries those pieces; the gateway adds the virtual host, as it does for every routing error.

use std::fmt::{self, Write as _};

use super::value::{FieldTable, HeaderValue};

/// What was re-declared: RabbitMQ names the resource kind in the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeclaredKind {
    Queue,
    Exchange,
}

impl fmt::Display for DeclaredKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeclaredKind::Queue => "queue",
            DeclaredKind::Exchange => "exchange",
        })
    }
}

/// A re-declare that differs from what exists, in the pieces RabbitMQ's text is made of.
/// `received` and `current` are already worded (`'5000'`, `the value 'dlx' of type 'longstr'`,
/// `none`), so no Rust formatting of a value ever reaches a client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "inequivalent arg '{key}' for {kind} '{name}': received {received} but current is {current}"
)]
pub struct Inequivalent {
    pub kind: DeclaredKind,
    pub name: String,
    /// The property or argument: `durable`, `auto_delete`, `type`, `x-message-ttl`, ...
    pub key: String,
    pub received: String,
    pub current: String,
}

impl Inequivalent {
    /// RabbitMQ's full text (without the `PRECONDITION_FAILED - ` prefix the gateway adds).
    pub fn in_vhost(&self, vhost: &str) -> String {
        format!(
            "inequivalent arg '{}' for {} '{}' in vhost '{}': received {} but current is {}",
            self.key, self.kind, self.name, vhost, self.received, self.current
        )
    }
}

/// A declared property (`durable`, `auto_delete`, `internal`, an exchange's `type`): equal or
/// refused, both sides shown bare as RabbitMQ shows atoms (`'true'`, `'topic'`).
pub fn check_property<T: PartialEq + fmt::Display>(
    kind: DeclaredKind,
    name: &str,
    key: &str,
    current: T,
    received: T,
) -> Result<(), Inequivalent> {
    if current == received {
        return Ok(());
    }
    Err(Inequivalent {
        kind,
        name: name.to_string(),
        key: key.to_string(),
        received: format!("'{received}'"),
        current: format!("'{current}'"),
    })
}

/// The `keys` of two argument tables, compared in the order given (RabbitMQ reports the first
/// that differs). Keys not listed are not compared: unknown `x-*` arguments may differ.
pub fn check_arguments(
    kind: DeclaredKind,
    name: &str,
    current: &FieldTable,
    received: &FieldTable,
    keys: &[&str],
) -> Result<(), Inequivalent> {
    for key in keys {
        check_argument(kind, name, key, current.get(*key), received.get(*key))?;
    }
    Ok(())
}

/// One argument, present or absent on either side.
pub fn check_argument(
    kind: DeclaredKind,
    name: &str,
    key: &str,
    current: Option<&HeaderValue>,
    received: Option<&HeaderValue>,
) -> Result<(), Inequivalent> {
    if equivalent(current, received) {
        return Ok(());
    }
    // Present on both sides: RabbitMQ passes the bare values on; otherwise the typed ones.
    let both = current.is_some() && received.is_some();
    let word = |value: Option<&HeaderValue>| match value {
        None => "none".to_string(),
        Some(v) if both => format!("'{}'", erlang_value(v)),
        Some(v) => format!("the value '{}' of type '{}'", erlang_value(v), type_name(v)),
    };
    Err(Inequivalent {
        kind,
        name: name.to_string(),
        key: key.to_string(),
        received: word(received),
        current: word(current),
    })
}

/// RabbitMQ's equivalence of one argument (see the module doc).
pub fn equivalent(current: Option<&HeaderValue>, received: Option<&HeaderValue>) -> bool {
    match (current, received) {
        (None, None) => true,
        (Some(a), Some(b)) => Term::of(a).equals(&Term::of(b)),
        _ => false,
    }
}

/// A value as the Erlang term RabbitMQ compares: the type is gone, only the value's own kind
/// remains (an integer, a float, a binary, ...).
enum Term<'a> {
    Int(i128),
    Float(f64),
    Binary(&'a [u8]),
    Bool(bool),
    Void,
    Decimal(u8, u32),
    /// Arrays and tables keep the field types inside them (`{long, 1}`), so they compare
    /// structurally, types included.
    Nested(&'a HeaderValue),
}

impl<'a> Term<'a> {
    fn of(value: &'a HeaderValue) -> Self {
        use HeaderValue as V;
        match value {
            V::I8(v) => Term::Int((*v).into()),
            V::U8(v) => Term::Int((*v).into()),
            V::I16(v) => Term::Int((*v).into()),
            V::U16(v) => Term::Int((*v).into()),
            V::I32(v) => Term::Int((*v).into()),
            V::U32(v) => Term::Int((*v).into()),
            V::I64(v) => Term::Int((*v).into()),
            V::U64(v) | V::Timestamp(v) => Term::Int((*v).into()),
            V::F32(v) => Term::Float((*v).into()),
            V::F64(v) => Term::Float(*v),
            V::String(s) => Term::Binary(s.as_bytes()),
            V::Bytes(b) => Term::Binary(b),
            V::Bool(b) => Term::Bool(*b),
            V::Void => Term::Void,
            V::Decimal { scale, value } => Term::Decimal(*scale, *value),
            V::Array(_) | V::Table(_) => Term::Nested(value),
        }
    }

    fn equals(&self, other: &Term<'_>) -> bool {
        match (self, other) {
            (Term::Int(a), Term::Int(b)) => a == b,
            (Term::Float(a), Term::Float(b)) => a == b,
            (Term::Binary(a), Term::Binary(b)) => a == b,
            (Term::Bool(a), Term::Bool(b)) => a == b,
            (Term::Void, Term::Void) => true,
            (Term::Decimal(s, v), Term::Decimal(t, w)) => s == t && v == w,
            (Term::Nested(a), Term::Nested(b)) => a == b,
            _ => false,
        }
    }
}

/// RabbitMQ's name of a field type (`rabbit_binary_parser`). Porter keeps a 64-bit unsigned
/// value as `U64`, which RabbitMQ reads as `long`; a non-UTF-8 long string and a byte array are
/// both bytes here, named `binary`.
pub fn type_name(value: &HeaderValue) -> &'static str {
    use HeaderValue as V;
    match value {
        V::Void => "void",
        V::Bool(_) => "bool",
        V::I8(_) => "byte",
        V::U8(_) => "unsignedbyte",
        V::I16(_) => "short",
        V::U16(_) => "unsignedshort",
        V::I32(_) => "signedint",
        V::U32(_) => "unsignedint",
        V::I64(_) | V::U64(_) => "long",
        V::F32(_) => "float",
        V::F64(_) => "double",
        V::Decimal { .. } => "decimal",
        V::Timestamp(_) => "timestamp",
        V::String(_) => "longstr",
        V::Bytes(_) => "binary",
        V::Array(_) => "array",
        V::Table(_) => "table",
    }
}

/// A value as RabbitMQ prints it in these texts: strings as their text (`~ts`), everything else
/// as an Erlang term (`~tp`): `5000`, `true`, `1.0e3`, `[{signedint,1}]`.
pub fn erlang_value(value: &HeaderValue) -> String {
    match value {
        HeaderValue::String(s) => s.clone(),
        HeaderValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => erlang_term(other),
    }
}

/// A value as `~tp` prints it, strings included (`<<"text">>`).
pub fn erlang_term(value: &HeaderValue) -> String {
    let mut out = String::new();
    write_term(&mut out, value);
    out
}

/// Writes `value` as `~tp` prints the term RabbitMQ holds for it.
fn write_term(out: &mut String, value: &HeaderValue) {
    use HeaderValue as V;
    // Writing to a String cannot fail.
    let _ = match value {
        V::Void => write!(out, "undefined"),
        V::Bool(b) => write!(out, "{b}"),
        V::I8(v) => write!(out, "{v}"),
        V::U8(v) => write!(out, "{v}"),
        V::I16(v) => write!(out, "{v}"),
        V::U16(v) => write!(out, "{v}"),
        V::I32(v) => write!(out, "{v}"),
        V::U32(v) => write!(out, "{v}"),
        V::I64(v) => write!(out, "{v}"),
        V::U64(v) | V::Timestamp(v) => write!(out, "{v}"),
        V::F32(v) => write!(out, "{}", erlang_float((*v).into())),
        V::F64(v) => write!(out, "{}", erlang_float(*v)),
        V::Decimal { scale, value } => write!(out, "{{{scale},{value}}}"),
        V::String(s) => write!(out, "<<\"{}\">>", s.escape_default()),
        V::Bytes(b) => write!(
            out,
            "<<\"{}\">>",
            String::from_utf8_lossy(b).escape_default()
        ),
        V::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('{');
                out.push_str(type_name(item));
                out.push(',');
                write_term(out, item);
                out.push('}');
            }
            out.push(']');
            Ok(())
        }
        V::Table(table) => {
            out.push('[');
            for (i, (key, item)) in table.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    "{{<<\"{}\">>,{},",
                    key.escape_default(),
                    type_name(item)
                );
                write_term(out, item);
                out.push('}');
            }
            out.push(']');
            Ok(())
        }
    };
}

/// A float as Erlang's `~p` prints it (`io_lib_format:fwrite_g/1`): the shortest digits that read
/// back to the same value (Rust's and Erlang's are both shortest round-trip), placed as
/// `insert_decimal/3` places them: `0.5`, `100.0`, `1.0e3`, `1.0e-4`.
fn erlang_float(v: f64) -> String {
    if !v.is_finite() {
        // Erlang has no NaN or infinity; a peer cannot send one RabbitMQ would accept.
        return v.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    // "d.ddde±x": the digits S and the exponent of the first one.
    let scientific = format!("{:e}", v.abs());
    let (mantissa, exp) = scientific
        .split_once('e')
        .expect("`{:e}` always writes an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i64 = exp.parse().expect("`{:e}` writes an integer exponent");
    let len = digits.len() as i64;
    // The exponent of the last digit: v = digits × 10^place.
    let place = exp - len + 1;
    let exp_text = exp.to_string();
    let exp_cost = exp_text.len() as i64 + 2;
    let exponent_form = || {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{first}.{rest}e{exp_text}")
    };
    let body = if place < 0 {
        if exp >= 0 {
            let (whole, fraction) = digits.split_at((len + place) as usize);
            format!("{whole}.{fraction}")
        } else if 2 - place - len <= exp_cost {
            format!("0.{}{digits}", "0".repeat((-place - len) as usize))
        } else {
            exponent_form()
        }
    } else {
        let dot = i64::from(len == 1);
        if exp_cost + dot >= place + 2 && v.abs() < (1u64 << 53) as f64 {
            format!("{digits}{}.0", "0".repeat(place as usize))
        } else {
            exponent_form()
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use HeaderValue as V;

    fn every_integer_width(n: u8) -> Vec<V> {
        vec![
            V::I8(n as i8),
            V::U8(n),
            V::I16(n.into()),
            V::U16(n.into()),
            V::I32(n.into()),
            V::U32(n.into()),
            V::I64(n.into()),
            V::U64(n.into()),
            V::Timestamp(n.into()),
        ]
    }

    #[test]
    fn every_integer_width_pair_compares_by_value() {
        for a in every_integer_width(100) {
            for b in every_integer_width(100) {
                assert!(equivalent(Some(&a), Some(&b)), "{a:?} vs {b:?}");
            }
            for b in every_integer_width(101) {
                assert!(!equivalent(Some(&a), Some(&b)), "{a:?} vs {b:?}");
            }
        }
        // Beyond every narrower width, and across signedness.
        assert!(equivalent(
            Some(&V::U32(u32::MAX)),
            Some(&V::I64(u32::MAX.into()))
        ));
        assert!(equivalent(Some(&V::U64(1 << 40)), Some(&V::I64(1 << 40))));
        assert!(!equivalent(Some(&V::I8(-1)), Some(&V::U8(255))));
        assert!(!equivalent(Some(&V::I64(-1)), Some(&V::U64(u64::MAX))));
    }

    #[test]
    fn floats_compare_by_value_but_never_equal_an_integer() {
        assert!(equivalent(Some(&V::F32(1.5)), Some(&V::F64(1.5))));
        assert!(!equivalent(Some(&V::F32(0.1)), Some(&V::F64(0.1))));
        assert!(!equivalent(Some(&V::I32(5000)), Some(&V::F64(5000.0))));
        assert!(!equivalent(Some(&V::F64(1.0)), Some(&V::I64(1))));
        let d = V::Decimal { scale: 0, value: 5 };
        assert!(equivalent(Some(&d), Some(&d.clone())));
        assert!(!equivalent(Some(&d), Some(&V::I32(5))));
    }

    #[test]
    fn strings_bytes_booleans_and_absence() {
        assert!(equivalent(Some(&"dlx".into()), Some(&"dlx".into())));
        assert!(equivalent(
            Some(&"dlx".into()),
            Some(&V::Bytes(b"dlx".to_vec()))
        ));
        assert!(!equivalent(Some(&"dlx".into()), Some(&"dlx2".into())));
        assert!(!equivalent(Some(&"5000".into()), Some(&V::I32(5000))));
        assert!(!equivalent(Some(&V::Bool(true)), Some(&V::I8(1))));
        assert!(equivalent(Some(&V::Bool(true)), Some(&V::Bool(true))));
        assert!(equivalent(None, None));
        assert!(!equivalent(None, Some(&V::I32(1))));
        assert!(!equivalent(Some(&V::I32(1)), None));
        assert!(equivalent(Some(&V::Void), Some(&V::Void)));
        // Nested values keep their types, as in RabbitMQ's terms.
        assert!(equivalent(
            Some(&V::Array(vec![V::I32(1)])),
            Some(&V::Array(vec![V::I32(1)]))
        ));
        assert!(!equivalent(
            Some(&V::Array(vec![V::I32(1)])),
            Some(&V::Array(vec![V::I64(1)]))
        ));
    }

    #[test]
    fn only_listed_keys_are_compared() {
        let current: FieldTable = [("x-custom".to_string(), V::I32(1))].into_iter().collect();
        let received: FieldTable = [
            ("x-custom".to_string(), V::I32(2)),
            ("x-other".to_string(), "y".into()),
        ]
        .into_iter()
        .collect();
        let q = DeclaredKind::Queue;
        assert_eq!(
            check_arguments(q, "q", &current, &received, &["x-message-ttl"]),
            Ok(())
        );
        assert!(check_arguments(q, "q", &current, &received, &["x-custom"]).is_err());
    }

    #[test]
    fn texts_are_rabbitmqs() {
        let q = DeclaredKind::Queue;
        let both = check_argument(
            q,
            "q",
            "x-message-ttl",
            Some(&V::I64(5000)),
            Some(&V::I32(6000)),
        )
        .unwrap_err();
        assert_eq!(
            both.in_vhost("/"),
            "inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received '6000' but \
             current is '5000'"
        );
        let added = check_argument(q, "q", "x-max-length", None, Some(&V::I16(10))).unwrap_err();
        assert_eq!(
            added.in_vhost("v"),
            "inequivalent arg 'x-max-length' for queue 'q' in vhost 'v': received the value \
             '10' of type 'short' but current is none"
        );
        let removed = check_argument(
            DeclaredKind::Exchange,
            "e",
            "alternate-exchange",
            Some(&"ae".into()),
            None,
        )
        .unwrap_err();
        assert_eq!(
            removed.in_vhost("/"),
            "inequivalent arg 'alternate-exchange' for exchange 'e' in vhost '/': received none \
             but current is the value 'ae' of type 'longstr'"
        );
        let flag = check_property(q, "q", "durable", true, false).unwrap_err();
        assert_eq!(
            flag.in_vhost("/"),
            "inequivalent arg 'durable' for queue 'q' in vhost '/': received 'false' but \
             current is 'true'"
        );
    }

    #[test]
    fn values_print_as_erlang_terms() {
        assert_eq!(erlang_value(&V::F64(1000.0)), "1.0e3");
        assert_eq!(erlang_value(&V::F64(100.0)), "100.0");
        assert_eq!(erlang_value(&V::F64(0.5)), "0.5");
        assert_eq!(erlang_value(&V::F64(-2.5)), "-2.5");
        assert_eq!(erlang_value(&V::F64(1500.0)), "1.5e3");
        assert_eq!(erlang_value(&V::F64(150.0)), "150.0");
        assert_eq!(erlang_value(&V::F64(0.001)), "0.001");
        assert_eq!(erlang_value(&V::F64(0.0001)), "1.0e-4");
        assert_eq!(erlang_value(&V::F64(0.00015)), "1.5e-4");
        assert_eq!(erlang_value(&V::F64(12345.678)), "12345.678");
        assert_eq!(
            erlang_value(&V::F64(9007199254740992.0)),
            "9.007199254740992e15"
        );
        assert_eq!(erlang_value(&V::Bool(false)), "false");
        assert_eq!(erlang_value(&"text".into()), "text");
        assert_eq!(
            erlang_value(&V::Array(vec![V::I32(1), "x".into()])),
            "[{signedint,1},{longstr,<<\"x\">>}]"
        );
        let table: FieldTable = [("k".to_string(), V::I64(2))].into_iter().collect();
        assert_eq!(erlang_value(&V::Table(table)), "[{<<\"k\">>,long,2}]");
    }
}
