//! [`HeaderValue`]: a protocol-neutral field value, enough to carry AMQP 0-9-1 field tables
//! (message headers, binding and exchange arguments) without depending on a codec crate. MQTT user
//! properties and STOMP headers are strings and fit as [`HeaderValue::String`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A field table: message headers, binding arguments, exchange arguments. A `BTreeMap` so that
/// iteration (and so routing, serialisation and comparison) is deterministic.
pub type FieldTable = BTreeMap<String, HeaderValue>;

/// A message's headers as seen by a headers exchange.
pub type Headers = FieldTable;

/// One field value. Integer widths and signedness are kept so a gateway can echo a value back with
/// the type it came in; matching ignores them (see [`HeaderValue::matches`]).
///
/// Equality (`==`) is structural and exact, floats compared by bit pattern, so it is a true `Eq`:
/// binding identity and declare-equivalence rely on it, and metadata commands derive `Eq`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum HeaderValue {
    /// AMQP `V`: no value. In a headers binding it means "the key is present, any value".
    Void,
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    /// AMQP `D`: `value / 10^scale`. Compared as the pair, as RabbitMQ does.
    Decimal {
        scale: u8,
        value: u32,
    },
    /// AMQP `T`: seconds since the epoch. An integer for matching.
    Timestamp(u64),
    /// A long string that is valid UTF-8 (nearly always, in practice).
    String(String),
    /// A long string that is not UTF-8, or AMQP `x` byte array. Matches a `String` with the same
    /// bytes: on the wire both are just bytes.
    Bytes(Vec<u8>),
    Array(Vec<HeaderValue>),
    Table(FieldTable),
}

/// A number reduced to one domain so that widths and int/float compare as RabbitMQ's Erlang `==`
/// does (`1 == 1.0`).
#[derive(Clone, Copy, PartialEq)]
enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    fn equals(self, other: Number) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Float(a), Number::Float(b)) => a == b,
            (Number::Int(i), Number::Float(f)) | (Number::Float(f), Number::Int(i)) => {
                f.fract() == 0.0 && f.is_finite() && (i as f64) == f && (f as i128) == i
            }
        }
    }
}

impl HeaderValue {
    /// The value as text, if it is a string (or UTF-8 bytes). Used for arguments such as
    /// `x-match` and `alternate-exchange`, which RabbitMQ requires to be long strings.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            HeaderValue::String(s) => Some(s),
            HeaderValue::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value as an integer, if it is one (of any width, or a timestamp).
    pub fn as_i64(&self) -> Option<i64> {
        match self.number()? {
            Number::Int(i) => i64::try_from(i).ok(),
            Number::Float(_) => None,
        }
    }

    fn number(&self) -> Option<Number> {
        Some(match *self {
            HeaderValue::I8(v) => Number::Int(v.into()),
            HeaderValue::U8(v) => Number::Int(v.into()),
            HeaderValue::I16(v) => Number::Int(v.into()),
            HeaderValue::U16(v) => Number::Int(v.into()),
            HeaderValue::I32(v) => Number::Int(v.into()),
            HeaderValue::U32(v) => Number::Int(v.into()),
            HeaderValue::I64(v) => Number::Int(v.into()),
            HeaderValue::U64(v) | HeaderValue::Timestamp(v) => Number::Int(v.into()),
            HeaderValue::F32(v) => Number::Float(v.into()),
            HeaderValue::F64(v) => Number::Float(v),
            _ => return None,
        })
    }

