//! State-based CRDTs: the values that gossip and anti-entropy exchange.
//!
//! Replicas converge because every type here forms a join-semilattice: `merge` computes the
//! least upper bound of two states. Whatever order, grouping or repetition the network
//! delivers states in, every replica that has seen the same set of states holds the same
//! value. The laws below are what make that true; each implementation states why it obeys
//! them, and the tests at the bottom check them on seeded random states.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A state-based CRDT: a value with a merge (join) operation.
///
/// For all states `a`, `b`, `c`, writing `a ⊔ b` for "`a` after `a.merge(&b)`":
///
/// - **commutative**: `a ⊔ b == b ⊔ a` — the order states arrive in does not matter;
/// - **associative**: `(a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)` — nor how they are batched;
/// - **idempotent**: `a ⊔ a == a` — nor how often one is redelivered.
///
/// Merge must also be *inflationary*: `a ⊔ b` is never "older" than `a`, so a replica never
/// forgets something it has seen. Implementations must be deterministic (no clock, no
/// randomness, no iteration over hash maps) so equal inputs give byte-identical outputs.
pub trait Crdt {
    /// Replaces `self` with the join of `self` and `other`.
    fn merge(&mut self, other: &Self);
}

/// Last-writer-wins register.
///
/// States are totally ordered by `(timestamp, value)`; merge keeps the larger. Ordering by
/// the value on equal timestamps is what keeps merge commutative when two writers pick the
/// same timestamp: both replicas then keep the larger value instead of "their own". A total
/// order's `max` is commutative, associative and idempotent, so the laws hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lww<T> {
    timestamp: u64,
    value: T,
}

impl<T: Ord + Clone> Lww<T> {
    /// A register holding `value`, written at `timestamp`.
    pub fn new(timestamp: u64, value: T) -> Self {
        Lww { timestamp, value }
    }

    /// Writes `value` at `timestamp`; an older (or equal but smaller) write is ignored.
    pub fn update(&mut self, timestamp: u64, value: T) {
        if (timestamp, &value) > (self.timestamp, &self.value) {
            self.timestamp = timestamp;
            self.value = value;
        }
    }

    /// Timestamp of the winning write.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// Value of the winning write.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// Consumes the register, returning the winning value.
    pub fn into_value(self) -> T {
        self.value
    }
}

impl<T: Ord + Clone> Crdt for Lww<T> {
    fn merge(&mut self, other: &Self) {
        self.update(other.timestamp, other.value.clone());
    }
}

/// Map of last-writer-wins registers, one per key.
///
/// Merge takes the union of keys and merges registers key by key. A pointwise join of
/// semilattices over a union of keys is again a semilattice, so the laws hold. Keys are
/// never removed; store an `Option` (or a [`Deletable`]) as the value to express deletion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwMap<K: Ord, V> {
    entries: BTreeMap<K, Lww<V>>,
}

impl<K: Ord, V> Default for LwwMap<K, V> {
    fn default() -> Self {
        LwwMap { entries: BTreeMap::new() }
    }
}

