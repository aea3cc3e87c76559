//! Server-side partition assignors of KIP-848 consumer groups: `uniform` (the default) and
//! `range`, the two Kafka 4.x ships (`group.consumer.assignors`).
//!
//! An assignor sees the members' subscriptions, the subscribed topics' partition counts, and the
//! previous target assignment, and returns the new target assignment. The coordinator then moves
//! each member towards it (revoke first, assign once free), so an assignor never has to worry
//! about two members owning a partition at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// The assignors this broker offers, by their Kafka names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// Balanced and sticky: every member gets within one partition of every other member
    /// subscribed to the same topics, keeping as much of its previous assignment as that allows.
    Uniform,
    /// Per topic, contiguous ranges of partitions in member id order (co-partitioning).
    Range,
}

impl Assignor {
    /// The assignor called `name`, if offered.
    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    /// The Kafka name.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }
}

/// What an assignor knows of one member.
#[derive(Debug, Clone)]
pub struct MemberSubscription {
    /// Member id.
    pub member_id: String,
    /// Subscribed topics that exist, by id.
    pub topics: BTreeSet<Uuid>,
}

/// Computes a target assignment. `topics` holds the partition count of every subscribed topic;
/// `previous` is the previous target assignment by member id.
pub fn assign(
    assignor: Assignor,
    members: &[MemberSubscription],
    topics: &BTreeMap<Uuid, i32>,
    previous: &HashMap<String, Assignment>,
) -> HashMap<String, Assignment> {
    match assignor {
        Assignor::Range => range(members, topics),
        Assignor::Uniform => uniform(members, topics, previous),
    }
}

fn range(
    members: &[MemberSubscription],
    topics: &BTreeMap<Uuid, i32>,
) -> HashMap<String, Assignment> {
    let mut result: HashMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.clone(), Assignment::new()))
        .collect();
    for (topic, count) in topics {
        let mut subscribers: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .map(|m| m.member_id.as_str())
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        subscribers.sort_unstable();
        let count = (*count).max(0) as usize;
        let per_member = count / subscribers.len();
        let extra = count % subscribers.len();
        let mut next = 0usize;
        for (i, member) in subscribers.iter().enumerate() {
            let take = per_member + usize::from(i < extra);
            if take == 0 {
                continue;
            }
            let partitions = result
                .entry((*member).to_string())
                .or_default()
                .entry(*topic)
                .or_default();
            partitions.extend((next..next + take).map(|p| p as i32));
            next += take;
        }
    }
    result
}

