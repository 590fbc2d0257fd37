//! Recursive-descent parser implementing the grammar of spec section 2 and
//! the precedence of section 3.6.
//!
//! Precedence, loosest first (equal levels associate left to right):
//!
//! 1. `AND`, `OR`, `XOR` (one level, as the spec lists them together)
//! 2. `=`, `!=`, `<>`, `>=`, `<=`, `>`, `<`
//! 3. `+`, `-`
//! 4. `*`, `/`, `%`
//! 5. postfix `[NOT] IN (...)` and `[NOT] LIKE 'pattern'`
//! 6. prefix `NOT`, `-`, and `EXISTS identifier`
//! 7. function calls, parenthesized expressions, literals, identifiers
//!
//! Binary operators are read iteratively into a flat operand/operator list
//! and then grouped by level, so recursion happens only through nesting
//! (parentheses, function arguments, IN sets, prefix operators). Nesting is
//! capped at [`MAX_DEPTH`], so neither parsing nor evaluation can overflow
//! the stack. Error messages are built out of line to keep frames small.

use super::ast::{BinaryOp, Expr};
use super::error::ParseError;
use super::functions::Function;
use super::lexer::{Tok, Token, tokenize};
use super::like::LikePattern;
use super::value::Value;

/// Maximum nesting depth of parentheses, calls, IN sets and prefix operators.
pub const MAX_DEPTH: usize = 64;

const KEYWORDS: [&str; 9] = [
    "AND", "OR", "XOR", "NOT", "LIKE", "EXISTS", "IN", "TRUE", "FALSE",
];

/// Parses a whole expression.
pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(src)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = p.expression()?;
    match p.peek() {
        Tok::Eof => Ok(expr),
        Tok::RParen => Err(p.error_here("unmatched ')'")),
        _ => Err(p.error_here("expected an operator or the end of the expression")),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

fn keyword(tok: &Tok) -> Option<&'static str> {
    match tok {
        Tok::Word(w) => KEYWORDS.iter().copied().find(|k| w.eq_ignore_ascii_case(k)),
        _ => None,
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Eof => "the end of the expression".to_owned(),
        Tok::Str(_) => "a string literal".to_owned(),
        Tok::Int(_) => "an integer literal".to_owned(),
        Tok::Word(w) => format!("'{w}'"),
        Tok::LParen => "'('".to_owned(),
        Tok::RParen => "')'".to_owned(),
        Tok::Comma => "','".to_owned(),
        _ => "an operator".to_owned(),
    }
}

/// Precedence level of a binary operator (0 = loosest).
fn level(op: BinaryOp) -> u8 {
    use BinaryOp as B;
    match op {
        B::And | B::Or | B::Xor => 0,
        B::Eq | B::NotEq | B::Lt | B::Le | B::Gt | B::Ge => 1,
        B::Add | B::Sub => 2,
        B::Mul | B::Div | B::Mod => 3,
    }
}

