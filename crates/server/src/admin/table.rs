//! Human output: left-aligned columns under upper-case headings, as `kafka-consumer-groups` and
//! `rabbitmqctl` print them.

use serde_json::Value;

/// One cell of a JSON object: strings bare, numbers and booleans as written, missing as `-`.
pub fn cell(item: &Value, key: &str) -> String {
    match key.split('.').try_fold(item, |value, part| value.get(part)) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `rows` under `headings`, each column as wide as its widest cell.
pub fn render(headings: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headings.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, value) in widths.iter_mut().zip(row) {
            *width = (*width).max(value.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (value, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(value);
            } else {
                text.push_str(&format!("{value:<width$}  "));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut out = line(headings.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A table of `items` (a JSON array) with one column per (heading, key).
pub fn of_items(columns: &[(&str, &str)], items: &Value) -> String {
    let headings: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    let rows: Vec<Vec<String>> = items
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|item| columns.iter().map(|(_, key)| cell(item, key)).collect())
        .collect();
    render(&headings, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let items = json!([{"name": "orders", "messages": 3}, {"name": "q", "messages": null}]);
        let text = of_items(&[("NAME", "name"), ("MESSAGES", "messages")], &items);
        assert_eq!(text, "NAME    MESSAGES\norders  3\nq       -\n");
    }
}