impl<K: Ord + Clone, V: Ord + Clone> LwwMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value` under `key` at `timestamp` (last writer wins per key).
    pub fn insert(&mut self, key: K, timestamp: u64, value: V) {
        match self.entries.get_mut(&key) {
            Some(register) => register.update(timestamp, value),
            None => {
                self.entries.insert(key, Lww::new(timestamp, value));
            }
        }
    }

    /// Current value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(Lww::value)
    }

    /// Current register (value and timestamp) under `key`.
    pub fn get_entry(&self, key: &K) -> Option<&Lww<V>> {
        self.entries.get(key)
    }

    /// Entries in ascending key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, register)| (k, register.value()))
    }

    /// Number of keys ever written.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key was ever written.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K: Ord + Clone, V: Ord + Clone> Crdt for LwwMap<K, V> {
    fn merge(&mut self, other: &Self) {
        for (key, theirs) in &other.entries {
            match self.entries.get_mut(key) {
                Some(ours) => ours.merge(theirs),
                None => {
                    self.entries.insert(key.clone(), theirs.clone());
                }
            }
        }
    }
}

/// Monotonic flag: starts false, can only become true.
///
/// Merge is boolean `or`, the join of the two-element lattice `false < true`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Bool(bool);

impl Bool {
    /// A flag with the given initial state.
    pub fn new(value: bool) -> Self {
        Bool(value)
    }

    /// Raises the flag; there is deliberately no way to lower it.
    pub fn set(&mut self) {
        self.0 = true;
    }

    /// Current state.
    pub fn get(&self) -> bool {
        self.0
    }
}

impl Crdt for Bool {
    fn merge(&mut self, other: &Self) {
        self.0 |= other.0;
    }
}

/// Register that only grows: merge keeps the maximum.
///
/// `max` over a total order is commutative, associative and idempotent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Max<T>(T);

impl<T: Ord + Clone> Max<T> {
    /// A register holding `value`.
    pub fn new(value: T) -> Self {
        Max(value)
    }

    /// Raises the register to `value` if that is larger.
    pub fn update(&mut self, value: T) {
        if value > self.0 {
            self.0 = value;
        }
    }

    /// Current maximum.
    pub fn get(&self) -> &T {
        &self.0
    }
}

impl<T: Ord + Clone> Crdt for Max<T> {
    fn merge(&mut self, other: &Self) {
        self.update(other.0.clone());
    }
}

/// A value that can be deleted for good.
///
/// `Deleted` is the top element: merging anything with it gives `Deleted`, so a deletion is
/// never undone by a late update. Two `Present` values merge their contents. This is the
/// inner lattice with a new top added, which is again a semilattice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Deletable<T> {
    /// Live value.
    Present(T),
    /// Tombstone; absorbs every other state.
    Deleted,
}

impl<T> Deletable<T> {
    /// True for the tombstone.
    pub fn is_deleted(&self) -> bool {
        matches!(self, Deletable::Deleted)
    }

    /// The live value, if any.
    pub fn as_option(&self) -> Option<&T> {
        match self {
            Deletable::Present(value) => Some(value),
            Deletable::Deleted => None,
        }
    }

    /// Turns the value into a tombstone.
    pub fn delete(&mut self) {
        *self = Deletable::Deleted;
    }
}

impl<T: Crdt + Clone> Crdt for Deletable<T> {
    fn merge(&mut self, other: &Self) {
        match (&mut *self, other) {
            (Deletable::Deleted, _) => {}
            (_, Deletable::Deleted) => *self = Deletable::Deleted,
            (Deletable::Present(ours), Deletable::Present(theirs)) => ours.merge(theirs),
        }
    }
}

/// `None` is the bottom element: it knows nothing, so merging it changes nothing, and
/// merging into it adopts the other side. This is the inner lattice with a new bottom.
impl<T: Crdt + Clone> Crdt for Option<T> {
    fn merge(&mut self, other: &Self) {
        match (&mut *self, other) {
            (_, None) => {}
            (None, Some(theirs)) => *self = Some(theirs.clone()),
            (Some(ours), Some(theirs)) => ours.merge(theirs),
        }
    }
}

/// Checks the three laws on states drawn from `generate`, over seeds `0..seeds`.
///
/// Shared with other modules' tests so every `Crdt` implementation is held to the same
/// checks. Generators should draw from small domains so that collisions (equal timestamps,
/// equal keys) actually happen.
#[cfg(test)]
pub(crate) fn assert_crdt_laws<T, G>(name: &str, seeds: u64, mut generate: G)
where
    T: Crdt + Clone + PartialEq + std::fmt::Debug,
    G: FnMut(&mut rand_chacha::ChaCha8Rng) -> T,
{
    use rand_core::SeedableRng;

    let join = |a: &T, b: &T| {
        let mut out = a.clone();
        out.merge(b);
        out
    };
    for seed in 0..seeds {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (a, b, c) = (generate(&mut rng), generate(&mut rng), generate(&mut rng));
        assert_eq!(join(&a, &b), join(&b, &a), "{name}: merge not commutative, seed {seed}");
        assert_eq!(
            join(&join(&a, &b), &c),
            join(&a, &join(&b, &c)),
            "{name}: merge not associative, seed {seed}"
        );
        assert_eq!(join(&a, &a), a, "{name}: merge not idempotent, seed {seed}");
        // Inflation: merging in more states never loses what a state already knew.
        let ab = join(&a, &b);
        assert_eq!(join(&ab, &a), ab, "{name}: merge not inflationary, seed {seed}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::RngCore;

    const SEEDS: u64 = 500;

    /// Small domains so that equal timestamps, values and keys collide often.
    fn small(rng: &mut ChaCha8Rng, below: u32) -> u32 {
        rng.next_u32() % below
    }

    fn lww(rng: &mut ChaCha8Rng) -> Lww<u32> {
        Lww::new(u64::from(small(rng, 4)), small(rng, 4))
    }

    fn lww_map(rng: &mut ChaCha8Rng) -> LwwMap<u32, u32> {
        let mut map = LwwMap::new();
        for _ in 0..small(rng, 5) {
            map.insert(small(rng, 4), u64::from(small(rng, 3)), small(rng, 3));
        }
        map
    }

    fn deletable(rng: &mut ChaCha8Rng) -> Deletable<LwwMap<u32, u32>> {
        if small(rng, 4) == 0 { Deletable::Deleted } else { Deletable::Present(lww_map(rng)) }
    }

    #[test]
    fn lww_obeys_laws() {
        assert_crdt_laws("Lww", SEEDS, lww);
    }

    #[test]
    fn lww_map_obeys_laws() {
        assert_crdt_laws("LwwMap", SEEDS, lww_map);
    }

    #[test]
    fn bool_obeys_laws() {
        assert_crdt_laws("Bool", SEEDS, |rng| Bool::new(small(rng, 2) == 1));
    }

    #[test]
    fn max_obeys_laws() {
        assert_crdt_laws("Max", SEEDS, |rng| Max::new(small(rng, 5)));
    }

    #[test]
    fn deletable_obeys_laws() {
        assert_crdt_laws("Deletable", SEEDS, deletable);
    }

    #[test]
    fn option_obeys_laws() {
        assert_crdt_laws(
            "Option",
            SEEDS,
            |rng| {
                if small(rng, 3) == 0 { None } else { Some(lww(rng)) }
            },
        );
    }

    #[test]
    fn nested_option_of_deletable_obeys_laws() {
        assert_crdt_laws("Option<Deletable>", SEEDS, |rng| {
            if small(rng, 3) == 0 { None } else { Some(deletable(rng)) }
        });
    }

    #[test]
    fn lww_newer_timestamp_wins_regardless_of_value() {
        let mut register = Lww::new(5, 100);
        register.update(6, 1);
        assert_eq!((register.timestamp(), *register.value()), (6, 1));
        register.update(4, 1000);
        assert_eq!((register.timestamp(), *register.value()), (6, 1));
    }

    #[test]
    fn lww_tie_goes_to_larger_value_on_both_sides() {
        // Two writers chose the same timestamp: both replicas must keep the same value.
        let (mut left, mut right) = (Lww::new(7, "apple"), Lww::new(7, "pear"));
        let left_before = left.clone();
        left.merge(&right);
        right.merge(&left_before);
        assert_eq!(left, right);
        assert_eq!(*left.value(), "pear");
    }

    #[test]
    fn lww_map_merges_per_key_and_iterates_in_key_order() {
        let mut a = LwwMap::new();
        a.insert("b", 1, 10);
        a.insert("a", 5, 50);
        let mut b = LwwMap::new();
        b.insert("b", 2, 20);
        b.insert("c", 1, 30);
        a.merge(&b);
        let got: Vec<_> = a.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(got, vec![("a", 50), ("b", 20), ("c", 30)]);
        assert_eq!(a.get_entry(&"b").map(Lww::timestamp), Some(2));
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn deleted_absorbs_any_update() {
        let mut live = Deletable::Present(Max::new(3));
        live.merge(&Deletable::Deleted);
        assert!(live.is_deleted());
        let mut dead: Deletable<Max<u32>> = Deletable::Deleted;
        dead.merge(&Deletable::Present(Max::new(99)));
        assert_eq!(dead, Deletable::Deleted);
        assert_eq!(dead.as_option(), None);
    }

    #[test]
    fn bool_never_goes_back_to_false() {
        let mut flag = Bool::default();
        flag.set();
        flag.merge(&Bool::new(false));
        assert!(flag.get());
    }

    #[test]
    fn option_none_is_bottom() {
        let mut none: Option<Max<u8>> = None;
        none.merge(&Some(Max::new(4)));
        assert_eq!(none, Some(Max::new(4)));
        let mut some = Some(Max::new(4));
        some.merge(&None);
        assert_eq!(some, Some(Max::new(4)));
    }
}
