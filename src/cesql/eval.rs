//! The evaluator: total, "complete evaluation" mode (spec 4.1).
//!
//! Every node produces a value and evaluation never stops early except for
//! AND/OR short-circuiting (spec 3.6); errors are appended to a list.
//!
//! Error propagation, as the spec (3.2, 3.3) and TCK define it:
//!
//! * An error raised by a node itself (an implicit cast of one of its
//!   operands, division by zero, overflow, a function rejecting its
//!   arguments) does not stop that node: it computes its result from the
//!   failed cast's zero value or returns its spec-defined value (`NOT 10` is
//!   `true` plus a CastError; `LEFT('abc', -2)` is `'abc'` plus an error).
//! * A node any of whose operands raised an error (anywhere in the operand's
//!   subtree, including a missing attribute) returns the zero value of its
//!   own return type instead of computing (`1 / missing` is `0` with no
//!   MathError; `true AND (1 != 1 / 0)` is `false`).
//! * A missing attribute records a MissingAttributeError and evaluates to
//!   `false` (its type is unknown, so Boolean per spec 3.2), which its parent
//!   then replaces by its own zero value. A bare missing attribute at the top
//!   is therefore `false`; parentheses are transparent.
//! * Short-circuiting uses the left operand's (possibly zero) value: `AND`
//!   skips its right operand when the left is `false` or failed; `OR` skips
//!   it only when the left is a successful `true`.

use super::ast::{BinaryOp, Expr};
use super::attributes::Attributes;
use super::error::{ErrorKind, EvalError};
use super::value::{self, CastMode, Type, Value};

/// Evaluation state shared by all nodes of one evaluation.
pub(crate) struct Evaluator<'a> {
    pub attrs: &'a dyn Attributes,
    pub errors: Vec<EvalError>,
}

