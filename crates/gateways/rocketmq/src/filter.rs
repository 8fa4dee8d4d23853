//! A receive's filter expression, compiled once per request by the core's filter
//! ([`porter_core::filter`]: RocketMQ's tag expressions and SQL92); a bad expression is
//! ILLEGAL_FILTER_EXPRESSION with the parser's message.

use porter_core::filter::{FilterExpression as Compiled, FilterKind};

use crate::error::Refusal;
use crate::proto::{Code, FilterExpression, FilterType};

pub fn compile(expression: Option<&FilterExpression>) -> Result<Compiled, Refusal> {
    let Some(expression) = expression else {
        return Ok(Compiled::all());
    };
    let kind = match FilterType::try_from(expression.r#type).unwrap_or(FilterType::Tag) {
        FilterType::Sql => FilterKind::Sql,
        _ => FilterKind::Tag,
    };
    Compiled::parse(kind, &expression.expression)
        .map_err(|e| Refusal::new(Code::IllegalFilterExpression, e.to_string()))
}
