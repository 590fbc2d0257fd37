//! Focused tests for error collection, depth limits and edge cases the TCK
//! does not cover.

use std::collections::HashMap;

use super::{Attributes, ErrorKind, Expression, MAX_DEPTH, Value};

/// A plain map attribute source, to test the trait independent of JSON.
struct Attrs(HashMap<String, Value>);

impl Attributes for Attrs {
    fn attribute(&self, name: &str) -> Option<Value> {
        self.0.get(name).cloned()
    }
}

fn attrs(pairs: &[(&str, Value)]) -> Attrs {
    Attrs(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

fn eval(src: &str, a: &Attrs) -> (Value, Vec<ErrorKind>) {
    match Expression::parse(src) {
        Ok(e) => {
            let r = e.evaluate(a);
            (r.value, r.errors.iter().map(|e| e.kind).collect())
        }
        Err(e) => panic!("{src:?} failed to parse: {e}"),
    }
}

fn eval0(src: &str) -> (Value, Vec<ErrorKind>) {
    eval(src, &attrs(&[]))
}

fn parse_err(src: &str) -> usize {
    match Expression::parse(src) {
        Ok(e) => panic!("{src:?} parsed unexpectedly: {e:?}"),
        Err(e) => e.position,
    }
}

use ErrorKind::*;
use Value::{Boolean as B, Integer as I, String as S};

#[test]
fn errors_accumulate_and_evaluation_continues() {
    // Both sides of XOR are evaluated; each error is kept, in order, and a
    // failed operand zeroes the XOR.
    let (v, errs) = eval0("(1 / 0 = 0) XOR (a = 1)");
    assert_eq!(v, B(false));
    assert_eq!(errs, vec![Math, MissingAttribute]);

    let (v, errs) = eval0("CONCAT(LEFT('abc', -1), STRING(INT('x')), NOPE())");
    assert_eq!(v, S("".into()));
    assert_eq!(errs, vec![FunctionEvaluation, Cast, MissingFunction]);

    // A node's own errors do not zero it: it computes with the cast's zero.
    assert_eq!(
        eval0("CONCAT('a', 1 / 0, LEFT('b', -1))"),
        (S("".into()), vec![Math, FunctionEvaluation])
    );
    assert_eq!(eval0("LEFT('abc', 'x')"), (S("".into()), vec![Cast]));
    assert_eq!(eval0("1 IN ('x', 1)"), (B(true), vec![Cast]));
    assert_eq!(eval0("NOT 'x'"), (B(true), vec![Cast]));
    assert_eq!(eval0("'x' AND TRUE"), (B(false), vec![Cast]));
    assert_eq!(eval0("TRUE AND 'x'"), (B(false), vec![Cast]));
    assert_eq!(eval0("'x' OR TRUE"), (B(true), vec![Cast]));
    assert_eq!(eval0("'abc' = 0"), (B(true), vec![Cast]));

    let (v, errs) = eval0("1 IN (x, y, 1)");
    assert_eq!(v, B(false));
    assert_eq!(errs, vec![MissingAttribute, MissingAttribute]);
}

#[test]
fn failed_operands_zero_every_enclosing_operator() {
    assert_eq!(eval0("NOT missing"), (B(false), vec![MissingAttribute]));
    assert_eq!(
        eval0("NOT (missing = 1)"),
        (B(false), vec![MissingAttribute])
    );
    assert_eq!(eval0("NOT (1 / 0 = 1)"), (B(false), vec![Math]));
    assert_eq!(eval0("-(5 / 0) + 3"), (I(0), vec![Math]));
    assert_eq!(eval0("(missing)"), (B(false), vec![MissingAttribute]));
    assert_eq!(eval0("(missing) * 5"), (I(0), vec![MissingAttribute]));
    assert_eq!(eval0("missing % 0 + 7"), (I(0), vec![MissingAttribute]));
    assert_eq!(eval0("LENGTH(missing)"), (I(0), vec![MissingAttribute]));
    assert_eq!(
        eval0("missing NOT LIKE 'a'"),
        (B(false), vec![MissingAttribute])
    );
    assert_eq!(
        eval0("missing NOT IN (1)"),
        (B(false), vec![MissingAttribute])
    );
    assert_eq!(eval0("missing OR TRUE"), (B(false), vec![MissingAttribute]));
    // A failed left OR operand does not stop the right being evaluated.
    assert_eq!(
        eval0("missing OR (1 / 0 = 0)"),
        (B(false), vec![MissingAttribute, Math])
    );
    // Errors earlier in a flat chain count as the left operand failing.
    assert_eq!(
        eval0("TRUE AND (1 / 0 = 0) OR TRUE"),
        (B(false), vec![Math])
    );
    // A missing left AND operand counts as false: the right is not evaluated.
    assert_eq!(
        eval0("missing AND (1 / 0 = 0)"),
        (B(false), vec![MissingAttribute])
    );
    assert_eq!(eval0("EXISTS missing"), (B(false), vec![]));
}

#[test]
fn short_circuit_skips_errors_on_the_right() {
    assert_eq!(eval0("FALSE AND (1 / 0 = 0)"), (B(false), vec![]));
    assert_eq!(eval0("TRUE OR missing"), (B(true), vec![]));
    assert_eq!(eval0("FALSE XOR (1 / 0 = 0)"), (B(false), vec![Math]));
}

#[test]
fn matches_requires_true_and_no_errors() {
    let a = attrs(&[("n", I(0)), ("s", S("x".into()))]);
    let m = |src: &str| Expression::parse(src).map(|e| e.matches(&a)).ok();
    assert_eq!(m("s = 'x'"), Some(true));
    assert_eq!(m("s = 'y'"), Some(false));
    assert_eq!(m("n = 0"), Some(true));
    // True value but with an error: the filter must not pass.
    assert_eq!(m("(1 / n = 0) OR TRUE"), Some(false));
    assert_eq!(m("(INT('zz') = 0)"), Some(false));
    // Non-Boolean results never pass.
    assert_eq!(m("1"), Some(false));
    assert_eq!(m("'true'"), Some(false));
}

#[test]
fn depth_limit_is_a_parse_error() {
    let ok = format!(
        "{}1{}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert_eq!(eval0(&ok), (I(1), vec![]));
    let deep = format!("{}1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(parse_err(&deep), MAX_DEPTH);

    for src in [
        format!("{}TRUE", "NOT ".repeat(100_000)),
        format!("{}1", "-".repeat(100_000)),
        format!("{}1{}", "ABS(".repeat(100_000), ")".repeat(100_000)),
        format!("1 IN {}1{}", "(1 IN ".repeat(100_000), ")".repeat(100_000)),
        "(".repeat(1_000_000),
    ] {
        let err = Expression::parse(&src).err().map(|e| e.message);
        assert!(err.is_some_and(|m| m.contains("nested")), "{}", &src[..20]);
    }
}

#[test]
fn long_flat_chains_are_not_deep() {
    let n = 200_000;
    let sum = vec!["1"; n].join(" + ");
    assert_eq!(eval0(&sum), (I(n as i32), vec![]));
    let ors = (0..n)
        .map(|i| format!("x = {i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let a = attrs(&[("x", I(199_999))]);
    assert_eq!(eval(&ors, &a), (B(true), vec![]));
}

#[test]
fn integer_literals_and_overflow() {
    assert_eq!(eval0("-2147483648"), (I(i32::MIN), vec![]));
    assert_eq!(eval0("+5"), (I(5), vec![]));
    assert_eq!(eval0("4 -1"), (I(3), vec![]));
    assert_eq!(eval0("2147483647 + 1"), (I(0), vec![Math]));
    assert_eq!(eval0("-2147483648 - 1"), (I(0), vec![Math]));
    assert_eq!(eval0("65536 * 65536"), (I(0), vec![Math]));
    assert_eq!(eval0("-2147483648 / -1"), (I(0), vec![Math]));
    assert_eq!(eval0("-2147483648 % -1"), (I(0), vec![]));
    assert_eq!(eval0("-(-2147483648)"), (I(0), vec![Math]));
    assert_eq!(eval0("-7 / 2"), (I(-3), vec![]));
    assert_eq!(eval0("-7 % 2"), (I(-1), vec![]));
    assert_eq!(eval0("7 % -2"), (I(1), vec![]));
    assert_eq!(parse_err("2147483648"), 0);
    assert_eq!(parse_err("1 + -2147483649"), 4);
    assert_eq!(parse_err("99999999999999999999999"), 0);
    assert_eq!(eval0("INT('2147483648')"), (I(0), vec![Cast]));
    assert_eq!(eval0("INT('+12')"), (I(12), vec![]));
}

#[test]
fn casts_and_comparisons() {
    assert_eq!(eval0("'10' < '9'"), (B(false), vec![]));
    assert_eq!(eval0("'abc' = 0"), (B(true), vec![Cast]));
    assert_eq!(eval0("TRUE = 1"), (B(true), vec![]));
    // Integer -> Boolean only explicitly.
    assert_eq!(eval0("1 = TRUE"), (B(false), vec![Cast]));
    assert_eq!(eval0("BOOL(2) = TRUE"), (B(true), vec![]));
    assert_eq!(
        eval0("IS_INT('-3') AND NOT IS_INT('x') AND IS_BOOL('False')"),
        (B(true), vec![])
    );
    assert_eq!(eval0("IS_BOOL(7) AND IS_INT(TRUE)"), (B(true), vec![]));
}

#[test]
fn precedence_follows_the_spec() {
    // AND/OR/XOR share one level, left to right.
    assert_eq!(eval0("TRUE OR TRUE AND FALSE"), (B(false), vec![]));
    assert_eq!(eval0("FALSE AND FALSE OR TRUE"), (B(true), vec![]));
    assert_eq!(eval0("1 + 2 * 3 = 7 AND 2 - 1 - 1 = 0"), (B(true), vec![]));
    // Unary operators bind tighter than LIKE / IN / binary operators.
    assert_eq!(eval0("NOT 'true' = 'FALSE'"), (B(false), vec![]));
    assert_eq!(eval0("-1 IN (-1)"), (B(true), vec![]));
    assert_eq!(eval0("NOT EXISTS x AND TRUE"), (B(true), vec![]));
}

#[test]
fn keywords_functions_and_identifiers_are_case_insensitive() {
    let a = attrs(&[("subject", S("Abc".into()))]);
    assert_eq!(
        eval("SUBJECT like 'A%' and exists Subject", &a),
        (B(true), vec![])
    );
    assert_eq!(eval("lower(subject) = 'abc'", &a), (B(true), vec![]));
    assert_eq!(
        eval("Concat_Ws('-', 'a', subject)", &a),
        (S("a-Abc".into()), vec![])
    );
}

#[test]
fn string_functions_on_unicode() {
    assert_eq!(eval0("LENGTH('日本語')"), (I(3), vec![]));
    assert_eq!(eval0("LEFT('日本語', 2)"), (S("日本".into()), vec![]));
    assert_eq!(eval0("RIGHT('日本語', 1)"), (S("語".into()), vec![]));
    assert_eq!(
        eval0("SUBSTRING('日本語', -2, 1)"),
        (S("本".into()), vec![])
    );
    assert_eq!(eval0("SUBSTRING('abc', 3)"), (S("c".into()), vec![]));
    assert_eq!(eval0("SUBSTRING('abc', -3, 99)"), (S("abc".into()), vec![]));
    assert_eq!(
        eval0("SUBSTRING('abc', 1, -1)"),
        (S("".into()), vec![FunctionEvaluation])
    );
    assert_eq!(eval0("SUBSTRING('', 0)"), (S("".into()), vec![]));
    assert_eq!(eval0("TRIM('\u{2003} x \t')"), (S("x".into()), vec![]));
    assert_eq!(eval0("UPPER('straße')"), (S("STRASSE".into()), vec![]));
    assert_eq!(eval0("SUBSTRING('abc')"), (B(false), vec![MissingFunction]));
}

#[test]
fn parse_errors_report_byte_positions() {
    assert_eq!(parse_err("a = "), 4);
    assert_eq!(parse_err("a LIKE b"), 7);
    assert_eq!(parse_err("(a = 1"), 6);
    assert_eq!(parse_err("a = 1)"), 5);
    assert_eq!(parse_err("a NOT b"), 6);
    assert_eq!(parse_err("a IN ()"), 6);
    assert_eq!(parse_err("my_attr = 1"), 0);
    assert_eq!(parse_err("F1(2)"), 0);
    assert_eq!(parse_err("EXISTS 'x'"), 7);
    assert_eq!(parse_err("'it''s'"), 4);
    assert_eq!(parse_err("é = 1"), 0);
    assert_eq!(parse_err(""), 0);
    let e = Expression::parse("a = ").err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("CESQL parse error at byte 4: expected a value, found the end of the expression")
    );
}

#[test]
fn json_attributes_follow_the_type_rules() {
    let map: serde_json::Map<String, serde_json::Value> =
        match serde_json::from_value(serde_json::json!({
            "b": true, "i": 7, "big": 3_000_000_000_i64, "f": 1.5, "s": "x",
            "o": {"k": [1, null]}, "n": null, "data": {"x": 1}, "Mixed": "m"
        })) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
    assert_eq!(map.attribute("b"), Some(B(true)));
    assert_eq!(map.attribute("i"), Some(I(7)));
    assert_eq!(map.attribute("big"), Some(S("3000000000".into())));
    assert_eq!(map.attribute("f"), Some(S("1.5".into())));
    assert_eq!(map.attribute("o"), Some(S(r#"{"k":[1,null]}"#.into())));
    assert_eq!(map.attribute("n"), None);
    assert_eq!(map.attribute("data"), None);
    assert_eq!(map.attribute("mixed"), Some(S("m".into())));
    let e = Expression::parse("EXISTS n OR EXISTS data OR b AND i = 7");
    assert_eq!(e.map(|e| e.matches(&map)).ok(), Some(true));
}

#[test]
fn deepest_allowed_expressions_fit_a_small_stack() {
    // Each wrapper below adds 10 nesting levels (NOT, parens, two calls with
    // their argument lists, negation, parens, IN and its element).
    let mut mixed = String::from("x");
    let mut depth = 1;
    while depth + 10 <= MAX_DEPTH {
        mixed = format!("NOT (LENGTH(CONCAT(-({mixed} IN (TRUE, FALSE)) * 1 + 0)) = 0)");
        depth += 10;
    }
    // Parentheses cost the most stack per level.
    let parens = format!(
        "{}x{}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    for src in [mixed, parens] {
        // 1 MiB, half of Rust's default thread stack; an unoptimized build
        // needs about 0.4 MiB here, an optimized one under 0.1 MiB.
        let handle = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || {
                let expr = Expression::parse(&src).map_err(|e| e.to_string())?;
                Ok::<_, String>(expr.evaluate(&attrs(&[("x", I(1))])))
            });
        match handle.ok().and_then(|h| h.join().ok()) {
            Some(Ok(eval)) => assert!(eval.errors.is_empty(), "{:?}", eval.errors),
            other => panic!("deep expression failed: {other:?}"),
        }
    }
}

#[test]
fn random_inputs_never_panic() {
    const FRAGMENTS: [&str; 40] = [
        "(",
        ")",
        ",",
        "+",
        "-",
        "*",
        "/",
        "%",
        "=",
        "!=",
        "<>",
        "<",
        "<=",
        ">",
        ">=",
        "AND",
        "or",
        "XOR",
        "NOT",
        "LIKE",
        "IN",
        "EXISTS",
        "TRUE",
        "false",
        "0",
        "2147483647",
        "2147483648",
        "'a%_\\'",
        "\"\\\"x\"",
        "'日本'",
        "x",
        "y",
        "ABS(",
        "SUBSTRING(",
        "LEFT(",
        "CONCAT_WS(",
        "INT(",
        "nope(",
        "\\",
        "é",
    ];
    let a = attrs(&[("x", I(i32::MIN)), ("y", S("日本語%_".into()))]);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let len = next() % 16;
        let src: Vec<&str> = (0..len)
            .map(|_| FRAGMENTS[(next() % FRAGMENTS.len() as u64) as usize])
            .collect();
        let sep = if next() % 2 == 0 { " " } else { "" };
        let src = src.join(sep);
        if let Ok(expr) = Expression::parse(&src) {
            let _ = expr.evaluate(&a);
        }
    }
}
