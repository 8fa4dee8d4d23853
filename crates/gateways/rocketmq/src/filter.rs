//! A receive's filter expression, parsed once per request.

use porter_core::topic_message::TopicMessage;

use crate::error::Refusal;
use crate::proto::{Code, FilterExpression, FilterType};

pub enum Filter {
    All,
    Tags(Vec<String>),
}

impl Filter {
    pub fn parse(expression: Option<&FilterExpression>) -> Result<Filter, Refusal> {
        let Some(expression) = expression else {
            return Ok(Filter::All);
        };
        let text = expression.expression.trim();
        match FilterType::try_from(expression.r#type).unwrap_or(FilterType::Tag) {
            FilterType::Sql => Err(Refusal::new(
                Code::Unsupported,
                "SQL filters are not supported yet",
            )),
            _ if text.is_empty() || text == "*" => Ok(Filter::All),
            _ => Ok(Filter::Tags(
                text.split("||").map(|t| t.trim().to_string()).collect(),
            )),
        }
    }

    pub fn matches(&self, message: &TopicMessage) -> bool {
        match self {
            Filter::All => true,
            Filter::Tags(tags) => message.tag.as_ref().is_some_and(|t| tags.contains(t)),
        }
    }
}
