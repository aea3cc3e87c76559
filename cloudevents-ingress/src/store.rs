//! Where brokers and triggers are kept durably: the [`Store`] trait, and [`FileStore`], one JSON
//! file replaced atomically (write a temporary file, fsync, rename, fsync the directory), so a
//! crash leaves either the old or the new set, never a torn one. A Spate node keeps them as
//! metadata records instead, seen by every node; the file is for a process without a metadata
//! quorum (and is imported into the metadata once by a node that finds one).

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::model::{BrokerSpec, ModelError, TriggerSpec};
use crate::registry::{Key, Registry};

/// One change to the brokers and triggers.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Create or replace a broker.
    PutBroker(BrokerSpec),
    /// Remove a broker.
    DeleteBroker(Key),
    /// Create or replace a trigger.
    PutTrigger(TriggerSpec),
    /// Remove a trigger.
    DeleteTrigger(Key),
}

impl Change {
    /// Applies the change to `registry` (a put that does not validate is refused).
    pub fn apply_to(&self, registry: &Registry) -> Result<(), ModelError> {
        match self {
            Change::PutBroker(spec) => registry.put_broker(spec.clone()).map(|_| ()),
            Change::DeleteBroker((namespace, name)) => {
                registry.delete_broker(namespace, name);
                Ok(())
            }
            Change::PutTrigger(spec) => registry.put_trigger(spec.clone()).map(|_| ()),
            Change::DeleteTrigger((namespace, name)) => {
                registry.delete_trigger(namespace, name);
                Ok(())
            }
        }
    }
}

/// Durable storage of brokers and triggers behind the management API.
pub trait Store: Send + Sync + 'static {
    /// What the store holds, to load into the registry at start; `None` when something else
    /// feeds the registry (a watcher of the metadata).
    fn load(&self) -> Result<Option<Resources>, StoreError>;

    /// Makes `change` durable. Once it returns `Ok`, `registry` shows the change: the store
    /// applies it there itself, or waits until whatever feeds the registry has.
    fn commit<'a>(
        &'a self,
        registry: &'a Registry,
        change: Change,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// File name inside the store directory.
pub const STORE_FILE_NAME: &str = "cloudevents-resources.json";

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Every broker.
    pub brokers: Vec<BrokerSpec>,
    /// Every trigger.
    pub triggers: Vec<TriggerSpec>,
}

/// Why the store could not be read or written; names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A file that is not the expected JSON.
    #[error("{path}: not a valid resources file: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's description.
        reason: String,
    },
    /// The store cannot take changes now; worth retrying (503).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The store refused the change.
    #[error("the store refused the change: {0}")]
    Refused(String),
}

/// The file store.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// A store in `dir` (created when missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore { dir: dir.into() }
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STORE_FILE_NAME)
    }

    /// Reads the resources; a missing file is an empty set.
    pub fn load(&self) -> Result<Resources, StoreError> {
        let path = self.path();
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Resources::default()),
            Err(source) => Err(StoreError::Io { path, source }),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Replaces the resources durably.
    pub fn save(&self, resources: &Resources) -> Result<(), StoreError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.path();
        let tmp = self.dir.join(format!("{STORE_FILE_NAME}.tmp"));
        let bytes = serde_json::to_vec_pretty(resources).map_err(|e| StoreError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        {
            let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(())
    }
}

impl Store for FileStore {
    fn load(&self) -> Result<Option<Resources>, StoreError> {
        FileStore::load(self).map(Some)
    }

    fn commit<'a>(
        &'a self,
        registry: &'a Registry,
        change: Change,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            change
                .apply_to(registry)
                .map_err(|e| StoreError::Refused(e.to_string()))?;
            self.save(&Resources {
                brokers: registry.brokers(),
                triggers: registry.triggers(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("ce"));
        assert_eq!(store.load().unwrap(), Resources::default());
        let r = Resources {
            brokers: vec![BrokerSpec::new("ns", "b")],
            triggers: vec![TriggerSpec::new("ns", "t", "b", "http://127.0.0.1:1/")],
        };
        store.save(&r).unwrap();
        assert_eq!(store.load().unwrap(), r);
        std::fs::write(store.path(), b"{broken").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains(STORE_FILE_NAME), "{err}");
    }
}
