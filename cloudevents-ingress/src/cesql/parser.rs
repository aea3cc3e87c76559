//! CESQL v1 parser: tokens to an [`Expr`] tree, with functions resolved by name and arity and
//! LIKE patterns compiled, so evaluation never fails for a reason known at creation time.
//!
//! Precedence, loosest first: OR, XOR, AND, comparison (`= != <> < <= > >=`, LIKE, IN),
//! additive, multiplicative, unary (`NOT`, `-`), primary. This is SQL's order; the spec's
//! grammar lists AND, OR and XOR at one level, which only matters for unparenthesised mixes.

use super::CompileError;
use super::functions::{Function, resolve};
use super::lexer::{Tok, Token, tokenize};
use super::like::LikePattern;

/// Deepest expression tree accepted, counted in nodes from the root; bounds recursion in the
/// parser and the evaluator (a long `a OR b OR ...` chain is as deep as it is long).
pub const EXPRESSION_DEPTH_MAX: usize = 256;

/// A CESQL value literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// Boolean.
    Bool(bool),
    /// 32-bit integer.
    Int(i32),
    /// String.
    Str(String),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `AND`, short-circuit.
    And,
    /// `OR`, short-circuit.
    Or,
    /// `XOR`.
    Xor,
    /// `=`.
    Eq,
    /// `!=` or `<>`.
    NotEq,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`, truncating.
    Div,
    /// `%`.
    Mod,
}

/// An expression tree node.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A literal.
    Lit(Literal),
    /// An attribute, by lower-cased name.
    Attr(String),
    /// `EXISTS attr`.
    Exists(String),
    /// `NOT e`.
    Not(Box<Expr>),
    /// `-e`.
    Neg(Box<Expr>),
    /// `l op r`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `e [NOT] LIKE 'pattern'`.
    Like {
        /// The value.
        value: Box<Expr>,
        /// The compiled pattern.
        pattern: LikePattern,
        /// `NOT LIKE`.
        negated: bool,
    },
    /// `e [NOT] IN (a, b, ...)`.
    In {
        /// The value.
        value: Box<Expr>,
        /// The set members.
        set: Vec<Expr>,
        /// `NOT IN`.
        negated: bool,
    },
    /// A built-in function call.
    Call(Function, Vec<Expr>),
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

pub(crate) fn parse(src: &str) -> Result<Expr, CompileError> {
    let mut p = Parser {
        tokens: tokenize(src)?,
        at: 0,
        depth: 0,
    };
    let e = p.expr()?;
    if p.peek() != &Tok::End {
        return Err(CompileError::parse(
            p.pos(),
            format!("unexpected {}", describe(p.peek())),
        ));
    }
    if tree_depth(&e) > EXPRESSION_DEPTH_MAX {
        return Err(CompileError::parse(
            1,
            format!("expression nested deeper than {EXPRESSION_DEPTH_MAX}"),
        ));
    }
    Ok(e)
}

/// The depth of a tree, walked with an explicit stack so that the check itself cannot overflow.
fn tree_depth(root: &Expr) -> usize {
    let mut max = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((e, d)) = stack.pop() {
        max = max.max(d);
        match e {
            Expr::Lit(_) | Expr::Attr(_) | Expr::Exists(_) => {}
            Expr::Not(x) | Expr::Neg(x) => stack.push((x, d + 1)),
            Expr::Like { value, .. } => stack.push((value, d + 1)),
            Expr::Binary(_, l, r) => {
                stack.push((l, d + 1));
                stack.push((r, d + 1));
            }
            Expr::In { value, set, .. } => {
                stack.push((value, d + 1));
                stack.extend(set.iter().map(|m| (m, d + 1)));
            }
            Expr::Call(_, args) => stack.extend(args.iter().map(|a| (a, d + 1))),
        }
    }
    max
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::End => "end of expression".to_owned(),
        Tok::Int(n) => format!("integer {n}"),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Word(w) => format!("`{w}`"),
        other => format!("`{}`", symbol(other)),
    }
}

fn symbol(t: &Tok) -> &'static str {
    match t {
        Tok::LParen => "(",
        Tok::RParen => ")",
        Tok::Comma => ",",
        Tok::Eq => "=",
        Tok::NotEq => "!=",
        Tok::Lt => "<",
        Tok::Le => "<=",
        Tok::Gt => ">",
        Tok::Ge => ">=",
        Tok::Plus => "+",
        Tok::Minus => "-",
        Tok::Star => "*",
        Tok::Slash => "/",
        Tok::Percent => "%",
        _ => "?",
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.at].tok
    }

    fn peek_at(&self, n: usize) -> &Tok {
        let i = (self.at + n).min(self.tokens.len() - 1);
        &self.tokens[i].tok
    }

    fn pos(&self) -> usize {
        self.tokens[self.at].pos
    }

    fn bump(&mut self) -> Token {
        let t = self.tokens[self.at].clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        t
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn keyword_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_at(n), Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn expect(&mut self, tok: Tok) -> Result<(), CompileError> {
        if *self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(CompileError::parse(
                self.pos(),
                format!(
                    "expected `{}`, found {}",
                    symbol(&tok),
                    describe(self.peek())
                ),
            ))
        }
    }

    fn enter(&mut self) -> Result<(), CompileError> {
        self.depth += 1;
        if self.depth > EXPRESSION_DEPTH_MAX {
            return Err(CompileError::parse(
                self.pos(),
                format!("nested deeper than {EXPRESSION_DEPTH_MAX}"),
            ));
        }
        Ok(())
    }

    /// Counts one more link of an operator chain; a chain builds a tree as deep as it is long,
    /// so it is refused before it grows past the depth limit.
    fn chain(&self, chain: &mut usize) -> Result<(), CompileError> {
        *chain += 1;
        if *chain > EXPRESSION_DEPTH_MAX {
            return Err(CompileError::parse(
                self.pos(),
                format!("operator chain longer than {EXPRESSION_DEPTH_MAX}"),
            ));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, CompileError> {
        self.enter()?;
        let e = self.or();
        self.depth -= 1;
        e
    }

    fn or(&mut self) -> Result<Expr, CompileError> {
        let mut l = self.xor()?;
        let mut chain = 0;
        while self.is_keyword("OR") {
            self.chain(&mut chain)?;
            self.bump();
            let r = self.xor()?;
            l = Expr::Binary(BinOp::Or, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn xor(&mut self) -> Result<Expr, CompileError> {
        let mut l = self.and()?;
        let mut chain = 0;
        while self.is_keyword("XOR") {
            self.chain(&mut chain)?;
            self.bump();
            let r = self.and()?;
            l = Expr::Binary(BinOp::Xor, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, CompileError> {
        let mut l = self.comparison()?;
        let mut chain = 0;
        while self.is_keyword("AND") {
            self.chain(&mut chain)?;
            self.bump();
            let r = self.comparison()?;
            l = Expr::Binary(BinOp::And, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn comparison(&mut self) -> Result<Expr, CompileError> {
        let mut l = self.additive()?;
        let mut chain = 0;
        loop {
            self.chain(&mut chain)?;
            let op = match self.peek() {
                Tok::Eq => Some(BinOp::Eq),
                Tok::NotEq => Some(BinOp::NotEq),
                Tok::Lt => Some(BinOp::Lt),
                Tok::Le => Some(BinOp::Le),
                Tok::Gt => Some(BinOp::Gt),
                Tok::Ge => Some(BinOp::Ge),
                _ => None,
            };
            if let Some(op) = op {
                self.bump();
                let r = self.additive()?;
                l = Expr::Binary(op, Box::new(l), Box::new(r));
                continue;
            }
            let negated =
                self.is_keyword("NOT") && (self.keyword_at(1, "LIKE") || self.keyword_at(1, "IN"));
            if negated {
                self.bump();
            }
            if self.is_keyword("LIKE") {
                self.bump();
                let pos = self.pos();
                let Tok::Str(p) = self.bump().tok else {
                    return Err(CompileError::parse(
                        pos,
                        "LIKE must be followed by a string literal pattern",
                    ));
                };
                l = Expr::Like {
                    value: Box::new(l),
                    pattern: LikePattern::compile(&p),
                    negated,
                };
                continue;
            }
            if self.is_keyword("IN") {
                self.bump();
                self.expect(Tok::LParen)?;
                let mut set = vec![self.expr()?];
                while *self.peek() == Tok::Comma {
                    self.bump();
                    set.push(self.expr()?);
                }
                self.expect(Tok::RParen)?;
                l = Expr::In {
                    value: Box::new(l),
                    set,
                    negated,
                };
                continue;
            }
            return Ok(l);
        }
    }

    fn additive(&mut self) -> Result<Expr, CompileError> {
        let mut l = self.multiplicative()?;
        let mut chain = 0;
        loop {
            let op = match self.peek() {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(l),
            };
            self.chain(&mut chain)?;
            self.bump();
            let r = self.multiplicative()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, CompileError> {
        let mut l = self.unary()?;
        let mut chain = 0;
        loop {
            let op = match self.peek() {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                Tok::Percent => BinOp::Mod,
                _ => return Ok(l),
            };
            self.chain(&mut chain)?;
            self.bump();
            let r = self.unary()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn unary(&mut self) -> Result<Expr, CompileError> {
        self.enter()?;
        let e = if self.is_keyword("NOT") {
            self.bump();
            Ok(Expr::Not(Box::new(self.unary()?)))
        } else if *self.peek() == Tok::Minus {
            self.bump();
            let pos = self.pos();
            if let Tok::Int(n) = *self.peek() {
                // Fold the sign into the literal so that -2147483648 is representable.
                self.bump();
                let v = i64::try_from(n)
                    .ok()
                    .and_then(|n| i32::try_from(-n).ok())
                    .ok_or_else(|| {
                        CompileError::parse(pos, "integer literal out of the 32-bit range")
                    })?;
                Ok(Expr::Lit(Literal::Int(v)))
            } else {
                Ok(Expr::Neg(Box::new(self.unary()?)))
            }
        } else {
            self.primary()
        };
        self.depth -= 1;
        e
    }

    fn primary(&mut self) -> Result<Expr, CompileError> {
        let pos = self.pos();
        let token = self.bump();
        match token.tok {
            Tok::Int(n) => i32::try_from(n)
                .map(|v| Expr::Lit(Literal::Int(v)))
                .map_err(|_| CompileError::parse(pos, "integer literal out of the 32-bit range")),
            Tok::Str(s) => Ok(Expr::Lit(Literal::Str(s))),
            Tok::LParen => {
                let e = self.expr()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Tok::Word(w) => {
                if *self.peek() == Tok::LParen {
                    self.bump();
                    let mut args = Vec::new();
                    if *self.peek() != Tok::RParen {
                        args.push(self.expr()?);
                        while *self.peek() == Tok::Comma {
                            self.bump();
                            args.push(self.expr()?);
                        }
                    }
                    self.expect(Tok::RParen)?;
                    let f =
                        resolve(&w, args.len()).ok_or_else(|| CompileError::MissingFunction {
                            position: pos,
                            name: w.to_ascii_uppercase(),
                            arity: args.len(),
                        })?;
                    return Ok(Expr::Call(f, args));
                }
                let upper = w.to_ascii_uppercase();
                match upper.as_str() {
                    "TRUE" => Ok(Expr::Lit(Literal::Bool(true))),
                    "FALSE" => Ok(Expr::Lit(Literal::Bool(false))),
                    "EXISTS" => {
                        let pos = self.pos();
                        match self.bump().tok {
                            Tok::Word(name) => Ok(Expr::Exists(attribute_name(&name, pos)?)),
                            other => Err(CompileError::parse(
                                pos,
                                format!(
                                    "EXISTS must be followed by an attribute name, found {}",
                                    describe(&other)
                                ),
                            )),
                        }
                    }
                    "AND" | "OR" | "XOR" | "NOT" | "LIKE" | "IN" => Err(CompileError::parse(
                        pos,
                        format!("unexpected keyword `{w}`"),
                    )),
                    _ => Ok(Expr::Attr(attribute_name(&w, pos)?)),
                }
            }
            other => Err(CompileError::parse(
                pos,
                format!("unexpected {}", describe(&other)),
            )),
        }
    }
}

/// Attribute names are letters and digits; CESQL identifiers are case-insensitive and
/// CloudEvents names lower-case, so the name is folded.
fn attribute_name(word: &str, pos: usize) -> Result<String, CompileError> {
    if word.contains('_') {
        return Err(CompileError::parse(
            pos,
            format!("`{word}` is not a valid attribute name"),
        ));
    }
    Ok(word.to_ascii_lowercase())
}
