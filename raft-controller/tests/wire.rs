//! The controller port's frames: every command and reply survives encoding, and malformed
//! frames are errors, never panics.

use spate_controller::controller::{
    AlterPartition, AlterPartitionError, AlteredPartition, ControllerError, CreatedTopic,
    ElectionError, NewTopic,
};
use spate_controller::frontend::{
    ControllerReply, ControllerRequest, QuorumDescription, QuorumReplica,
};
use spate_controller::node::{Command, CommandReply, ForwardOutcome, PeerMessage};
use spate_controller::records::{Endpoint, ResourceRecord};
use spate_controller::wire::{self, Frame, WireError};
use spate_protocol::types::NodeId;
use uuid::Uuid;

fn round_trip(message: PeerMessage) {
    let bytes = wire::encode_peer(&message);
    let length = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    assert_eq!(length, bytes.len() - 4);
    let Frame::Peer(decoded) = wire::decode_frame(&bytes[4..]).expect("decodes") else {
        panic!("not a peer frame");
    };
    assert_eq!(format!("{decoded:?}"), format!("{message:?}"));
}

fn forward(request: ControllerRequest) -> PeerMessage {
    PeerMessage::Forward {
        request_id: 42,
        command: Command::Request(request),
    }
}

fn done(result: Result<CommandReply, ControllerError>) -> PeerMessage {
    PeerMessage::ForwardReply {
        request_id: 7,
        outcome: ForwardOutcome::Done {
            applied_index: 99,
            result,
        },
    }
}

#[test]
fn every_request_round_trips() {
    let topic_id = Uuid::new_v4();
    let requests = vec![
        ControllerRequest::RegisterBroker {
            broker_id: NodeId(3),
            incarnation_id: Uuid::new_v4(),
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "spate-3.spate".into(),
                port: 9092,
                security_protocol: 0,
            }],
            rack: Some("zone-a".into()),
        },
        ControllerRequest::CreateTopics {
            topics: vec![
                NewTopic {
                    name: "a".into(),
                    partitions: Some(3),
                    replication_factor: Some(2),
                    configs: vec![("retention.ms".into(), "1000".into())],
                    ..NewTopic::default()
                },
                NewTopic {
                    name: "b".into(),
                    assignments: [(0, vec![NodeId(1), NodeId(2)])].into_iter().collect(),
                    ..NewTopic::default()
                },
            ],
            validate_only: true,
        },
        ControllerRequest::DeleteTopics {
            topic_ids: vec![topic_id],
        },
        ControllerRequest::CreatePartitions {
            topic: "a".into(),
            new_total: 5,
            assignments: Some(vec![vec![NodeId(1)], vec![NodeId(2)]]),
            validate_only: false,
        },
        ControllerRequest::CreatePartitions {
            topic: "a".into(),
            new_total: 5,
            assignments: None,
            validate_only: false,
        },
        ControllerRequest::AlterConfigs {
            resource_type: 2,
            resource_name: "a".into(),
            changes: vec![
                ("retention.ms".into(), Some("5".into())),
                ("x".into(), None),
            ],
        },
        ControllerRequest::AllocateProducerIds {
            broker_id: NodeId(1),
            broker_epoch: 9,
        },
        ControllerRequest::BrokerHeartbeat {
            broker_id: NodeId(1),
            broker_epoch: 9,
            metadata_offset: 120,
        },
        ControllerRequest::ControlledShutdown {
            broker_id: NodeId(1),
            broker_epoch: 9,
        },
        ControllerRequest::FenceBroker {
            broker_id: NodeId(1),
            broker_epoch: 9,
        },
        ControllerRequest::AlterPartition(AlterPartition {
            broker_id: NodeId(1),
            broker_epoch: 9,
            topic_id,
            partition: 2,
            leader_epoch: 4,
            partition_epoch: 11,
            new_isr: vec![NodeId(1), NodeId(2)],
        }),
        ControllerRequest::ElectPreferredLeaders { partitions: None },
        ControllerRequest::PutResources {
            changes: vec![
                ResourceRecord {
                    kind: "cloudevents.broker".into(),
                    name: "ns/b".into(),
                    value: Some(b"{}".to_vec()),
                },
                ResourceRecord {
                    kind: "cloudevents.trigger".into(),
                    name: "ns/t".into(),
                    value: None,
                },
            ],
        },
        ControllerRequest::ElectPreferredLeaders {
            partitions: Some(vec![(topic_id, 0)]),
        },
    ];
    for request in requests {
        round_trip(forward(request));
    }
    round_trip(PeerMessage::Forward {
        request_id: 1,
        command: Command::Join {
            node_id: NodeId(4),
            address: "10.0.0.4:9093".into(),
        },
    });
    round_trip(PeerMessage::Forward {
        request_id: 2,
        command: Command::DescribeQuorum,
    });
}

