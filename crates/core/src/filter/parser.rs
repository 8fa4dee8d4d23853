//! The SQL filter's parser: recursive descent over RocketMQ's grammar (`SelectorParser.jj`),
//! with its precedence, loosest first:
//!
//! ```text
//! or         := and (OR and)*
//! and        := equality (AND equality)*
//! equality   := comparison ( '=' comparison | '<>' comparison | IS [NOT] NULL )*
//! comparison := unary ( ('>'|'>='|'<'|'<=') unary
//!                     | [NOT] (CONTAINS|STARTSWITH|ENDSWITH) string
//!                     | [NOT] BETWEEN unary AND unary
//!                     | [NOT] IN '(' string (',' string)* ')' )*
//! unary      := '+' unary | '-' unary | NOT unary | primary
//! primary    := literal | property | '(' or ')'
//! ```
//!
//! As in RocketMQ (and JMS selectors), `NOT` binds tighter than comparisons: `NOT a = 1` is
//! `(NOT a) = 1`, which is never TRUE; write `NOT (a = 1)`.
//!
//! The parser also makes RocketMQ's compile-time checks (only numbers and properties are
//! ordered, `IN` needs a property, `BETWEEN`'s constant bounds are in order, `AND`/`OR`/`NOT`
//! need conditions), so an expression RocketMQ refuses is refused here too, with the column.
//!
//! Nesting is bounded by [`FILTER_DEPTH_MAX`] both while parsing (each parenthesis or unary
//! operator is one recursion) and in the built tree (evaluation and drop recurse over it), so a
//! hostile expression cannot exhaust a thread's stack.

use super::expr::{CmpOp, Expr, TextOp};
use super::lexer::{tokenize, Keyword, Token};
use super::{FilterError, FILTER_DEPTH_MAX};

/// Parses a SQL filter expression (already checked for length and emptiness).
pub(super) fn parse(text: &str) -> Result<Expr, FilterError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        text,
        tokens,
        pos: 0,
        depth: 0,
    };
    let start = parser.offset();
    let (expr, _) = parser.or()?;
    if parser.peek() != &Token::End {
        return Err(parser.unexpected("an operator or the end of the expression"));
    }
    parser.condition(expr, start)
}

