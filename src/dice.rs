//! A small deterministic random source (xorshift64*): the same seed gives the same sequence, so
//! demo stories and fuzzing runs reproduce. Not for anything secret.

/// The random source.
#[derive(Debug, Clone)]
pub struct Dice(u64);

impl Dice {
    /// A source starting from `seed` (any value; zero is nudged to one).
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// 64 random bits.
    pub fn roll(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number from 0 to `n - 1` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.roll() % n.max(1)
    }

    /// One of `items`, which must not be empty.
    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence_within_bounds() {
        let (mut a, mut b) = (Dice::new(7), Dice::new(7));
        for _ in 0..100 {
            let n = a.below(10);
            assert_eq!(n, b.below(10));
            assert!(n < 10);
        }
        assert_eq!(Dice::new(0).below(0), 0);
    }
}
