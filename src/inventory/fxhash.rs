//! A fast, non-cryptographic hasher for the name and id maps built while loading.
//!
//! The standard SipHash resists hash flooding, which matters for data from untrusted
//! peers; an inventory is written by the operator, and on a 300,000-link fleet SipHash
//! is a visible share of the load time. This is the multiply-rotate hash used by the
//! Rust compiler ("FxHash"): a few instructions per 8 bytes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed with [`FxHasher`].
pub type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// An empty [`FxHashMap`] with room for `capacity` entries.
pub fn map_with_capacity<K, V>(capacity: usize) -> FxHashMap<K, V> {
    HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default())
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The hasher state: one word, folded with each input word.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash>(v: T) -> u64 {
        BuildHasherDefault::<FxHasher>::default().hash_one(v)
    }

    #[test]
    fn equal_inputs_hash_equal_and_close_inputs_differ() {
        assert_eq!(hash("app-00001"), hash("app-00001"));
        assert_ne!(hash("app-00001"), hash("app-00002"));
        assert_ne!(hash((1u32, 2u32)), hash((2u32, 1u32)));
    }

    #[test]
    fn maps_work_with_string_keys() {
        let mut m: FxHashMap<&str, usize> = map_with_capacity(4);
        for (i, name) in ["a", "b", "lb-00001", "a-very-long-node-name-indeed"]
            .iter()
            .enumerate()
        {
            m.insert(name, i);
        }
        assert_eq!(m.get("lb-00001"), Some(&2));
        assert_eq!(m.get("a-very-long-node-name-indeed"), Some(&3));
        assert_eq!(m.get("c"), None);
    }
}
