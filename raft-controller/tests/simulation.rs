//! Deterministic simulation of the metadata quorum (STYLE 11): three voters and a learner, the
//! real `QuorumNode` over an in-memory network that drops, delays, reorders and partitions
//! messages, with nodes crashing and restarting from their durable state, all driven by one
//! seeded generator. Every run checks:
//!
//! - State machine safety (Raft §5.4.3): two nodes that applied the same index hold the same
//!   image, and a committed entry never changes — so nothing committed is lost or reordered.
//! - Election safety (Raft §5.2): at most one leader per term.
//! - Durability: every acknowledged change is in the final image.
//! - Decisions happen once: a topic name is created once, a producer-id block handed out once.
//! - Controller invariants on every image: leaders are live, in the ISR, among the replicas.
//! - Convergence: healed and quiet, every node reaches the same image.
//!
//! `SPATE_SIM_SEEDS=N` runs N seeds (default 200), `SPATE_SIM_SEED=S` runs only seed S. A
//! failure names its seed; the seed reproduces it.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

use prost::Message as _;
use spate_controller::controller::{AlterPartition, ControllerSettings, NewTopic};
use spate_controller::frontend::{ControllerReply, ControllerRequest};
use spate_controller::image::MetadataImage;
use spate_controller::node::{Command, CommandReply, PeerMessage, QuorumConfig, QuorumNode};
use spate_controller::records::{CONFIG_RESOURCE_BROKER, Endpoint, MetadataBatch};
use spate_controller::store::MemBackend;
use spate_protocol::types::NodeId;
use uuid::Uuid;

const TICK_MS: u64 = 10;
const VOTERS: [i32; 3] = [0, 1, 2];
const LEARNER: i32 = 3;
/// Simulated time with faults, then time allowed to converge once healed.
const CHAOS_MS: u64 = 4_000;
const SETTLE_MS: u64 = 20_000;
/// The config key written once the faults stop; the run waits until it is acknowledged.
const FINAL_KEY: &str = "sim.key.final";

/// SplitMix64: the simulation's only source of randomness.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct InFlight {
    deliver_at: u64,
    from: NodeId,
    to: NodeId,
    message: PeerMessage,
}

/// What a submitted command was, to check its reply against.
#[derive(Debug, Clone)]
enum Sent {
    Register,
    Config(String),
    CreateOnce(String),
    ProducerIds,
    Other,
}

/// How hostile a run is, drawn from its seed.
struct Faults {
    drop_percent: u64,
    delay_max_ms: u64,
    /// Chance per simulated ms of a crash, clean stop or partition, in parts per 10 000.
    fault_per_10k: u64,
    /// Applied entries between snapshots: small values make lagging nodes catch up from
    /// snapshots, large ones from the log.
    snapshot_interval_entries: u64,
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: u64,
    nodes: BTreeMap<NodeId, Option<QuorumNode<MemBackend>>>,
    disks: BTreeMap<NodeId, MemBackend>,
    incarnations: BTreeMap<NodeId, u64>,
    next_tick: BTreeMap<NodeId, u64>,
    groups: BTreeMap<NodeId, u8>,
    /// When crashed nodes come back, and when the partition heals.
    restarts: BTreeMap<NodeId, u64>,
    /// When nodes that asked for a controlled shutdown exit.
    stops: BTreeMap<NodeId, u64>,
    heal_at: Option<u64>,
    network: Vec<InFlight>,
    faults: Faults,
    pending: BTreeMap<(NodeId, u64), Sent>,
    next_token: u64,
    /// Image fingerprint by applied index, from whichever node got there first.
    images_at: BTreeMap<u64, u64>,
    /// Committed entries (term, data) by index.
    committed: BTreeMap<u64, (u64, Vec<u8>)>,
    checked_commit: BTreeMap<NodeId, u64>,
    /// Each node's (applied index, image fingerprint) when last checked: an image only changes
    /// with the applied index, so it is fingerprinted once per index.
    checked_image: BTreeMap<NodeId, (u64, u64)>,
    leaders: BTreeMap<u64, NodeId>,
    acked_configs: BTreeSet<String>,
    created_once: BTreeSet<String>,
    producer_blocks: BTreeSet<i64>,
    next_config: u64,
    trace: u64,
}

