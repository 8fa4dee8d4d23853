//! Pagination and filtering of every list, with RabbitMQ's query parameters: `page` (from 1),
//! `page_size` (at most [`PAGE_SIZE_MAX`]), `name` (a substring the item's name must contain).
//! Without `page` a list is the bare JSON array RabbitMQ returns; with it, RabbitMQ's page
//! object (`items`, `page`, `page_count`, `page_size`, `filtered_count`, `item_count`,
//! `total_count`).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// Largest page: RabbitMQ's limit too.
pub const PAGE_SIZE_MAX: usize = 500;
/// Page size when a request gives `page` without `page_size`.
pub const PAGE_SIZE_DEFAULT: usize = 100;

/// The query parameters a list takes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page number from 1; without it the answer is a bare array of every item.
    pub page: Option<usize>,
    /// Items per page (default 100, at most 500).
    pub page_size: Option<usize>,
    /// Only items whose name contains this.
    pub name: Option<String>,
    /// Refused when true: regular-expression filters are not supported.
    pub use_regex: Option<bool>,
}

impl ListQuery {
    /// `items` (already in their order) filtered by name and paged, serialised as it goes: one
    /// item's `Value` at a time, so a listing of 100k queues costs its output bytes (~230 per
    /// queue), not a tree of values (which took +290 MiB, BENCHMARKS.md).
    pub fn apply<T>(
        &self,
        items: Vec<T>,
        name_of: impl Fn(&T) -> &str,
        to_json: impl Fn(&T) -> Value,
    ) -> Result<JsonBody, ApiError> {
        if self.use_regex == Some(true) {
            return Err(ApiError::bad_request(
                "regular-expression name filters are not supported; name= matches a substring",
            ));
        }
        let total = items.len();
        let filtered: Vec<T> = match self.name.as_deref().filter(|n| !n.is_empty()) {
            Some(wanted) => items
                .into_iter()
                .filter(|item| name_of(item).contains(wanted))
                .collect(),
            None => items,
        };
        let Some(page) = self.page else {
            return Ok(JsonBody(array(filtered.iter(), &to_json)));
        };
        let size = self.page_size.unwrap_or(PAGE_SIZE_DEFAULT);
        if page == 0 || size == 0 || size > PAGE_SIZE_MAX {
            return Err(ApiError::bad_request(format!(
                "page must be 1 or more and page_size 1 to {PAGE_SIZE_MAX}"
            )));
        }
        let page_count = filtered.len().div_ceil(size).max(1);
        if page > page_count {
            return Err(ApiError::bad_request(format!(
                "page {page} is past the last page, {page_count}"
            )));
        }
        let shown = filtered.iter().skip((page - 1) * size).take(size);
        let item_count = shown.len();
        let mut out = format!(
            "{{\"filtered_count\":{},\"item_count\":{item_count},\"page\":{page},\"page_count\":{page_count},\"page_size\":{size},\"total_count\":{total},\"items\":",
            filtered.len()
        )
        .into_bytes();
        out.extend(array(shown, &to_json));
        out.push(b'}');
        Ok(JsonBody(out))
    }
}

/// A JSON array of `items`, each serialised and dropped before the next.
fn array<'a, T: 'a>(items: impl Iterator<Item = &'a T>, to_json: &impl Fn(&T) -> Value) -> Vec<u8> {
    let mut out = vec![b'['];
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing a Value to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &to_json(item));
    }
    out.push(b']');
    out
}

/// A serialised JSON answer.
#[derive(Debug)]
pub struct JsonBody(pub Vec<u8>);

impl JsonBody {
    /// The JSON value again (tests).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.0).unwrap_or(Value::Null)
    }
}

impl IntoResponse for JsonBody {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("q{i:03}")).collect()
    }

    fn list(query: ListQuery, n: usize) -> Result<Value, ApiError> {
        query
            .apply(names(n), |s| s.as_str(), |s| json!(s))
            .map(|body| body.value())
    }

    #[test]
    fn without_a_page_the_list_is_a_bare_array() {
        let all = list(ListQuery::default(), 3).unwrap();
        assert_eq!(all, json!(["q000", "q001", "q002"]));
    }

    #[test]
    fn pages_and_filters_as_rabbitmq_does() {
        let query = ListQuery {
            page: Some(2),
            page_size: Some(4),
            name: Some("q00".into()),
            ..ListQuery::default()
        };
        let page = list(query, 20).unwrap();
        assert_eq!(page["filtered_count"], 10);
        assert_eq!(page["total_count"], 20);
        assert_eq!(page["page_count"], 3);
        assert_eq!(page["items"], json!(["q004", "q005", "q006", "q007"]));
    }

    #[test]
    fn bad_pages_are_400() {
        for (page, size) in [(0, 10), (1, 0), (1, PAGE_SIZE_MAX + 1), (9, 10)] {
            let query = ListQuery {
                page: Some(page),
                page_size: Some(size),
                ..ListQuery::default()
            };
            assert!(list(query, 5).is_err(), "page {page} size {size}");
        }
    }
}
