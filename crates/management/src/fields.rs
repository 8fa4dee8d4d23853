//! AMQP field tables (queue and exchange arguments, binding arguments) as JSON, both ways, the
//! way RabbitMQ's API writes them: numbers as numbers, strings as strings, tables as objects.

use porter_core::routing::value::{FieldTable, HeaderValue};
use serde_json::{Map, Number, Value};

use crate::error::ApiError;

/// Deepest nesting of tables and arrays accepted in a request's arguments.
pub const ARGUMENT_DEPTH_MAX: usize = 8;

/// A field table as a JSON object.
pub fn to_json(table: &FieldTable) -> Value {
    Value::Object(
        table
            .iter()
            .map(|(key, value)| (key.clone(), value_to_json(value)))
            .collect(),
    )
}

fn value_to_json(value: &HeaderValue) -> Value {
    match value {
        HeaderValue::Void => Value::Null,
        HeaderValue::Bool(b) => Value::Bool(*b),
        HeaderValue::I8(n) => (*n).into(),
        HeaderValue::U8(n) => (*n).into(),
        HeaderValue::I16(n) => (*n).into(),
        HeaderValue::U16(n) => (*n).into(),
        HeaderValue::I32(n) => (*n).into(),
        HeaderValue::U32(n) => (*n).into(),
        HeaderValue::I64(n) => (*n).into(),
        HeaderValue::U64(n) => (*n).into(),
        HeaderValue::F32(n) => Number::from_f64(f64::from(*n)).map_or(Value::Null, Value::Number),
        HeaderValue::F64(n) => Number::from_f64(*n).map_or(Value::Null, Value::Number),
        HeaderValue::Decimal { scale, value } => {
            Number::from_f64(f64::from(*value) / 10f64.powi(i32::from(*scale)))
                .map_or(Value::Null, Value::Number)
        }
        HeaderValue::Timestamp(t) => (*t).into(),
        HeaderValue::String(s) => Value::String(s.clone()),
        HeaderValue::Bytes(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        HeaderValue::Table(t) => to_json(t),
        HeaderValue::Array(items) => Value::Array(items.iter().map(value_to_json).collect()),
    }
}

/// A request's `arguments` object as a field table: integers become AMQP longs (`l`), as
/// RabbitMQ stores them, so `x-max-length` declared here equals one declared by a client.
pub fn from_json(value: Option<&Value>) -> Result<FieldTable, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(FieldTable::new()),
        Some(Value::Object(map)) => table_from(map, 0),
        Some(_) => Err(ApiError::bad_request("arguments must be a JSON object")),
    }
}

fn table_from(map: &Map<String, Value>, depth: usize) -> Result<FieldTable, ApiError> {
    map.iter()
        .map(|(key, value)| Ok((key.clone(), value_from(value, depth + 1)?)))
        .collect()
}

fn value_from(value: &Value, depth: usize) -> Result<HeaderValue, ApiError> {
    if depth > ARGUMENT_DEPTH_MAX {
        return Err(ApiError::bad_request("arguments nest too deeply"));
    }
    Ok(match value {
        Value::Null => HeaderValue::Void,
        Value::Bool(b) => HeaderValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => HeaderValue::I64(i),
            (None, Some(f)) => HeaderValue::F64(f),
            (None, None) => return Err(ApiError::bad_request("number out of range")),
        },
        Value::String(s) => HeaderValue::String(s.clone()),
        Value::Array(items) => HeaderValue::Array(
            items
                .iter()
                .map(|item| value_from(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => HeaderValue::Table(table_from(map, depth)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_round_trip_as_rabbitmq_writes_them() {
        let request = json!({"x-max-length": 10, "x-queue-type": "classic", "x-flag": true,
            "x-ratio": 0.5, "nested": {"a": [1, "b"]}});
        let table = from_json(Some(&request)).unwrap();
        assert_eq!(table["x-max-length"], HeaderValue::I64(10));
        assert_eq!(to_json(&table), request);
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(from_json(Some(&json!([1]))).is_err());
        let mut deep = json!(1);
        for _ in 0..20 {
            deep = json!({ "k": deep });
        }
        assert!(from_json(Some(&deep)).is_err());
        assert!(from_json(None).unwrap().is_empty());
    }
}
