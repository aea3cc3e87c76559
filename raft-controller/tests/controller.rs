//! Controller decisions, checked against the records they produce and the images those records
//! build: rack-aware placement, broker registration and fencing (KIP-631's lifecycle),
//! AlterPartition with its epoch fencing (KIP-497, KIP-903), and preferred-leader election.

use spate_controller::controller::{
    AlterPartition, AlterPartitionError, ControllerSettings, ElectionError, NewTopic,
};
use spate_controller::frontend::{ControllerReply, ControllerRequest, decide};
use spate_controller::image::MetadataImage;
use spate_controller::records::Endpoint;
use spate_protocol::types::{LeaderEpoch, NodeId};
use uuid::Uuid;

fn settings() -> ControllerSettings {
    ControllerSettings {
        default_partitions: 6,
        default_replication_factor: 3,
    }
}

/// Decides `request` and applies its records as the entry after the image, like the quorum.
fn run(image: &mut MetadataImage, request: ControllerRequest) -> ControllerReply {
    let mut new_id = Uuid::new_v4;
    let (reply, records) =
        decide(image, &settings(), &request, &mut new_id).expect("the request is decided");
    let offset = image.offset + 1;
    for record in &records {
        image.apply(offset, record).expect("decided records apply");
    }
    image.offset = offset;
    reply
}

fn register(image: &mut MetadataImage, id: i32, rack: Option<&str>) -> i64 {
    let reply = run(
        image,
        ControllerRequest::RegisterBroker {
            broker_id: NodeId(id),
            incarnation_id: Uuid::new_v4(),
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: format!("b{id}"),
                port: 9092,
                security_protocol: 0,
            }],
            rack: rack.map(str::to_string),
        },
    );
    let ControllerReply::BrokerRegistered { broker_epoch } = reply else {
        panic!("unexpected {reply:?}");
    };
    // Registered brokers start fenced; a caught-up heartbeat unfences them.
    assert!(image.broker(NodeId(id)).unwrap().fenced);
    let applied = image.offset;
    let reply = run(
        image,
        ControllerRequest::BrokerHeartbeat {
            broker_id: NodeId(id),
            broker_epoch,
            metadata_offset: applied,
        },
    );
    assert!(matches!(
        reply,
        ControllerReply::BrokerHeartbeat { fenced: false }
    ));
    broker_epoch
}

fn create(image: &mut MetadataImage, name: &str, partitions: i32, replication: i16) {
    let reply = run(
        image,
        ControllerRequest::CreateTopics {
            topics: vec![NewTopic {
                name: name.into(),
                partitions: Some(partitions),
                replication_factor: Some(replication),
                ..NewTopic::default()
            }],
            validate_only: false,
        },
    );
    let ControllerReply::TopicsCreated(results) = reply else {
        panic!("unexpected {reply:?}");
    };
    results[0].as_ref().expect("topic created");
}

#[test]
fn replicas_spread_across_racks_and_leaders_across_brokers() {
    let mut image = MetadataImage::empty();
    for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")] {
        register(&mut image, id, Some(rack));
    }
    create(&mut image, "racked", 12, 3);
    let topic = image.topic("racked").unwrap().clone();
    let rack_of = |id: &NodeId| image.broker(*id).unwrap().rack.clone().unwrap();
    let mut leaders = std::collections::BTreeMap::new();
    for partition in topic.partitions.values() {
        let racks: std::collections::BTreeSet<_> = partition.replicas.iter().map(rack_of).collect();
        assert_eq!(
            racks.len(),
            3,
            "partition {} spans every rack",
            partition.id
        );
        *leaders.entry(partition.replicas[0]).or_insert(0) += 1;
    }
    assert_eq!(leaders.len(), 6, "every broker is a preferred leader");
    assert!(leaders.values().all(|count| *count == 2), "{leaders:?}");
}