/// Groups `first (op operand)*` (all operators at `lvl` or tighter) into
/// flat per-level chains. Recursion depth is bounded by the number of
/// levels, and each level is a single linear pass.
fn group(lvl: u8, first: Expr, rest: Vec<(BinaryOp, Expr)>) -> Expr {
    if rest.is_empty() {
        return first;
    }
    if lvl >= 3 {
        return Expr::Binary {
            first: Box::new(first),
            rest,
        };
    }
    let mut chain: Vec<(BinaryOp, Expr)> = Vec::new();
    let mut pending: Option<BinaryOp> = None;
    let mut seg_first = first;
    let mut seg_rest = Vec::new();
    let mut out_first: Option<Expr> = None;
    for (op, operand) in rest {
        if level(op) == lvl {
            let seg = group(lvl + 1, seg_first, std::mem::take(&mut seg_rest));
            match pending {
                Some(prev) => chain.push((prev, seg)),
                None => out_first = Some(seg),
            }
            pending = Some(op);
            seg_first = operand;
        } else {
            seg_rest.push((op, operand));
        }
    }
    let seg = group(lvl + 1, seg_first, seg_rest);
    match (out_first, pending) {
        (Some(head), Some(prev)) => {
            chain.push((prev, seg));
            Expr::Binary {
                first: Box::new(head),
                rest: chain,
            }
        }
        _ => seg,
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        self.tokens
            .get(self.pos.saturating_add(ahead))
            .or_else(|| self.tokens.last())
            .map_or(&Tok::Eof, |t| &t.tok)
    }

    fn position(&self) -> usize {
        self.tokens
            .get(self.pos)
            .or_else(|| self.tokens.last())
            .map_or(0, |t| t.pos)
    }

    fn advance(&mut self) {
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
    }

    #[cold]
    #[inline(never)]
    fn error_here(&self, message: &str) -> ParseError {
        ParseError::new(self.position(), message)
    }

    /// "expected {what}, found {current token}".
    #[cold]
    #[inline(never)]
    fn error_expected(&self, what: &str) -> ParseError {
        let found = describe(self.peek());
        ParseError::new(self.position(), format!("expected {what}, found {found}"))
    }

    #[cold]
    #[inline(never)]
    fn error_depth(&self) -> ParseError {
        let msg = format!("expression nested more than {MAX_DEPTH} levels deep");
        ParseError::new(self.position(), msg)
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), ParseError> {
        if self.peek() == want {
            self.advance();
            Ok(())
        } else {
            Err(self.error_expected(what))
        }
    }

    fn is_keyword(&self, ahead: usize, kw: &str) -> bool {
        keyword(self.peek_at(ahead)) == Some(kw)
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error_depth());
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// A full expression, one nesting level deeper.
    fn expression(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let result = self.binary();
        self.leave();
        result
    }

    /// The binary operator at the current token, if any.
    fn binary_op(&self) -> Option<BinaryOp> {
        use BinaryOp as B;
        Some(match self.peek() {
            Tok::Eq => B::Eq,
            Tok::NotEq => B::NotEq,
            Tok::Lt => B::Lt,
            Tok::Le => B::Le,
            Tok::Gt => B::Gt,
            Tok::Ge => B::Ge,
            Tok::Plus => B::Add,
            Tok::Minus => B::Sub,
            Tok::Star => B::Mul,
            Tok::Slash => B::Div,
            Tok::Percent => B::Mod,
            tok => match keyword(tok) {
                Some("AND") => B::And,
                Some("OR") => B::Or,
                Some("XOR") => B::Xor,
                _ => return None,
            },
        })
    }

    /// `postfix (binop postfix)*`, grouped by precedence.
    fn binary(&mut self) -> Result<Expr, ParseError> {
        let first = self.postfix()?;
        let mut rest = Vec::new();
        while let Some(op) = self.binary_op() {
            self.advance();
            rest.push((op, self.postfix()?));
        }
        Ok(group(0, first, rest))
    }

    /// `unary ( [NOT] LIKE string | [NOT] IN set )*`
    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let mut expr = self.unary()?;
        loop {
            let negated = self.is_keyword(0, "NOT");
            let ahead = usize::from(negated);
            if self.is_keyword(ahead, "LIKE") {
                self.pos += ahead + 1;
                let Tok::Str(s) = self.peek() else {
                    return Err(self.error_here("the pattern of LIKE must be a string literal"));
                };
                let pattern = LikePattern::compile(s);
                self.advance();
                expr = Expr::Like {
                    operand: Box::new(expr),
                    pattern,
                    negated,
                };
            } else if self.is_keyword(ahead, "IN") {
                self.pos += ahead + 1;
                self.enter()?;
                let set = self.set();
                self.leave();
                expr = Expr::In {
                    operand: Box::new(expr),
                    set: set?,
                    negated,
                };
            } else if negated {
                self.advance();
                return Err(self.error_here("expected LIKE or IN after NOT"));
            } else {
                return Ok(expr);
            }
        }
    }

    /// `( expr, ... )` of an IN operator; never empty.
    fn set(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.expect(&Tok::LParen, "'(' to start the IN set")?;
        self.list(false)
    }

    /// Comma-separated expressions up to and including `)`; the opening `(`
    /// has been consumed.
    fn list(&mut self, allow_empty: bool) -> Result<Vec<Expr>, ParseError> {
        let mut items = Vec::new();
        if allow_empty && self.peek() == &Tok::RParen {
            self.advance();
            return Ok(items);
        }
        loop {
            items.push(self.expression()?);
            match self.peek() {
                Tok::Comma => self.advance(),
                Tok::RParen => {
                    self.advance();
                    return Ok(items);
                }
                _ => return Err(self.error_expected("',' or ')'")),
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.is_keyword(0, "NOT") {
            self.advance();
            self.enter()?;
            let inner = self.unary();
            self.leave();
            return Ok(Expr::Not(Box::new(inner?)));
        }
        if self.is_keyword(0, "EXISTS") {
            self.advance();
            return match self.peek() {
                tok @ Tok::Word(w) if keyword(tok).is_none() => {
                    let name = self.attribute_name(w)?;
                    self.advance();
                    Ok(Expr::Exists(name))
                }
                _ => Err(self.error_expected("an attribute name after EXISTS")),
            };
        }
        let negative = match self.peek() {
            Tok::Minus => true,
            Tok::Plus => false,
            _ => return self.primary(),
        };
        let start = self.position();
        self.advance();
        // A sign directly before digits is part of the integer literal
        // (spec 2.2), which is how -2147483648 is written.
        if let Tok::Int(digits) = *self.peek() {
            self.advance();
            return integer_literal(digits, negative, start);
        }
        if !negative {
            return Err(self.error_here("'+' must be followed by digits"));
        }
        self.enter()?;
        let inner = self.unary();
        self.leave();
        Ok(Expr::Negate(Box::new(inner?)))
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let start = self.position();
        let literal = match self.peek() {
            Tok::Int(digits) => integer_literal(*digits, false, start)?,
            Tok::Str(s) => Expr::Literal(Value::String(s.clone())),
            Tok::LParen => {
                self.advance();
                let inner = self.expression()?;
                self.expect(&Tok::RParen, "')'")?;
                return Ok(inner);
            }
            tok @ Tok::Word(w) => match keyword(tok) {
                Some("TRUE") => Expr::Literal(Value::Boolean(true)),
                Some("FALSE") => Expr::Literal(Value::Boolean(false)),
                Some(_) => return Err(self.error_expected("a value")),
                None if self.peek_at(1) == &Tok::LParen => {
                    let name = w.clone();
                    return self.call(name, start);
                }
                None => Expr::Attribute(self.attribute_name(w)?),
            },
            _ => return Err(self.error_expected("a value")),
        };
        self.advance();
        Ok(literal)
    }

    /// `name(args)`; the current token is the name, `(` follows it.
    fn call(&mut self, name: String, start: usize) -> Result<Expr, ParseError> {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphabetic() || c == '_');
        if !valid {
            return Err(invalid_name(start, "function", &name));
        }
        self.advance();
        self.advance();
        self.enter()?;
        let args = self.list(true);
        self.leave();
        let args = args?;
        let function = Function::resolve(&name, args.len());
        Ok(Expr::Call {
            name: name.to_ascii_uppercase(),
            function,
            args,
        })
    }

    /// Validates an attribute identifier (`[a-zA-Z0-9]+`) at the current
    /// token and returns it lowercased; a `data.` path (EventFlow's
    /// extension) keeps the case of its fields.
    fn attribute_name(&self, word: &str) -> Result<String, ParseError> {
        let data_path = word
            .split_once('.')
            .filter(|(head, _)| head.eq_ignore_ascii_case("data"));
        if let Some((_, path)) = data_path {
            Ok(format!("data.{path}"))
        } else if word.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(word.to_ascii_lowercase())
        } else {
            Err(invalid_name(self.position(), "attribute", word))
        }
    }
}

#[cold]
#[inline(never)]
fn invalid_name(at: usize, what: &str, name: &str) -> ParseError {
    let rule = if what == "function" {
        "letters and '_' only, starting with a letter"
    } else {
        "letters and digits only"
    };
    ParseError::new(at, format!("invalid {what} name '{name}': use {rule}"))
}

/// Builds an Integer literal, rejecting values outside the 32-bit range.
fn integer_literal(digits: Option<u64>, negative: bool, at: usize) -> Result<Expr, ParseError> {
    let value = digits
        .and_then(|d| i64::try_from(d).ok())
        .map(|d| if negative { -d } else { d })
        .and_then(|d| i32::try_from(d).ok());
    match value {
        Some(v) => Ok(Expr::Literal(Value::Integer(v))),
        None => Err(ParseError::new(
            at,
            "integer literal out of the 32-bit signed range",
        )),
    }
}
