//! Metadata quorums of several members in one process, over real TCP on loopback: leader
//! election and failover (Raft §5.2), forwarding from followers, a learner joining and catching
//! up from a snapshot, the cluster-id check, malformed frames, broker session fencing and
//! controlled shutdown, and DescribeQuorum (Kafka API 55's content).

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_controller::controller::{ControllerError, ControllerSettings, NewTopic};
use spate_controller::frontend::{ControllerReply, ControllerRequest, MetadataFrontend};
use spate_controller::image::MetadataImage;
use spate_controller::quorum::{QuorumOptions, QuorumTiming, RaftQuorum};
use spate_controller::records::Endpoint;
use spate_protocol::types::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Cluster {
    dirs: Vec<tempfile::TempDir>,
    voters: Vec<(NodeId, String)>,
    nodes: Vec<Option<Arc<RaftQuorum>>>,
    timing: QuorumTiming,
}

fn options(
    node: i32,
    dir: &Path,
    listen: String,
    voters: &[(NodeId, String)],
    timing: &QuorumTiming,
    cluster_id: &str,
) -> QuorumOptions {
    QuorumOptions {
        node_id: NodeId(node),
        data_dir: dir.to_path_buf(),
        cluster_id: cluster_id.into(),
        listen,
        voters: voters.to_vec(),
        advertised_host: None,
        timing: timing.clone(),
        controller: ControllerSettings {
            default_partitions: 3,
            default_replication_factor: 3,
        },
    }
}

fn endpoint(node: i32) -> Vec<Endpoint> {
    vec![Endpoint {
        name: "PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port: 19092 + node as u32,
        security_protocol: 0,
    }]
}

const CLUSTER_ID: &str = "cluster-test";

impl Cluster {
    /// Starts `voters` voters and registers each one's broker.
    async fn start(voters: usize, timing: QuorumTiming) -> Cluster {
        let voter_list: Vec<(NodeId, String)> = (0..voters as i32)
            .map(|id| (NodeId(id), format!("127.0.0.1:{}", free_port())))
            .collect();
        let mut cluster = Cluster {
            dirs: (0..voters).map(|_| tempfile::tempdir().unwrap()).collect(),
            voters: voter_list,
            nodes: vec![None; voters],
            timing,
        };
        for id in 0..voters {
            cluster.launch(id).await;
        }
        let registrations: Vec<_> = cluster
            .nodes
            .iter()
            .enumerate()
            .map(|(id, node)| {
                let node = node.clone().unwrap();
                tokio::spawn(async move { node.register_broker(endpoint(id as i32), None).await })
            })
            .collect();
        for registration in registrations {
            registration
                .await
                .unwrap()
                .expect("each broker registers and is unfenced");
        }
        cluster
    }

    async fn launch(&mut self, id: usize) {
        let listen = self.voters[id].1.clone();
        let quorum = RaftQuorum::start(options(
            id as i32,
            self.dirs[id].path(),
            listen,
            &self.voters,
            &self.timing,
            CLUSTER_ID,
        ))
        .await
        .expect("quorum member starts");
        self.nodes[id] = Some(quorum);
    }

    fn node(&self, id: usize) -> &Arc<RaftQuorum> {
        self.nodes[id].as_ref().expect("node is running")
    }

    /// The leader all running members agree on.
    async fn leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let views: Vec<Option<NodeId>> = self
                .nodes
                .iter()
                .flatten()
                .map(|n| n.status().leader)
                .collect();
            if let Some(Some(leader)) = views.first()
                && views.iter().all(|v| *v == Some(*leader))
                && self.nodes[leader.0 as usize].is_some()
            {
                return leader.0 as usize;
            }
            assert!(Instant::now() < deadline, "no agreed leader: {views:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(&mut self, id: usize) {
        if let Some(node) = self.nodes[id].take() {
            node.shutdown().await;
        }
    }

    async fn stop_all(&mut self) {
        for id in 0..self.nodes.len() {
            self.stop(id).await;
        }
    }
}

