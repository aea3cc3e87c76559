//! CloudEvents brokers and triggers are metadata records: what the admin API creates, updates
//! and deletes is in the metadata image (so every node of a cluster sees it), survives a restart,
//! and the per-node file an earlier version kept is imported once into an empty metadata.

mod support;

use std::time::Duration;

use axum::http::Method;
use spate_broker::cloudevents::STORE_DIR_NAME;
use spate_broker::cloudevents::resources::{BROKER_KIND, IMPORTED_SUFFIX, TRIGGER_KIND};
use spate_cloudevents::admin::call;
use spate_cloudevents::model::{BrokerSpec, TriggerSpec};
use spate_cloudevents::store::{FileStore, Resources};
use support::TestBroker;

const JSON: &str = "application/json";

fn admin(node: &TestBroker) -> String {
    node.server
        .as_ref()
        .expect("running")
        .admin_addr
        .to_string()
}

/// The (name, JSON value) pairs of one kind in the node's metadata image.
fn records(node: &TestBroker, kind: &str) -> Vec<(String, serde_json::Value)> {
    let image = node
        .server
        .as_ref()
        .expect("running")
        .broker
        .metadata
        .image();
    image
        .resources_of(kind)
        .map(|(name, value)| {
            (
                name.to_owned(),
                serde_json::from_slice(value).expect("a JSON spec"),
            )
        })
        .collect()
}

async fn send(node: &TestBroker, method: Method, path: &str, body: Option<&str>) -> (u16, String) {
    call(
        &admin(node),
        method,
        path,
        body.map(|b| (JSON, b.as_bytes().to_vec())),
    )
    .await
    .expect("the admin API answers")
}

#[tokio::test]
async fn brokers_and_triggers_live_in_the_metadata_and_survive_a_restart() {
    let mut node = TestBroker::start().await;
    let broker = r#"{"namespace":"shop","name":"orders","partitions":2}"#;
    let (status, body) = send(&node, Method::POST, "/v1/brokers", Some(broker)).await;
    assert_eq!(status, 201, "{body}");
    let trigger = r#"{"namespace":"shop","name":"audit","broker":"orders","subscriber":{"uri":"http://127.0.0.1:9/"},"filter":{"attributes":{"type":"a"}}}"#;
    let (status, body) = send(&node, Method::POST, "/v1/triggers", Some(trigger)).await;
    assert_eq!(status, 201, "{body}");

    let brokers = records(&node, BROKER_KIND);
    assert_eq!(brokers.len(), 1, "{brokers:?}");
    assert_eq!(brokers[0].0, "shop/orders");
    assert_eq!(brokers[0].1["partitions"], 2);
    let triggers = records(&node, TRIGGER_KIND);
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    assert_eq!(triggers[0].0, "shop/audit");
    assert_eq!(triggers[0].1["filter"]["attributes"]["type"], "a");
    assert!(
        !node.dir.path().join(STORE_DIR_NAME).exists(),
        "nothing is kept outside the metadata"
    );

    // An update replaces the record; a refused spec changes nothing.
    let updated = trigger.replace(r#""type":"a""#, r#""type":"b""#);
    let (status, body) = send(
        &node,
        Method::PUT,
        "/v1/triggers/shop/audit",
        Some(&updated),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let bad = trigger.replace(
        r#""filter":{"attributes":{"type":"a"}}"#,
        r#""filters":[{"cesql":"type ="}]"#,
    );
    let (status, body) = send(&node, Method::PUT, "/v1/triggers/shop/audit", Some(&bad)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        records(&node, TRIGGER_KIND)[0].1["filter"]["attributes"]["type"],
        "b"
    );

    // Both survive a restart, read back from the metadata.
    node.restart().await;
    let (status, body) = send(&node, Method::GET, "/v1/triggers/shop/audit", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""type":"b""#), "{body}");

    // A delete removes the record, here and after another restart.
    let (status, body) = send(&node, Method::DELETE, "/v1/triggers/shop/audit", None).await;
    assert_eq!(status, 204, "{body}");
    assert!(records(&node, TRIGGER_KIND).is_empty());
    let (status, _) = send(&node, Method::DELETE, "/v1/triggers/shop/audit", None).await;
    assert_eq!(status, 404);
    node.restart().await;
    let (status, _) = send(&node, Method::GET, "/v1/triggers/shop/audit", None).await;
    assert_eq!(status, 404);
    let (status, _) = send(&node, Method::GET, "/v1/brokers/shop/orders", None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_file_of_an_earlier_version_is_imported_once() {
    let mut node = TestBroker::start().await;
    if let Some(server) = node.server.take() {
        server.shutdown().await;
    }
    let dir = node.dir.path().join(STORE_DIR_NAME);
    let file = FileStore::new(&dir);
    file.save(&Resources {
        brokers: vec![BrokerSpec::new("legacy", "b")],
        triggers: vec![TriggerSpec::new("legacy", "t", "b", "http://127.0.0.1:9/")],
    })
    .expect("write the old file");
    node.restart().await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while records(&node, TRIGGER_KIND).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old file was not imported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(records(&node, BROKER_KIND)[0].0, "legacy/b");
    assert_eq!(records(&node, TRIGGER_KIND)[0].0, "legacy/t");
    let (status, body) = send(&node, Method::GET, "/v1/triggers/legacy/t", None).await;
    assert_eq!(status, 200, "{body}");
    // The file is set aside, so a later restart does not import it again over newer changes.
    let mut imported = file.path().into_os_string();
    imported.push(IMPORTED_SUFFIX);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while file.path().exists() {
        assert!(tokio::time::Instant::now() < deadline, "the file stays");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(std::path::Path::new(&imported).exists());
    let (status, _) = send(&node, Method::DELETE, "/v1/triggers/legacy/t", None).await;
    assert_eq!(status, 204);
    node.restart().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = send(&node, Method::GET, "/v1/triggers/legacy/t", None).await;
    assert_eq!(status, 404, "a deleted trigger stays deleted");
}
