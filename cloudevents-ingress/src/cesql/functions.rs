//! CESQL v1 built-in functions (cesql spec, "Built-in functions"), resolved by name and arity
//! at parse time.

use std::borrow::Cow;

use super::eval::{ErrorKind, Type, Value, cast};

/// A resolved built-in function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `ABS(Integer)`.
    Abs,
    /// `LENGTH(String)`.
    Length,
    /// `CONCAT(String...)`.
    Concat,
    /// `CONCAT_WS(String, String...)`.
    ConcatWs,
    /// `LOWER(String)`.
    Lower,
    /// `UPPER(String)`.
    Upper,
    /// `TRIM(String)`.
    Trim,
    /// `LEFT(String, Integer)`.
    Left,
    /// `RIGHT(String, Integer)`.
    Right,
    /// `SUBSTRING(String, Integer)`.
    Substring,
    /// `SUBSTRING(String, Integer, Integer)`.
    SubstringLength,
    /// `INT(Any)`.
    Int,
    /// `BOOL(Any)`.
    Bool,
    /// `STRING(Any)`.
    String,
    /// `IS_BOOL(Any)`.
    IsBool,
    /// `IS_INT(Any)`.
    IsInt,
}

/// The function called `name` (case-insensitive) taking `arity` arguments, if there is one.
pub fn resolve(name: &str, arity: usize) -> Option<Function> {
    let f = match (name.to_ascii_uppercase().as_str(), arity) {
        ("ABS", 1) => Function::Abs,
        ("LENGTH", 1) => Function::Length,
        ("CONCAT", _) => Function::Concat,
        ("CONCAT_WS", n) if n >= 1 => Function::ConcatWs,
        ("LOWER", 1) => Function::Lower,
        ("UPPER", 1) => Function::Upper,
        ("TRIM", 1) => Function::Trim,
        ("LEFT", 2) => Function::Left,
        ("RIGHT", 2) => Function::Right,
        ("SUBSTRING", 2) => Function::Substring,
        ("SUBSTRING", 3) => Function::SubstringLength,
        ("INT", 1) => Function::Int,
        ("BOOL", 1) => Function::Bool,
        ("STRING", 1) => Function::String,
        ("IS_BOOL", 1) => Function::IsBool,
        ("IS_INT", 1) => Function::IsInt,
        _ => return None,
    };
    Some(f)
}

impl Function {
    /// The type of the result (and of the zero value returned on error).
    pub fn return_type(self) -> Type {
        match self {
            Function::Abs | Function::Length | Function::Int => Type::Int,
            Function::Bool | Function::IsBool | Function::IsInt => Type::Bool,
            _ => Type::Str,
        }
    }

    /// The type argument `i` is implicitly cast to; `None` takes any type as is.
    pub fn param_type(self, i: usize) -> Option<Type> {
        match self {
            Function::Abs => Some(Type::Int),
            Function::Int
            | Function::Bool
            | Function::String
            | Function::IsBool
            | Function::IsInt => None,
            Function::Left | Function::Right | Function::Substring | Function::SubstringLength
                if i > 0 =>
            {
                Some(Type::Int)
            }
            _ => Some(Type::Str),
        }
    }

    /// Applies the function to already-cast arguments: the value, and an error when the
    /// function failed (the value is then what the spec says to return).
    pub fn call<'a>(self, args: Vec<Value<'a>>) -> (Value<'a>, Option<ErrorKind>) {
        let mut args = args.into_iter();
        let mut next = || args.next().unwrap_or(Value::Bool(false));
        match self {
            Function::Abs => {
                let n = next().as_int();
                match n.checked_abs() {
                    Some(v) => (Value::Int(v), None),
                    None => (Value::Int(i32::MAX), Some(ErrorKind::Math)),
                }
            }
            Function::Length => (Value::Int(next().into_str().chars().count() as i32), None),
            Function::Concat => {
                let mut s = String::new();
                for a in args {
                    s.push_str(&a.into_str());
                }
                (Value::Str(Cow::Owned(s)), None)
            }
            Function::ConcatWs => {
                let sep = next().into_str();
                let parts: Vec<Cow<'a, str>> = args.map(Value::into_str).collect();
                (Value::Str(Cow::Owned(parts.join(&sep))), None)
            }
            Function::Lower => (
                Value::Str(Cow::Owned(next().into_str().to_lowercase())),
                None,
            ),
            Function::Upper => (
                Value::Str(Cow::Owned(next().into_str().to_uppercase())),
                None,
            ),
            Function::Trim => (
                Value::Str(Cow::Owned(next().into_str().trim().to_owned())),
                None,
            ),
            Function::Left | Function::Right => {
                let s = next().into_str();
                let n = next().as_int();
                if n < 0 {
                    return (Value::Str(s), Some(ErrorKind::FunctionEvaluation));
                }
                let chars: Vec<char> = s.chars().collect();
                let n = (n as usize).min(chars.len());
                let out: String = if self == Function::Left {
                    chars[..n].iter().collect()
                } else {
                    chars[chars.len() - n..].iter().collect()
                };
                (Value::Str(Cow::Owned(out)), None)
            }
            Function::Substring | Function::SubstringLength => {
                let s = next().into_str();
                let pos = next().as_int();
                let length = if self == Function::SubstringLength {
                    Some(next().as_int())
                } else {
                    None
                };
                match substring(&s, pos, length) {
                    Some(out) => (Value::Str(Cow::Owned(out)), None),
                    None => (
                        Value::Str(Cow::Borrowed("")),
                        Some(ErrorKind::FunctionEvaluation),
                    ),
                }
            }
            Function::Int => match next() {
                Value::Int(i) => (Value::Int(i), None),
                v => match cast(v, Type::Int) {
                    Ok(v) => (v, None),
                    Err(_) => (Value::Int(0), Some(ErrorKind::Cast)),
                },
            },
            Function::Bool => match next() {
                // An explicit cast of an integer is allowed (non-zero is true); the implicit
                // cast is not.
                Value::Int(i) => (Value::Bool(i != 0), None),
                v => match cast(v, Type::Bool) {
                    Ok(v) => (v, None),
                    Err(_) => (Value::Bool(false), Some(ErrorKind::Cast)),
                },
            },
            Function::String => (Value::Str(next().into_str()), None),
            Function::IsBool => {
                let v = next();
                (
                    Value::Bool(matches!(v, Value::Bool(_)) || cast(v, Type::Bool).is_ok()),
                    None,
                )
            }
            Function::IsInt => {
                let v = next();
                (
                    Value::Bool(matches!(v, Value::Int(_)) || cast(v, Type::Int).is_ok()),
                    None,
                )
            }
        }
    }
}

/// SUBSTRING with 1-based positions, negative ones counting from the end, and 0 giving "";
/// `None` when the position or length is out of range.
fn substring(s: &str, pos: i32, length: Option<i32>) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    let len = chars.len() as i64;
    let pos = i64::from(pos);
    if pos == 0 {
        return Some(String::new());
    }
    if pos.abs() > len {
        return None;
    }
    let start = if pos > 0 { pos - 1 } else { len + pos } as usize;
    let end = match length {
        None => chars.len(),
        Some(l) if l < 0 => return None,
        Some(l) => (start + l as usize).min(chars.len()),
    };
    Some(chars[start..end].iter().collect())
}
