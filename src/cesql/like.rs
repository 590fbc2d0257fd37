//! LIKE patterns (spec 3.4.3), compiled once at parse time.
//!
//! `%` matches any run of characters, `_` exactly one character, `\%` and
//! `\_` the literal characters; every other character (including a backslash
//! not followed by `%` or `_`) matches itself, case-sensitively. Characters
//! are Unicode scalar values.
//!
//! The pattern is split at `%` into segments. The first segment is anchored
//! at the start, the last at the end, and each middle segment is matched at
//! its leftmost position after the previous one; leftmost placement is always
//! optimal, so there is no backtracking across `%`. Matching is
//! O(len(text) * len(pattern)) in the worst case and linear (via
//! `str::find`) for segments without `_`.

/// One pattern element inside a `%`-free segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Char(char),
    AnyOne,
}

/// A run of pattern elements between `%` wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    atoms: Vec<Atom>,
    /// The segment as a plain string when it has no `_`, for fast searching.
    literal: Option<String>,
}

impl Segment {
    fn new(atoms: Vec<Atom>) -> Self {
        let literal = atoms
            .iter()
            .map(|a| match a {
                Atom::Char(c) => Some(*c),
                Atom::AnyOne => None,
            })
            .collect::<Option<String>>();
        Segment { atoms, literal }
    }

    /// If the segment matches `text` starting at byte `at`, returns the byte
    /// offset just past the match.
    fn match_at(&self, text: &str, at: usize) -> Option<usize> {
        let rest = text.get(at..)?;
        if let Some(lit) = &self.literal {
            return rest.starts_with(lit.as_str()).then(|| at + lit.len());
        }
        let mut chars = rest.char_indices();
        for atom in &self.atoms {
            let (_, c) = chars.next()?;
            if matches!(atom, Atom::Char(want) if *want != c) {
                return None;
            }
        }
        Some(match chars.next() {
            Some((off, _)) => at + off,
            None => text.len(),
        })
    }

    /// Leftmost match at or after byte `from`; returns (start, end).
    fn find_from(&self, text: &str, from: usize) -> Option<(usize, usize)> {
        let rest = text.get(from..)?;
        if let Some(lit) = &self.literal {
            return rest
                .find(lit.as_str())
                .map(|off| (from + off, from + off + lit.len()));
        }
        let starts = rest
            .char_indices()
            .map(|(off, _)| from + off)
            .chain(std::iter::once(text.len()));
        for start in starts {
            if let Some(end) = self.match_at(text, start) {
                return Some((start, end));
            }
        }
        None
    }

    /// Number of characters the segment consumes.
    fn char_len(&self) -> usize {
        self.atoms.len()
    }
}

/// A compiled LIKE pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LikePattern {
    /// Segments split at `%`; a pattern without `%` has exactly one.
    segments: Vec<Segment>,
}

impl LikePattern {
    /// Compiles the (already unquoted) pattern text.
    pub(crate) fn compile(pattern: &str) -> Self {
        let mut segments = Vec::new();
        let mut atoms = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if matches!(chars.peek(), Some('%') | Some('_')) => {
                    if let Some(escaped) = chars.next() {
                        atoms.push(Atom::Char(escaped));
                    }
                }
                '%' => segments.push(Segment::new(std::mem::take(&mut atoms))),
                '_' => atoms.push(Atom::AnyOne),
                other => atoms.push(Atom::Char(other)),
            }
        }
        segments.push(Segment::new(atoms));
        LikePattern { segments }
    }

    /// Reports whether `text` matches the whole pattern.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let (first, rest) = match self.segments.split_first() {
            Some(parts) => parts,
            None => return text.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else {
            // No `%`: the single segment must cover the whole text.
            return first.match_at(text, 0) == Some(text.len());
        };
        let Some(mut pos) = first.match_at(text, 0) else {
            return false;
        };
        for seg in middle {
            match seg.find_from(text, pos) {
                Some((_, end)) => pos = end,
                None => return false,
            }
        }
        // The last segment must end exactly at the end of the text, without
        // overlapping what the earlier segments consumed.
        let need = last.char_len();
        let tail_start = if need == 0 {
            text.len()
        } else {
            match text.char_indices().rev().nth(need - 1) {
                Some((off, _)) => off,
                None => return false,
            }
        };
        tail_start >= pos && last.match_at(text, tail_start) == Some(text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::LikePattern;

    fn like(text: &str, pattern: &str) -> bool {
        LikePattern::compile(pattern).matches(text)
    }

    #[test]
    fn wildcards() {
        assert!(like("abc", "abc"));
        assert!(!like("abcd", "abc"));
        assert!(like("", "%"));
        assert!(like("", "%%"));
        assert!(!like("", "_"));
        assert!(like("ab", "a%b"));
        assert!(like("azzb", "a%b"));
        assert!(!like("azzbc", "a%b"));
        assert!(like("aXbYc", "a_b_c"));
        assert!(like("abab", "%ab"));
        assert!(!like("aba", "ab%ba"));
        assert!(like("abba", "ab%ba"));
        assert!(like("eu-west", "eu-%"));
        assert!(like("xaxbx", "%a_b%"));
        assert!(!like("ab", "a__"));
    }

    #[test]
    fn escapes_and_unicode() {
        assert!(like("a%b", r"a\%b"));
        assert!(!like("axb", r"a\%b"));
        assert!(like("a_b", r"a\_b"));
        assert!(like(r"ab\c", r"ab\c"));
        assert!(like(r"a\", r"a\"));
        assert!(like(r"a\%", r"a\\%"));
        assert!(like("héllo", "h_llo"));
        assert!(like("日本語", "_本%"));
        assert!(like("日本語", "%語"));
        assert!(!like("日本語", "%日"));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let text = "a".repeat(20_000);
        let pattern = format!("{}b", "%a".repeat(50));
        assert!(!like(&text, &pattern));
    }
}
