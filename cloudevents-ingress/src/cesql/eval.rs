//! CESQL v1 evaluation (cesql spec, "Evaluation" and "Errors").
//!
//! Evaluation never stops early on an error: an operator whose operand failed returns the zero
//! value of its own type (false, 0, "") and passes the first error up; a failed implicit cast
//! inside an operator yields the zero value of the cast's target and the operator goes on. AND
//! and OR short-circuit. The caller gets the value and the first error.

use std::borrow::Cow;

use super::parser::{BinOp, Expr, Literal};
use crate::event::{AttrValue, Event};

/// The CESQL types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Boolean.
    Bool,
    /// 32-bit integer.
    Int,
    /// String.
    Str,
}

/// A CESQL value, borrowing strings from the event where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i32),
    /// String.
    Str(Cow<'a, str>),
}

impl<'a> Value<'a> {
    /// The value's type.
    pub fn ty(&self) -> Type {
        match self {
            Value::Bool(_) => Type::Bool,
            Value::Int(_) => Type::Int,
            Value::Str(_) => Type::Str,
        }
    }

    /// The zero value of a type, returned by an operator that failed.
    pub fn zero(ty: Type) -> Value<'static> {
        match ty {
            Type::Bool => Value::Bool(false),
            Type::Int => Value::Int(0),
            Type::Str => Value::Str(Cow::Borrowed("")),
        }
    }

    /// The string form (casting to String never fails).
    pub fn into_str(self) -> Cow<'a, str> {
        match self {
            Value::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Str(s) => s,
        }
    }

    /// The integer, or 0 for any other type (callers cast first).
    pub fn as_int(&self) -> i32 {
        match self {
            Value::Int(i) => *i,
            _ => 0,
        }
    }

    fn as_bool(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    /// An owned copy.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Int(i),
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
        }
    }
}

/// The kinds of evaluation error the spec names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Division or modulo by zero, integer overflow.
    Math,
    /// A cast that cannot be made.
    Cast,
    /// A referenced attribute is absent from the event.
    MissingAttribute,
    /// A function refused its arguments.
    FunctionEvaluation,
}

/// Implicit cast (cesql spec, "Type casting"). Integer to Boolean is not implicit.
pub fn cast(v: Value<'_>, to: Type) -> Result<Value<'_>, ErrorKind> {
    match (v, to) {
        (v, t) if v.ty() == t => Ok(v),
        (v, Type::Str) => Ok(Value::Str(v.into_str())),
        (Value::Str(s), Type::Int) => s
            .parse::<i32>()
            .map(Value::Int)
            .map_err(|_| ErrorKind::Cast),
        (Value::Bool(b), Type::Int) => Ok(Value::Int(i32::from(b))),
        (Value::Str(s), Type::Bool) => {
            if s.eq_ignore_ascii_case("true") {
                Ok(Value::Bool(true))
            } else if s.eq_ignore_ascii_case("false") {
                Ok(Value::Bool(false))
            } else {
                Err(ErrorKind::Cast)
            }
        }
        _ => Err(ErrorKind::Cast),
    }
}

/// An evaluation result: the value and the first error met, if any.
pub type Outcome<'a> = (Value<'a>, Option<ErrorKind>);

/// Casts within an operator: on failure record the error and use the zero value.
fn cast_in<'a>(v: Value<'a>, to: Type, err: &mut Option<ErrorKind>) -> Value<'a> {
    match cast(v, to) {
        Ok(v) => v,
        Err(e) => {
            err.get_or_insert(e);
            Value::zero(to)
        }
    }
}

fn attribute<'a>(event: &'a Event, name: &str) -> Option<Value<'a>> {
    event.get(name).map(|v| match v {
        AttrValue::Bool(b) => Value::Bool(*b),
        AttrValue::Integer(i) => Value::Int(*i),
        AttrValue::String(s) => Value::Str(Cow::Borrowed(s.as_str())),
    })
}

