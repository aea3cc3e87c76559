//! The single-node quorum: decisions commit durably, replay after restart, and survive a torn
//! tail as an unclean stop leaves it.

use std::fs::OpenOptions;
use std::io::Write;

use spate_controller::controller::{ControllerError, ControllerSettings, NewTopic};
use spate_controller::frontend::{ControllerReply, ControllerRequest, MetadataFrontend};
use spate_controller::local::{LocalQuorum, METADATA_DIR_NAME};
use spate_controller::records::Endpoint;
use spate_protocol::types::NodeId;
use uuid::Uuid;

fn settings() -> ControllerSettings {
    ControllerSettings {
        default_partitions: 3,
        default_replication_factor: 1,
    }
}

async fn register(quorum: &LocalQuorum) {
    quorum
        .submit(ControllerRequest::RegisterBroker {
            broker_id: NodeId(0),
            incarnation_id: Uuid::new_v4(),
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
                security_protocol: 0,
            }],
            rack: None,
        })
        .await
        .expect("registration commits");
}

fn topic(name: &str) -> NewTopic {
    NewTopic {
        name: name.into(),
        configs: vec![("retention.ms".into(), "1000".into())],
        ..NewTopic::default()
    }
}

#[tokio::test]
async fn created_topics_survive_a_restart_and_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let quorum = LocalQuorum::open(dir.path(), settings()).unwrap();
        register(&quorum).await;
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
    }
    // An unclean stop mid-append leaves half an entry behind.
    let log = dir.path().join(METADATA_DIR_NAME).join("local-quorum.log");
    let clean_len = std::fs::metadata(&log).unwrap().len();
    OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(&[0, 0, 0, 50, 1, 2, 3])
        .unwrap();

    let quorum = LocalQuorum::open(dir.path(), settings()).unwrap();
    assert_eq!(std::fs::metadata(&log).unwrap().len(), clean_len);
    let image = quorum.image();
    let orders = image.topic("orders").expect("topic replayed");
    assert_eq!(orders.partitions.len(), 3);
    assert_eq!(
        image
            .configs(spate_controller::records::CONFIG_RESOURCE_TOPIC, "orders")
            .map(|c| c.get("retention.ms").cloned()),
        Some(Some("1000".into()))
    );
    assert_eq!(image.live_brokers().count(), 1);
}

#[tokio::test]
async fn replication_factor_beyond_live_brokers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let quorum = LocalQuorum::open(dir.path(), settings()).unwrap();
    register(&quorum).await;
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
}

#[tokio::test]
async fn validate_only_commits_nothing_and_deletion_frees_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let quorum = LocalQuorum::open(dir.path(), settings()).unwrap();
    register(&quorum).await;
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
            .configs(spate_controller::records::CONFIG_RESOURCE_TOPIC, "a.b")
            .is_none()
    );
}
