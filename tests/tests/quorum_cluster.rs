//! A three-node cluster of real `spate` processes on 127.0.0.1-3 with the same ports, as a
//! StatefulSet would run it: the nodes form a metadata quorum, metadata writes work through any
//! node, a SIGKILLed raft leader is replaced within 3 s with the default timeouts and writes
//! resume, the old leader catches up after a restart, a fourth node joins as a learner and
//! serves metadata, a clean stop moves leadership away, and a node of another cluster is
//! refused. Requests are Kafka's own: Metadata (3), CreateTopics (19), DescribeQuorum (55).

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use spate_e2e::cluster::{
    ClusterOptions, ClusterView, SpateCluster, create_topic, describe_quorum, metadata,
    targets_spate,
};

fn start() -> SpateCluster {
    SpateCluster::start(ClusterOptions::default()).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Polls `check` until it yields a value or `within` passes.
fn eventually<T>(
    cluster: &SpateCluster,
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {within:?} waiting for {what}\n{}",
                cluster.logs()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The leader node `id` reports through DescribeQuorum, if it has one.
fn reported_leader(cluster: &SpateCluster, id: usize) -> Option<i32> {
    let response = describe_quorum(&cluster.bootstrap(id)).ok()?;
    let partition = response.topics.first()?.partitions.first()?;
    (partition.error_code == 0 && partition.leader_id.0 >= 0).then_some(partition.leader_id.0)
}

/// The leader every node in `nodes` agrees on.
fn agreed_leader(cluster: &SpateCluster, nodes: &[usize], within: Duration) -> usize {
    eventually(cluster, within, "an agreed quorum leader", || {
        let views: BTreeSet<Option<i32>> = nodes
            .iter()
            .map(|id| reported_leader(cluster, *id))
            .collect();
        match views.into_iter().collect::<Vec<_>>().as_slice() {
            [Some(leader)] if nodes.contains(&(*leader as usize)) => Some(*leader as usize),
            _ => None,
        }
    })
}

fn view_of(cluster: &SpateCluster, id: usize) -> ClusterView {
    metadata(&cluster.bootstrap(id))
        .unwrap_or_else(|e| panic!("Metadata from node {id}: {e:#}\n{}", cluster.logs()))
}

fn create(cluster: &SpateCluster, through: usize, name: &str, replication: i16) {
    match create_topic(&cluster.bootstrap(through), name, 3, replication) {
        Ok(Ok(())) => {}
        Ok(Err((code, message))) => {
            panic!(
                "CreateTopics {name} through node {through}: error {code} {message}\n{}",
                cluster.logs()
            )
        }
        Err(e) => panic!(
            "CreateTopics {name} through node {through}: {e:#}\n{}",
            cluster.logs()
        ),
    }
}

#[test]
fn three_nodes_form_a_quorum_fail_over_and_catch_up() {
    if !targets_spate("three_nodes_form_a_quorum_fail_over_and_catch_up") {
        return;
    }
    let mut cluster = start();
    let all = [0, 1, 2];
    let leader = agreed_leader(&cluster, &all, Duration::from_secs(10));

    // Every node lists every broker, at its own address, and names the leader as controller.
    for id in all {
        let view = view_of(&cluster, id);
        let ids: BTreeSet<i32> = view.brokers.iter().map(|b| b.0).collect();
        assert_eq!(ids, BTreeSet::from([0, 1, 2]), "node {id}: {view:?}");
        for (broker, host, _) in &view.brokers {
            assert_eq!(*host, format!("127.0.0.{}", broker + 1));
        }
        assert_eq!(view.controller_id, leader as i32);
    }

    // A write through a follower is forwarded to the leader; every node sees it.
    let follower = (leader + 1) % 3;
    create(&cluster, follower, "through-a-follower", 3);
    for id in all {
        eventually(
            &cluster,
            Duration::from_secs(5),
            "the topic on every node",
            || {
                view_of(&cluster, id)
                    .leaders("through-a-follower")
                    .filter(|p| p.len() == 3)
                    .cloned()
            },
        );
    }
    let response = describe_quorum(&cluster.bootstrap(follower)).unwrap();
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.leader_id.0, leader as i32);
    assert_eq!(partition.current_voters.len(), 3);
    assert!(partition.high_watermark > 0);
    assert_eq!(
        response.nodes.len(),
        3,
        "v2 lists the voters' controller endpoints"
    );

    // SIGKILL the raft leader: the survivors elect another within 3 s (default timeouts).
    cluster.kill9(leader);
    let killed = Instant::now();
    let survivors: Vec<usize> = all.iter().copied().filter(|id| *id != leader).collect();
    let new_leader = agreed_leader(&cluster, &survivors, Duration::from_secs(10));
    let failover = killed.elapsed();
    assert_ne!(new_leader, leader);
    assert!(
        failover < Duration::from_secs(3),
        "a new leader took {failover:?}\n{}",
        cluster.logs()
    );
    // Metadata writes resume, through either survivor.
    for (i, id) in survivors.iter().enumerate() {
        create(&cluster, *id, &format!("after-failover-{i}"), 2);
    }

    // The old leader restarts on its log and catches up.
    cluster.restart(leader).unwrap_or_else(|e| panic!("{e:#}"));
    eventually(
        &cluster,
        Duration::from_secs(10),
        "the old leader to catch up",
        || {
            let view = view_of(&cluster, leader);
            (view.leaders("after-failover-0").is_some()
                && view.leaders("after-failover-1").is_some())
            .then_some(())
        },
    );
    eventually(
        &cluster,
        Duration::from_secs(15),
        "the restarted broker to be listed again",
        || (view_of(&cluster, new_leader).brokers.len() == 3).then_some(()),
    );
}

#[test]
fn a_fourth_node_joins_as_a_learner_and_serves_metadata() {
    if !targets_spate("a_fourth_node_joins_as_a_learner_and_serves_metadata") {
        return;
    }
    let mut cluster = start();
    let leader = agreed_leader(&cluster, &[0, 1, 2], Duration::from_secs(10));
    create(&cluster, leader, "before-the-learner", 3);
    let learner = cluster
        .add_node(Vec::new())
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(learner, 3);
    let view = view_of(&cluster, learner);
    assert_eq!(view.brokers.len(), 4, "{view:?}");
    assert!(view.leaders("before-the-learner").is_some());
    // It is an observer of the quorum, not a voter.
    let response = describe_quorum(&cluster.bootstrap(learner)).unwrap();
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.current_voters.len(), 3);
    let observers: Vec<i32> = partition.observers.iter().map(|o| o.replica_id.0).collect();
    assert_eq!(observers, vec![3]);
    // Writes through the learner are forwarded like any node's.
    create(&cluster, learner, "through-the-learner", 3);
    eventually(
        &cluster,
        Duration::from_secs(5),
        "the learner's topic on the leader",
        || {
            view_of(&cluster, leader)
                .leaders("through-the-learner")
                .cloned()
        },
    );
}

