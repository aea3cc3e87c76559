//! The quorum in single-node mode (one voter, as `spate serve` runs with no configuration):
//! decisions commit durably through the Raft log, replay after a restart, and survive a torn WAL
//! tail as an unclean stop leaves it. Real files, a real controller listener.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use spate_controller::controller::{ControllerError, ControllerSettings, NewTopic};
use spate_controller::disk::METADATA_DIR_NAME;
use spate_controller::frontend::{ControllerReply, ControllerRequest, MetadataFrontend};
use spate_controller::quorum::{QuorumOptions, QuorumTiming, RaftQuorum};
use spate_controller::records::{CONFIG_RESOURCE_TOPIC, Endpoint, ResourceRecord};
use spate_protocol::types::NodeId;

fn options(dir: &Path) -> QuorumOptions {
    QuorumOptions {
        node_id: NodeId(0),
        data_dir: dir.to_path_buf(),
        cluster_id: "single-voter-test".into(),
        listen: "127.0.0.1:0".into(),
        voters: Vec::new(),
        advertised_host: None,
        timing: QuorumTiming::default(),
        controller: ControllerSettings {
            default_partitions: 3,
            default_replication_factor: 1,
        },
    }
}

async fn start(dir: &Path) -> Arc<RaftQuorum> {
    let quorum = RaftQuorum::start(options(dir))
        .await
        .expect("quorum starts");
    quorum
        .register_broker(
            vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
                security_protocol: 0,
            }],
            None,
        )
        .await
        .expect("registration commits and the broker is unfenced");
    quorum
}

fn topic(name: &str) -> NewTopic {
    NewTopic {
        name: name.into(),
        configs: vec![("retention.ms".into(), "1000".into())],
        ..NewTopic::default()
    }
}

fn wal_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut wals: Vec<_> = std::fs::read_dir(dir.join(METADATA_DIR_NAME))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    wals.sort();
    wals
}

#[tokio::test]
async fn created_topics_survive_a_restart_and_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let quorum = start(dir.path()).await;
        let reply = quorum
            .submit(ControllerRequest::CreateTopics {
                topics: vec![topic("orders"), topic("orders"), topic("bad/name")],
                validate_only: false,
            })
            .await
            .unwrap();
        let ControllerReply::TopicsCreated(results) = reply else {
            panic!("unexpected reply {reply:?}");
        };
        assert_eq!(results[0].as_ref().unwrap().partitions, 3);
        assert_eq!(
            results[1],
            Err(ControllerError::TopicAlreadyExists("orders".into()))
        );
        assert!(matches!(results[2], Err(ControllerError::InvalidTopic(_))));
        quorum.shutdown().await;
    }
    // An unclean stop mid-append leaves half a record behind.
    let wal = wal_files(dir.path()).pop().expect("a WAL exists");
    let clean_len = std::fs::metadata(&wal).unwrap().len();
    OpenOptions::new()
        .append(true)
        .open(&wal)
        .unwrap()
        .write_all(&[0, 0, 0, 50, 1, 2, 3])
        .unwrap();

    let quorum = start(dir.path()).await;
    let image = quorum.image();
    let orders = image.topic("orders").expect("topic replayed");
    assert_eq!(orders.partitions.len(), 3);
    assert_eq!(
        image
            .configs(CONFIG_RESOURCE_TOPIC, "orders")
            .map(|c| c.get("retention.ms").cloned()),
        Some(Some("1000".into()))
    );
    assert_eq!(image.live_brokers().count(), 1);
    // The torn bytes are gone; the log grew again from the clean end with the new entries.
    let data = std::fs::read(&wal).unwrap();
    assert!(data.len() as u64 >= clean_len);
    assert_ne!(
        &data[clean_len as usize..clean_len as usize + 7],
        &[0, 0, 0, 50, 1, 2, 3]
    );
    quorum.shutdown().await;
}

#[tokio::test]
async fn replication_factor_beyond_live_brokers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let quorum = start(dir.path()).await;
    let reply = quorum
        .submit(ControllerRequest::CreateTopics {
            topics: vec![NewTopic {
                name: "rf3".into(),
                replication_factor: Some(3),
                ..NewTopic::default()
            }],
            validate_only: false,
        })
        .await
        .unwrap();
    let ControllerReply::TopicsCreated(results) = reply else {
        panic!("unexpected reply {reply:?}");
    };
    assert!(matches!(
        results[0],
        Err(ControllerError::InvalidReplicationFactor(_))
    ));
    assert!(quorum.image().topic("rf3").is_none());
    quorum.shutdown().await;
}

