//! The management REST API over real HTTP, with the file store: create, get, list, update,
//! delete, Knative apply, status, and reload after a restart.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{request, start_subscriber};
use spate_cloudevents::admin::{Control, router};
use spate_cloudevents::clock::TokioClock;
use spate_cloudevents::dispatcher::Dispatcher;
use spate_cloudevents::log::EventLog;
use spate_cloudevents::memory::MemoryLog;
use spate_cloudevents::registry::Registry;
use spate_cloudevents::store::FileStore;
use tokio::sync::watch;

struct Node {
    url: String,
    registry: Arc<Registry>,
    dispatcher: Arc<Dispatcher<MemoryLog, TokioClock>>,
    _stop: watch::Sender<bool>,
}

async fn start(log: Arc<MemoryLog>, dir: &std::path::Path) -> Node {
    let registry = Arc::new(Registry::new());
    let dispatcher = Dispatcher::new(log.clone(), registry.clone(), Arc::new(TokioClock));
    let control = Control::new(
        log,
        registry.clone(),
        dispatcher.clone(),
        Some(Arc::new(FileStore::new(dir))),
    );
    assert!(control.load().await.unwrap().is_empty());
    let (stop, rx) = watch::channel(false);
    tokio::spawn(dispatcher.clone().run(rx.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut rx2 = rx;
    tokio::spawn(async move {
        axum::serve(listener, router(control))
            .with_graceful_shutdown(async move {
                let _ = rx2.wait_for(|s| *s).await;
            })
            .await
    });
    Node {
        url,
        registry,
        dispatcher,
        _stop: stop,
    }
}

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

#[tokio::test]
async fn crud_status_apply_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(MemoryLog::new());
    let node = start(log.clone(), dir.path()).await;
    let u = |p: &str| format!("{}{}", node.url, p);

    let broker = r#"{"namespace":"shop","name":"orders","partitions":2,"delivery":{"retry":4}}"#;
    let r = request("POST", &u("/v1/brokers"), JSON, broker).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.json()["status"]["topic"], "knative-broker-shop-orders");
    assert_eq!(r.json()["status"]["partitions"], 2);
    assert_eq!(
        log.partition_count("knative-broker-shop-orders").unwrap(),
        2
    );
    assert_eq!(
        request("POST", &u("/v1/brokers"), JSON, broker)
            .await
            .status,
        409
    );
    let r = request(
        "POST",
        &u("/v1/brokers"),
        JSON,
        r#"{"namespace":"Shop","name":"x"}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        request("GET", &u("/v1/brokers/shop/orders"), &[], "")
            .await
            .status,
        200
    );
    assert_eq!(
        request("GET", &u("/v1/brokers/shop/none"), &[], "")
            .await
            .status,
        404
    );

    let sub = start_subscriber().await;
    let bad = format!(
        r#"{{"namespace":"shop","name":"audit","broker":"orders","subscriber":{{"uri":"{}"}},"filters":[{{"cesql":"type = "}}]}}"#,
        sub.url()
    );
    let r = request("POST", &u("/v1/triggers"), JSON, bad).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().contains("position 8"),
        "{}",
        r.json()
    );
    let good = format!(
        r#"{{"namespace":"shop","name":"audit","broker":"orders","subscriber":{{"uri":"{}"}},"filters":[{{"prefix":{{"type":"com."}}}}]}}"#,
        sub.url()
    );
    assert_eq!(
        request("POST", &u("/v1/triggers"), JSON, good.clone())
            .await
            .status,
        201
    );
    assert!(
        node.dispatcher
            .wait_ready("shop", "audit", Duration::from_secs(10))
            .await
    );
    let r = request("GET", &u("/v1/triggers/shop/audit"), &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"]["ready"], true);
    assert_eq!(r.json()["status"]["lagRecords"], 0);
    assert_eq!(
        request("PUT", &u("/v1/triggers/shop/other"), JSON, good)
            .await
            .status,
        400
    );

    let manifest = format!(
        "apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: yaml\n  namespace: shop\n  annotations:\n    kafka.eventing.knative.dev/delivery.order: ordered\nspec:\n  broker: orders\n  subscriber:\n    uri: {}\n",
        sub.url()
    );
    let r = request(
        "POST",
        &u("/v1/apply"),
        &[("content-type", "application/yaml")],
        manifest,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()[0]["action"], "created");
    let r = request("GET", &u("/v1/triggers"), &[], "").await;
    assert_eq!(r.json().as_array().unwrap().len(), 2);

    // Restart: a new node on the same store and log has everything back.
    drop(node);
    let node = start(log.clone(), dir.path()).await;
    assert_eq!(node.registry.brokers().len(), 1);
    assert_eq!(node.registry.triggers().len(), 2);
    let u = |p: &str| format!("{}{}", node.url, p);
    assert_eq!(
        request("DELETE", &u("/v1/triggers/shop/yaml"), &[], "")
            .await
            .status,
        204
    );
    assert_eq!(
        request("DELETE", &u("/v1/triggers/shop/yaml"), &[], "")
            .await
            .status,
        404
    );
    assert_eq!(
        request("DELETE", &u("/v1/brokers/shop/orders"), &[], "")
            .await
            .status,
        204
    );
    assert!(log.partition_count("knative-broker-shop-orders").is_err());
    let r = request("GET", &u("/v1/triggers/shop/audit"), &[], "").await;
    assert_eq!(r.json()["status"]["ready"], false);
    assert!(
        r.json()["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
}