impl Evaluator<'_> {
    /// Evaluates `expr`, also reporting whether it raised any error.
    fn eval_checked(&mut self, expr: &Expr) -> (Value, bool) {
        let before = self.errors.len();
        let v = self.eval(expr);
        (v, self.errors.len() > before)
    }

    /// Evaluates `expr`, returning its value, or the zero value of `ty` when
    /// its evaluation raised an error.
    fn operand(&mut self, expr: &Expr, ty: Type) -> Result<Value, Value> {
        match self.eval_checked(expr) {
            (v, false) => Ok(v),
            (_, true) => Err(ty.zero()),
        }
    }

    /// Evaluates one node.
    pub(crate) fn eval(&mut self, expr: &Expr) -> Value {
        match expr {
            Expr::Literal(v) => v.clone(),
            Expr::Attribute(name) => match self.attrs.attribute(name) {
                Some(v) => v,
                None => {
                    self.errors.push(EvalError::new(
                        ErrorKind::MissingAttribute,
                        format!("attribute '{name}' is not present in the event"),
                    ));
                    Value::Boolean(false)
                }
            },
            Expr::Exists(name) => Value::Boolean(self.attrs.has_attribute(name)),
            Expr::Not(inner) => match self.operand(inner, Type::Boolean) {
                Ok(v) => Value::Boolean(!value::to_bool(v, &mut self.errors)),
                Err(zero) => zero,
            },
            Expr::Negate(inner) => match self.operand(inner, Type::Integer) {
                Ok(v) => {
                    let n = value::to_int(v, &mut self.errors);
                    Value::Integer(self.checked(n.checked_neg(), "-", 0, n))
                }
                Err(zero) => zero,
            },
            Expr::Binary { first, rest } => {
                let start = self.errors.len();
                let mut acc = self.eval(first);
                for (op, rhs) in rest {
                    // Errors anywhere in the chain so far belong to the left
                    // operand of this operator.
                    let left_failed = self.errors.len() > start;
                    acc = self.binary(*op, acc, left_failed, rhs);
                }
                acc
            }
            Expr::Like {
                operand,
                pattern,
                negated,
            } => match self.operand(operand, Type::Boolean) {
                Ok(v) => {
                    let text = value::to_string(v, &mut self.errors);
                    Value::Boolean(pattern.matches(&text) != *negated)
                }
                Err(zero) => zero,
            },
            Expr::In {
                operand,
                set,
                negated,
            } => Value::Boolean(self.in_set(operand, set, *negated)),
            Expr::Call {
                name,
                function,
                args,
            } => {
                let Some(function) = function else {
                    self.errors.push(EvalError::new(
                        ErrorKind::MissingFunction,
                        format!("no function {name} taking {} argument(s)", args.len()),
                    ));
                    return Value::Boolean(false);
                };
                let before = self.errors.len();
                let values: Vec<Value> = args.iter().map(|a| self.eval(a)).collect();
                if self.errors.len() > before {
                    function.return_type().zero()
                } else {
                    function.call(values, &mut self.errors)
                }
            }
        }
    }

    /// Unwraps a checked arithmetic result, recording a MathError on overflow.
    fn checked(&mut self, result: Option<i32>, op: &str, a: i32, b: i32) -> i32 {
        result.unwrap_or_else(|| {
            self.errors.push(EvalError::new(
                ErrorKind::Math,
                format!("integer overflow evaluating {a} {op} {b}"),
            ));
            0
        })
    }

    /// Applies `lhs op rhs`, evaluating `rhs` unless AND/OR short-circuits.
    fn binary(&mut self, op: BinaryOp, lhs: Value, left_failed: bool, rhs: &Expr) -> Value {
        match op {
            BinaryOp::And | BinaryOp::Or => {
                let l = !left_failed && value::to_bool(lhs, &mut self.errors);
                if (op == BinaryOp::And && !l) || (op == BinaryOp::Or && l) {
                    return Value::Boolean(l);
                }
                let (r, right_failed) = self.eval_checked(rhs);
                Value::Boolean(!left_failed && !right_failed && value::to_bool(r, &mut self.errors))
            }
            _ => {
                let (r, right_failed) = self.eval_checked(rhs);
                if left_failed || right_failed {
                    return result_type(op).zero();
                }
                self.apply(op, lhs, r)
            }
        }
    }
    /// Applies a non-short-circuit binary operator to present operands.
    fn apply(&mut self, op: BinaryOp, l: Value, r: Value) -> Value {
        let errors = &mut self.errors;
        match op {
            BinaryOp::Xor => Value::Boolean(value::to_bool(l, errors) ^ value::to_bool(r, errors)),
            BinaryOp::Eq | BinaryOp::NotEq => {
                // Ambiguous operator: the right operand's type selects the
                // overload and the left operand is cast to it (spec 3.7).
                let l = value::cast(l, r.value_type(), CastMode::Implicit, errors);
                Value::Boolean((l == r) == (op == BinaryOp::Eq))
            }
            _ => {
                let (a, b) = (value::to_int(l, errors), value::to_int(r, errors));
                match op {
                    BinaryOp::Lt => Value::Boolean(a < b),
                    BinaryOp::Le => Value::Boolean(a <= b),
                    BinaryOp::Gt => Value::Boolean(a > b),
                    BinaryOp::Ge => Value::Boolean(a >= b),
                    BinaryOp::Add => Value::Integer(self.checked(a.checked_add(b), "+", a, b)),
                    BinaryOp::Sub => Value::Integer(self.checked(a.checked_sub(b), "-", a, b)),
                    BinaryOp::Mul => Value::Integer(self.checked(a.checked_mul(b), "*", a, b)),
                    BinaryOp::Div | BinaryOp::Mod => Value::Integer(self.divide(op, a, b)),
                    _ => Value::Boolean(false),
                }
            }
        }
    }

    /// `/` truncates toward zero, `%` takes the sign of the dividend; a zero
    /// divisor yields 0 and a MathError.
    fn divide(&mut self, op: BinaryOp, a: i32, b: i32) -> i32 {
        if b == 0 {
            self.errors.push(EvalError::new(
                ErrorKind::Math,
                format!("division by zero evaluating {a} {} 0", op.symbol()),
            ));
            return 0;
        }
        if op == BinaryOp::Mod {
            // i32::MIN % -1 is mathematically 0; wrapping_rem avoids the trap.
            return a.wrapping_rem(b);
        }
        self.checked(a.checked_div(b), "/", a, b)
    }

    /// `x [NOT] IN (set)`: elements are cast to the type of `x` and compared
    /// with `=` semantics. Every element is evaluated so all errors surface.
    fn in_set(&mut self, operand: &Expr, set: &[Expr], negated: bool) -> bool {
        let before = self.errors.len();
        let target = self.eval(operand);
        let items: Vec<Value> = set.iter().map(|e| self.eval(e)).collect();
        if self.errors.len() > before {
            return false;
        }
        let ty = target.value_type();
        let mut found = false;
        for item in items {
            found |= value::cast(item, ty, CastMode::Implicit, &mut self.errors) == target;
        }
        found != negated
    }
}

/// Return type of a non-logical binary operator, for its zero value.
fn result_type(op: BinaryOp) -> Type {
    match op {
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
            Type::Integer
        }
        _ => Type::Boolean,
    }
}