async fn create_topic(node: &RaftQuorum, name: &str, replication: i16) -> Result<(), String> {
    let reply = node
        .submit(ControllerRequest::CreateTopics {
            topics: vec![NewTopic {
                name: name.into(),
                partitions: Some(3),
                replication_factor: Some(replication),
                ..NewTopic::default()
            }],
            validate_only: false,
        })
        .await
        .map_err(|e| e.to_string())?;
    match reply {
        ControllerReply::TopicsCreated(results) => results[0]
            .as_ref()
            .map(|_| ())
            .map_err(ControllerError::to_string),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

async fn wait_for(
    node: &RaftQuorum,
    within: Duration,
    what: &str,
    check: impl Fn(&MetadataImage) -> bool,
) {
    let deadline = Instant::now() + within;
    while !check(&node.image()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_a_leader_and_followers_forward_writes() {
    let mut cluster = Cluster::start(3, QuorumTiming::default()).await;
    let leader = cluster.leader(Duration::from_secs(5)).await;
    let follower = (leader + 1) % 3;
    // A follower forwards the request; the reply comes once the follower applied it.
    create_topic(cluster.node(follower), "forwarded", 3)
        .await
        .expect("created through a follower");
    assert!(cluster.node(follower).image().topic("forwarded").is_some());
    for id in 0..3 {
        wait_for(
            cluster.node(id),
            Duration::from_secs(5),
            "the topic everywhere",
            |i| i.topic("forwarded").is_some(),
        )
        .await;
        let image = cluster.node(id).image();
        assert_eq!(
            image.live_brokers().count(),
            3,
            "every broker is live on node {id}"
        );
    }
    // Replication factor 3 over three brokers in placement order: every broker holds a replica
    // of every partition, and preferred leaders rotate.
    let image = cluster.node(leader).image();
    let topic = image.topic("forwarded").unwrap();
    let leaders: std::collections::BTreeSet<_> =
        topic.partitions.values().map(|p| p.replicas[0]).collect();
    assert_eq!(
        leaders.len(),
        3,
        "preferred leaders spread over the brokers"
    );

    // DescribeQuorum through a follower reports what the leader sees.
    let description = cluster.node(follower).describe_quorum().await.unwrap();
    assert_eq!(description.leader_id, NodeId(leader as i32));
    assert_eq!(description.voters.len(), 3);
    assert!(description.observers.is_empty());
    assert!(description.high_watermark > 0);
    assert!(description.leader_epoch >= 1);
    for voter in &description.voters {
        assert!(voter.log_end_offset > 0, "{voter:?}");
    }
    assert_eq!(
        cluster.node(follower).controller_id(),
        Some(NodeId(leader as i32))
    );
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_leader_elects_another_and_the_old_one_catches_up() {
    let mut cluster = Cluster::start(3, QuorumTiming::default()).await;
    let old_leader = cluster.leader(Duration::from_secs(5)).await;
    create_topic(cluster.node(old_leader), "before", 3)
        .await
        .unwrap();
    cluster.stop(old_leader).await;
    let stopped = Instant::now();
    // With the default timeouts (election timeout 1 s, randomized up to 2 s) the survivors
    // elect a new leader well within 3 s.
    let new_leader = cluster.leader(Duration::from_secs(3)).await;
    assert_ne!(new_leader, old_leader);
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "took {:?}",
        stopped.elapsed()
    );
    let survivor = (0..3)
        .find(|id| *id != old_leader && *id != new_leader)
        .unwrap();
    create_topic(cluster.node(survivor), "after", 2)
        .await
        .expect("metadata writes resume through any survivor");

    // The old leader comes back on the same log and catches up.
    cluster.launch(old_leader).await;
    wait_for(
        cluster.node(old_leader),
        Duration::from_secs(10),
        "the restarted node to catch up",
        |image| image.topic("before").is_some() && image.topic("after").is_some(),
    )
    .await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_and_catches_up_from_a_snapshot() {
    let timing = QuorumTiming {
        snapshot_interval_entries: 5,
        ..QuorumTiming::default()
    };
    let mut cluster = Cluster::start(3, timing.clone()).await;
    let leader = cluster.leader(Duration::from_secs(5)).await;
    for i in 0..12 {
        create_topic(cluster.node(leader), &format!("early{i}"), 1)
            .await
            .unwrap();
    }
    assert!(cluster.node(leader).status().snapshot_index > 5);

    let dir = tempfile::tempdir().unwrap();
    let learner = RaftQuorum::start(options(
        3,
        dir.path(),
        "127.0.0.1:0".into(),
        &cluster.voters,
        &timing,
        CLUSTER_ID,
    ))
    .await
    .unwrap();
    // Its registration is forwarded to the leader; it completes once the learner has applied
    // the log that far, which it can only do after joining and installing the snapshot.
    learner
        .register_broker(endpoint(3), Some("rack-b".into()))
        .await
        .expect("the learner's broker registers");
    let image = learner.image();
    assert_eq!(image.topic_count(), 12);
    assert_eq!(image.live_brokers().count(), 4);
    // The learner serves metadata and forwards writes like any member.
    create_topic(&learner, "from-the-learner", 3).await.unwrap();
    wait_for(
        cluster.node(leader),
        Duration::from_secs(5),
        "the learner's topic",
        |i| i.topic("from-the-learner").is_some(),
    )
    .await;
    let description = learner.describe_quorum().await.unwrap();
    assert_eq!(description.voters.len(), 3);
    assert_eq!(
        description
            .observers
            .iter()
            .map(|o| o.node_id)
            .collect::<Vec<_>>(),
        vec![NodeId(3)]
    );
    learner.shutdown().await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_is_refused() {
    let mut cluster = Cluster::start(3, QuorumTiming::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let stranger = RaftQuorum::start(options(
        7,
        dir.path(),
        "127.0.0.1:0".into(),
        &cluster.voters,
        &QuorumTiming::default(),
        "some-other-cluster",
    ))
    .await
    .unwrap();
    let error = stranger
        .register_broker(endpoint(7), None)
        .await
        .expect_err("a node of another cluster cannot join");
    let text = error.to_string();
    assert!(
        text.contains("some-other-cluster") && text.contains(CLUSTER_ID),
        "{text}"
    );
    // The cluster itself is unaffected.
    let leader = cluster.leader(Duration::from_secs(5)).await;
    create_topic(cluster.node(leader), "still-fine", 3)
        .await
        .unwrap();
    assert!(cluster.node(leader).image().broker(NodeId(7)).is_none());
    stranger.shutdown().await;
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_own_connection() {
    let mut cluster = Cluster::start(3, QuorumTiming::default()).await;
    let target = cluster.node(0).controller_addr();
    // A length prefix promising more than the frame limit.
    let mut huge = tokio::net::TcpStream::connect(target).await.unwrap();
    huge.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    // Bytes that are no prost frame at all.
    let mut garbage = tokio::net::TcpStream::connect(target).await.unwrap();
    garbage
        .write_all(&[0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    for stream in [&mut huge, &mut garbage] {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("the node closes the connection instead of waiting");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let leader = cluster.leader(Duration::from_secs(5)).await;
    create_topic(cluster.node((leader + 1) % 3), "after-garbage", 3)
        .await
        .expect("the cluster keeps working");
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_is_fenced_and_a_clean_stop_moves_leadership_first() {
    let timing = QuorumTiming {
        broker_session_timeout_ms: 1_500,
        broker_heartbeat_interval_ms: 300,
        leader_rebalance_interval_ms: None,
        ..QuorumTiming::default()
    };
    let mut cluster = Cluster::start(3, timing).await;
    let leader = cluster.leader(Duration::from_secs(5)).await;
    create_topic(cluster.node(leader), "spread", 3)
        .await
        .unwrap();

    // A broker that just goes silent is fenced after broker.session.timeout.ms, and leaves
    // the ISRs; its leaderships move to other in-sync replicas.
    let silent = (leader + 2) % 3;
    cluster.stop(silent).await;
    wait_for(
        cluster.node(leader),
        Duration::from_secs(10),
        "the silent broker to be fenced",
        |image| {
            image
                .broker(NodeId(silent as i32))
                .is_some_and(|b| b.fenced)
        },
    )
    .await;
    let image = cluster.node(leader).image();
    for partition in image.topic("spread").unwrap().partitions.values() {
        assert_ne!(partition.leader, Some(NodeId(silent as i32)));
        assert!(partition.leader.is_some());
        assert!(!partition.isr.contains(&NodeId(silent as i32)));
    }

    // A clean stop: leaderships move to other in-sync replicas before the broker goes.
    let clean = (leader + 1) % 3;
    let epoch = cluster
        .node(clean)
        .image()
        .broker(NodeId(clean as i32))
        .unwrap()
        .epoch;
    cluster
        .node(clean)
        .controlled_shutdown(epoch)
        .await
        .unwrap();
    let image = cluster.node(clean).image();
    assert!(image.broker(NodeId(clean as i32)).unwrap().fenced);
    for partition in image.topic("spread").unwrap().partitions.values() {
        // Only the leader's broker is left: it leads everything, alone in the ISR.
        assert_eq!(partition.leader, Some(NodeId(leader as i32)));
        assert_eq!(partition.isr, vec![NodeId(leader as i32)]);
    }
    cluster.stop_all().await;
}

/// A broker knows when its session may have lapsed: when, for `broker.session.timeout.ms`, no
/// heartbeat was acknowledged and no other member was heard from, `broker_session_lapsed` turns
/// true, and false again once heartbeats are acknowledged. A controller election alone does
/// not do it: the survivors hear each other's votes, and a new controller starts every session
/// afresh. The node left alone is the new quorum leader, which answers its own heartbeats: they
/// count only from the last time a majority answered it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_out_of_contact_for_a_session_knows_it() {
    let timing = QuorumTiming {
        // Elections well within a session, as with Kafka's defaults (1 s and 9 s).
        election_timeout_ms: 300,
        broker_session_timeout_ms: 1_500,
        broker_heartbeat_interval_ms: 300,
        leader_rebalance_interval_ms: None,
        ..QuorumTiming::default()
    };
    let mut cluster = Cluster::start(3, timing).await;
    let first = cluster.leader(Duration::from_secs(5)).await;
    // Heartbeats are acknowledged: no node's session is in doubt.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for id in 0..3 {
        assert!(!cluster.node(id).broker_session_lapsed(), "node {id}");
    }

    // The controller goes: the survivors elect another and never doubt their sessions
    // meanwhile.
    cluster.stop(first).await;
    let survivors: Vec<usize> = (0..3).filter(|id| *id != first).collect();
    let stopped = Instant::now();
    while stopped.elapsed() < Duration::from_secs(4) {
        for id in &survivors {
            assert!(
                !cluster.node(*id).broker_session_lapsed(),
                "node {id} doubted its session {:?} into a controller election",
                stopped.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alone = cluster.leader(Duration::from_secs(5)).await;
    let other = survivors.iter().copied().find(|id| *id != alone).unwrap();

    // Now alone: nothing acknowledged, no one heard.
    cluster.stop(other).await;
    let cut = Instant::now();
    // Still within the session of the last acknowledged heartbeat.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!cluster.node(alone).broker_session_lapsed());
    while !cluster.node(alone).broker_session_lapsed() {
        assert!(
            cut.elapsed() < Duration::from_secs(5),
            "no lapse noticed {:?} after losing the quorum",
            cut.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let noticed = cut.elapsed();
    assert!(
        noticed <= Duration::from_millis(1_500 + 300),
        "noticed only after {noticed:?}"
    );
    cluster.launch(first).await;
    cluster.launch(other).await;
    let back = Instant::now();
    while cluster.node(alone).broker_session_lapsed() {
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "the lapse outlived the quorum's return"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.stop_all().await;
}

/// The voters of a new cluster start at different times: the first one keeps trying to register
/// until a quorum exists (within `initial.broker.registration.timeout.ms`), rather than giving
/// up after one request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_voter_waits_for_its_quorum_to_register() {
    let timing = QuorumTiming {
        request_timeout_ms: 700,
        ..QuorumTiming::default()
    };
    let voters: Vec<(NodeId, String)> = (0..3)
        .map(|id| (NodeId(id), format!("127.0.0.1:{}", free_port())))
        .collect();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let start = |id: usize| {
        RaftQuorum::start(options(
            id as i32,
            dirs[id].path(),
            voters[id].1.clone(),
            &voters,
            &timing,
            CLUSTER_ID,
        ))
    };
    let first = start(0).await.unwrap();
    let registering = {
        let first = first.clone();
        tokio::spawn(async move { first.register_broker(endpoint(0), None).await })
    };
    // Longer than several request timeouts: one attempt alone would have failed by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!registering.is_finished());
    let others = [start(1).await.unwrap(), start(2).await.unwrap()];
    let epoch = registering
        .await
        .unwrap()
        .expect("registers once the quorum exists");
    assert!(epoch > 0);
    assert!(!first.image().broker(NodeId(0)).unwrap().fenced);
    first.shutdown().await;
    for node in others {
        node.shutdown().await;
    }
}

/// Hundreds of changes in flight through every node at once: forwarded commands and their
/// answers share connections with a steady stream of raft traffic, and every change lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_writes_through_every_node_all_land() {
    let mut cluster = Cluster::start(3, QuorumTiming::default()).await;
    const CHANGES_PER_NODE: usize = 150;
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..3 {
        for n in 0..CHANGES_PER_NODE {
            let node = cluster.node(id).clone();
            tasks.spawn(async move {
                let key = format!("concurrent.{id}.{n}");
                let reply = node
                    .submit(ControllerRequest::AlterConfigs {
                        resource_type: spate_controller::records::CONFIG_RESOURCE_BROKER,
                        resource_name: String::new(),
                        changes: vec![(key.clone(), Some("v".into()))],
                    })
                    .await;
                (key, reply)
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        let (key, reply) = done.unwrap();
        assert!(
            matches!(reply, Ok(ControllerReply::ConfigsAltered)),
            "{key}: {reply:?}"
        );
    }
    for id in 0..3 {
        wait_for(
            cluster.node(id),
            Duration::from_secs(10),
            "every change everywhere",
            |image| {
                image
                    .configs(spate_controller::records::CONFIG_RESOURCE_BROKER, "")
                    .is_some_and(|c| c.len() == 3 * CHANGES_PER_NODE)
            },
        )
        .await;
    }
    cluster.stop_all().await;
}
