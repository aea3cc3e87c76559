//! Admin HTTP: liveness, readiness, Prometheus metrics, and the CloudEvents brokers and
//! triggers REST API (`/v1/...`, served by `spate-cloudevents`).

use std::sync::Arc;

use axum::Router;
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
        .route("/health/ready", get(|| async { StatusCode::OK }))
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