#[test]
fn a_registration_needs_a_caught_up_heartbeat_to_be_unfenced() {
    let mut image = MetadataImage::empty();
    let reply = run(
        &mut image,
        ControllerRequest::RegisterBroker {
            broker_id: NodeId(1),
            incarnation_id: Uuid::new_v4(),
            endpoints: Vec::new(),
            rack: None,
        },
    );
    let ControllerReply::BrokerRegistered { broker_epoch } = reply else {
        panic!();
    };
    assert_eq!(
        broker_epoch, image.offset,
        "the epoch is the registration's offset"
    );
    // A broker that has not applied its own registration yet stays fenced (KIP-631).
    let reply = run(
        &mut image,
        ControllerRequest::BrokerHeartbeat {
            broker_id: NodeId(1),
            broker_epoch,
            metadata_offset: broker_epoch - 1,
        },
    );
    assert!(matches!(
        reply,
        ControllerReply::BrokerHeartbeat { fenced: true }
    ));
    let applied = image.offset;
    let reply = run(
        &mut image,
        ControllerRequest::BrokerHeartbeat {
            broker_id: NodeId(1),
            broker_epoch: broker_epoch - 5,
            metadata_offset: applied,
        },
    );
    assert!(matches!(reply, ControllerReply::StaleBrokerEpoch));
    let applied = image.offset;
    let reply = run(
        &mut image,
        ControllerRequest::BrokerHeartbeat {
            broker_id: NodeId(1),
            broker_epoch,
            metadata_offset: applied,
        },
    );
    assert!(matches!(
        reply,
        ControllerReply::BrokerHeartbeat { fenced: false }
    ));
    assert!(!image.broker(NodeId(1)).unwrap().fenced);
}

#[test]
fn fencing_moves_leadership_to_in_sync_replicas_and_unfencing_restores_offline_partitions() {
    let mut image = MetadataImage::empty();
    let epochs: Vec<i64> = (1..=3).map(|id| register(&mut image, id, None)).collect();
    create(&mut image, "t", 3, 3);
    create(&mut image, "solo", 1, 1);
    let solo_leader = image.topic("solo").unwrap().partitions[&0].leader.unwrap();
    let victim = solo_leader;
    let before = image.topic("t").unwrap().clone();
    run(
        &mut image,
        ControllerRequest::FenceBroker {
            broker_id: victim,
            broker_epoch: epochs[(victim.0 - 1) as usize],
        },
    );
    assert!(image.broker(victim).unwrap().fenced);
    let after = image.topic("t").unwrap().clone();
    for (index, partition) in &after.partitions {
        let old = &before.partitions[index];
        assert!(
            !partition.isr.contains(&victim),
            "the fenced broker left the ISR"
        );
        assert_ne!(partition.leader, Some(victim));
        let leader = partition.leader.expect("another in-sync replica leads");
        assert!(partition.isr.contains(&leader));
        if old.leader == Some(victim) {
            // The next replica in preferred order takes over, in a new leader epoch.
            let expected = old.replicas.iter().find(|r| **r != victim).copied();
            assert_eq!(Some(leader), expected);
            assert_eq!(partition.leader_epoch, LeaderEpoch(old.leader_epoch.0 + 1));
        } else {
            assert_eq!(
                partition.leader_epoch, old.leader_epoch,
                "only the ISR changed"
            );
        }
        assert_eq!(partition.partition_epoch, old.partition_epoch + 1);
    }
    // A partition whose only in-sync replica was fenced goes offline, keeping that replica
    // in its ISR: no unclean election.
    let solo = image.topic("solo").unwrap().partitions[&0].clone();
    assert_eq!(solo.leader, None);
    assert_eq!(solo.isr, vec![victim]);
    // Fencing twice changes nothing.
    let offset = image.offset;
    let mut new_id = Uuid::new_v4;
    let (_, records) = decide(
        &image,
        &settings(),
        &ControllerRequest::FenceBroker {
            broker_id: victim,
            broker_epoch: epochs[(victim.0 - 1) as usize],
        },
        &mut new_id,
    )
    .unwrap();
    assert!(records.is_empty());
    assert_eq!(image.offset, offset);
    // When it comes back, it leads what it was the last in-sync replica of.
    let applied = image.offset;
    let reply = run(
        &mut image,
        ControllerRequest::BrokerHeartbeat {
            broker_id: victim,
            broker_epoch: epochs[(victim.0 - 1) as usize],
            metadata_offset: applied,
        },
    );
    assert!(matches!(
        reply,
        ControllerReply::BrokerHeartbeat { fenced: false }
    ));
    assert_eq!(
        image.topic("solo").unwrap().partitions[&0].leader,
        Some(victim)
    );
}

