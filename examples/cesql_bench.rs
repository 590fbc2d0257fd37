//! Micro-benchmark: one subscription filter evaluated against one event.
//!
//! Run with `cargo run --release --example cesql_bench`.

use std::hint::black_box;
use std::time::Instant;

use eventflow::cesql::Expression;
use serde_json::{Map, Value, json};

const FILTER: &str = "type = 'order.created' AND (subject LIKE 'eu-%' OR EXISTS partitionkey)";
const ITERATIONS: u32 = 1_000_000;

fn event() -> Map<String, Value> {
    let v = json!({
        "specversion": "1.0",
        "id": "0b6d4a8e-6f3c-4a8b-9a53-3f3c2b1d9e77",
        "source": "/shop/orders",
        "type": "order.created",
        "subject": "us-east-17",
        "time": "2025-01-01T12:00:00Z",
        "datacontenttype": "application/json",
        "dataschema": "https://example.com/schemas/order.json",
        "partitionkey": "customer-42",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn main() {
    let expr = match Expression::parse(FILTER) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let event = event();
    assert_eq!(event.len(), 10);
    // `subject` does not match 'eu-%', so OR falls through to EXISTS.
    assert!(expr.matches(&event));

    for _ in 0..10_000 {
        black_box(expr.evaluate(black_box(&event)));
    }
    let start = Instant::now();
    let mut passed = 0u32;
    for _ in 0..ITERATIONS {
        let eval = expr.evaluate(black_box(&event));
        passed += u32::from(eval.errors.is_empty());
        black_box(eval);
    }
    let elapsed = start.elapsed();
    assert_eq!(passed, ITERATIONS);
    println!("filter: {FILTER}");
    println!(
        "{ITERATIONS} evaluations in {:.3} s: {:.1} ns/eval",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / f64::from(ITERATIONS)
    );
}