    fn bytes(&self) -> Option<&[u8]> {
        match self {
            HeaderValue::String(s) => Some(s.as_bytes()),
            HeaderValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// Whether a message header value satisfies a binding value, by value and not by type, as
    /// RabbitMQ's headers exchange compares them (Erlang `==`): `I32(1)` matches `I64(1)` and
    /// `F64(1.0)`, a string matches bytes with the same content, NaN matches nothing.
    pub fn matches(&self, other: &HeaderValue) -> bool {
        if let (Some(a), Some(b)) = (self.number(), other.number()) {
            return a.equals(b);
        }
        if let (Some(a), Some(b)) = (self.bytes(), other.bytes()) {
            return a == b;
        }
        match (self, other) {
            (HeaderValue::Void, HeaderValue::Void) => true,
            (HeaderValue::Bool(a), HeaderValue::Bool(b)) => a == b,
            (
                HeaderValue::Decimal { scale, value },
                HeaderValue::Decimal {
                    scale: other_scale,
                    value: other_value,
                },
            ) => scale == other_scale && value == other_value,
            (HeaderValue::Array(a), HeaderValue::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.matches(y))
            }
            (HeaderValue::Table(a), HeaderValue::Table(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka == kb && va.matches(vb))
            }
            _ => false,
        }
    }
}

impl PartialEq for HeaderValue {
    fn eq(&self, other: &Self) -> bool {
        use HeaderValue::*;
        match (self, other) {
            (Void, Void) => true,
            (Bool(a), Bool(b)) => a == b,
            (I8(a), I8(b)) => a == b,
            (U8(a), U8(b)) => a == b,
            (I16(a), I16(b)) => a == b,
            (U16(a), U16(b)) => a == b,
            (I32(a), I32(b)) => a == b,
            (U32(a), U32(b)) => a == b,
            (I64(a), I64(b)) => a == b,
            (U64(a), U64(b)) => a == b,
            (F32(a), F32(b)) => a.to_bits() == b.to_bits(),
            (F64(a), F64(b)) => a.to_bits() == b.to_bits(),
            (
                Decimal { scale, value },
                Decimal {
                    scale: other_scale,
                    value: other_value,
                },
            ) => scale == other_scale && value == other_value,
            (Timestamp(a), Timestamp(b)) => a == b,
            (String(a), String(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (Table(a), Table(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for HeaderValue {}

/// Consistent with `==`: floats hash by bit pattern.
impl std::hash::Hash for HeaderValue {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        use HeaderValue::*;
        std::mem::discriminant(self).hash(state);
        match self {
            Void => {}
            Bool(v) => v.hash(state),
            I8(v) => v.hash(state),
            U8(v) => v.hash(state),
            I16(v) => v.hash(state),
            U16(v) => v.hash(state),
            I32(v) => v.hash(state),
            U32(v) => v.hash(state),
            I64(v) => v.hash(state),
            U64(v) | Timestamp(v) => v.hash(state),
            F32(v) => v.to_bits().hash(state),
            F64(v) => v.to_bits().hash(state),
            Decimal { scale, value } => (scale, value).hash(state),
            String(v) => v.hash(state),
            Bytes(v) => v.hash(state),
            Array(v) => v.hash(state),
            Table(v) => v.hash(state),
        }
    }
}

impl From<&str> for HeaderValue {
    fn from(s: &str) -> Self {
        HeaderValue::String(s.to_string())
    }
}

impl From<String> for HeaderValue {
    fn from(s: String) -> Self {
        HeaderValue::String(s)
    }
}

#[cfg(test)]
mod tests {
    use super::HeaderValue as V;

    #[test]
    fn equality_is_exact_and_reflexive_for_nan() {
        assert_eq!(V::F64(f64::NAN), V::F64(f64::NAN));
        assert_ne!(V::I32(1), V::I64(1));
        assert_ne!(V::String("a".into()), V::Bytes(b"a".to_vec()));
        assert_ne!(V::F64(0.0), V::F64(-0.0));
    }

    #[test]
    fn matching_is_by_value_across_types() {
        assert!(V::I32(1).matches(&V::I64(1)));
        assert!(V::U8(7).matches(&V::Timestamp(7)));
        assert!(V::I16(2).matches(&V::F64(2.0)));
        assert!(!V::I16(2).matches(&V::F64(2.5)));
        assert!(!V::F64(f64::NAN).matches(&V::F64(f64::NAN)));
        assert!(V::String("ab".into()).matches(&V::Bytes(b"ab".to_vec())));
        assert!(!V::String("1".into()).matches(&V::I32(1)));
        assert!(!V::Bool(true).matches(&V::I8(1)));
        assert!(V::Void.matches(&V::Void));
        assert!(
            V::Array(vec![V::I8(1), "x".into()]).matches(&V::Array(vec![V::I64(1), "x".into()]))
        );
        assert!(!V::Array(vec![V::I8(1)]).matches(&V::Array(vec![])));
        let a = [("k".to_string(), V::U32(3))].into_iter().collect();
        let b = [("k".to_string(), V::I64(3))].into_iter().collect();
        assert!(V::Table(a).matches(&V::Table(b)));
        let d = V::Decimal {
            scale: 2,
            value: 100,
        };
        assert!(d.matches(&d.clone()));
        assert!(!d.matches(&V::Decimal {
            scale: 1,
            value: 10
        }));
    }

    #[test]
    fn serde_round_trip() {
        let v = V::Table(
            [
                (
                    "a".to_string(),
                    V::Array(vec![V::Void, V::F32(1.5), V::Bytes(vec![0, 255])]),
                ),
                ("d".to_string(), V::Decimal { scale: 1, value: 5 }),
            ]
            .into_iter()
            .collect(),
        );
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<V>(&json).unwrap(), v);
    }
}
