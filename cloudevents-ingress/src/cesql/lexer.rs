//! CESQL v1 tokens (cesql spec, "Language syntax"). Keywords and function names are
//! case-insensitive; string literals keep their case.

use super::CompileError;

/// Longest expression accepted, in bytes; bounds parse time and recursion depth at trigger
/// creation.
pub const EXPRESSION_LENGTH_MAX_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// Unsigned integer literal; the sign is a separate token.
    Int(u64),
    Str(String),
    /// A word: keyword, identifier or function name, as written.
    Word(String),
    LParen,
    RParen,
    Comma,
    Eq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    End,
}

/// A token and the 1-based character position where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, CompileError> {
    if src.len() > EXPRESSION_LENGTH_MAX_BYTES {
        return Err(CompileError::parse(
            1,
            format!("expression longer than {EXPRESSION_LENGTH_MAX_BYTES} bytes"),
        ));
    }
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let simple = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            ',' => Some(Tok::Comma),
            '+' => Some(Tok::Plus),
            '-' => Some(Tok::Minus),
            '*' => Some(Tok::Star),
            '/' => Some(Tok::Slash),
            '%' => Some(Tok::Percent),
            '=' => Some(Tok::Eq),
            _ => None,
        };
        if let Some(tok) = simple {
            out.push(Token { tok, pos });
            i += 1;
            continue;
        }
        match c {
            '!' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Token {
                        tok: Tok::NotEq,
                        pos,
                    });
                    i += 2;
                } else {
                    return Err(CompileError::parse(pos, "`!` must be followed by `=`"));
                }
            }
            '<' => match chars.get(i + 1) {
                Some('=') => {
                    out.push(Token { tok: Tok::Le, pos });
                    i += 2;
                }
                Some('>') => {
                    out.push(Token {
                        tok: Tok::NotEq,
                        pos,
                    });
                    i += 2;
                }
                _ => {
                    out.push(Token { tok: Tok::Lt, pos });
                    i += 1;
                }
            },
            '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Token { tok: Tok::Ge, pos });
                    i += 2;
                } else {
                    out.push(Token { tok: Tok::Gt, pos });
                    i += 1;
                }
            }
            '\'' | '"' => {
                let quote = c;
                let mut j = i + 1;
                let mut value = String::new();
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(CompileError::parse(pos, "unterminated string literal"));
                        }
                        Some('\\') => {
                            // Only the escaped quote of the literal's own kind is unescaped; any
                            // other backslash stays, so LIKE patterns can use `\%` and `\_`.
                            match chars.get(j + 1) {
                                Some(&next) if next == quote => value.push(next),
                                Some(&next) => {
                                    value.push('\\');
                                    value.push(next);
                                }
                                None => {
                                    return Err(CompileError::parse(
                                        pos,
                                        "unterminated string literal",
                                    ));
                                }
                            }
                            j += 2;
                        }
                        Some(&ch) if ch == quote => break,
                        Some(&ch) => {
                            value.push(ch);
                            j += 1;
                        }
                    }
                }
                out.push(Token {
                    tok: Tok::Str(value),
                    pos,
                });
                i = j + 1;
            }
            '0'..='9' => {
                let mut j = i;
                let mut n: u64 = 0;
                while let Some(d) = chars.get(j).and_then(|c| c.to_digit(10)) {
                    n = n
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(d)))
                        .ok_or_else(|| CompileError::parse(pos, "integer literal out of range"))?;
                    j += 1;
                }
                if chars.get(j).is_some_and(|c| c.is_alphabetic() || *c == '_') {
                    return Err(CompileError::parse(
                        j + 1,
                        "unexpected character after integer literal",
                    ));
                }
                out.push(Token {
                    tok: Tok::Int(n),
                    pos,
                });
                i = j;
            }
            c if c.is_ascii_alphabetic() => {
                let mut j = i;
                while chars
                    .get(j)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    j += 1;
                }
                out.push(Token {
                    tok: Tok::Word(chars[i..j].iter().collect()),
                    pos,
                });
                i = j;
            }
            other => {
                return Err(CompileError::parse(
                    pos,
                    format!("unexpected character `{other}`"),
                ));
            }
        }
    }
    out.push(Token {
        tok: Tok::End,
        pos: chars.len() + 1,
    });
    Ok(out)
}
