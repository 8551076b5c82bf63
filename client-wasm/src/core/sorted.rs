//! Ordered maps and sets kept as one sorted vector.
//!
//! The core's tables are small (a session's requests, its subscriptions, readers, leases and
//! their timers) and are mostly touched at the ends: ids and deadlines grow, so new entries go
//! to the back, and the oldest request or the earliest timer leaves from the front. A sorted
//! `Vec` appends in O(1); removing the first live entry only moves a `head` index past it (the
//! slots before `head` are compacted away once they are the larger part), so that is O(1)
//! amortised too; anything else moves the entries behind it. Lookups are a binary search.
//!
//! The reason this is not `BTreeMap`: the browser package is size-budgeted, and each `BTreeMap`
//! key/value pair monomorphises some ten kilobytes of node-balancing code, where these compile
//! to a binary search and a `Vec` insert or remove.

use std::borrow::Borrow;

/// Dead slots at the front are compacted away when there are more of them than this and than
/// live entries.
const COMPACT_AFTER: usize = 32;

/// A map ordered by key.
#[derive(Debug, Clone)]
pub struct SortedMap<K, V> {
    /// `entries[head..]` are the live entries, sorted by key, every value `Some`; the slots
    /// before `head` were removed from the front and hold `None`.
    entries: Vec<(K, Option<V>)>,
    head: usize,
}

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap { entries: Vec::new(), head: 0 }
    }
}

impl<K: PartialEq, V: PartialEq> PartialEq for SortedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.entries[self.head..] == other.entries[other.head..]
    }
}

impl<K: Ord, V> SortedMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    fn live(&self) -> &[(K, Option<V>)] {
        &self.entries[self.head..]
    }

    /// The index in `entries` of `key`, or where it would go.
    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        match self.live().binary_search_by(|(k, _)| k.borrow().cmp(key)) {
            Ok(i) => Ok(self.head + i),
            Err(i) => Err(self.head + i),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len() - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.entries[self.find(key).ok()?].1.as_ref()
    }

    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(key).ok()?;
        self.entries[i].1.as_mut()
    }

    /// Inserts or replaces; returns the value the key had.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => self.entries[i].1.replace(value),
            Err(i) => {
                self.entries.insert(i, (key, Some(value)));
                None
            }
        }
    }

    /// The value of `key`, inserting `make()` first when it has none.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (key, None));
                i
            }
        };
        self.entries[i].1.get_or_insert_with(make)
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(key).ok()?;
        if i > self.head {
            return self.entries.remove(i).1;
        }
        let value = self.entries[i].1.take();
        self.head += 1;
        if self.head > COMPACT_AFTER && self.head * 2 > self.entries.len() {
            self.entries = self.entries.split_off(self.head);
            self.head = 0;
        }
        value
    }

    pub fn first_key_value(&self) -> Option<(&K, &V)> {
        self.iter().next()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.live().iter().filter_map(|(k, v)| Some((k, v.as_ref()?)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.entries[self.head..].iter_mut().filter_map(|(k, v)| Some((&*k, v.as_mut()?)))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.iter_mut().map(|(_, v)| v)
    }

    pub fn into_keys(self) -> impl Iterator<Item = K> {
        self.into_iter().map(|(k, _)| k)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| v.as_mut().is_some_and(|v| keep(k, v)));
        self.head = 0;
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.head = 0;
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for SortedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = SortedMap::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

impl<K, V> IntoIterator for SortedMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::iter::FilterMap<
        std::vec::IntoIter<(K, Option<V>)>,
        fn((K, Option<V>)) -> Option<(K, V)>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        // The slots before `head` hold `None` and are skipped like any other.
        self.entries.into_iter().filter_map(|(k, v)| Some((k, v?)))
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::FilterMap<
        std::slice::Iter<'a, (K, Option<V>)>,
        fn(&'a (K, Option<V>)) -> Option<(&'a K, &'a V)>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.live().iter().filter_map(|(k, v)| Some((k, v.as_ref()?)))
    }
}

/// A set ordered by value.
#[derive(Debug, Clone)]
pub struct SortedSet<T> {
    /// `items[head..]` are the members, sorted; the slots before `head` were removed from the
    /// front.
    items: Vec<T>,
    head: usize,
}

impl<T> Default for SortedSet<T> {
    fn default() -> Self {
        SortedSet { items: Vec::new(), head: 0 }
    }
}

impl<T: PartialEq> PartialEq for SortedSet<T> {
    fn eq(&self, other: &Self) -> bool {
        self.items[self.head..] == other.items[other.head..]
    }
}

impl<T: Ord> SortedSet<T> {
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, value: &T) -> Result<usize, usize> {
        match self.items[self.head..].binary_search(value) {
            Ok(i) => Ok(self.head + i),
            Err(i) => Err(self.head + i),
        }
    }

    pub fn len(&self) -> usize {
        self.items.len() - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, value: &T) -> bool {
        self.find(value).is_ok()
    }

    /// Adds `value`; false when it was already there.
    pub fn insert(&mut self, value: T) -> bool {
        match self.find(&value) {
            Ok(_) => false,
            Err(i) => {
                self.items.insert(i, value);
                true
            }
        }
    }

    /// Removes `value`; false when it was not there.
    pub fn remove(&mut self, value: &T) -> bool {
        match self.find(value) {
            Ok(i) if i == self.head => {
                self.advance();
                true
            }
            Ok(i) => {
                self.items.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Drops the first member.
    fn advance(&mut self) {
        self.head += 1;
        if self.head > COMPACT_AFTER && self.head * 2 > self.items.len() {
            self.items = self.items.split_off(self.head);
            self.head = 0;
        }
    }

    pub fn first(&self) -> Option<&T> {
        self.items.get(self.head)
    }

    pub fn pop_first(&mut self) -> Option<T>
    where
        T: Clone,
    {
        let first = self.first()?.clone();
        self.advance();
        Some(first)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items[self.head..].iter()
    }

    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        if self.head > 0 {
            self.items = self.items.split_off(self.head);
            self.head = 0;
        }
        self.items.retain(keep);
    }

    pub fn clear(&mut self) {
        self.items.clear();
        self.head = 0;
    }
}

impl<T: Ord> FromIterator<T> for SortedSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut set = SortedSet::new();
        for value in iter {
            set.insert(value);
        }
        set
    }
}