fn config(node: NodeId, snapshot_interval_entries: u64) -> QuorumConfig {
    QuorumConfig {
        node_id: node,
        voters: VOTERS.iter().copied().map(NodeId).collect(),
        advertised_address: format!("node{}", node.0),
        tick_ms: TICK_MS,
        election_tick: 10,
        heartbeat_tick: 2,
        snapshot_interval_entries,
        request_timeout_ms: 2_000,
        forward_resend_ms: 150,
        broker_session_timeout_ms: 600,
        broker_heartbeat_interval_ms: 100,
        leader_rebalance_interval_ms: Some(700),
        controller: ControllerSettings {
            default_partitions: 2,
            default_replication_factor: 2,
        },
        seeded_topic_ids: true,
    }
}

fn fingerprint(image: &MetadataImage) -> u64 {
    let mut bytes = Vec::new();
    for record in image.to_records() {
        record.encode(&mut bytes).expect("vec grows");
    }
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let faults = Faults {
            drop_percent: rng.below(15),
            delay_max_ms: 1 + rng.below(40),
            fault_per_10k: [10, 30, 80][rng.below(3) as usize],
            snapshot_interval_entries: [5, 25, 1_000][rng.below(3) as usize],
        };
        let mut sim = Sim {
            seed,
            rng,
            now: 0,
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            next_tick: BTreeMap::new(),
            groups: BTreeMap::new(),
            restarts: BTreeMap::new(),
            stops: BTreeMap::new(),
            heal_at: None,
            network: Vec::new(),
            faults,
            pending: BTreeMap::new(),
            next_token: 0,
            images_at: BTreeMap::new(),
            committed: BTreeMap::new(),
            checked_commit: BTreeMap::new(),
            checked_image: BTreeMap::new(),
            leaders: BTreeMap::new(),
            acked_configs: BTreeSet::new(),
            created_once: BTreeSet::new(),
            producer_blocks: BTreeSet::new(),
            next_config: 0,
            trace: 0,
        };
        for id in VOTERS.iter().copied().chain([LEARNER]) {
            let node = NodeId(id);
            sim.disks.insert(node, MemBackend::new());
            sim.groups.insert(node, 0);
            sim.nodes.insert(node, None);
            sim.start(node);
        }
        sim
    }

    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!("seed {}: at {} ms: {what}", self.seed, self.now)
    }

    fn start(&mut self, node: NodeId) {
        let incarnation = {
            let count = self.incarnations.entry(node).or_insert(0);
            *count += 1;
            *count
        };
        let seed = self.seed ^ (u64::from(node.0 as u32) << 40) ^ (incarnation << 20);
        let disk = self.disks[&node].clone();
        let interval = self.faults.snapshot_interval_entries;
        let quorum = QuorumNode::open(config(node, interval), disk, seed, self.now)
            .unwrap_or_else(|e| self.fail(format!("node {node} does not reopen: {e}")));
        self.nodes.insert(node, Some(quorum));
        let offset = self.rng.below(TICK_MS);
        self.next_tick.insert(node, self.now + offset + 1);
        self.register(node);
    }

    /// Every node is also a broker: it registers each time it starts, as `spate serve` does.
    fn register(&mut self, node: NodeId) {
        let incarnation = self.incarnations[&node];
        let incarnation_id =
            Uuid::from_u64_pair(self.seed, (u64::from(node.0 as u32) << 32) | incarnation);
        self.submit(
            node,
            ControllerRequest::RegisterBroker {
                broker_id: node,
                incarnation_id,
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: format!("node{}", node.0),
                    port: 9092,
                    security_protocol: 0,
                }],
                rack: Some(format!("rack{}", node.0 % 2)),
            },
            Sent::Register,
        );
    }

    fn crash(&mut self, node: NodeId) {
        self.nodes.insert(node, None);
        // Its callers never hear back; their outcome is unknown.
        self.pending.retain(|(n, _), _| *n != node);
    }

    fn up(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    fn submit(&mut self, node: NodeId, request: ControllerRequest, sent: Sent) {
        let token = self.next_token;
        self.next_token += 1;
        let now = self.now;
        if let Some(Some(quorum)) = self.nodes.get_mut(&node) {
            quorum.submit(token, Command::Request(request), now);
            self.pending.insert((node, token), sent);
        }
    }

    /// Runs a node's ready cycle and routes what it produced.
    fn settle(&mut self, node: NodeId) {
        let now = self.now;
        let Some(Some(quorum)) = self.nodes.get_mut(&node) else {
            return;
        };
        if let Err(error) = quorum.advance(now) {
            self.fail(format!("node {node} failed: {error}"));
        }
        let outputs = quorum.take_outputs();
        for (to, message) in outputs.messages {
            self.trace = self
                .trace
                .wrapping_mul(31)
                .wrapping_add(u64::from(to.0 as u32) + 1);
            if self.rng.chance(self.faults.drop_percent) {
                continue;
            }
            let delay = 1 + self.rng.below(self.faults.delay_max_ms);
            self.network.push(InFlight {
                deliver_at: now + delay,
                from: node,
                to,
                message,
            });
        }
        for (token, result) in outputs.replies {
            let Some(sent) = self.pending.remove(&(node, token)) else {
                continue;
            };
            self.check_reply(node, sent, result);
        }
        self.check_node(node);
    }

    fn check_reply(
        &mut self,
        node: NodeId,
        sent: Sent,
        result: Result<CommandReply, spate_controller::controller::ControllerError>,
    ) {
        let Ok(CommandReply::Reply(reply)) = result else {
            // Unavailable: the outcome is unknown. A broker whose registration failed tries
            // again, as `spate serve` would by restarting.
            match sent {
                Sent::Register => self.register(node),
                Sent::Config(key) if key == FINAL_KEY => self.submit_final(node),
                _ => {}
            }
            return;
        };
        match (sent, reply) {
            (Sent::Config(key), ControllerReply::ConfigsAltered) => {
                // Acknowledged only once applied here: the image must show it now.
                let image = self.nodes[&node].as_ref().map(|n| n.image().clone());
                if let Some(image) = image
                    && image
                        .configs(CONFIG_RESOURCE_BROKER, "")
                        .and_then(|c| c.get(&key).cloned())
                        .is_none()
                {
                    self.fail(format!("node {node} acknowledged {key} before applying it"));
                }
                self.acked_configs.insert(key);
            }
            (Sent::CreateOnce(name), ControllerReply::TopicsCreated(results)) => {
                if results.first().is_some_and(Result::is_ok)
                    && !self.created_once.insert(name.clone())
                {
                    self.fail(format!("topic {name} was created twice"));
                }
            }
            (Sent::ProducerIds, ControllerReply::ProducerIdsAllocated { first_producer_id }) => {
                if !self.producer_blocks.insert(first_producer_id) {
                    self.fail(format!(
                        "producer id block {first_producer_id} handed out twice"
                    ));
                }
            }
            (Sent::Register, ControllerReply::BrokerRegistered { .. })
            | (Sent::Other, _)
            | (Sent::ProducerIds, ControllerReply::StaleBrokerEpoch) => {}
            (sent, reply) => self.fail(format!("unexpected reply {reply:?} to {sent:?}")),
        }
    }

    /// Safety checks after a node moved.
    fn check_node(&mut self, node: NodeId) {
        let Some(Some(quorum)) = self.nodes.get(&node) else {
            return;
        };
        if quorum.is_leader()
            && let Some(previous) = self.leaders.insert(quorum.term(), node)
            && previous != node
        {
            self.fail(format!(
                "two leaders in term {}: {previous} and {node}",
                quorum.term()
            ));
        }
        let applied = quorum.applied_index();
        let image = quorum.image().clone();
        let fresh = self
            .checked_image
            .get(&node)
            .is_none_or(|(index, _)| *index != applied);
        if fresh {
            let print = fingerprint(&image);
            self.checked_image.insert(node, (applied, print));
            self.check_image(node, applied, print, &image);
        }
        self.check_log(node);
    }

    fn check_image(&mut self, node: NodeId, applied: u64, print: u64, image: &MetadataImage) {
        match self.images_at.get(&applied) {
            Some(expected) if *expected != print => self.fail(format!(
                "node {node} holds a different image at index {applied}"
            )),
            Some(_) => {}
            None => {
                self.images_at.insert(applied, print);
            }
        }
        check_controller_invariants(image)
            .unwrap_or_else(|e| self.fail(format!("node {node} at index {applied}: {e}")));
    }

    fn check_log(&mut self, node: NodeId) {
        let Some(Some(quorum)) = self.nodes.get(&node) else {
            return;
        };
        let from = self
            .checked_commit
            .get(&node)
            .copied()
            .unwrap_or(0)
            .max(quorum.snapshot_index());
        let commit = quorum.commit_index();
        let mut entries = Vec::new();
        for index in from + 1..=commit {
            if let Some(entry) = quorum.entry_at(index) {
                entries.push((index, entry));
            }
        }
        for (index, entry) in entries {
            match self.committed.get(&index) {
                Some(known) if *known != entry => self.fail(format!(
                    "node {node} has a different committed entry at index {index}"
                )),
                Some(_) => {}
                None => {
                    self.committed.insert(index, entry);
                }
            }
        }
        self.checked_commit.insert(node, commit);
    }

    fn deliver_due(&mut self, reliable: bool) {
        loop {
            let due: Vec<usize> = self
                .network
                .iter()
                .enumerate()
                .filter(|(_, m)| m.deliver_at <= self.now)
                .map(|(i, _)| i)
                .collect();
            if due.is_empty() {
                return;
            }
            // Any due message may go first: the network reorders.
            let pick = if reliable {
                due[0]
            } else {
                due[self.rng.below(due.len() as u64) as usize]
            };
            let message = self.network.swap_remove(pick);
            if self.groups[&message.from] != self.groups[&message.to] {
                continue; // partitioned
            }
            let now = self.now;
            if let Some(Some(quorum)) = self.nodes.get_mut(&message.to) {
                quorum.receive(message.from, message.message, now);
                self.settle(message.to);
            }
        }
    }

    fn tick_due(&mut self) {
        for node in self.up() {
            if self.next_tick[&node] <= self.now {
                self.next_tick.insert(node, self.now + TICK_MS);
                let now = self.now;
                if let Some(Some(quorum)) = self.nodes.get_mut(&node) {
                    quorum.tick(now);
                }
                self.settle(node);
            }
        }
    }

    fn random_command(&mut self) {
        let up = self.up();
        if up.is_empty() {
            return;
        }
        let node = up[self.rng.below(up.len() as u64) as usize];
        let image = self.nodes[&node].as_ref().map(|n| n.image().clone());
        let Some(image) = image else { return };
        match self.rng.below(10) {
            0..=3 => {
                let key = format!("sim.key.{}", self.next_config);
                self.next_config += 1;
                self.submit(
                    node,
                    ControllerRequest::AlterConfigs {
                        resource_type: CONFIG_RESOURCE_BROKER,
                        resource_name: String::new(),
                        changes: vec![(key.clone(), Some(format!("v-{key}")))],
                    },
                    Sent::Config(key),
                );
            }
            4 | 5 => {
                let name = format!("t{}", self.rng.below(40));
                let replication = 1 + self.rng.below(3) as i16;
                let partitions = 1 + self.rng.below(3) as i32;
                self.submit(
                    node,
                    ControllerRequest::CreateTopics {
                        topics: vec![NewTopic {
                            name: name.clone(),
                            partitions: Some(partitions),
                            replication_factor: Some(replication),
                            ..NewTopic::default()
                        }],
                        validate_only: false,
                    },
                    Sent::CreateOnce(name),
                );
            }
            6 => {
                if let Some(broker) = image.broker(node) {
                    let epoch = broker.epoch;
                    self.submit(
                        node,
                        ControllerRequest::AllocateProducerIds {
                            broker_id: node,
                            broker_epoch: epoch,
                        },
                        Sent::ProducerIds,
                    );
                }
            }
            7 => {
                // A partition leader shrinks or restores its ISR, with the epochs it knows.
                let Some(broker) = image.broker(node) else {
                    return;
                };
                let epoch = broker.epoch;
                let mut topics: Vec<_> = image.topics().collect();
                topics.sort_by(|a, b| a.name.cmp(&b.name));
                let led: Vec<_> = topics
                    .into_iter()
                    .flat_map(|t| {
                        t.partitions
                            .values()
                            .filter(|p| p.leader == Some(node))
                            .map(move |p| (t.id, p.clone()))
                    })
                    .collect();
                if led.is_empty() {
                    return;
                }
                let (topic_id, partition) = led[self.rng.below(led.len() as u64) as usize].clone();
                let new_isr = if self.rng.chance(50) {
                    vec![node]
                } else {
                    partition.replicas.clone()
                };
                self.submit(
                    node,
                    ControllerRequest::AlterPartition(AlterPartition {
                        broker_id: node,
                        broker_epoch: epoch,
                        topic_id,
                        partition: partition.id.0,
                        leader_epoch: partition.leader_epoch.0,
                        partition_epoch: partition.partition_epoch,
                        new_isr,
                    }),
                    Sent::Other,
                );
            }
            8 => {
                // Topics of the `x` namespace come and go.
                let mut doomed: Vec<_> =
                    image.topics().filter(|t| t.name.starts_with('x')).collect();
                doomed.sort_by(|a, b| a.name.cmp(&b.name));
                if let Some(topic) = doomed.first() {
                    let id = topic.id;
                    self.submit(
                        node,
                        ControllerRequest::DeleteTopics {
                            topic_ids: vec![id],
                        },
                        Sent::Other,
                    );
                } else {
                    let name = format!("x{}", self.rng.below(5));
                    self.submit(
                        node,
                        ControllerRequest::CreateTopics {
                            topics: vec![NewTopic {
                                name,
                                partitions: Some(1),
                                replication_factor: Some(1),
                                ..NewTopic::default()
                            }],
                            validate_only: false,
                        },
                        Sent::Other,
                    );
                }
            }
            _ => self.submit(
                node,
                ControllerRequest::ElectPreferredLeaders { partitions: None },
                Sent::Other,
            ),
        }
    }

    fn random_fault(&mut self) {
        let all: Vec<NodeId> = self.nodes.keys().copied().collect();
        let node = all[self.rng.below(all.len() as u64) as usize];
        match self.rng.below(4) {
            0 => {
                if self.nodes[&node].is_some() {
                    self.crash(node);
                    let down_ms = 10 + self.rng.below(1_500);
                    self.restarts.insert(node, self.now + down_ms);
                }
            }
            3 => {
                // A clean stop: the broker asks for a controlled shutdown, then the process
                // exits a little later (whether or not the controller answered).
                let epoch = self.nodes[&node]
                    .as_ref()
                    .and_then(|n| n.image().broker(node).map(|b| b.epoch));
                if let Some(epoch) = epoch {
                    self.submit(
                        node,
                        ControllerRequest::ControlledShutdown {
                            broker_id: node,
                            broker_epoch: epoch,
                        },
                        Sent::Other,
                    );
                    self.stops.insert(node, self.now + 20 + self.rng.below(200));
                }
            }
            1 => {
                // Cut one node off.
                for (id, group) in self.groups.iter_mut() {
                    *group = u8::from(*id == node);
                }
                self.heal_at = Some(self.now + 50 + self.rng.below(1_500));
            }
            _ => {
                // Split the cluster in two.
                let split = self.rng.below(16) as u8;
                for (id, group) in self.groups.iter_mut() {
                    *group = (split >> (id.0 as u32 % 4)) & 1;
                }
                self.heal_at = Some(self.now + 50 + self.rng.below(1_500));
            }
        }
    }

    fn recover_due(&mut self) {
        let stopping: Vec<NodeId> = self
            .stops
            .iter()
            .filter(|(_, at)| **at <= self.now)
            .map(|(id, _)| *id)
            .collect();
        for node in stopping {
            self.stops.remove(&node);
            if self.nodes[&node].is_some() {
                self.crash(node);
                let down_ms = 10 + self.rng.below(500);
                self.restarts.insert(node, self.now + down_ms);
            }
        }
        let due: Vec<NodeId> = self
            .restarts
            .iter()
            .filter(|(_, at)| **at <= self.now)
            .map(|(id, _)| *id)
            .collect();
        for node in due {
            self.restarts.remove(&node);
            self.start(node);
            self.settle(node);
        }
        if self.heal_at.is_some_and(|at| at <= self.now) {
            self.heal_at = None;
            for group in self.groups.values_mut() {
                *group = 0;
            }
        }
    }

    fn run(&mut self) {
        for node in self.up() {
            self.settle(node);
        }
        while self.now < CHAOS_MS {
            self.now += 1;
            self.recover_due();
            self.tick_due();
            self.deliver_due(false);
            if self.rng.chance(8) {
                self.random_command();
            }
            if self.rng.below(10_000) < self.faults.fault_per_10k {
                self.random_fault();
            }
        }
        // Heal: everyone up, one partition, no more drops; the cluster must converge.
        for group in self.groups.values_mut() {
            *group = 0;
        }
        self.faults.drop_percent = 0;
        self.restarts.clear();
        self.heal_at = None;
        // Nodes still in a controlled shutdown finish it: stop and start again.
        for node in std::mem::take(&mut self.stops).into_keys() {
            if self.nodes[&node].is_some() {
                self.crash(node);
            }
        }
        for node in self.nodes.keys().copied().collect::<Vec<_>>() {
            if self.nodes[&node].is_none() {
                self.start(node);
                self.settle(node);
            }
        }
        // A final acknowledged write, so convergence includes something committed after healing.
        self.submit_final(NodeId(LEARNER));
        let key = FINAL_KEY.to_string();
        let deadline = self.now + SETTLE_MS;
        loop {
            self.now += 1;
            self.tick_due();
            self.deliver_due(true);
            if self.converged() && self.acked_configs.contains(&key) && self.all_unfenced() {
                break;
            }
            if self.now >= deadline {
                let states: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|(id, n)| match n {
                        Some(n) => format!("node {id}: {}", n.diagnostics()),
                        None => format!("node {id}: down"),
                    })
                    .collect();
                let brokers: Vec<String> = self.nodes[&NodeId(0)]
                    .iter()
                    .flat_map(|n| n.image().brokers().values().cloned().collect::<Vec<_>>())
                    .map(|b| format!("{}: epoch {} fenced {}", b.id, b.epoch, b.fenced))
                    .collect();
                self.fail(format!(
                    "no convergence after healing (converged {}, final write acknowledged {}, brokers {brokers:?}): {states:?}",
                    self.converged(),
                    self.acked_configs.contains(&key)
                ));
            }
        }
        let final_image = self.nodes[&NodeId(0)]
            .as_ref()
            .map(|n| n.image().clone())
            .unwrap_or_else(|| self.fail("node 0 is down at the end"));
        let configs = final_image.configs(CONFIG_RESOURCE_BROKER, "").cloned();
        for key in &self.acked_configs {
            if configs.as_ref().and_then(|c| c.get(key)).is_none() {
                self.fail(format!(
                    "acknowledged change {key} is missing from the final image"
                ));
            }
        }
        for name in &self.created_once {
            if final_image.topic(name).is_none() {
                self.fail(format!(
                    "acknowledged topic {name} is missing from the final image"
                ));
            }
        }
        // Every node is a registered broker again, unfenced by its heartbeats.
        for id in VOTERS.iter().copied().chain([LEARNER]) {
            match final_image.broker(NodeId(id)) {
                Some(broker) if !broker.fenced => {}
                other => self.fail(format!("broker {id} at the end: {other:?}")),
            }
        }
    }

    /// Writes [`FINAL_KEY`] through `node` (again, until it is acknowledged).
    fn submit_final(&mut self, node: NodeId) {
        self.submit(
            node,
            ControllerRequest::AlterConfigs {
                resource_type: CONFIG_RESOURCE_BROKER,
                resource_name: String::new(),
                changes: vec![(FINAL_KEY.to_string(), Some("done".into()))],
            },
            Sent::Config(FINAL_KEY.to_string()),
        );
    }

    /// Whether every node's broker is registered and unfenced (in node 0's image).
    fn all_unfenced(&self) -> bool {
        let Some(Some(quorum)) = self.nodes.get(&NodeId(0)) else {
            return false;
        };
        VOTERS
            .iter()
            .copied()
            .chain([LEARNER])
            .all(|id| quorum.image().broker(NodeId(id)).is_some_and(|b| !b.fenced))
    }

    fn converged(&self) -> bool {
        let mut state = None;
        for (id, quorum) in &self.nodes {
            let Some(quorum) = quorum else { return false };
            let Some(this) = self.checked_image.get(id).copied() else {
                return false;
            };
            if this.0 != quorum.applied_index() {
                return false;
            }
            if quorum.applied_index() < quorum.commit_index() {
                return false;
            }
            match state {
                None => state = Some(this),
                Some(s) if s != this => return false,
                Some(_) => {}
            }
        }
        self.nodes.values().flatten().any(|n| n.is_leader())
    }

    /// A digest of the run, to check that a seed replays identically.
    fn digest(&self) -> (u64, u64, usize, usize) {
        (
            self.trace,
            self.images_at.values().fold(0, |a, b| a ^ b.rotate_left(7)),
            self.committed.len(),
            self.acked_configs.len(),
        )
    }
}