#[test]
fn a_restarted_broker_loses_its_leaderships_and_a_retried_registration_is_idempotent() {
    let mut image = MetadataImage::empty();
    for id in 1..=3 {
        register(&mut image, id, None);
    }
    create(&mut image, "t", 3, 3);
    let led_by_one = image
        .topic("t")
        .unwrap()
        .partitions
        .values()
        .filter(|p| p.leader == Some(NodeId(1)))
        .count();
    assert_eq!(led_by_one, 1);
    let incarnation = Uuid::new_v4();
    let request = ControllerRequest::RegisterBroker {
        broker_id: NodeId(1),
        incarnation_id: incarnation,
        endpoints: Vec::new(),
        rack: None,
    };
    let ControllerReply::BrokerRegistered { broker_epoch } = run(&mut image, request.clone())
    else {
        panic!();
    };
    assert!(
        image
            .topic("t")
            .unwrap()
            .partitions
            .values()
            .all(|p| p.leader != Some(NodeId(1))),
        "a new incarnation leads nothing until unfenced"
    );
    let ControllerReply::BrokerRegistered {
        broker_epoch: again,
    } = run(&mut image, request)
    else {
        panic!();
    };
    assert_eq!(
        again, broker_epoch,
        "a retried registration keeps its epoch"
    );
    assert_eq!(image.broker(NodeId(1)).unwrap().epoch, broker_epoch);
}

