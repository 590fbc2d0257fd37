//! The event parser's fuzz target, run on stable in every `cargo test`: the seed corpus, then
//! tens of thousands of mutations of it (bit flips, byte edits, splices, repeated chunks), and
//! random JSON documents. Nothing may panic. `scripts/fuzz-parser.sh` runs the same target under
//! libFuzzer with coverage guidance.

include!("../fuzz/parse_event.rs");

use eventflow::dice::Dice;

/// Mutated inputs tried per corpus file.
const MUTATIONS: usize = 20_000;

/// A number from 0 to `n - 1`.
fn roll(dice: &mut Dice, n: usize) -> usize {
    dice.below(n as u64) as usize
}

/// Bytes that matter to the parsers: JSON punctuation, escapes, control and multi-byte text.
const INTERESTING: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"\\u0000",
    b"\\ud800",
    b"\0",
    b"\n",
    b"null",
    b"1e999",
    b"-0",
    b"\xff",
    "é".as_bytes(),
    "😀".as_bytes(),
    b"specversion",
    b"data_base64",
    b"ce-",
    b"content-type: text/plain",
    b"====",
];

fn mutate(input: &[u8], dice: &mut Dice) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=roll(dice, 4) {
        let at = roll(dice, out.len() + 1);
        match roll(dice, 6) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << roll(dice, 8);
            }
            1 if at < out.len() => {
                out.remove(at);
            }
            2 => {
                let piece = INTERESTING[roll(dice, INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            3 if !out.is_empty() => {
                let from = roll(dice, out.len());
                let to = (from + roll(dice, 64)).min(out.len());
                let chunk = out[from..to].to_vec();
                out.splice(at..at, chunk);
            }
            4 => out.truncate(at),
            _ => out.insert(at, dice.roll() as u8),
        }
    }
    out
}

/// A random JSON document of bounded size, with the field names events use.
fn random_json(dice: &mut Dice, depth: usize) -> serde_json::Value {
    use serde_json::{Value, json};
    const NAMES: &[&str] = &[
        "type",
        "source",
        "id",
        "data",
        "time",
        "subject",
        "specversion",
        "metadata",
        "data_base64",
        "datacontenttype",
        "dataschema",
        "priority",
        "partition_key",
        "correlation_id",
        "stream",
        "sequence",
        "user_id",
        "order_id",
        "x",
    ];
    match roll(dice, if depth == 0 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => json!(dice.roll() as i64),
        2 => {
            let texts = [
                "",
                "user.created",
                "1.0",
                "2024-01-01T00:00:00Z",
                "not a time",
                "\u{0}",
                "order.*",
            ];
            json!(texts[roll(dice, texts.len())])
        }
        3 => json!(roll(dice, 2) == 0),
        4 => Value::Array(
            (0..roll(dice, 4))
                .map(|_| random_json(dice, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..roll(dice, 8))
                .map(|_| {
                    (
                        NAMES[roll(dice, NAMES.len())].to_string(),
                        random_json(dice, depth - 1),
                    )
                })
                .collect(),
        ),
    }
}

#[test]
fn the_event_parser_survives_mutated_and_random_input() {
    let corpus_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse_event");
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&corpus_dir)
        .unwrap()
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(
        corpus.len() >= 4,
        "the seed corpus is in {}",
        corpus_dir.display()
    );
    corpus.sort();
    let mut dice = Dice::new(0x5eed_1234_abcd_ef01);
    for seed in &corpus {
        parse_event(seed);
        for _ in 0..MUTATIONS {
            parse_event(&mutate(seed, &mut dice));
        }
    }
    for _ in 0..MUTATIONS {
        let document = random_json(&mut dice, 4);
        parse_event(document.to_string().as_bytes());
    }
}
