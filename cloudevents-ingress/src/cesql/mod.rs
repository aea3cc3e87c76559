//! CloudEvents SQL Expression Language v1 (CESQL): parsed once when a trigger is created,
//! evaluated per event at dispatch.
//!
//! A parse error, or a call to a function that does not exist with that many arguments, refuses
//! the trigger and names the 1-based character position. At dispatch, any evaluation error
//! means "no match".

mod eval;
mod functions;
mod lexer;
mod like;
mod parser;

pub use eval::{ErrorKind, Type, Value, cast};
pub use functions::Function;
pub use lexer::EXPRESSION_LENGTH_MAX_BYTES;
pub use like::LikePattern;
pub use parser::{BinOp, EXPRESSION_DEPTH_MAX, Expr, Literal};

use crate::event::Event;

/// Why an expression was refused at creation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// Not valid CESQL syntax.
    #[error("CESQL parse error at position {position}: {reason}")]
    Parse {
        /// 1-based character position.
        position: usize,
        /// What was wrong there.
        reason: String,
    },
    /// A function that does not exist (or not with this many arguments).
    #[error("CESQL error at position {position}: no function {name} taking {arity} argument(s)")]
    MissingFunction {
        /// 1-based character position of the call.
        position: usize,
        /// Function name, upper-cased.
        name: String,
        /// Arguments given.
        arity: usize,
    },
}

impl CompileError {
    pub(crate) fn parse(position: usize, reason: impl Into<String>) -> Self {
        CompileError::Parse {
            position,
            reason: reason.into(),
        }
    }
}

/// A compiled CESQL expression.
#[derive(Debug, Clone)]
pub struct Expression {
    source: String,
    root: Expr,
}

impl Expression {
    /// Parses and resolves an expression.
    pub fn parse(source: &str) -> Result<Self, CompileError> {
        Ok(Expression {
            source: source.to_owned(),
            root: parser::parse(source)?,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The expression tree.
    pub fn root(&self) -> &Expr {
        &self.root
    }

    /// Evaluates against an event: the value and the first error met, if any.
    pub fn evaluate<'a>(&'a self, event: &'a Event) -> (Value<'a>, Option<ErrorKind>) {
        eval::eval(&self.root, event)
    }

    /// Whether the event matches: evaluation without error to a value that is (or casts to)
    /// TRUE.
    pub fn matches(&self, event: &Event) -> bool {
        match self.evaluate(event) {
            (v, None) => matches!(cast(v, Type::Bool), Ok(Value::Bool(true))),
            (_, Some(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> Event {
        let mut e = Event::new("1", "/s", "com.example.created");
        e.set("subject", "orders/42");
        e
    }

    #[test]
    fn parse_errors_name_the_position() {
        assert_eq!(
            Expression::parse("type = 'a' AND ").unwrap_err(),
            CompileError::Parse {
                position: 16,
                reason: "unexpected end of expression".to_owned()
            }
        );
        assert!(matches!(
            Expression::parse("source LIKE 5").unwrap_err(),
            CompileError::Parse { position: 13, .. }
        ));
        assert!(matches!(
            Expression::parse("NOPE(1)").unwrap_err(),
            CompileError::MissingFunction { position: 1, .. }
        ));
        assert!(matches!(
            Expression::parse("2147483648").unwrap_err(),
            CompileError::Parse { .. }
        ));
        assert!(Expression::parse("-2147483648 = -2147483648").is_ok());
    }

    #[test]
    fn sql_precedence_for_mixed_logic() {
        // AND binds tighter than OR: TRUE OR (FALSE AND FALSE).
        let e = Expression::parse("TRUE OR FALSE AND FALSE").unwrap();
        assert!(e.matches(&ev()));
        let e = Expression::parse("1 + 2 * 3 = 7 AND NOT FALSE").unwrap();
        assert!(e.matches(&ev()));
    }

    #[test]
    fn evaluation_errors_are_no_match() {
        let e = Expression::parse("missing = 'x' OR TRUE").unwrap();
        assert!(!e.matches(&ev()));
        let e = Expression::parse("subject LIKE 'orders/%' AND type LIKE '%.created'").unwrap();
        assert!(e.matches(&ev()));
        assert!(!Expression::parse("1/0 = 0").unwrap().matches(&ev()));
        // A non-boolean result matches only if it casts to TRUE.
        assert!(!Expression::parse("subject").unwrap().matches(&ev()));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}TRUE{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(Expression::parse(&deep).is_err());
        let nots = format!("{}TRUE", "NOT ".repeat(10_000));
        assert!(Expression::parse(&nots).is_err());
        let chain = vec!["TRUE"; 5_000].join(" OR ");
        assert!(Expression::parse(&chain).is_err());
        let fine = vec!["TRUE"; 200].join(" OR ");
        assert!(Expression::parse(&fine).is_ok());
    }
}