impl<T> IntoIterator for SortedSet<T> {
    type Item = T;
    type IntoIter = std::iter::Skip<std::vec::IntoIter<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter().skip(self.head)
    }
}

impl<'a, T: Ord> IntoIterator for &'a SortedSet<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn rng(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// The same operations on a `SortedMap` and a `BTreeMap` give the same answers, with keys
    /// that mostly grow and entries that mostly leave from the front, as the core uses them.
    #[test]
    fn map_should_behave_like_a_btree_map() {
        let mut next = rng(0x9e37_79b9_7f4a_7c15);
        let mut ours = SortedMap::new();
        let mut model = BTreeMap::new();
        let mut top = 0u64;
        for step in 0..50_000u64 {
            let key = if next().is_multiple_of(3) { next() % (top + 1) } else { top };
            match next() % 6 {
                0 | 1 => {
                    top += 1;
                    assert_eq!(ours.insert(key, step), model.insert(key, step));
                }
                2 => {
                    let first = model.keys().next().copied().unwrap_or(0);
                    assert_eq!(ours.remove(&first), model.remove(&first));
                }
                3 => assert_eq!(ours.remove(&key), model.remove(&key)),
                4 => assert_eq!(ours.get(&key), model.get(&key)),
                _ => {
                    *ours.get_or_insert_with(key, || 0) += 1;
                    *model.entry(key).or_insert(0) += 1;
                }
            }
            assert_eq!(ours.len(), model.len());
            assert_eq!(ours.first_key_value(), model.first_key_value());
            if step % 1000 == 0 {
                assert!(ours.iter().eq(model.iter()));
                assert!(ours.values_mut().map(|v| *v).eq(model.values().copied()));
            }
        }
        assert!(ours.iter().eq(model.iter()));
        ours.retain(|k, _| k % 2 == 0);
        model.retain(|k, _| k % 2 == 0);
        assert!(ours.clone().into_iter().eq(model.clone()));
        assert!(ours.into_keys().eq(model.into_keys()));
    }

    #[test]
    fn set_should_behave_like_a_btree_set() {
        let mut next = rng(0x2545_f491_4f6c_dd1d);
        let mut ours = SortedSet::new();
        let mut model = BTreeSet::new();
        for step in 0..50_000u64 {
            let value = (step / 2, next() % 4);
            match next() % 5 {
                0 | 1 => assert_eq!(ours.insert(value), model.insert(value)),
                2 => assert_eq!(ours.pop_first(), model.pop_first()),
                3 => {
                    let first = model.first().copied().unwrap_or_default();
                    assert_eq!(ours.remove(&first), model.remove(&first));
                }
                _ => assert_eq!(ours.remove(&value), model.remove(&value)),
            }
            assert_eq!(ours.len(), model.len());
            assert_eq!(ours.first(), model.first());
            assert_eq!(ours.contains(&value), model.contains(&value));
        }
        assert!(ours.iter().eq(model.iter()));
        ours.retain(|v| v.1 != 0);
        model.retain(|v| v.1 != 0);
        assert!(ours.into_iter().eq(model));
    }
}