/// Invariants every image must satisfy, whatever happened.
fn check_controller_invariants(image: &MetadataImage) -> Result<(), String> {
    for topic in image.topics() {
        for partition in topic.partitions.values() {
            let name = format!("{}-{}", topic.name, partition.id.0);
            if partition.isr.is_empty() {
                return Err(format!("{name} has an empty ISR"));
            }
            if let Some(outsider) = partition
                .isr
                .iter()
                .find(|r| !partition.replicas.contains(r))
            {
                return Err(format!("{name}: ISR member {outsider} is not a replica"));
            }
            if let Some(leader) = partition.leader {
                if !partition.isr.contains(&leader) {
                    return Err(format!("{name}: leader {leader} is not in the ISR"));
                }
                match image.broker(leader) {
                    Some(broker) if !broker.fenced => {}
                    _ => return Err(format!("{name}: leader {leader} is fenced or unknown")),
                }
            }
        }
    }
    Ok(())
}

fn run_seed(seed: u64) -> (u64, u64, usize, usize) {
    let mut sim = Sim::new(seed);
    sim.run();
    sim.digest()
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("SPATE_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let count = std::env::var("SPATE_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    (0..count).collect()
}

#[test]
fn seeded_runs_keep_raft_and_controller_invariants() {
    for seed in seeds() {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run_seed(seed))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "simulation failed with seed {seed}: {message}\n\
                 reproduce with: SPATE_SIM_SEED={seed} cargo test -p spate-controller --test simulation"
            );
        }
    }
}

#[test]
fn a_seed_replays_identically() {
    for seed in [7, 1234] {
        assert_eq!(
            run_seed(seed),
            run_seed(seed),
            "seed {seed} is not deterministic"
        );
    }
}

/// The entry payload format is what the simulation's committed-entry check compares; make sure
/// an entry decodes as a batch of records.
#[test]
fn committed_entries_are_metadata_batches() {
    let mut sim = Sim::new(99);
    sim.run();
    let decoded = sim
        .committed
        .values()
        .filter(|(_, data)| !data.is_empty())
        .filter(|(_, data)| MetadataBatch::decode(data.as_slice()).is_ok())
        .count();
    assert!(decoded > 10, "only {decoded} entries decoded");
}
