//! Tokenizer: turns expression text into tokens carrying byte offsets.

use super::error::ParseError;

/// One lexical token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    /// A string literal, escapes already resolved.
    Str(String),
    /// An unsigned run of digits; `None` when it does not even fit in a `u64`.
    Int(Option<u64>),
    /// A run of `[A-Za-z0-9_]` that is not all digits: keyword or identifier.
    Word(String),
    Eof,
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Splits `src` into tokens, ending with `Tok::Eof`. Linear in `src.len()`.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let single = match b {
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b',' => Some(Tok::Comma),
            b'+' => Some(Tok::Plus),
            b'-' => Some(Tok::Minus),
            b'*' => Some(Tok::Star),
            b'/' => Some(Tok::Slash),
            b'%' => Some(Tok::Percent),
            b'=' => Some(Tok::Eq),
            _ => None,
        };
        if let Some(tok) = single {
            out.push(Token { tok, pos: start });
            i += 1;
            continue;
        }
        let next = bytes.get(i + 1).copied();
        match b {
            b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' => i += 1,
            b'!' if next == Some(b'=') => {
                out.push(Token {
                    tok: Tok::NotEq,
                    pos: start,
                });
                i += 2;
            }
            b'<' | b'>' => {
                let (tok, len) = match (b, next) {
                    (b'<', Some(b'=')) => (Tok::Le, 2),
                    (b'<', Some(b'>')) => (Tok::NotEq, 2),
                    (b'<', _) => (Tok::Lt, 1),
                    (_, Some(b'=')) => (Tok::Ge, 2),
                    _ => (Tok::Gt, 1),
                };
                out.push(Token { tok, pos: start });
                i += len;
            }
            b'\'' | b'"' => {
                let (s, end) = string_literal(src, start)?;
                out.push(Token {
                    tok: Tok::Str(s),
                    pos: start,
                });
                i = end;
            }
            _ if is_word_byte(b) => {
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                // EventFlow's extension: `data.field.field` is one identifier, a path into the
                // event's JSON data.
                if src[start..i].eq_ignore_ascii_case("data") {
                    while i + 1 < bytes.len() && bytes[i] == b'.' && is_word_byte(bytes[i + 1]) {
                        i += 1;
                        while i < bytes.len() && is_word_byte(bytes[i]) {
                            i += 1;
                        }
                    }
                }
                let text = &src[start..i];
                let tok = if text.bytes().all(|c| c.is_ascii_digit()) {
                    Tok::Int(text.parse::<u64>().ok())
                } else {
                    Tok::Word(text.to_owned())
                };
                out.push(Token { tok, pos: start });
            }
            _ => {
                let ch = src[start..].chars().next().unwrap_or('?');
                return Err(ParseError::new(
                    start,
                    format!("unexpected character {ch:?}"),
                ));
            }
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: src.len(),
    });
    Ok(out)
}

/// Reads a string literal starting at the quote at `start`; returns its
/// value and the offset just past the closing quote.
///
/// Per spec 2.2 the only escape is a backslash before the delimiting quote.
/// Any other backslash is kept literally (so `'ab\c'` is `ab\c`, and LIKE
/// patterns keep their `\%` / `\_` escapes); a backslash pair `\\` is kept as
/// two characters and does not escape a following quote.
fn string_literal(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let bytes = src.as_bytes();
    let quote = bytes[start];
    let mut value = String::new();
    let mut seg_start = start + 1;
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b == quote {
            value.push_str(&src[seg_start..i]);
            return Ok((value, i + 1));
        }
        if b == b'\\' {
            match bytes.get(i + 1) {
                Some(&n) if n == quote => {
                    value.push_str(&src[seg_start..i]);
                    value.push(char::from(quote));
                    i += 2;
                    seg_start = i;
                    continue;
                }
                Some(b'\\') => {
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        i += 1;
    }
    Err(ParseError::new(start, "unterminated string literal"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s)
            .map(|v| v.into_iter().map(|t| t.tok).collect())
            .unwrap_or_default()
    }

    #[test]
    fn operators_and_words() {
        assert_eq!(
            toks("a<>1 != <= >= < >"),
            vec![
                Tok::Word("a".into()),
                Tok::NotEq,
                Tok::Int(Some(1)),
                Tok::NotEq,
                Tok::Le,
                Tok::Ge,
                Tok::Lt,
                Tok::Gt,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(toks(r"'a\'b'")[0], Tok::Str("a'b".into()));
        assert_eq!(toks(r#""a\"b""#)[0], Tok::Str("a\"b".into()));
        assert_eq!(toks(r#"'a\"b'"#)[0], Tok::Str(r#"a\"b"#.into()));
        assert_eq!(toks(r"'ab\c'")[0], Tok::Str(r"ab\c".into()));
        assert_eq!(toks(r"'a\\'")[0], Tok::Str(r"a\\".into()));
        assert_eq!(toks("'é'")[0], Tok::Str("é".into()));
    }

    #[test]
    fn errors_carry_positions() {
        assert_eq!(tokenize("a = 'x").map(|_| ()).unwrap_err().position, 4);
        assert_eq!(tokenize("a ! b").map(|_| ()).unwrap_err().position, 2);
        assert_eq!(tokenize("a = é").map(|_| ()).unwrap_err().position, 4);
    }
}
