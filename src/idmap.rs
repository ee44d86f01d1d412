//! Hash maps keyed by UUIDs, hashed with one multiply instead of SipHash.
//!
//! The maps on the send path (groups, presence, a tick's log chunks) are keyed by ids the server
//! made, random v4 UUIDs, and are looked up about a dozen times per message: SipHash, which
//! defends a map against keys chosen to collide, showed in the loop's profile under `fanout`
//! (docs/BENCHMARKS.md, "Changes of 2026-11-25 (third session)").
//! A client can look a key up but never insert one it chose, so the defence buys nothing here.
//! The fold still mixes every bit into the low ones, so ids that are not random (tests use
//! small integers) spread over the buckets too.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use uuid::Uuid;

pub type IdMap<V> = HashMap<Uuid, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
pub struct IdHasher(u64);

/// The 64-bit fractional part of the golden ratio: odd, with well-spread bits.
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // A UUID arrives as one write of its 16 bytes; anything else is folded 8 bytes at a time.
        for word in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..word.len()].copy_from_slice(word);
            let product = u128::from(self.0 ^ u64::from_le_bytes(buf)) * u128::from(MIX);
            self.0 = (product as u64) ^ ((product >> 64) as u64);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.write(&n.to_le_bytes());
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    /// Small integer ids (as tests make them) must not share buckets: the low bits, which pick
    /// the bucket, and the top seven, which the table compares first, both differ.
    #[test]
    fn sequential_ids_spread_over_low_and_high_bits() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let hashes: Vec<u64> = (0..1024u128)
            .map(|n| build.hash_one(Uuid::from_u128(n)))
            .collect();
        let low: HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
        let top: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(
            low.len() > 600,
            "only {} of 1024 low-bit buckets",
            low.len()
        );
        assert_eq!(top.len(), 128, "top seven bits");
        let mut map = IdMap::default();
        map.insert(Uuid::from_u128(7), "seven");
        assert_eq!(map.get(&Uuid::from_u128(7)), Some(&"seven"));
        assert_eq!(map.get(&Uuid::from_u128(8)), None);
    }
}
