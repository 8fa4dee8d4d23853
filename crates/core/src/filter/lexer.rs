//! The SQL filter's tokens, after RocketMQ's `SelectorParser.jj`: case-insensitive keywords,
//! identifiers `[A-Za-z_$][A-Za-z0-9_$]*`, single-quoted strings (`''` is a quote), integers
//! (an optional `L` suffix, as Java's), decimals (`5.5`, `5.`, `.5`, `5E10`), the operators
//! `= <> > >= < <= ( ) , + -`, whitespace, `-- line` and `/* block */` comments.
//!
//! Every token carries its byte offset so an error can name the column it is at.

use super::FilterError;

/// A reserved word. RocketMQ reserves exactly these; any other word is a property name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Keyword {
    Not,
    And,
    Or,
    Between,
    In,
    True,
    False,
    Null,
    Is,
    Contains,
    StartsWith,
    EndsWith,
}

impl Keyword {
    fn from_word(word: &str) -> Option<Self> {
        const WORDS: [(&str, Keyword); 12] = [
            ("NOT", Keyword::Not),
            ("AND", Keyword::And),
            ("OR", Keyword::Or),
            ("BETWEEN", Keyword::Between),
            ("IN", Keyword::In),
            ("TRUE", Keyword::True),
            ("FALSE", Keyword::False),
            ("NULL", Keyword::Null),
            ("IS", Keyword::Is),
            ("CONTAINS", Keyword::Contains),
            ("STARTSWITH", Keyword::StartsWith),
            ("ENDSWITH", Keyword::EndsWith),
        ];
        WORDS
            .iter()
            .find(|(text, _)| text.eq_ignore_ascii_case(word))
            .map(|&(_, keyword)| keyword)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Token<'a> {
    Keyword(Keyword),
    Ident(&'a str),
    /// The string's value, quotes removed and `''` unescaped.
    Str(String),
    Int(i64),
    Float(f64),
    LParen,
    RParen,
    Comma,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Plus,
    Minus,
    End,
}

impl Token<'_> {
    /// How an error message names this token.
    pub(super) fn describe(&self) -> String {
        match self {
            Token::Keyword(k) => format!("{k:?}").to_uppercase(),
            Token::Ident(name) => format!("'{name}'"),
            Token::Str(_) => "a string".to_owned(),
            Token::Int(_) | Token::Float(_) => "a number".to_owned(),
            Token::LParen => "'('".to_owned(),
            Token::RParen => "')'".to_owned(),
            Token::Comma => "','".to_owned(),
            Token::Eq => "'='".to_owned(),
            Token::Ne => "'<>'".to_owned(),
            Token::Gt => "'>'".to_owned(),
            Token::Ge => "'>='".to_owned(),
            Token::Lt => "'<'".to_owned(),
            Token::Le => "'<='".to_owned(),
            Token::Plus => "'+'".to_owned(),
            Token::Minus => "'-'".to_owned(),
            Token::End => "the end of the expression".to_owned(),
        }
    }
}

/// Splits `text` into tokens with their byte offsets; the last is always [`Token::End`].
pub(super) fn tokenize(text: &str) -> Result<Vec<(Token<'_>, usize)>, FilterError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                i += 1;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                // RocketMQ's line comment must end with a line break.
                match bytes[i..].iter().position(|&b| b == b'\n' || b == b'\r') {
                    Some(end) => i += end + 1,
                    None => return Err(FilterError::syntax(text, start, "unterminated comment")),
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                match text[i + 2..].find("*/") {
                    Some(end) => i += 2 + end + 2,
                    None => return Err(FilterError::syntax(text, start, "unterminated comment")),
                }
                continue;
            }
            b'\'' => {
                let mut value = String::new();
                i += 1;
                loop {
                    let Some(rel) = text[i..].find('\'') else {
                        return Err(FilterError::syntax(text, start, "unterminated string"));
                    };
                    value.push_str(&text[i..i + rel]);
                    i += rel + 1;
                    if bytes.get(i) == Some(&b'\'') {
                        value.push('\'');
                        i += 1;
                    } else {
                        break;
                    }
                }
                tokens.push((Token::Str(value), start));
                continue;
            }
            b'0'..=b'9' | b'.' => {
                let (token, end) = number(text, start)?;
                tokens.push((token, start));
                i = end;
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'$' => {
                while i < bytes.len() && is_ident_byte(bytes[i]) {
                    i += 1;
                }
                let word = &text[start..i];
                let token = match Keyword::from_word(word) {
                    Some(keyword) => Token::Keyword(keyword),
                    None => Token::Ident(word),
                };
                tokens.push((token, start));
                continue;
            }
            _ => {}
        }
        let next = bytes.get(i + 1).copied();
        let (token, len) = match (c, next) {
            (b'(', _) => (Token::LParen, 1),
            (b')', _) => (Token::RParen, 1),
            (b',', _) => (Token::Comma, 1),
            (b'=', _) => (Token::Eq, 1),
            (b'<', Some(b'>')) => (Token::Ne, 2),
            (b'<', Some(b'=')) => (Token::Le, 2),
            (b'<', _) => (Token::Lt, 1),
            (b'>', Some(b'=')) => (Token::Ge, 2),
            (b'>', _) => (Token::Gt, 1),
            (b'+', _) => (Token::Plus, 1),
            (b'-', _) => (Token::Minus, 1),
            _ => {
                let ch = text[start..].chars().next().unwrap_or('?');
                return Err(FilterError::syntax(
                    text,
                    start,
                    format!("unexpected character {ch:?}"),
                ));
            }
        };
        tokens.push((token, start));
        i += len;
    }
    tokens.push((Token::End, text.len()));
    Ok(tokens)
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// A numeric literal at `start`: digits, an optional fraction and exponent (a decimal), or an
/// integer with an optional `L`. Returns the token and the offset after it.
fn number(text: &str, start: usize) -> Result<(Token<'static>, usize), FilterError> {
    let bytes = text.as_bytes();
    let digits = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = digits(start);
    let mut decimal = false;
    if bytes.get(i) == Some(&b'.') {
        decimal = true;
        i = digits(i + 1);
    }
    if i == start + 1 && decimal {
        return Err(FilterError::syntax(text, start, "unexpected character '.'"));
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let end = digits(j);
        if end == j {
            return Err(FilterError::syntax(text, start, "malformed number"));
        }
        decimal = true;
        i = end;
    }
    let literal = &text[start..i];
    if decimal {
        let value: f64 = literal
            .parse()
            .map_err(|_| FilterError::syntax(text, start, "malformed number"))?;
        if !value.is_finite() {
            return Err(FilterError::syntax(
                text,
                start,
                format!("{literal} is out of range"),
            ));
        }
        return Ok((Token::Float(value), i));
    }
    let value: i64 = literal.parse().map_err(|_| {
        FilterError::syntax(
            text,
            start,
            format!("{literal} is out of range of a 64-bit integer"),
        )
    })?;
    if matches!(bytes.get(i), Some(b'l' | b'L')) {
        i += 1;
    }
    if bytes.get(i).is_some_and(|&b| is_ident_byte(b) || b == b'.') {
        return Err(FilterError::syntax(text, start, "malformed number"));
    }
    Ok((Token::Int(value), i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Token<'_>> {
        tokenize(text)
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    #[test]
    fn tokens_and_offsets() {
        assert_eq!(
            kinds("a>=5 AND b<>'x''y' or c in (1.5, .5, 5., 2E3, 7L)"),
            vec![
                Token::Ident("a"),
                Token::Ge,
                Token::Int(5),
                Token::Keyword(Keyword::And),
                Token::Ident("b"),
                Token::Ne,
                Token::Str("x'y".into()),
                Token::Keyword(Keyword::Or),
                Token::Ident("c"),
                Token::Keyword(Keyword::In),
                Token::LParen,
                Token::Float(1.5),
                Token::Comma,
                Token::Float(0.5),
                Token::Comma,
                Token::Float(5.0),
                Token::Comma,
                Token::Float(2000.0),
                Token::Comma,
                Token::Int(7),
                Token::RParen,
                Token::End,
            ]
        );
        let offsets: Vec<usize> = tokenize("a  = 1").unwrap().iter().map(|t| t.1).collect();
        assert_eq!(offsets, vec![0, 3, 5, 6]);
    }

    #[test]
    fn comments_are_skipped() {
        assert_eq!(
            kinds("a /* x */ = -- y\n 1"),
            vec![Token::Ident("a"), Token::Eq, Token::Int(1), Token::End]
        );
    }

    #[test]
    fn lexical_errors_name_the_column() {
        let cases = [
            ("a = 'x", "unterminated string at column 5"),
            ("a = 1 -- no newline", "unterminated comment at column 7"),
            ("a /* x", "unterminated comment at column 3"),
            ("a = #", "unexpected character '#' at column 5"),
            (
                "a = 99999999999999999999",
                "out of range of a 64-bit integer",
            ),
            ("a = 1e999", "1e999 is out of range"),
            ("a = 1e", "malformed number at column 5"),
            ("a = 12abc", "malformed number at column 5"),
            ("é = 1", "unexpected character 'é' at column 1"),
        ];
        for (text, expected) in cases {
            let error = tokenize(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
