//! Builtin functions (spec 3.5) plus the casting functions the TCK uses.
//!
//! Functions are resolved by case-insensitive name and arity at parse time;
//! a call that resolves to nothing evaluates to `false` with a
//! MissingFunctionError (spec 3.5). Arguments are implicitly cast to the
//! parameter types before the function runs (spec 3.7).

use super::error::{ErrorKind, EvalError};
use super::value::{self, CastMode, Type, Value};

/// A resolved builtin function (one overload of a name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Length,
    Concat,
    ConcatWs,
    Lower,
    Upper,
    Trim,
    Left,
    Right,
    /// `SUBSTRING(x, pos)` and `SUBSTRING(x, pos, len)`.
    Substring,
    Abs,
    Int,
    Bool,
    String,
    IsInt,
    IsBool,
}

impl Function {
    /// Finds the builtin overload for `name` called with `arity` arguments.
    pub(crate) fn resolve(name: &str, arity: usize) -> Option<Function> {
        use Function as F;
        let upper = name.to_ascii_uppercase();
        let (f, ok) = match upper.as_str() {
            "LENGTH" => (F::Length, arity == 1),
            "CONCAT" => (F::Concat, true),
            "CONCAT_WS" => (F::ConcatWs, arity >= 1),
            "LOWER" => (F::Lower, arity == 1),
            "UPPER" => (F::Upper, arity == 1),
            "TRIM" => (F::Trim, arity == 1),
            "LEFT" => (F::Left, arity == 2),
            "RIGHT" => (F::Right, arity == 2),
            "SUBSTRING" => (F::Substring, arity == 2 || arity == 3),
            "ABS" => (F::Abs, arity == 1),
            "INT" => (F::Int, arity == 1),
            "BOOL" => (F::Bool, arity == 1),
            "STRING" => (F::String, arity == 1),
            "IS_INT" => (F::IsInt, arity == 1),
            "IS_BOOL" => (F::IsBool, arity == 1),
            _ => return None,
        };
        ok.then_some(f)
    }

    /// The declared return type; its zero value is the result on errors.
    pub(crate) fn return_type(self) -> Type {
        use Function as F;
        match self {
            F::Length | F::Abs | F::Int => Type::Integer,
            F::Bool | F::IsInt | F::IsBool => Type::Boolean,
            F::Concat
            | F::ConcatWs
            | F::Lower
            | F::Upper
            | F::Trim
            | F::Left
            | F::Right
            | F::Substring
            | F::String => Type::String,
        }
    }

    /// Type of parameter `index`; `None` means the function accepts any type.
    fn param_type(self, index: usize) -> Option<Type> {
        use Function as F;
        match self {
            F::Int | F::Bool | F::String | F::IsInt | F::IsBool => None,
            F::Abs => Some(Type::Integer),
            F::Left | F::Right | F::Substring if index > 0 => Some(Type::Integer),
            _ => Some(Type::String),
        }
    }

    /// Casts the arguments to the parameter types and runs the function.
    pub(crate) fn call(self, args: Vec<Value>, errors: &mut Vec<EvalError>) -> Value {
        let mut args: Vec<Value> = args
            .into_iter()
            .enumerate()
            .map(|(i, v)| match self.param_type(i) {
                Some(t) => value::cast(v, t, CastMode::Implicit, errors),
                None => v,
            })
            .collect();
        let mut strings = args.iter().map(|v| match v {
            Value::String(s) => s.as_str(),
            _ => "",
        });
        let int_at = |args: &[Value], i: usize| match args.get(i) {
            Some(Value::Integer(n)) => *n,
            _ => 0,
        };
        use Function as F;
        match self {
            F::Length => {
                let n = strings.next().unwrap_or("").chars().count();
                Value::Integer(i32::try_from(n).unwrap_or(i32::MAX))
            }
            F::Concat => Value::String(strings.collect()),
            F::ConcatWs => {
                let sep = strings.next().unwrap_or("");
                Value::String(strings.collect::<Vec<_>>().join(sep))
            }
            F::Lower => Value::String(strings.next().unwrap_or("").to_lowercase()),
            F::Upper => Value::String(strings.next().unwrap_or("").to_uppercase()),
            F::Trim => Value::String(strings.next().unwrap_or("").trim().to_owned()),
            F::Left | F::Right => {
                let s = strings.next().unwrap_or("");
                Value::String(left_right(self == F::Left, s, int_at(&args, 1), errors))
            }
            F::Substring => {
                let s = strings.next().unwrap_or("");
                let len = (args.len() == 3).then(|| int_at(&args, 2));
                Value::String(substring(s, int_at(&args, 1), len, errors))
            }
            F::Abs => {
                let n = int_at(&args, 0);
                Value::Integer(n.checked_abs().unwrap_or_else(|| {
                    errors.push(EvalError::new(
                        ErrorKind::Math,
                        "ABS(-2147483648) overflows a 32-bit integer",
                    ));
                    i32::MAX
                }))
            }
            F::Int | F::Bool | F::String => {
                let target = self.return_type();
                let v = args.pop().unwrap_or_else(|| target.zero());
                value::cast(v, target, CastMode::Explicit, errors)
            }
            F::IsInt | F::IsBool => {
                let target = if self == F::IsInt {
                    Type::Integer
                } else {
                    Type::Boolean
                };
                Value::Boolean(args.first().is_some_and(|v| value::can_cast(v, target)))
            }
        }
    }
}

fn function_error(message: String) -> EvalError {
    EvalError::new(ErrorKind::FunctionEvaluation, message)
}

/// Byte offset of the character with index `n` (or the end of `s`).
fn byte_offset(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(off, _)| off)
}

/// `LEFT(s, n)` / `RIGHT(s, n)`: negative `n` returns `s` with an error.
fn left_right(left: bool, s: &str, n: i32, errors: &mut Vec<EvalError>) -> String {
    let name = if left { "LEFT" } else { "RIGHT" };
    let Ok(n) = usize::try_from(n) else {
        errors.push(function_error(format!(
            "{name}: length must not be negative, got {n}"
        )));
        return s.to_owned();
    };
    if left {
        s[..byte_offset(s, n)].to_owned()
    } else {
        let count = s.chars().count();
        s[byte_offset(s, count.saturating_sub(n))..].to_owned()
    }
}

/// `SUBSTRING(s, pos[, len])` with 1-based, optionally negative `pos`.
fn substring(s: &str, pos: i32, len: Option<i32>, errors: &mut Vec<EvalError>) -> String {
    let count = i64::try_from(s.chars().count()).unwrap_or(i64::MAX);
    let pos = i64::from(pos);
    if pos > count || pos < -count {
        errors.push(function_error(format!(
            "SUBSTRING: position {pos} is out of range for a string of length {count}"
        )));
        return String::new();
    }
    if let Some(l) = len.filter(|l| *l < 0) {
        errors.push(function_error(format!(
            "SUBSTRING: length must not be negative, got {l}"
        )));
        return String::new();
    }
    if pos == 0 {
        return String::new();
    }
    // 0-based start index; in range [0, count) because 1 <= |pos| <= count.
    let start = if pos > 0 { pos - 1 } else { count + pos };
    let end = match len {
        Some(l) => start.saturating_add(i64::from(l)).min(count),
        None => count,
    };
    let to_usize = |v: i64| usize::try_from(v).unwrap_or(0);
    let (a, b) = (
        byte_offset(s, to_usize(start)),
        byte_offset(s, to_usize(end)),
    );
    s[a..b].to_owned()
}
