//! CloudEvents brokers and triggers as metadata records, seen by every node.
//!
//! Each broker and trigger is one resource record of the metadata log (kind
//! [`BROKER_KIND`] or [`TRIGGER_KIND`], name `namespace/name`, value its spec as JSON). The
//! management API on any node commits a change through the metadata quorum with
//! [`MetadataStore`]; [`RegistrySync`] keeps every node's registry equal to its newest metadata
//! image, so each node's dispatcher runs every trigger for the partitions that node leads.
//!
//! A node that finds the per-node file an earlier version kept (`<data_dir>/cloudevents/`) imports
//! it once into an empty metadata, then renames it out of the way.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use spate_cloudevents::model::{BrokerSpec, TriggerSpec};
use spate_cloudevents::registry::Registry;
use spate_cloudevents::store::{Change, FileStore, Resources, Store, StoreError};
use spate_controller::controller::ControllerError;
use spate_controller::frontend::{ControllerRequest, MetadataFrontend};
use spate_controller::image::{MetadataImage, ResourceMap};
use spate_controller::records::ResourceRecord;
use tokio_util::sync::CancellationToken;

/// Resource kind of a CloudEvents broker.
pub const BROKER_KIND: &str = "cloudevents.broker";
/// Resource kind of a CloudEvents trigger.
pub const TRIGGER_KIND: &str = "cloudevents.trigger";
/// Suffix given to the per-node file once its content is in the metadata.
pub const IMPORTED_SUFFIX: &str = ".imported";
/// Wait between attempts to import the per-node file while the quorum is not ready.
const IMPORT_RETRY_MS: u64 = 1_000;

fn resource_name(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

fn put<T: serde::Serialize>(
    kind: &str,
    name: String,
    spec: &T,
) -> Result<ResourceRecord, StoreError> {
    let value = serde_json::to_vec(spec).map_err(|e| StoreError::Refused(e.to_string()))?;
    Ok(ResourceRecord {
        kind: kind.to_owned(),
        name,
        value: Some(value),
    })
}

/// The metadata record for a change.
pub fn change_record(change: &Change) -> Result<ResourceRecord, StoreError> {
    match change {
        Change::PutBroker(spec) => put(
            BROKER_KIND,
            resource_name(&spec.namespace, &spec.name),
            spec,
        ),
        Change::PutTrigger(spec) => put(
            TRIGGER_KIND,
            resource_name(&spec.namespace, &spec.name),
            spec,
        ),
        Change::DeleteBroker((namespace, name)) => Ok(ResourceRecord {
            kind: BROKER_KIND.to_owned(),
            name: resource_name(namespace, name),
            value: None,
        }),
        Change::DeleteTrigger((namespace, name)) => Ok(ResourceRecord {
            kind: TRIGGER_KIND.to_owned(),
            name: resource_name(namespace, name),
            value: None,
        }),
    }
}

/// The brokers and triggers of an image; a value that does not parse is logged and left out.
pub fn resources_of(image: &MetadataImage) -> Resources {
    fn parse<T: serde::de::DeserializeOwned>(kind: &str, name: &str, value: &[u8]) -> Option<T> {
        serde_json::from_slice(value)
            .inspect_err(|error| {
                tracing::warn!(kind, name, %error, "unreadable CloudEvents resource in the metadata")
            })
            .ok()
    }
    Resources {
        brokers: image
            .resources_of(BROKER_KIND)
            .filter_map(|(name, value)| parse::<BrokerSpec>(BROKER_KIND, name, value))
            .collect(),
        triggers: image
            .resources_of(TRIGGER_KIND)
            .filter_map(|(name, value)| parse::<TriggerSpec>(TRIGGER_KIND, name, value))
            .collect(),
    }
}

/// Keeps a registry equal to the brokers and triggers of the newest metadata image.
pub struct RegistrySync {
    registry: Arc<Registry>,
    /// The offset of the image last looked at, and its resources.
    seen: Mutex<(i64, Option<Arc<ResourceMap>>)>,
}

impl RegistrySync {
    /// A sync into `registry`.
    pub fn new(registry: Arc<Registry>) -> Arc<Self> {
        Arc::new(RegistrySync {
            registry,
            seen: Mutex::new((-1, None)),
        })
    }

    /// Loads `image`'s brokers and triggers into the registry, unless an image at least as new
    /// was loaded already or its resources did not change.
    pub fn sync(&self, image: &MetadataImage) {
        let mut seen = self.seen.lock();
        if image.offset < seen.0 {
            return;
        }
        seen.0 = image.offset;
        if seen
            .1
            .as_ref()
            .is_some_and(|last| Arc::ptr_eq(last, image.resources()))
        {
            return;
        }
        seen.1 = Some(image.resources().clone());
        let resources = resources_of(image);
        for ((namespace, name), reason) in self
            .registry
            .replace_all(resources.brokers, resources.triggers)
        {
            tracing::warn!(%namespace, %name, %reason, "CloudEvents resource in the metadata refused");
        }
    }

    /// Follows the metadata until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        metadata: Arc<dyn MetadataFrontend>,
        shutdown: CancellationToken,
    ) {
        let mut images = metadata.subscribe();
        loop {
            let image = images.borrow_and_update().clone();
            self.sync(&image);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = images.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Brokers and triggers committed through the metadata quorum.
pub struct MetadataStore {
    metadata: Arc<dyn MetadataFrontend>,
    sync: Arc<RegistrySync>,
}

impl MetadataStore {
    /// A store over `metadata`, whose commits show in the registry `sync` feeds.
    pub fn new(metadata: Arc<dyn MetadataFrontend>, sync: Arc<RegistrySync>) -> Self {
        MetadataStore { metadata, sync }
    }
}

fn store_error(error: ControllerError) -> StoreError {
    match error {
        ControllerError::Unavailable(why) => StoreError::Unavailable(why),
        other => StoreError::Refused(other.to_string()),
    }
}

impl Store for MetadataStore {
    fn load(&self) -> Result<Option<Resources>, StoreError> {
        // The registry follows the metadata through `RegistrySync`.
        Ok(None)
    }

    fn commit<'a>(
        &'a self,
        _registry: &'a Registry,
        change: Change,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let record = change_record(&change)?;
            self.metadata
                .submit(ControllerRequest::PutResources {
                    changes: vec![record],
                })
                .await
                .map_err(store_error)?;
            // The submit resolves once the record is applied here, so the newest image has it.
            self.sync.sync(&self.metadata.image());
            Ok(())
        })
    }
}