/// A node and the depth of the tree under it.
type Node = (Expr, usize);

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(Token<'a>, usize)>,
    pos: usize,
    /// Current recursion through `unary`.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Token<'a> {
        &self.tokens[self.pos].0
    }

    fn peek_second(&self) -> &Token<'a> {
        let i = (self.pos + 1).min(self.tokens.len() - 1);
        &self.tokens[i].0
    }

    fn offset(&self) -> usize {
        self.tokens[self.pos].1
    }

    fn advance(&mut self) -> Token<'a> {
        let token = self.tokens[self.pos].0.clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn eat(&mut self, token: &Token<'_>) -> bool {
        if self.peek() == token {
            self.advance();
            true
        } else {
            false
        }
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> FilterError {
        FilterError::syntax(self.text, offset, message)
    }

    /// "expected X, found Y at column N", at the current token.
    fn unexpected(&self, expected: &str) -> FilterError {
        self.error(
            self.offset(),
            format!("expected {expected}, found {}", self.peek().describe()),
        )
    }

    fn expect(&mut self, token: &Token<'_>, expected: &str) -> Result<(), FilterError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    /// Wraps children into a node one level deeper, refusing past the limit.
    fn node(&self, expr: Expr, child_depth: usize, offset: usize) -> Result<Node, FilterError> {
        let depth = child_depth + 1;
        if depth > FILTER_DEPTH_MAX {
            return Err(FilterError::TooDeep {
                column: column(self.text, offset),
                max: FILTER_DEPTH_MAX,
            });
        }
        Ok((expr, depth))
    }

    /// RocketMQ's `asBooleanExpression`: a property read as a condition, or an error for a
    /// value that is not one.
    fn condition(&self, expr: Expr, offset: usize) -> Result<Expr, FilterError> {
        match expr {
            Expr::Prop(name) => Ok(Expr::Truth(name)),
            e if e.is_condition() => Ok(e),
            _ => Err(self.error(offset, "this is a value, not a condition")),
        }
    }

    fn or(&mut self) -> Result<Node, FilterError> {
        self.logic(Keyword::Or)
    }

    fn and(&mut self) -> Result<Node, FilterError> {
        self.logic(Keyword::And)
    }

    /// One level of `AND` or `OR`, flattened into an n-ary node.
    fn logic(&mut self, keyword: Keyword) -> Result<Node, FilterError> {
        let operand = |p: &mut Self| {
            if keyword == Keyword::Or {
                p.and()
            } else {
                p.equality()
            }
        };
        let start = self.offset();
        let first = operand(self)?;
        if self.peek() != &Token::Keyword(keyword) {
            return Ok(first);
        }
        let mut depth = first.1;
        let mut terms = vec![self.condition(first.0, start)?];
        while self.eat(&Token::Keyword(keyword)) {
            let at = self.offset();
            let (term, term_depth) = operand(self)?;
            terms.push(self.condition(term, at)?);
            depth = depth.max(term_depth);
        }
        let expr = if keyword == Keyword::Or {
            Expr::Or(terms)
        } else {
            Expr::And(terms)
        };
        self.node(expr, depth, start)
    }

    fn equality(&mut self) -> Result<Node, FilterError> {
        let start = self.offset();
        let mut left = self.comparison()?;
        loop {
            let at = self.offset();
            let op = match self.peek() {
                Token::Eq => CmpOp::Eq,
                Token::Ne => CmpOp::Ne,
                Token::Keyword(Keyword::Is) => {
                    self.advance();
                    let negated = self.eat(&Token::Keyword(Keyword::Not));
                    let wanted = if negated {
                        "NULL after IS NOT"
                    } else {
                        "NOT or NULL after IS"
                    };
                    self.expect(&Token::Keyword(Keyword::Null), wanted)?;
                    left = self.node(Expr::IsNull(Box::new(left.0), negated), left.1, start)?;
                    continue;
                }
                _ => return Ok(left),
            };
            self.advance();
            let right_at = self.offset();
            let right = self.operand(op.symbol())?;
            for (side, side_at) in [(&left.0, start), (&right.0, right_at)] {
                if side == &Expr::Bool(None) {
                    return Err(self.error(side_at, "NULL cannot be compared; use IS NULL"));
                }
            }
            if matches!(left.0, Expr::Bool(_))
                && matches!(right.0, Expr::Int(_) | Expr::Float(_) | Expr::Str(_))
            {
                return Err(self.error(at, "a boolean cannot be compared with a value"));
            }
            let depth = left.1.max(right.1);
            left = self.node(
                Expr::Cmp(op, Box::new(left.0), Box::new(right.0)),
                depth,
                start,
            )?;
        }
    }

    fn comparison(&mut self) -> Result<Node, FilterError> {
        let start = self.offset();
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Token::Gt => Some(CmpOp::Gt),
                Token::Ge => Some(CmpOp::Ge),
                Token::Lt => Some(CmpOp::Lt),
                Token::Le => Some(CmpOp::Le),
                _ => None,
            };
            if let Some(op) = op {
                self.advance();
                let right_at = self.offset();
                let right = self.operand(op.symbol())?;
                self.orderable(&left.0, start)?;
                self.orderable(&right.0, right_at)?;
                let depth = left.1.max(right.1);
                let expr = Expr::Cmp(op, Box::new(left.0), Box::new(right.0));
                left = self.node(expr, depth, start)?;
                continue;
            }
            let negated = self.peek() == &Token::Keyword(Keyword::Not)
                && matches!(
                    self.peek_second(),
                    Token::Keyword(
                        Keyword::Contains
                            | Keyword::StartsWith
                            | Keyword::EndsWith
                            | Keyword::Between
                            | Keyword::In
                    )
                );
            if negated {
                self.advance();
            }
            let Token::Keyword(keyword) = *self.peek() else {
                return Ok(left);
            };
            let text_op = match keyword {
                Keyword::Contains => Some(TextOp::Contains),
                Keyword::StartsWith => Some(TextOp::StartsWith),
                Keyword::EndsWith => Some(TextOp::EndsWith),
                Keyword::Between | Keyword::In => None,
                _ => return Ok(left),
            };
            self.advance();
            let expr = if let Some(op) = text_op {
                let needle = self.string(&format!("a string after {}", op.keyword()))?;
                Expr::Text {
                    op,
                    value: Box::new(left.0),
                    needle: needle.into(),
                    negated,
                }
            } else if keyword == Keyword::Between {
                let low_at = self.offset();
                let low = self.operand("BETWEEN")?;
                self.expect(
                    &Token::Keyword(Keyword::And),
                    "AND after BETWEEN's lower bound",
                )?;
                let high_at = self.offset();
                let high = self.operand("AND")?;
                self.between_bounds(&low.0, low_at, &high.0, high_at)?;
                self.orderable(&left.0, start)?;
                let depth = left.1.max(low.1).max(high.1);
                left = self.node(
                    Expr::Between {
                        value: Box::new(left.0),
                        low: Box::new(low.0),
                        high: Box::new(high.0),
                        negated,
                    },
                    depth,
                    start,
                )?;
                continue;
            } else {
                let Expr::Prop(prop) = left.0 else {
                    return Err(self.error(start, "IN needs a property on its left"));
                };
                self.expect(&Token::LParen, "'(' after IN")?;
                let mut list = vec![self.string("a string in the IN list")?.into_boxed_str()];
                while self.eat(&Token::Comma) {
                    list.push(self.string("a string after ','")?.into_boxed_str());
                }
                self.expect(&Token::RParen, "',' or ')' in the IN list")?;
                list.sort_unstable();
                list.dedup();
                Expr::In {
                    prop,
                    list: list.into_boxed_slice(),
                    negated,
                }
            };
            left = self.node(expr, left.1, start)?;
        }
    }

    /// RocketMQ's `checkLessThanOperand`: only numbers and values read from properties are
    /// ordered.
    fn orderable(&self, expr: &Expr, offset: usize) -> Result<(), FilterError> {
        match expr {
            Expr::Str(_) => Err(self.error(
                offset,
                "a string cannot be compared with > >= < <= or BETWEEN",
            )),
            Expr::Bool(_) => Err(self.error(
                offset,
                "TRUE, FALSE and NULL cannot be compared with > >= < <= or BETWEEN",
            )),
            e if e.is_condition() => Err(self.error(
                offset,
                "a condition cannot be compared with > >= < <= or BETWEEN",
            )),
            _ => Ok(()),
        }
    }

    /// RocketMQ's `createBetween` checks: bounds are not NULL, and constant bounds are in order.
    fn between_bounds(
        &self,
        low: &Expr,
        low_at: usize,
        high: &Expr,
        high_at: usize,
    ) -> Result<(), FilterError> {
        self.orderable(low, low_at)?;
        self.orderable(high, high_at)?;
        let number = |e: &Expr| match e {
            Expr::Int(i) => Some(*i as f64),
            Expr::Float(f) => Some(*f),
            _ => None,
        };
        if let (Some(l), Some(h)) = (number(low), number(high)) {
            if l > h {
                return Err(self.error(low_at, "BETWEEN's lower bound is above its upper bound"));
            }
        }
        Ok(())
    }

    /// The right-hand operand of `op`.
    fn operand(&mut self, op: &str) -> Result<Node, FilterError> {
        if matches!(
            self.peek(),
            Token::End | Token::RParen | Token::Comma | Token::Keyword(Keyword::And | Keyword::Or)
        ) {
            return Err(self.unexpected(&format!("a value after '{op}'")));
        }
        self.unary()
    }

    fn string(&mut self, expected: &str) -> Result<String, FilterError> {
        match self.peek() {
            Token::Str(_) => match self.advance() {
                Token::Str(s) => Ok(s),
                _ => unreachable!("peeked a string"),
            },
            _ => Err(self.unexpected(expected)),
        }
    }

    fn unary(&mut self) -> Result<Node, FilterError> {
        let start = self.offset();
        if self.depth >= FILTER_DEPTH_MAX {
            return Err(FilterError::TooDeep {
                column: column(self.text, start),
                max: FILTER_DEPTH_MAX,
            });
        }
        self.depth += 1;
        let result = self.unary_inner(start);
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self, start: usize) -> Result<Node, FilterError> {
        match self.peek() {
            Token::Plus => {
                self.advance();
                self.unary()
            }
            Token::Minus => {
                self.advance();
                let (inner, depth) = self.unary()?;
                self.node(Expr::Neg(Box::new(inner)), depth, start)
            }
            Token::Keyword(Keyword::Not) => {
                self.advance();
                let at = self.offset();
                let (inner, depth) = self.unary()?;
                let inner = self.condition(inner, at)?;
                self.node(Expr::Not(Box::new(inner)), depth, start)
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Node, FilterError> {
        let start = self.offset();
        let expr = match self.peek() {
            Token::Str(_) => Expr::Str(self.string("a string")?.into()),
            Token::Int(i) => Expr::Int(*i),
            Token::Float(f) => Expr::Float(*f),
            Token::Keyword(Keyword::True) => Expr::Bool(Some(true)),
            Token::Keyword(Keyword::False) => Expr::Bool(Some(false)),
            Token::Keyword(Keyword::Null) => Expr::Bool(None),
            Token::Ident(name) => Expr::Prop((*name).into()),
            Token::LParen => {
                self.advance();
                let inner = self.or()?;
                self.expect(&Token::RParen, "')'")?;
                return Ok(inner);
            }
            _ => return Err(self.unexpected("a property, a value or '('")),
        };
        if !matches!(expr, Expr::Str(_)) {
            self.advance();
        }
        self.node(expr, 0, start)
    }
}

/// The 1-based character column of byte `offset` in `text`.
pub(super) fn column(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.get(..offset).map_or(offset, |s| s.chars().count()) + 1
}
