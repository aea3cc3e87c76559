//! Admin HTTP: liveness, readiness, Prometheus metrics, and the CloudEvents brokers and
//! triggers REST API (`/v1/...`, served by `spate-cloudevents`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Broker;

/// Serves the admin endpoints, and `cloudevents` (the brokers and triggers API), until
/// shutdown.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    shutdown: CancellationToken,
    cloudevents: Router,
) {
    let app = Router::new()
        .route("/health/live", get(|| async { StatusCode::OK }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(crate::group::lag::metrics))
        .route("/v1/groups", get(crate::group::lag::list))
        .route("/v1/groups/{id}", get(crate::group::lag::describe))
        .with_state(broker)
        .merge(cloudevents);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(error) = served {
        tracing::warn!(%error, "admin server stopped");
    }
}

/// `/health/ready`: 200 when this node can serve its partitions, else 503 with the reason.
///
/// Kubernetes routes client traffic (the bootstrap Service) only to ready pods, so readiness
/// must turn false when the node cannot serve: before its registration is in the metadata
/// image, while the controller has it fenced (missed heartbeats, or a controlled shutdown in
/// progress), and while its partitions lag the metadata it has applied.
async fn ready(State(broker): State<Arc<Broker>>) -> (StatusCode, String) {
    match readiness(&broker) {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

/// Why this node is not ready, if it is not.
fn readiness(broker: &Broker) -> Result<(), String> {
    let image = broker.metadata.image();
    let Some(registration) = image.broker(broker.node_id) else {
        return Err(format!("node {} is not registered", broker.node_id.0));
    };
    if registration.epoch != broker.broker_epoch {
        return Err(format!(
            "the registration has broker epoch {}, this process registered {}",
            registration.epoch, broker.broker_epoch
        ));
    }
    if registration.fenced {
        return Err("the controller has fenced this broker".to_owned());
    }
    let reconciled = *broker.reconciled_offset.borrow();
    if reconciled < image.offset {
        return Err(format!(
            "partitions reconciled with metadata offset {reconciled}, the image is at {}",
            image.offset
        ));
    }
    Ok(())
}