#[test]
fn a_clean_stop_moves_leadership_away_first() {
    if !targets_spate("a_clean_stop_moves_leadership_away_first") {
        return;
    }
    let mut cluster = start();
    let leader = agreed_leader(&cluster, &[0, 1, 2], Duration::from_secs(10));
    create(&cluster, leader, "spread", 3);
    let stopping = (leader + 1) % 3;
    let led_before = view_of(&cluster, leader)
        .leaders("spread")
        .unwrap()
        .iter()
        .filter(|(_, l)| *l == stopping as i32)
        .count();
    assert_eq!(led_before, 1, "each broker prefers one of three partitions");
    cluster.stop(stopping).unwrap_or_else(|e| panic!("{e:#}"));
    let view = view_of(&cluster, leader);
    let leaders = view.leaders("spread").unwrap();
    assert!(
        leaders
            .iter()
            .all(|(_, l)| *l != stopping as i32 && *l >= 0),
        "after a controlled shutdown other replicas lead: {leaders:?}"
    );
    assert!(
        view.brokers.iter().all(|b| b.0 != stopping as i32),
        "a fenced broker is not offered to clients: {view:?}"
    );
}

#[test]
fn a_node_of_another_cluster_is_refused() {
    if !targets_spate("a_node_of_another_cluster_is_refused") {
        return;
    }
    let mut cluster = start();
    agreed_leader(&cluster, &[0, 1, 2], Duration::from_secs(10));
    let stranger = cluster
        .add_node_process(vec!["--cluster-id".into(), "another-cluster".into()])
        .unwrap();
    let status = cluster
        .wait_exit(stranger, Duration::from_secs(30))
        .unwrap()
        .unwrap_or_else(|| panic!("the stranger kept running\n{}", cluster.logs()));
    assert!(!status.success());
    let stderr = cluster.stderr(stranger);
    assert!(
        stderr.contains("another-cluster") && stderr.contains("refused"),
        "the refusal names the cluster ids:\n{stderr}"
    );
    // The cluster did not let it in.
    let view = view_of(&cluster, 0);
    assert!(view.brokers.iter().all(|b| b.0 != stranger as i32));
}