/// Imports the per-node file of an earlier version into the metadata, once: only when the
/// metadata holds no CloudEvents resources yet. The file is then renamed with
/// [`IMPORTED_SUFFIX`]. Retries while the quorum is unavailable, until `shutdown`.
pub async fn import_file_store(
    file: FileStore,
    metadata: Arc<dyn MetadataFrontend>,
    shutdown: CancellationToken,
) {
    let resources = match file.load() {
        Ok(resources) => resources,
        Err(error) => {
            tracing::error!(%error, "cannot read the stored CloudEvents brokers and triggers");
            return;
        }
    };
    if resources.brokers.is_empty() && resources.triggers.is_empty() {
        return;
    }
    let changes: Result<Vec<ResourceRecord>, StoreError> = resources
        .brokers
        .into_iter()
        .map(Change::PutBroker)
        .chain(resources.triggers.into_iter().map(Change::PutTrigger))
        .map(|c| change_record(&c))
        .collect();
    let changes = match changes {
        Ok(changes) => changes,
        Err(error) => {
            tracing::error!(%error, "cannot import the stored CloudEvents brokers and triggers");
            return;
        }
    };
    loop {
        let image = metadata.image();
        let empty = image.resources_of(BROKER_KIND).next().is_none()
            && image.resources_of(TRIGGER_KIND).next().is_none();
        if !empty {
            tracing::info!(
                path = %file.path().display(),
                "CloudEvents brokers and triggers are in the metadata already; the stored file is not imported"
            );
            break;
        }
        match metadata
            .submit(ControllerRequest::PutResources {
                changes: changes.clone(),
            })
            .await
        {
            Ok(_) => {
                tracing::info!(
                    path = %file.path().display(),
                    resources = changes.len(),
                    "imported the stored CloudEvents brokers and triggers into the metadata"
                );
                break;
            }
            Err(error) => {
                tracing::warn!(%error, "importing the stored CloudEvents brokers and triggers; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(IMPORT_RETRY_MS)) => {}
                }
            }
        }
    }
    let path = file.path();
    let mut imported = path.clone().into_os_string();
    imported.push(IMPORTED_SUFFIX);
    if let Err(error) = std::fs::rename(&path, &imported) {
        tracing::warn!(path = %path.display(), %error, "cannot rename the imported CloudEvents file");
    }
}
