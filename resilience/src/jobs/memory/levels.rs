//! The ready jobs of one queue, by priority level: level 0 (not prioritized) first, then lower
//! numbers first; FIFO within a level, with LIFO jobs pushed to the front.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// A job's internal key: the number its generated id is made of (custom ids map to one too).
pub(super) type Key = u64;

/// Levels 0..=4 (unprioritized and the four names) live in an array, so the common case
/// allocates nothing per job once the deques have grown; other numbers go to a map.
const FIXED: usize = 5;

#[derive(Debug, Default)]
pub(super) struct Levels {
    fixed: [VecDeque<Key>; FIXED],
    other: BTreeMap<u32, VecDeque<Key>>,
    len: usize,
}

impl Levels {
    /// Ready jobs in all levels.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Queues `key` at `level`: at the back (FIFO), or at the front when `front`.
    pub(super) fn push(&mut self, level: u32, key: Key, front: bool) {
        let deque = match usize::try_from(level) {
            Ok(i) if i < FIXED => &mut self.fixed[i],
            _ => self.other.entry(level).or_default(),
        };
        if front {
            deque.push_front(key);
        } else {
            deque.push_back(key);
        }
        self.len += 1;
    }

    /// Takes the job served next.
    pub(super) fn pop(&mut self) -> Option<Key> {
        if self.len == 0 {
            return None;
        }
        let key = match self.fixed.iter_mut().find(|d| !d.is_empty()) {
            Some(deque) => deque.pop_front(),
            None => {
                let mut entry = self.other.first_entry()?;
                let key = entry.get_mut().pop_front();
                if entry.get().is_empty() {
                    entry.remove();
                }
                key
            }
        };
        if key.is_some() {
            self.len -= 1;
        }
        key
    }

    /// The first and last job of every level: FIFO order keeps each level's longest-waiting
    /// jobs at its ends, so these are where the oldest ready job is looked for.
    pub(super) fn ends(&self) -> impl Iterator<Item = Key> + '_ {
        self.fixed
            .iter()
            .chain(self.other.values())
            .flat_map(|d| d.front().into_iter().chain(d.back()))
            .copied()
    }
}

/// A hasher for [`Key`]s. Keys are increasing counters, so the key itself is a good bucket
/// index: consecutive jobs land in consecutive buckets and the FIFO walk through them stays in
/// cache. hashbrown also reads a 7-bit tag from the top bits, so the key's low bits are copied
/// there to keep tags varied. Far cheaper than SipHash on the per-job path.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n ^ (n << 57);
    }
}

/// The map type for jobs by key.
pub(super) type KeyMap<V> = std::collections::HashMap<Key, V, BuildHasherDefault<KeyHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_first_then_lower_numbers_fifo_within_and_lifo_in_front() {
        let mut l = Levels::default();
        l.push(3, 1, false);
        l.push(7, 2, false);
        l.push(1, 3, false);
        l.push(0, 4, false);
        l.push(3, 5, false);
        l.push(3, 6, true);
        l.push(7, 7, true);
        assert_eq!(l.len(), 7);
        let order: Vec<Key> = std::iter::from_fn(|| l.pop()).collect();
        assert_eq!(order, vec![4, 3, 6, 1, 5, 7, 2]);
        assert_eq!(l.len(), 0);
        assert!(l.other.is_empty());
    }

    #[test]
    fn ends_cover_both_ends_of_each_level() {
        let mut l = Levels::default();
        l.push(2, 1, false);
        l.push(2, 2, false);
        l.push(2, 3, false);
        l.push(9, 4, false);
        let mut ends: Vec<Key> = l.ends().collect();
        ends.sort_unstable();
        ends.dedup();
        assert_eq!(ends, vec![1, 3, 4]);
    }
}
