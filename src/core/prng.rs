//! The one source of randomness for the core and its drivers: a small seeded PRNG
//! (xoshiro256** seeded through SplitMix64). Same seed, same sequence, on every
//! machine: that is what lets the simulator replay a failure exactly.
//!
//! It must never be seeded from the clock inside the core; drivers choose the seed.

/// A deterministic pseudo-random number generator.
#[derive(Clone, Debug)]
pub struct Prng {
    state: [u64; 4],
}

impl Prng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut splitmix = seed;
        let mut next = || {
            splitmix = splitmix.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = splitmix;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Prng { state: [next(), next(), next(), next()] }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.state[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let shifted = self.state[1] << 17;
        self.state[2] ^= self.state[0];
        self.state[3] ^= self.state[1];
        self.state[1] ^= self.state[2];
        self.state[0] ^= self.state[3];
        self.state[2] ^= shifted;
        self.state[3] = self.state[3].rotate_left(45);
        result
    }

    /// A value in `[low, high)`; `low` when the range is empty.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        // Multiply-shift keeps the bias below 2^-64 per draw, which is plenty here.
        let span = high - low;
        low + ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as u64
    }

    /// True with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.range(0, denominator) < numerator
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let mut first = Prng::new(42);
        let mut second = Prng::new(42);
        for _ in 0..1000 {
            assert_eq!(first.next_u64(), second.next_u64());
        }
        assert_ne!(Prng::new(1).next_u64(), Prng::new(2).next_u64());
    }

    #[test]
    fn range_stays_within_bounds_and_covers_them() {
        let mut prng = Prng::new(7);
        let mut seen = [false; 10];
        for _ in 0..10_000 {
            let value = prng.range(10, 20);
            assert!((10..20).contains(&value), "{value}");
            seen[(value - 10) as usize] = true;
        }
        assert!(seen.iter().all(|&hit| hit));
        assert_eq!(prng.range(5, 5), 5);
    }
}