#[test]
fn every_reply_and_error_round_trips() {
    let topic_id = Uuid::new_v4();
    let replies = vec![
        ControllerReply::BrokerRegistered { broker_epoch: 12 },
        ControllerReply::TopicsCreated(vec![
            Ok(CreatedTopic {
                topic_id,
                partitions: 3,
                replication_factor: 2,
            }),
            Err(ControllerError::TopicAlreadyExists("a".into())),
        ]),
        ControllerReply::TopicsDeleted(vec![Ok(()), Err(ControllerError::UnknownTopicId)]),
        ControllerReply::PartitionsCreated,
        ControllerReply::ConfigsAltered,
        ControllerReply::ProducerIdsAllocated {
            first_producer_id: 4000,
        },
        ControllerReply::BrokerHeartbeat { fenced: true },
        ControllerReply::StaleBrokerEpoch,
        ControllerReply::BrokerFenced,
        ControllerReply::ResourcesChanged,
        ControllerReply::PartitionAltered(Ok(AlteredPartition {
            leader: Some(NodeId(1)),
            leader_epoch: 3,
            partition_epoch: 8,
            isr: vec![NodeId(1)],
        })),
        ControllerReply::PartitionAltered(Err(AlterPartitionError::FencedLeaderEpoch {
            requested: 1,
            current: 2,
        })),
        ControllerReply::PartitionAltered(Err(AlterPartitionError::IneligibleReplica(NodeId(5)))),
        ControllerReply::PartitionAltered(Err(AlterPartitionError::InvalidRequest("why".into()))),
        ControllerReply::LeadersElected(vec![
            ((topic_id, 0), Ok(())),
            ((topic_id, 1), Err(ElectionError::ElectionNotNeeded)),
            (
                (topic_id, 2),
                Err(ElectionError::PreferredLeaderNotAvailable),
            ),
        ]),
    ];
    for reply in replies {
        round_trip(done(Ok(CommandReply::Reply(reply))));
    }
    round_trip(done(Ok(CommandReply::Joined)));
    round_trip(done(Ok(CommandReply::Quorum(QuorumDescription {
        leader_id: NodeId(1),
        leader_epoch: 5,
        high_watermark: 77,
        voters: vec![QuorumReplica {
            node_id: NodeId(1),
            log_end_offset: 77,
            last_fetch_timestamp_ms: 1,
            last_caught_up_timestamp_ms: 2,
        }],
        observers: Vec::new(),
        voter_addresses: Vec::new(),
    }))));
    for error in [
        ControllerError::InvalidTopic("bad".into()),
        ControllerError::UnknownTopic,
        ControllerError::InvalidPartitions("p".into()),
        ControllerError::InvalidReplicationFactor("r".into()),
        ControllerError::InvalidReplicaAssignment("a".into()),
        ControllerError::InvalidRequest("i".into()),
        ControllerError::Unavailable("u".into()),
    ] {
        round_trip(done(Err(error)));
    }
    round_trip(PeerMessage::ForwardReply {
        request_id: 3,
        outcome: ForwardOutcome::NotLeader {
            leader: Some(NodeId(2)),
        },
    });
}

#[test]
fn malformed_frames_are_errors() {
    // An empty frame has no body.
    assert_eq!(
        wire::decode_frame(&[]).unwrap_err(),
        WireError::Malformed("empty frame")
    );
    // Random bytes are not a frame.
    assert!(matches!(
        wire::decode_frame(&[0xff; 12]),
        Err(WireError::Decode(_))
    ));
    // A well-formed frame whose topic id is not 16 bytes.
    let bytes = wire::encode_peer(&forward(ControllerRequest::DeleteTopics {
        topic_ids: vec![Uuid::new_v4()],
    }));
    let mut body = bytes[4..].to_vec();
    // Truncating anywhere never panics: it decodes to an error or to a shorter valid frame.
    for cut in 0..body.len() {
        let _ = wire::decode_frame(&body[..cut]);
    }
    let id_at = body
        .windows(2)
        .position(|w| w == [0x0a, 16])
        .expect("the id's length prefix");
    body[id_at + 1] = 15;
    body.remove(id_at + 2);
    // Fix up the enclosing lengths by re-encoding is not possible here; any outcome but a
    // panic is acceptable, and a decodable frame must not yield a bogus id.
    if let Ok(Frame::Peer(PeerMessage::Forward { command, .. })) = wire::decode_frame(&body) {
        panic!("a 15-byte topic id decoded into {command:?}");
    }
}
