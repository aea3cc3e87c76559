//! The single-node quorum: one voter that commits by appending to a local, checksummed,
//! fsynced log under `<data_dir>/__cluster_metadata/`.
//!
//! Entry format: `[u32 length][u32 CRC-32C of the payload][payload: MetadataRecord]`, big-endian.
//! On open, entries are replayed until the first torn or corrupt one; the file is cut there (a
//! torn tail is what an unclean stop leaves) and the cut is logged.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use prost::Message;
use tokio::sync::watch;

use crate::controller::{ControllerError, ControllerSettings};
use crate::frontend::{BoxFuture, ControllerReply, ControllerRequest, MetadataFrontend, decide};
use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// Name of the metadata directory inside a data dir, as Kafka's KRaft log.
pub const METADATA_DIR_NAME: &str = "__cluster_metadata";
/// The local log file inside [`METADATA_DIR_NAME`].
const LOG_FILE_NAME: &str = "local-quorum.log";
/// Largest single metadata entry accepted on replay; bigger means a corrupt length field.
pub const METADATA_ENTRY_SIZE_BYTES_MAX: usize = 16 * 1024 * 1024;
const ENTRY_HEADER_BYTES: usize = 8;

/// Errors opening or writing the local metadata log.
#[derive(Debug, thiserror::Error)]
pub enum LocalQuorumError {
    /// An I/O error on the named file.
    #[error("metadata log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

struct State {
    file: File,
    image: MetadataImage,
}

/// A one-voter metadata quorum backed by a local file.
pub struct LocalQuorum {
    path: PathBuf,
    settings: ControllerSettings,
    state: Mutex<State>,
    publisher: watch::Sender<Arc<MetadataImage>>,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LocalQuorumError + '_ {
    move |source| LocalQuorumError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl LocalQuorum {
    /// Opens (or creates) the metadata log under `data_dir` and replays it.
    pub fn open(
        data_dir: &Path,
        settings: ControllerSettings,
    ) -> Result<LocalQuorum, LocalQuorumError> {
        let dir = data_dir.join(METADATA_DIR_NAME);
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let path = dir.join(LOG_FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let mut contents = Vec::new();
        file.read_to_end(&mut contents).map_err(io_error(&path))?;
        let (image, valid_bytes) = replay(&contents);
        if valid_bytes < contents.len() {
            tracing::warn!(
                file = %path.display(),
                valid_bytes,
                dropped_bytes = contents.len() - valid_bytes,
                "metadata log has a torn or corrupt tail; truncating it"
            );
            file.set_len(valid_bytes as u64).map_err(io_error(&path))?;
            file.sync_all().map_err(io_error(&path))?;
        }
        // Make the directory entry durable for a freshly created file.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(&dir))?;
        let (publisher, _) = watch::channel(Arc::new(image.clone()));
        Ok(LocalQuorum {
            path,
            settings,
            state: Mutex::new(State { file, image }),
            publisher,
        })
    }

    /// Decides, appends, fsyncs, applies and publishes one request.
    fn commit(&self, request: &ControllerRequest) -> Result<ControllerReply, ControllerError> {
        let mut state = self.state.lock();
        let (reply, records) = decide(&state.image, &self.settings, request, true)?;
        if records.is_empty() {
            return Ok(reply);
        }
        let mut buf = Vec::new();
        for record in &records {
            let payload = record.encode_to_vec();
            buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            buf.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
            buf.extend_from_slice(&payload);
        }
        state
            .file
            .write_all(&buf)
            .and_then(|()| state.file.sync_data())
            .map_err(|e| {
                ControllerError::Unavailable(format!("writing {}: {e}", self.path.display()))
            })?;
        let mut next = state.image.clone();
        for record in &records {
            let offset = next.offset + 1;
            if let Err(error) = next.apply(offset, record) {
                tracing::error!(%error, "controller produced a record it cannot apply");
            }
        }
        state.image = next.clone();
        self.publisher.send_replace(Arc::new(next));
        Ok(reply)
    }
}

/// Replays entries; returns the image and how many leading bytes were valid.
fn replay(contents: &[u8]) -> (MetadataImage, usize) {
    let mut image = MetadataImage::empty();
    let mut at = 0;
    while contents.len() - at >= ENTRY_HEADER_BYTES {
        let length = u32::from_be_bytes([
            contents[at],
            contents[at + 1],
            contents[at + 2],
            contents[at + 3],
        ]) as usize;
        let crc = u32::from_be_bytes([
            contents[at + 4],
            contents[at + 5],
            contents[at + 6],
            contents[at + 7],
        ]);
        let start = at + ENTRY_HEADER_BYTES;
        if length > METADATA_ENTRY_SIZE_BYTES_MAX || contents.len() - start < length {
            break;
        }
        let payload = &contents[start..start + length];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(record) = MetadataRecord::decode(payload) else {
            break;
        };
        let offset = image.offset + 1;
        if let Err(error) = image.apply(offset, &record) {
            tracing::warn!(%error, "skipping metadata record that does not apply");
        }
        at = start + length;
    }
    (image, at)
}

impl MetadataFrontend for LocalQuorum {
    fn image(&self) -> Arc<MetadataImage> {
        self.publisher.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.publisher.subscribe()
    }

    fn submit(
        &self,
        request: ControllerRequest,
    ) -> BoxFuture<Result<ControllerReply, ControllerError>> {
        // The commit is a local fsync: done inline, the future is already resolved.
        let result = self.commit(&request);
        Box::pin(async move { result })
    }
}
