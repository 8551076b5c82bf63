//! The subscription index: a trie over dot-separated segments with `*` and `>` nodes.
//!
//! Matching a topic walks at most two children per segment (the literal one and `*`) plus the
//! `>` entries met on the way, so its cost depends on the topic's depth and on the patterns that
//! actually match, never on the number of unrelated subscriptions.

use std::collections::{HashMap, HashSet};

/// Subscribers of one trie position, by subscriber id.
type Subscribers<V> = HashMap<u64, V>;

/// Maps subscription patterns to subscribers.
pub struct PatternIndex<V> {
    root: Node<V>,
    subscriptions: usize,
}

struct Node<V> {
    literal: HashMap<Box<str>, Node<V>>,
    star: Option<Box<Node<V>>>,
    /// Subscribers whose pattern ends here.
    exact: Subscribers<V>,
    /// Subscribers whose pattern ends with `>` right after this node.
    tail: Subscribers<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node { literal: HashMap::new(), star: None, exact: HashMap::new(), tail: HashMap::new() }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.star.is_none()
            && self.exact.is_empty()
            && self.tail.is_empty()
    }
}

impl<V> Default for PatternIndex<V> {
    fn default() -> Self {
        PatternIndex { root: Node::default(), subscriptions: 0 }
    }
}

impl<V> PatternIndex<V> {
    /// Number of (pattern, subscriber) pairs.
    pub fn len(&self) -> usize {
        self.subscriptions
    }

    /// Whether the index holds no subscription.
    pub fn is_empty(&self) -> bool {
        self.subscriptions == 0
    }

    /// Adds `subscriber` under a valid `pattern`. Returns false if it was already there.
    pub fn insert(&mut self, pattern: &str, subscriber: u64, value: V) -> bool {
        let mut node = &mut self.root;
        let mut segments = pattern.split('.').peekable();
        while let Some(segment) = segments.next() {
            if segment == ">" && segments.peek().is_none() {
                let added = node.tail.insert(subscriber, value).is_none();
                return self.count(added);
            }
            node = if segment == "*" {
                node.star.get_or_insert_with(Box::default)
            } else {
                node.literal.entry(segment.into()).or_default()
            };
        }
        let added = node.exact.insert(subscriber, value).is_none();
        self.count(added)
    }

    fn count(&mut self, added: bool) -> bool {
        if added {
            self.subscriptions += 1;
        }
        added
    }

    /// Removes `subscriber` from `pattern`, pruning emptied nodes. Returns false if absent.
    pub fn remove(&mut self, pattern: &str, subscriber: u64) -> bool {
        let segments: Vec<&str> = pattern.split('.').collect();
        let removed = remove_at(&mut self.root, &segments, subscriber);
        if removed {
            self.subscriptions -= 1;
        }
        removed
    }

    /// Calls `visit` once for every subscriber with a pattern matching `topic`, however many of
    /// its patterns match.
    pub fn for_each_match(&self, topic: &str, mut visit: impl FnMut(u64, &V)) {
        let segments: Vec<&str> = topic.split('.').collect();
        let mut hits: Vec<&Subscribers<V>> = Vec::new();
        collect(&self.root, &segments, &mut hits);
        match hits.as_slice() {
            [] => {}
            [only] => only.iter().for_each(|(id, v)| visit(*id, v)),
            many => {
                let mut seen = HashSet::with_capacity(many.iter().map(|s| s.len()).sum());
                for subs in many {
                    for (id, v) in subs.iter() {
                        if seen.insert(*id) {
                            visit(*id, v);
                        }
                    }
                }
            }
        }
    }
}

fn collect<'a, V>(node: &'a Node<V>, segments: &[&str], hits: &mut Vec<&'a Subscribers<V>>) {
    let Some((first, rest)) = segments.split_first() else {
        if !node.exact.is_empty() {
            hits.push(&node.exact);
        }
        return;
    };
    if !node.tail.is_empty() {
        hits.push(&node.tail);
    }
    if let Some(child) = node.literal.get(*first) {
        collect(child, rest, hits);
    }
    if let Some(star) = &node.star {
        collect(star, rest, hits);
    }
}