#[test]
fn a_corrupt_metadata_log_is_refused_naming_the_file() {
    if !targets_spate("a_corrupt_metadata_log_is_refused_naming_the_file") {
        return;
    }
    let mut cluster = SpateCluster::start(ClusterOptions {
        voters: 1,
        ..ClusterOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    for i in 0..3 {
        create(&cluster, 0, &format!("kept-{i}"), 1);
    }
    cluster.stop(0).unwrap_or_else(|e| panic!("{e:#}"));
    let metadata_dir = cluster.data_dir(0).join("__cluster_metadata");
    let wal = std::fs::read_dir(&metadata_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .expect("a metadata WAL");
    // Damage the first record, with the rest of the log after it: no crash leaves that.
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[30] ^= 0xff;
    std::fs::write(&wal, &bytes).unwrap();
    let error = match cluster.restart(0) {
        Ok(()) => panic!(
            "a node with a corrupt metadata log started\n{}",
            cluster.logs()
        ),
        Err(e) => format!("{e:#}"),
    };
    let name = wal.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        error.contains(&name) && error.contains("corrupt"),
        "the refusal names the file:\n{error}"
    );
}

#[test]
fn a_quorum_leader_resumed_after_a_pause_does_not_fence_the_cluster() {
    if !targets_spate("a_quorum_leader_resumed_after_a_pause_does_not_fence_the_cluster") {
        return;
    }
    // Short sessions, so that the pause outlasts every broker's session as the paused leader
    // sees it when it wakes up.
    let options = ClusterOptions {
        voters: 3,
        sets: [
            ("controller.quorum.election.timeout.ms", "500"),
            ("broker.session.timeout.ms", "1500"),
            ("broker.heartbeat.interval.ms", "250"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    };
    let mut cluster = SpateCluster::start(options).unwrap_or_else(|e| panic!("{e:#}"));
    let all = [0, 1, 2];
    let first = agreed_leader(&cluster, &all, Duration::from_secs(10));
    create(&cluster, (first + 1) % 3, "paused", 3);

    // Whether the woken node's timers or the new leader's messages come first is up to the
    // scheduler, so the pause is repeated.
    for round in 0..3 {
        let leader = agreed_leader(&cluster, &all, Duration::from_secs(10));
        let others: Vec<usize> = all.iter().copied().filter(|id| *id != leader).collect();
        cluster.pause(leader);
        let successor = agreed_leader(&cluster, &others, Duration::from_secs(10));
        assert_ne!(successor, leader);
        thread::sleep(Duration::from_millis(2_500));
        cluster.resume(leader);

        // The resumed node finds every session expired by its own clock; it is no longer the
        // leader, so nothing of that may reach the metadata: all three brokers are listed again
        // and every partition has a leader, on every node, and stays so.
        let healthy = |id: usize| -> bool {
            let Ok(view) = metadata(&cluster.bootstrap(id)) else {
                return false;
            };
            let brokers: BTreeSet<i32> = view.brokers.iter().map(|b| b.0).collect();
            brokers == BTreeSet::from([0, 1, 2])
                && view
                    .leaders("paused")
                    .is_some_and(|p| p.len() == 3 && p.iter().all(|(_, leader)| *leader >= 0))
        };
        eventually(
            &cluster,
            Duration::from_secs(10),
            "a healthy cluster",
            || all.iter().all(|id| healthy(*id)).then_some(()),
        );
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            for id in all {
                assert!(
                    healthy(id),
                    "round {round}: node {id} lost brokers or leaders after node {leader} resumed: {:?}\n{}",
                    metadata(&cluster.bootstrap(id)).ok(),
                    cluster.logs()
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}
