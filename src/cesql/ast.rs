//! The parsed form of an expression.
//!
//! Runs of left-associative binary operators of one precedence level are
//! stored flat (`Binary { first, rest }`) rather than as a left-deep tree, so
//! a long `a OR b OR c ...` chain does not make the tree (and the recursive
//! evaluator) deep: tree depth is bounded by the parser's nesting limit.

use super::functions::Function;
use super::like::LikePattern;
use super::value::Value;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    And,
    Or,
    Xor,
    Eq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl BinaryOp {
    /// The operator's source spelling, for error messages.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::Xor => "XOR",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
        }
    }
}

/// An expression node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// A Boolean, Integer or String literal.
    Literal(Value),
    /// A context attribute reference; the name is lowercased.
    Attribute(String),
    /// `EXISTS name`; the name is lowercased.
    Exists(String),
    /// `NOT x`.
    Not(Box<Expr>),
    /// Unary `-x`.
    Negate(Box<Expr>),
    /// `first op1 e1 op2 e2 ...`, evaluated left to right; all operators in
    /// one chain share a precedence level.
    Binary {
        first: Box<Expr>,
        rest: Vec<(BinaryOp, Expr)>,
    },
    /// `x [NOT] LIKE 'pattern'`.
    Like {
        operand: Box<Expr>,
        pattern: LikePattern,
        negated: bool,
    },
    /// `x [NOT] IN (y1, y2, ...)`; the set is never empty.
    In {
        operand: Box<Expr>,
        set: Vec<Expr>,
        negated: bool,
    },
    /// A function call; `function` is `None` when no builtin has this name
    /// and arity (a MissingFunctionError at evaluation, per spec 3.5).
    Call {
        name: String,
        function: Option<Function>,
        args: Vec<Expr>,
    },
}

impl Expr {
    /// Pushes the name and arity of every call in this expression that no builtin answers.
    pub(crate) fn missing_functions(&self, found: &mut Vec<(String, usize)>) {
        match self {
            Expr::Literal(_) | Expr::Attribute(_) | Expr::Exists(_) => {}
            Expr::Not(inner) | Expr::Negate(inner) => inner.missing_functions(found),
            Expr::Binary { first, rest } => {
                first.missing_functions(found);
                for (_, operand) in rest {
                    operand.missing_functions(found);
                }
            }
            Expr::Like { operand, .. } => operand.missing_functions(found),
            Expr::In { operand, set, .. } => {
                operand.missing_functions(found);
                for member in set {
                    member.missing_functions(found);
                }
            }
            Expr::Call {
                name,
                function,
                args,
            } => {
                if function.is_none() {
                    found.push((name.clone(), args.len()));
                }
                for arg in args {
                    arg.missing_functions(found);
                }
            }
        }
    }
}
