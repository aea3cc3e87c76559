//! Durable brokers and triggers for a node without metadata records for them: one JSON file,
//! replaced atomically (write a temporary file, fsync, rename, fsync the directory), so a crash
//! leaves either the old or the new set, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{BrokerSpec, TriggerSpec};

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