fn remove_at<V>(node: &mut Node<V>, segments: &[&str], subscriber: u64) -> bool {
    match segments {
        [] => node.exact.remove(&subscriber).is_some(),
        [">"] => node.tail.remove(&subscriber).is_some(),
        ["*", rest @ ..] => {
            let Some(star) = node.star.as_mut() else {
                return false;
            };
            let removed = remove_at(star, rest, subscriber);
            if star.is_empty() {
                node.star = None;
            }
            removed
        }
        [literal, rest @ ..] => {
            let Some(child) = node.literal.get_mut(*literal) else {
                return false;
            };
            let removed = remove_at(child, rest, subscriber);
            if child.is_empty() {
                node.literal.remove(*literal);
            }
            removed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::names::pattern_matches;

    fn matches(index: &PatternIndex<()>, topic: &str) -> Vec<u64> {
        let mut ids = Vec::new();
        index.for_each_match(topic, |id, _| ids.push(id));
        ids.sort_unstable();
        ids
    }

    #[test]
    fn wildcards_should_match_like_nats() {
        let mut index = PatternIndex::default();
        index.insert("a.b", 1, ());
        index.insert("a.*", 2, ());
        index.insert("a.>", 3, ());
        index.insert(">", 4, ());
        index.insert("*.b.c", 5, ());
        assert_eq!(matches(&index, "a.b"), vec![1, 2, 3, 4]);
        assert_eq!(matches(&index, "a.c"), vec![2, 3, 4]);
        assert_eq!(matches(&index, "a.b.c"), vec![3, 4, 5]);
        assert_eq!(matches(&index, "a"), vec![4]);
        assert_eq!(matches(&index, "b"), vec![4]);
        assert_eq!(matches(&index, "x.b.c"), vec![4, 5]);
    }

    #[test]
    fn a_subscriber_with_several_matching_patterns_should_be_visited_once() {
        let mut index = PatternIndex::default();
        index.insert("a.b", 1, ());
        index.insert("a.*", 1, ());
        index.insert("a.>", 1, ());
        index.insert("a.b", 2, ());
        assert_eq!(matches(&index, "a.b"), vec![1, 2]);
    }

    #[test]
    fn remove_should_prune_and_report_absence() {
        let mut index = PatternIndex::default();
        assert!(index.insert("a.*.c", 1, ()));
        assert!(!index.insert("a.*.c", 1, ()));
        assert!(index.insert("a.>", 1, ()));
        assert_eq!(index.len(), 2);
        assert!(index.remove("a.*.c", 1));
        assert!(!index.remove("a.*.c", 1));
        assert!(!index.remove("x.y", 1));
        assert!(index.remove("a.>", 1));
        assert!(index.is_empty());
        assert!(index.root.is_empty(), "empty nodes should be pruned");
    }

    #[test]
    fn index_should_agree_with_the_reference_matcher() {
        let segments = ["a", "b", "*"];
        let mut patterns = Vec::new();
        for len in 1..=3 {
            let mut combos = vec![String::new()];
            for _ in 0..len {
                combos = combos
                    .iter()
                    .flat_map(|p| {
                        segments.iter().map(move |s| {
                            if p.is_empty() { s.to_string() } else { format!("{p}.{s}") }
                        })
                    })
                    .collect();
            }
            for c in combos {
                patterns.push(format!("{c}.>"));
                patterns.push(c);
            }
        }
        patterns.push(">".into());
        let mut index = PatternIndex::default();
        for (i, p) in patterns.iter().enumerate() {
            index.insert(p, i as u64, ());
        }
        for topic in ["a", "b", "a.b", "b.a", "a.a.a", "a.b.a.b", "c", "a.c"] {
            let expected: Vec<u64> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| pattern_matches(p, topic))
                .map(|(i, _)| i as u64)
                .collect();
            assert_eq!(matches(&index, topic), expected, "topic {topic}");
        }
    }
}