fn alter(
    image: &mut MetadataImage,
    request: AlterPartition,
) -> Result<(i32, Vec<NodeId>), AlterPartitionError> {
    match run(image, ControllerRequest::AlterPartition(request)) {
        ControllerReply::PartitionAltered(result) => {
            result.map(|altered| (altered.partition_epoch, altered.isr))
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn alter_partition_is_fenced_by_leader_and_partition_epochs() {
    let mut image = MetadataImage::empty();
    let epochs: Vec<i64> = (1..=3).map(|id| register(&mut image, id, None)).collect();
    create(&mut image, "t", 1, 3);
    let topic = image.topic("t").unwrap().clone();
    let partition = topic.partitions[&0].clone();
    let leader = partition.leader.unwrap();
    let follower = *partition.replicas.iter().find(|r| **r != leader).unwrap();
    let base = AlterPartition {
        broker_id: leader,
        broker_epoch: epochs[(leader.0 - 1) as usize],
        topic_id: topic.id,
        partition: 0,
        leader_epoch: partition.leader_epoch.0,
        partition_epoch: partition.partition_epoch,
        new_isr: vec![leader, follower],
    };
    // Shrink the ISR: accepted, the partition epoch moves on.
    let (epoch, isr) = alter(&mut image, base.clone()).unwrap();
    assert_eq!(epoch, partition.partition_epoch + 1);
    assert_eq!(isr, vec![leader, follower]);
    // The same proposal again is based on an old partition epoch.
    assert_eq!(
        alter(&mut image, base.clone()),
        Err(AlterPartitionError::InvalidUpdateVersion {
            requested: partition.partition_epoch,
            current: partition.partition_epoch + 1
        })
    );
    let current = AlterPartition {
        partition_epoch: epoch,
        ..base.clone()
    };
    assert_eq!(
        alter(
            &mut image,
            AlterPartition {
                leader_epoch: partition.leader_epoch.0 - 1,
                ..current.clone()
            }
        ),
        Err(AlterPartitionError::FencedLeaderEpoch {
            requested: partition.leader_epoch.0 - 1,
            current: partition.leader_epoch.0
        })
    );
    assert_eq!(
        alter(
            &mut image,
            AlterPartition {
                broker_id: follower,
                broker_epoch: epochs[(follower.0 - 1) as usize],
                ..current.clone()
            }
        ),
        Err(AlterPartitionError::NotLeaderOrFollower)
    );
    assert_eq!(
        alter(
            &mut image,
            AlterPartition {
                broker_epoch: -7,
                ..current.clone()
            }
        ),
        Err(AlterPartitionError::StaleBrokerEpoch)
    );
    assert!(matches!(
        alter(
            &mut image,
            AlterPartition {
                new_isr: vec![follower],
                ..current.clone()
            }
        ),
        Err(AlterPartitionError::InvalidRequest(_))
    ));
    // A fenced replica may not rejoin the ISR (KIP-903's ineligible replica).
    let third = *partition
        .replicas
        .iter()
        .find(|r| **r != leader && **r != follower)
        .unwrap();
    run(
        &mut image,
        ControllerRequest::FenceBroker {
            broker_id: third,
            broker_epoch: epochs[(third.0 - 1) as usize],
        },
    );
    let epoch_now = image.topic("t").unwrap().partitions[&0].partition_epoch;
    assert_eq!(
        alter(
            &mut image,
            AlterPartition {
                partition_epoch: epoch_now,
                new_isr: vec![leader, follower, third],
                ..current
            }
        ),
        Err(AlterPartitionError::IneligibleReplica(third))
    );
}

#[test]
fn preferred_leader_election_moves_leadership_back() {
    let mut image = MetadataImage::empty();
    let epochs: Vec<i64> = (1..=3).map(|id| register(&mut image, id, None)).collect();
    create(&mut image, "t", 3, 3);
    let topic_id = image.topic("t").unwrap().id;
    // Broker 1 restarts: it loses its leaderships, then returns unfenced.
    run(
        &mut image,
        ControllerRequest::FenceBroker {
            broker_id: NodeId(1),
            broker_epoch: epochs[0],
        },
    );
    let applied = image.offset;
    run(
        &mut image,
        ControllerRequest::BrokerHeartbeat {
            broker_id: NodeId(1),
            broker_epoch: epochs[0],
            metadata_offset: applied,
        },
    );
    let moved: Vec<i32> = image
        .topic("t")
        .unwrap()
        .partitions
        .values()
        .filter(|p| p.replicas[0] == NodeId(1))
        .map(|p| p.id.0)
        .collect();
    assert_eq!(moved.len(), 1);
    let partition = moved[0];
    // Not back in the ISR yet: the preferred leader is not available.
    let ControllerReply::LeadersElected(results) = run(
        &mut image,
        ControllerRequest::ElectPreferredLeaders {
            partitions: Some(vec![(topic_id, partition), (Uuid::nil(), 0)]),
        },
    ) else {
        panic!();
    };
    assert_eq!(
        results,
        vec![
            (
                (Uuid::nil(), 0),
                Err(ElectionError::UnknownTopicOrPartition)
            ),
            (
                (topic_id, partition),
                Err(ElectionError::PreferredLeaderNotAvailable)
            ),
        ]
    );
    // Its leader adds it back to the ISR; now the election moves leadership home.
    let state = image.topic("t").unwrap().partitions[&partition].clone();
    let leader = state.leader.unwrap();
    let leader_epoch = image.broker(leader).unwrap().epoch;
    let mut isr = state.isr.clone();
    isr.push(NodeId(1));
    alter(
        &mut image,
        AlterPartition {
            broker_id: leader,
            broker_epoch: leader_epoch,
            topic_id,
            partition,
            leader_epoch: state.leader_epoch.0,
            partition_epoch: state.partition_epoch,
            new_isr: isr,
        },
    )
    .unwrap();
    let ControllerReply::LeadersElected(results) = run(
        &mut image,
        ControllerRequest::ElectPreferredLeaders { partitions: None },
    ) else {
        panic!();
    };
    assert!(results.contains(&((topic_id, partition), Ok(()))));
    assert_eq!(
        results
            .iter()
            .filter(|(_, r)| *r == Err(ElectionError::ElectionNotNeeded))
            .count(),
        2
    );
    assert_eq!(
        image.topic("t").unwrap().partitions[&partition].leader,
        Some(NodeId(1))
    );
}