/// Evaluates an expression against an event.
pub fn eval<'a>(e: &'a Expr, event: &'a Event) -> Outcome<'a> {
    // Evaluates an operand; if it failed, the enclosing operator returns its zero value.
    macro_rules! operand {
        ($e:expr, $zero:expr) => {{
            let (v, err) = eval($e, event);
            if let Some(err) = err {
                return (Value::zero($zero), Some(err));
            }
            v
        }};
    }
    match e {
        Expr::Lit(Literal::Bool(b)) => (Value::Bool(*b), None),
        Expr::Lit(Literal::Int(i)) => (Value::Int(*i), None),
        Expr::Lit(Literal::Str(s)) => (Value::Str(Cow::Borrowed(s.as_str())), None),
        Expr::Attr(name) => match attribute(event, name) {
            Some(v) => (v, None),
            None => (Value::Bool(false), Some(ErrorKind::MissingAttribute)),
        },
        Expr::Exists(name) => (Value::Bool(event.get(name).is_some()), None),
        Expr::Not(inner) => {
            let v = operand!(inner, Type::Bool);
            let mut err = None;
            let b = cast_in(v, Type::Bool, &mut err).as_bool();
            (Value::Bool(!b), err)
        }
        Expr::Neg(inner) => {
            let v = operand!(inner, Type::Int);
            let mut err = None;
            let i = cast_in(v, Type::Int, &mut err).as_int();
            match i.checked_neg() {
                Some(n) => (Value::Int(n), err),
                None => (Value::Int(i), err.or(Some(ErrorKind::Math))),
            }
        }
        Expr::Binary(op @ (BinOp::And | BinOp::Or), l, r) => {
            let lv = operand!(l, Type::Bool);
            let mut err = None;
            let lb = cast_in(lv, Type::Bool, &mut err).as_bool();
            // Short-circuit: FALSE AND x, TRUE OR x never evaluate x.
            if (*op == BinOp::And && !lb) || (*op == BinOp::Or && lb) {
                return (Value::Bool(lb), err);
            }
            let rv = operand!(r, Type::Bool);
            let rb = cast_in(rv, Type::Bool, &mut err).as_bool();
            (Value::Bool(rb), err)
        }
        Expr::Binary(BinOp::Xor, l, r) => {
            let lv = operand!(l, Type::Bool);
            let rv = operand!(r, Type::Bool);
            let mut err = None;
            let lb = cast_in(lv, Type::Bool, &mut err).as_bool();
            let rb = cast_in(rv, Type::Bool, &mut err).as_bool();
            (Value::Bool(lb ^ rb), err)
        }
        Expr::Binary(op @ (BinOp::Eq | BinOp::NotEq), l, r) => {
            let lv = operand!(l, Type::Bool);
            let rv = operand!(r, Type::Bool);
            let mut err = None;
            // The left operand takes the right one's type.
            let lv = cast_in(lv, rv.ty(), &mut err);
            let eq = lv == rv;
            (Value::Bool(if *op == BinOp::Eq { eq } else { !eq }), err)
        }
        Expr::Binary(op @ (BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge), l, r) => {
            let lv = operand!(l, Type::Bool);
            let rv = operand!(r, Type::Bool);
            let mut err = None;
            let a = cast_in(lv, Type::Int, &mut err).as_int();
            let b = cast_in(rv, Type::Int, &mut err).as_int();
            let res = match op {
                BinOp::Lt => a < b,
                BinOp::Le => a <= b,
                BinOp::Gt => a > b,
                _ => a >= b,
            };
            (Value::Bool(res), err)
        }
        Expr::Binary(op, l, r) => {
            let lv = operand!(l, Type::Int);
            let rv = operand!(r, Type::Int);
            let mut err = None;
            let a = cast_in(lv, Type::Int, &mut err).as_int();
            let b = cast_in(rv, Type::Int, &mut err).as_int();
            let res = match op {
                BinOp::Add => a.checked_add(b),
                BinOp::Sub => a.checked_sub(b),
                BinOp::Mul => a.checked_mul(b),
                BinOp::Div if b == 0 => None,
                BinOp::Div => a.checked_div(b),
                BinOp::Mod if b == 0 => None,
                _ => a.checked_rem(b),
            };
            match res {
                Some(v) => (Value::Int(v), err),
                None => (Value::Int(0), err.or(Some(ErrorKind::Math))),
            }
        }
        Expr::Like {
            value,
            pattern,
            negated,
        } => {
            let v = operand!(value, Type::Bool);
            let s = v.into_str();
            (Value::Bool(pattern.matches(&s) != *negated), None)
        }
        Expr::In {
            value,
            set,
            negated,
        } => {
            let v = operand!(value, Type::Bool);
            let mut err = None;
            let mut found = false;
            for member in set {
                let m = operand!(member, Type::Bool);
                // Each member takes the left value's type.
                if cast_in(m, v.ty(), &mut err) == v {
                    found = true;
                    break;
                }
            }
            (Value::Bool(found != *negated), err)
        }
        Expr::Call(f, args) => {
            let mut values = Vec::with_capacity(args.len());
            let mut err = None;
            for (i, a) in args.iter().enumerate() {
                let v = operand!(a, f.return_type());
                values.push(match f.param_type(i) {
                    Some(t) => cast_in(v, t, &mut err),
                    None => v,
                });
            }
            let (v, call_err) = f.call(values);
            (v, err.or(call_err))
        }
    }
}