#[tokio::test]
async fn validate_only_commits_nothing_and_deletion_frees_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let quorum = start(dir.path()).await;
    quorum
        .submit(ControllerRequest::CreateTopics {
            topics: vec![topic("a.b")],
            validate_only: true,
        })
        .await
        .unwrap();
    assert!(quorum.image().topic("a.b").is_none());
    quorum
        .submit(ControllerRequest::CreateTopics {
            topics: vec![topic("a.b")],
            validate_only: false,
        })
        .await
        .unwrap();
    // `.` and `_` collide, as in Kafka.
    let ControllerReply::TopicsCreated(results) = quorum
        .submit(ControllerRequest::CreateTopics {
            topics: vec![topic("a_b")],
            validate_only: false,
        })
        .await
        .unwrap()
    else {
        panic!("unexpected reply");
    };
    assert!(matches!(results[0], Err(ControllerError::InvalidTopic(_))));
    let id = quorum.image().topic("a.b").unwrap().id;
    quorum
        .submit(ControllerRequest::DeleteTopics {
            topic_ids: vec![id],
        })
        .await
        .unwrap();
    assert!(quorum.image().topic("a.b").is_none());
    assert!(
        quorum
            .image()
            .configs(CONFIG_RESOURCE_TOPIC, "a.b")
            .is_none()
    );
    quorum.shutdown().await;
}

/// Many concurrent requests are decided one after another against the image that includes the
/// earlier ones (they share log entries in batches), so exactly one of two racing creations of a
/// name wins and every broker epoch and producer-id block is distinct.
#[tokio::test]
async fn concurrent_requests_are_decided_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let quorum = start(dir.path()).await;
    let epoch = quorum.image().broker(NodeId(0)).unwrap().epoch;
    let mut creations = Vec::new();
    let mut blocks = Vec::new();
    for i in 0..50 {
        creations.push(quorum.submit(ControllerRequest::CreateTopics {
            topics: vec![topic(&format!("t{}", i % 25))],
            validate_only: false,
        }));
        blocks.push(quorum.submit(ControllerRequest::AllocateProducerIds {
            broker_id: NodeId(0),
            broker_epoch: epoch,
        }));
    }
    let mut created = 0;
    for creation in creations {
        let ControllerReply::TopicsCreated(results) = creation.await.unwrap() else {
            panic!("unexpected reply");
        };
        if results[0].is_ok() {
            created += 1;
        } else {
            assert!(matches!(
                results[0],
                Err(ControllerError::TopicAlreadyExists(_))
            ));
        }
    }
    assert_eq!(created, 25, "each of the 25 names is created exactly once");
    let mut firsts = std::collections::BTreeSet::new();
    for block in blocks {
        let ControllerReply::ProducerIdsAllocated { first_producer_id } = block.await.unwrap()
        else {
            panic!("unexpected reply");
        };
        assert!(
            firsts.insert(first_producer_id),
            "block {first_producer_id} handed out twice"
        );
    }
    assert_eq!(quorum.image().topic_count(), 25);
    quorum.shutdown().await;
}

/// A snapshot replaces the log once enough entries were applied; a restart rebuilds the image
/// from the snapshot plus the entries after it.
#[tokio::test]
async fn restart_after_compaction_rebuilds_the_image_from_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path());
    options.timing.snapshot_interval_entries = 5;
    let quorum = RaftQuorum::start(options.clone()).await.unwrap();
    quorum
        .register_broker(Vec::new(), Some("rack-a".into()))
        .await
        .unwrap();
    // Extension resources live in the image like topics: set, replaced, removed, refused when
    // unnamed, and carried by the snapshot.
    let resource = |name: &str, value: Option<&str>| ResourceRecord {
        kind: "test.kind".into(),
        name: name.into(),
        value: value.map(|v| v.as_bytes().to_vec()),
    };
    quorum
        .submit(ControllerRequest::PutResources {
            changes: vec![
                resource("a", Some("one")),
                resource("b", Some("two")),
                resource("a", Some("three")),
            ],
        })
        .await
        .unwrap();
    quorum
        .submit(ControllerRequest::PutResources {
            changes: vec![resource("b", None)],
        })
        .await
        .unwrap();
    let refused = quorum
        .submit(ControllerRequest::PutResources {
            changes: vec![resource("", Some("x"))],
        })
        .await;
    assert!(
        matches!(refused, Err(ControllerError::InvalidRequest(_))),
        "{refused:?}"
    );
    for i in 0..20 {
        quorum
            .submit(ControllerRequest::CreateTopics {
                topics: vec![topic(&format!("snap{i}"))],
                validate_only: false,
            })
            .await
            .unwrap();
    }
    let status = quorum.status();
    assert!(status.snapshot_index >= 15, "status {status:?}");
    let before = quorum.image().to_records();
    let applied_before = status.applied_index;
    quorum.shutdown().await;
    drop(quorum);
    let snapshots: Vec<_> = std::fs::read_dir(dir.path().join(METADATA_DIR_NAME))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".snap"))
        .collect();
    assert_eq!(
        snapshots.len(),
        1,
        "older snapshots are deleted: {snapshots:?}"
    );

    let quorum = RaftQuorum::start(options).await.unwrap();
    // The entries after the snapshot are applied again once the lone voter has re-elected
    // itself and recommitted them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while quorum.status().applied_index < applied_before {
        assert!(
            std::time::Instant::now() < deadline,
            "replay stalled at {:?}",
            quorum.status()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let after = quorum.image().to_records();
    assert!(before == after, "the image differs after the restart");
    assert_eq!(quorum.image().topic_count(), 20);
    let image = quorum.image();
    let resources: Vec<_> = image.resources_of("test.kind").collect();
    assert_eq!(resources, vec![("a", b"three".as_slice())]);
    quorum.shutdown().await;
}