fn uniform(
    members: &[MemberSubscription],
    topics: &BTreeMap<Uuid, i32>,
    previous: &HashMap<String, Assignment>,
) -> HashMap<String, Assignment> {
    let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
    sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let mut owned: Vec<BTreeSet<(Uuid, i32)>> = vec![BTreeSet::new(); sorted.len()];
    let mut owner: HashMap<(Uuid, i32), usize> = HashMap::new();

    // 1. Keep what each member had, where it is still subscribed and the partition still exists.
    for (i, member) in sorted.iter().enumerate() {
        let Some(prev) = previous.get(&member.member_id) else {
            continue;
        };
        for (topic, partitions) in prev {
            let Some(count) = topics.get(topic) else {
                continue;
            };
            if !member.topics.contains(topic) {
                continue;
            }
            for p in partitions {
                if *p < *count && !owner.contains_key(&(*topic, *p)) {
                    owner.insert((*topic, *p), i);
                    owned[i].insert((*topic, *p));
                }
            }
        }
    }

    // 2. Hand out the rest, the most constrained partitions first, each to the least loaded
    //    member subscribed to its topic.
    let mut unassigned: Vec<(usize, Uuid, i32)> = Vec::new();
    for (topic, count) in topics {
        let eligible = sorted.iter().filter(|m| m.topics.contains(topic)).count();
        if eligible == 0 {
            continue;
        }
        for p in 0..(*count).max(0) {
            if !owner.contains_key(&(*topic, p)) {
                unassigned.push((eligible, *topic, p));
            }
        }
    }
    unassigned.sort_unstable();
    for (_, topic, p) in unassigned {
        let best = sorted
            .iter()
            .enumerate()
            .filter(|(_, m)| m.topics.contains(&topic))
            .min_by_key(|(i, _)| (owned[*i].len(), *i))
            .map(|(i, _)| i);
        if let Some(i) = best {
            owner.insert((topic, p), i);
            owned[i].insert((topic, p));
        }
    }

    // 3. Balance: move a partition from a member to another subscriber of its topic holding at
    //    least two fewer. Every move lowers the sum of squared loads, so this ends.
    loop {
        let mut moved = false;
        for from in 0..sorted.len() {
            let candidates: Vec<(Uuid, i32)> = owned[from].iter().rev().copied().collect();
            for (topic, p) in candidates {
                let load = owned[from].len();
                let target = sorted
                    .iter()
                    .enumerate()
                    .filter(|(i, m)| *i != from && m.topics.contains(&topic))
                    .filter(|(i, _)| owned[*i].len() + 1 < load)
                    .min_by_key(|(i, _)| (owned[*i].len(), *i))
                    .map(|(i, _)| i);
                if let Some(to) = target {
                    owned[from].remove(&(topic, p));
                    owned[to].insert((topic, p));
                    moved = true;
                }
            }
        }
        if !moved {
            break;
        }
    }

    let mut result = HashMap::with_capacity(sorted.len());
    for (member, partitions) in sorted.iter().zip(owned) {
        let mut assignment = Assignment::new();
        for (topic, p) in partitions {
            assignment.entry(topic).or_default().insert(p);
        }
        result.insert(member.member_id.clone(), assignment);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn member(id: &str, topics: &[Uuid]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            topics: topics.iter().copied().collect(),
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    fn every_partition_once(result: &HashMap<String, Assignment>, topics: &BTreeMap<Uuid, i32>) {
        let mut seen = BTreeSet::new();
        for a in result.values() {
            for (t, ps) in a {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "{t}-{p} assigned twice");
                }
            }
        }
        let total: i32 = topics.values().sum();
        assert_eq!(seen.len(), total as usize);
    }

    /// KIP-848 uniform assignor: six partitions over three members, two each.
    #[test]
    fn uniform_balances_a_homogeneous_group() {
        let t = topic(1);
        let topics = BTreeMap::from([(t, 6)]);
        let members = [member("a", &[t]), member("b", &[t]), member("c", &[t])];
        let result = assign(Assignor::Uniform, &members, &topics, &HashMap::new());
        every_partition_once(&result, &topics);
        for a in result.values() {
            assert_eq!(count(a), 2);
        }
    }

    /// A member joining takes partitions only from the overloaded, the rest stay put.
    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let t = topic(1);
        let topics = BTreeMap::from([(t, 6)]);
        let two = [member("a", &[t]), member("b", &[t])];
        let before = assign(Assignor::Uniform, &two, &topics, &HashMap::new());
        let three = [member("a", &[t]), member("b", &[t]), member("c", &[t])];
        let after = assign(Assignor::Uniform, &three, &topics, &before);
        every_partition_once(&after, &topics);
        for id in ["a", "b"] {
            let kept = after[id][&t].intersection(&before[id][&t]).count();
            assert_eq!(kept, 2, "{id} keeps two of its three partitions");
        }
        assert_eq!(count(&after["c"]), 2);
    }

    #[test]
    fn uniform_respects_heterogeneous_subscriptions() {
        let (t1, t2) = (topic(1), topic(2));
        let topics = BTreeMap::from([(t1, 3), (t2, 3)]);
        let members = [member("a", &[t1]), member("b", &[t1, t2])];
        let result = assign(Assignor::Uniform, &members, &topics, &HashMap::new());
        every_partition_once(&result, &topics);
        assert!(!result["a"].contains_key(&t2));
        assert_eq!(count(&result["a"]), 3);
        assert_eq!(count(&result["b"]), 3);
    }

    /// Range: per topic, contiguous ranges in member id order, extras to the first members.
    #[test]
    fn range_assigns_contiguous_ranges_per_topic() {
        let (t1, t2) = (topic(1), topic(2));
        let topics = BTreeMap::from([(t1, 5), (t2, 2)]);
        let members = [member("b", &[t1, t2]), member("a", &[t1, t2])];
        let result = assign(Assignor::Range, &members, &topics, &HashMap::new());
        every_partition_once(&result, &topics);
        assert_eq!(result["a"][&t1], BTreeSet::from([0, 1, 2]));
        assert_eq!(result["b"][&t1], BTreeSet::from([3, 4]));
        assert_eq!(result["a"][&t2], BTreeSet::from([0]));
        assert_eq!(result["b"][&t2], BTreeSet::from([1]));
    }
}
