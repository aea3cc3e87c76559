//! Managing brokers and triggers: the operations behind the admin REST API, `spate broker`,
//! `spate trigger` and `spate apply -f`, and the REST router the broker mounts on its admin
//! listener.
//!
//! Routes (JSON bodies in the shape of [`BrokerSpec`] and [`TriggerSpec`]):
//! - `GET /v1/brokers`, `POST /v1/brokers` (201, or 409 when it exists)
//! - `GET|PUT|DELETE /v1/brokers/{namespace}/{name}`
//! - `GET /v1/triggers`, `POST /v1/triggers`
//! - `GET|PUT|DELETE /v1/triggers/{namespace}/{name}` (GET includes status: readiness, lag,
//!   delivery counts)
//! - `POST /v1/apply`: a Knative YAML manifest; brokers are applied before triggers.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;

use crate::clock::Clock;
use crate::dispatcher::{Dispatcher, TriggerStatus};
use crate::knative::{ManifestError, Resource, parse_manifests};
use crate::log::{EventLog, LogError};
use crate::model::{BrokerSpec, ModelError, TriggerSpec};
use crate::registry::Registry;
use crate::store::{Change, Store, StoreError};

/// Why a management operation failed; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// A spec that does not validate or compile (400).
    #[error(transparent)]
    Invalid(#[from] ModelError),
    /// A manifest that does not parse (400).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// No such broker or trigger (404).
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// `broker` or `trigger`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Create of something that exists (409).
    #[error("{kind} {namespace}/{name} already exists")]
    Exists {
        /// `broker` or `trigger`.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The path and the body name different objects (400).
    #[error("the body names {body}, the path {path}")]
    Mismatch {
        /// What the body names.
        body: String,
        /// What the path names.
        path: String,
    },
    /// The broker's log refused (503 when transient, else 500).
    #[error("broker topic: {0}")]
    Log(#[from] LogError),
    /// The store failed (500).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ControlError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ControlError::Invalid(_)
            | ControlError::Manifest(_)
            | ControlError::Mismatch { .. } => StatusCode::BAD_REQUEST,
            ControlError::NotFound { .. } => StatusCode::NOT_FOUND,
            ControlError::Exists { .. } => StatusCode::CONFLICT,
            ControlError::Log(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            ControlError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ControlError::Log(_) | ControlError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (
            self.status(),
            axum::Json(json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

/// What an apply did to one object.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Applied {
    /// `Broker` or `Trigger`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `created` or `configured`.
    pub action: &'static str,
}

/// A broker with its status.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerView {
    /// The spec.
    #[serde(flatten)]
    pub spec: BrokerSpec,
    /// Status.
    pub status: BrokerStatus,
}

/// A broker's status.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    /// Whether its topic exists and the ingress accepts events for it.
    pub ready: bool,
    /// The Kafka topic.
    pub topic: String,
    /// The topic's partitions, when it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// The ingress path to POST events to.
    pub address: String,
}

/// A trigger with its status.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerView {
    /// The spec.
    #[serde(flatten)]
    pub spec: TriggerSpec,
    /// Status.
    pub status: TriggerStatus,
}

/// The management operations.
pub struct Control<L, C> {
    log: Arc<L>,
    registry: Arc<Registry>,
    dispatcher: Arc<Dispatcher<L, C>>,
    store: Option<Arc<dyn Store>>,
    /// Serialises this node's changes, so each is checked against the ones before it.
    writes: tokio::sync::Mutex<()>,
}

impl<L: EventLog, C: Clock> Control<L, C> {
    /// Operations over these parts; `store` makes changes durable.
    pub fn new(
        log: Arc<L>,
        registry: Arc<Registry>,
        dispatcher: Arc<Dispatcher<L, C>>,
        store: Option<Arc<dyn Store>>,
    ) -> Arc<Self> {
        Arc::new(Control {
            log,
            registry,
            dispatcher,
            store,
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// Loads the stored brokers and triggers into the registry and makes sure every broker's
    /// topic exists. Returns the specs that no longer validate, with the reason.
    pub async fn load(&self) -> Result<Vec<String>, ControlError> {
        let Some(resources) = self.store.as_ref().map(|s| s.load()).transpose()?.flatten() else {
            return Ok(Vec::new());
        };
        for b in &resources.brokers {
            if let Err(e) = self.log.create_topic(&b.topic_spec()).await {
                tracing::warn!(broker = %format!("{}/{}", b.namespace, b.name), error = %e, "cannot create the broker's topic");
            }
        }
        let refused = self
            .registry
            .replace_all(resources.brokers, resources.triggers);
        Ok(refused
            .into_iter()
            .map(|((ns, name), e)| format!("{ns}/{name}: {e}"))
            .collect())
    }

    /// Makes a checked change durable and visible in the registry.
    async fn commit(&self, change: Change) -> Result<(), ControlError> {
        match &self.store {
            Some(store) => store.commit(&self.registry, change).await?,
            None => change.apply_to(&self.registry)?,
        }
        Ok(())
    }

    /// Creates or updates a broker (creating its topic). Returns whether it was created.
    pub async fn put_broker(
        &self,
        spec: BrokerSpec,
        create_only: bool,
    ) -> Result<bool, ControlError> {
        spec.validate()?;
        let _guard = self.writes.lock().await;
        if create_only && self.registry.broker(&spec.namespace, &spec.name).is_some() {
            return Err(ControlError::Exists {
                kind: "broker",
                namespace: spec.namespace,
                name: spec.name,
            });
        }
        self.log.create_topic(&spec.topic_spec()).await?;
        let created = self.registry.broker(&spec.namespace, &spec.name).is_none();
        self.commit(Change::PutBroker(spec)).await?;
        Ok(created)
    }

    /// Deletes a broker and its topic; its triggers stay, not ready, until it returns.
    pub async fn delete_broker(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<BrokerSpec, ControlError> {
        let _guard = self.writes.lock().await;
        let spec = self
            .registry
            .broker(namespace, name)
            .ok_or_else(|| ControlError::NotFound {
                kind: "broker",
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })?;
        self.commit(Change::DeleteBroker((
            namespace.to_owned(),
            name.to_owned(),
        )))
        .await?;
        self.log.delete_topic(&spec.topic()).await?;
        Ok(spec)
    }

    /// Creates or updates a trigger. Returns whether it was created.
    pub async fn put_trigger(
        &self,
        spec: TriggerSpec,
        create_only: bool,
    ) -> Result<bool, ControlError> {
        let _guard = self.writes.lock().await;
        if create_only && self.registry.trigger(&spec.namespace, &spec.name).is_some() {
            return Err(ControlError::Exists {
                kind: "trigger",
                namespace: spec.namespace,
                name: spec.name,
            });
        }
        // Compiled here so a bad filter is refused before anything is stored.
        spec.compile(self.registry.broker(&spec.namespace, &spec.broker).as_ref())?;
        let created = self.registry.trigger(&spec.namespace, &spec.name).is_none();
        self.commit(Change::PutTrigger(spec)).await?;
        Ok(created)
    }

    /// Deletes a trigger.
    pub async fn delete_trigger(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<TriggerSpec, ControlError> {
        let _guard = self.writes.lock().await;
        let spec =
            self.registry
                .trigger(namespace, name)
                .ok_or_else(|| ControlError::NotFound {
                    kind: "trigger",
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })?;
        self.commit(Change::DeleteTrigger((
            namespace.to_owned(),
            name.to_owned(),
        )))
        .await?;
        Ok(spec)
    }

    /// Applies a Knative manifest: every document is parsed and checked first, then brokers
    /// are applied before triggers.
    pub async fn apply(&self, manifest: &str) -> Result<Vec<Applied>, ControlError> {
        let resources = parse_manifests(manifest)?;
        let mut out = Vec::new();
        let (brokers, triggers): (Vec<_>, Vec<_>) = resources
            .into_iter()
            .partition(|r| matches!(r, Resource::Broker(_)));
        for r in brokers.into_iter().chain(triggers) {
            let (kind, namespace, name, created) = match r {
                Resource::Broker(b) => {
                    let (ns, n) = (b.namespace.clone(), b.name.clone());
                    ("Broker", ns, n, self.put_broker(b, false).await?)
                }
                Resource::Trigger(t) => {
                    let (ns, n) = (t.namespace.clone(), t.name.clone());
                    ("Trigger", ns, n, self.put_trigger(t, false).await?)
                }
            };
            out.push(Applied {
                kind,
                namespace,
                name,
                action: if created { "created" } else { "configured" },
            });
        }
        Ok(out)
    }

    /// A broker with its status.
    pub fn broker_view(&self, spec: BrokerSpec) -> BrokerView {
        let topic = spec.topic();
        let partitions = self.log.partition_count(&topic).ok();
        BrokerView {
            status: BrokerStatus {
                ready: partitions.is_some(),
                address: format!("/{}/{}", spec.namespace, spec.name),
                topic,
                partitions,
            },
            spec,
        }
    }

    /// A trigger with its status.
    pub async fn trigger_view(&self, spec: TriggerSpec) -> TriggerView {
        let status = self
            .dispatcher
            .status(&spec.namespace, &spec.name)
            .await
            .unwrap_or_default();
        TriggerView { spec, status }
    }
}

type Ctl<L, C> = State<Arc<Control<L, C>>>;

/// The REST router.
pub fn router<L: EventLog, C: Clock>(control: Arc<Control<L, C>>) -> Router {
    Router::new()
        .route(
            "/v1/brokers",
            get(list_brokers::<L, C>).post(create_broker::<L, C>),
        )
        .route(
            "/v1/brokers/{namespace}/{name}",
            get(get_broker::<L, C>)
                .put(put_broker::<L, C>)
                .delete(delete_broker::<L, C>),
        )
        .route(
            "/v1/triggers",
            get(list_triggers::<L, C>).post(create_trigger::<L, C>),
        )
        .route(
            "/v1/triggers/{namespace}/{name}",
            get(get_trigger::<L, C>)
                .put(put_trigger::<L, C>)
                .delete(delete_trigger::<L, C>),
        )
        .route("/v1/apply", post(apply::<L, C>))
        .with_state(control)
}

/// A JSON body, or the 400 to answer with (boxed: a response is large).
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": format!("bad JSON: {e}") })),
            )
                .into_response(),
        )
    })
}

async fn list_brokers<L: EventLog, C: Clock>(State(c): Ctl<L, C>) -> Response {
    let views: Vec<_> = c
        .registry
        .brokers()
        .into_iter()
        .map(|b| c.broker_view(b))
        .collect();
    axum::Json(views).into_response()
}

async fn create_broker<L: EventLog, C: Clock>(
    State(c): Ctl<L, C>,
    body: axum::body::Bytes,
) -> Response {
    let spec: BrokerSpec = match parse(&body) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match c.put_broker(spec.clone(), true).await {
        Ok(_) => (StatusCode::CREATED, axum::Json(c.broker_view(spec))).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn get_broker<L: EventLog, C: Clock>(
    State(c): Ctl<L, C>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match c.registry.broker(&ns, &name) {
        Some(b) => axum::Json(c.broker_view(b)).into_response(),
        None => ControlError::NotFound {
            kind: "broker",
            namespace: ns,
            name,
        }
        .into_response(),
    }
}

async fn put_broker<L: EventLog, C: Clock>(
    State(c): Ctl<L, C>,
    Path((ns, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let spec: BrokerSpec = match parse(&body) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if spec.namespace != ns || spec.name != name {
        return ControlError::Mismatch {
            body: format!("{}/{}", spec.namespace, spec.name),
            path: format!("{ns}/{name}"),
        }
        .into_response();
    }
    match c.put_broker(spec.clone(), false).await {
        Ok(created) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, axum::Json(c.broker_view(spec))).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn delete_broker<L: EventLog, C: Clock>(
    State(c): Ctl<L, C>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match c.delete_broker(&ns, &name).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_triggers<L: EventLog, C: Clock>(State(c): Ctl<L, C>) -> Response {
    let mut views = Vec::new();
    for t in c.registry.triggers() {
        views.push(c.trigger_view(t).await);
    }
    axum::Json(views).into_response()
}

async fn create_trigger<L: EventLog, C: Clock>(
    State(c): Ctl<L, C>,
    body: axum::body::Bytes,
) -> Response {
    let spec: TriggerSpec = match parse(&body) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match c.put_trigger(spec.clone(), true).await {
        Ok(_) => (StatusCode::CREATED, axum::Json(c.trigger_view(spec).await)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn get_trigger<L: EventLog, C: Clock>(
    State(c): Ctl<L, C>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match c.registry.trigger(&ns, &name) {
        Some(t) => axum::Json(c.trigger_view(t).await).into_response(),
        None => ControlError::NotFound {
            kind: "trigger",
            namespace: ns,
            name,
        }
        .into_response(),
    }
}

async fn put_trigger<L: EventLog, C: Clock>(
    State(c): Ctl<L, C>,
    Path((ns, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let spec: TriggerSpec = match parse(&body) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    if spec.namespace != ns || spec.name != name {
        return ControlError::Mismatch {
            body: format!("{}/{}", spec.namespace, spec.name),
            path: format!("{ns}/{name}"),
        }
        .into_response();
    }
    match c.put_trigger(spec.clone(), false).await {
        Ok(created) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, axum::Json(c.trigger_view(spec).await)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn delete_trigger<L: EventLog, C: Clock>(
    State(c): Ctl<L, C>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match c.delete_trigger(&ns, &name).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn apply<L: EventLog, C: Clock>(State(c): Ctl<L, C>, body: axum::body::Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "manifest is not UTF-8" })),
        )
            .into_response();
    };
    match c.apply(text).await {
        Ok(applied) => axum::Json(applied).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A small client for this API, for the CLI: one request to the admin listener at `addr`
/// (`host:port`). Returns the status and the body as text.
pub async fn call(
    addr: &str,
    method: http::Method,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
) -> Result<(u16, String), String> {
    use http_body_util::{BodyExt, Full};
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let url = format!("http://{addr}{path}");
    let mut builder = http::Request::builder().method(method).uri(&url);
    let payload = match body {
        Some((content_type, bytes)) => {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
            bytes::Bytes::from(bytes)
        }
        None => bytes::Bytes::new(),
    };
    let request = builder
        .body(Full::new(payload))
        .map_err(|e| format!("{url}: {e}"))?;
    let response =
        tokio::time::timeout(std::time::Duration::from_secs(30), client.request(request))
            .await
            .map_err(|_| format!("{url}: no answer within 30 s"))?
            .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
