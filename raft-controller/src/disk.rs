//! The durable metadata log on disk, under `<data_dir>/__cluster_metadata/`.
//!
//! Two kinds of file:
//!
//! - `wal-<20-digit index>.log`, the write-ahead log. A 20-byte header (magic, the index of the
//!   snapshot it continues from, CRC-32C of both), then records
//!   `[u32 body length][u32 CRC-32C of body][body = u8 kind, prost payload]`, big-endian. A record
//!   is a raft entry (kind 1) or a hard state (kind 2). On replay an entry replaces every entry
//!   with the same or a later index (raft's log truncation) and the last hard state wins. Each
//!   write is one `write` and one `fdatasync`.
//! - `snapshot-<20-digit index>.snap`: magic, `u64` body length, CRC-32C, and the prost raft
//!   `Snapshot` (membership plus the metadata image, see [`crate::snapshot`]).
//!
//! Installing a snapshot writes the snapshot file, then a fresh WAL named after its index holding
//! the hard state and the entries that stay, each through a temp file, fsync and rename. The
//! newest WAL is the commit point: recovery uses it and the snapshot of the same index, and
//! deletes everything older or newer, so a crash anywhere in between leaves one consistent pair.
//!
//! A record cut short at the end of the newest WAL is what an unclean stop leaves: the WAL is
//! truncated there and the cut is logged. A record that fails its checksum with more data after
//! it, an unreadable header, or a corrupt snapshot is damage no crash explains: the node refuses
//! to start, naming the file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use raft::eraftpb::{Entry, HardState, Snapshot};

use crate::store::{LogBackend, Recovered};

/// Name of the metadata directory inside a data dir, as Kafka's KRaft log.
pub const METADATA_DIR_NAME: &str = "__cluster_metadata";
/// Largest WAL record or snapshot accepted, in bytes. A metadata image of a very large cluster
/// (hundreds of thousands of partitions) stays well below it; a larger length field is damage.
pub const METADATA_RECORD_SIZE_BYTES_MAX: usize = 256 * 1024 * 1024;

const WAL_MAGIC: &[u8; 8] = b"SPWAL\x00\x00\x01";
const SNAPSHOT_MAGIC: &[u8; 8] = b"SPSNAP\x00\x01";
const WAL_HEADER_BYTES: usize = 20;
const SNAPSHOT_HEADER_BYTES: usize = 20;
const RECORD_HEADER_BYTES: usize = 8;
const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const WAL_PREFIX: &str = "wal-";
const WAL_SUFFIX: &str = ".log";
const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_SUFFIX: &str = ".snap";
const TEMP_SUFFIX: &str = ".tmp";

/// Errors of the metadata log's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on the named file.
    #[error("metadata log {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A file is damaged in a way an unclean stop does not explain.
    #[error(
        "metadata file {path} is corrupt at byte {position}: {reason}; refusing to start \
         (move the metadata directory away to rebuild this node's log from its peers)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte position of the damage.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// The recovered log contradicts itself.
    #[error("metadata log is inconsistent: {0}")]
    Inconsistent(String),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The file-backed [`LogBackend`].
pub struct FileBackend {
    dir: PathBuf,
    wal_path: PathBuf,
    wal: Option<File>,
}

fn numbered_name(prefix: &str, index: u64, suffix: &str) -> String {
    format!("{prefix}{index:020}{suffix}")
}

fn parse_numbered(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != 20 {
        return None;
    }
    digits.parse().ok()
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Writes `contents` to `path` through a temp file, fsync and rename.
fn write_file_atomically(dir: &Path, path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(TEMP_SUFFIX);
    let tmp = PathBuf::from(tmp_name);
    let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
    file.write_all(contents).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error(path))?;
    sync_dir(dir)
}

fn encode_record(out: &mut Vec<u8>, kind: u8, payload: &impl Message) {
    let body_len = 1 + payload.encoded_len();
    let start = out.len();
    out.extend_from_slice(&(body_len as u32).to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    payload
        .encode(out)
        .expect("a Vec grows to fit any prost message");
    let crc = crc32c::crc32c(&out[start + RECORD_HEADER_BYTES..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

fn wal_header(base_index: u64) -> Vec<u8> {
    let mut header = Vec::with_capacity(WAL_HEADER_BYTES);
    header.extend_from_slice(WAL_MAGIC);
    header.extend_from_slice(&base_index.to_be_bytes());
    let crc = crc32c::crc32c(&header);
    header.extend_from_slice(&crc.to_be_bytes());
    header
}

fn read_whole(path: &Path) -> Result<Vec<u8>, StoreError> {
    let mut contents = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut contents))
        .map_err(io_error(path))?;
    Ok(contents)
}

/// Encodes a snapshot file.
fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    let body = snapshot.encode_to_vec();
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + body.len());
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads and verifies a snapshot file.
pub fn read_snapshot(path: &Path) -> Result<Snapshot, StoreError> {
    let contents = read_whole(path)?;
    let corrupt = |position: usize, reason: &str| StoreError::Corrupt {
        path: path.to_path_buf(),
        position: position as u64,
        reason: reason.to_string(),
    };
    if contents.len() < SNAPSHOT_HEADER_BYTES || &contents[..8] != SNAPSHOT_MAGIC {
        return Err(corrupt(0, "not a snapshot file (bad header)"));
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&contents[8..16]);
    let body_len = u64::from_be_bytes(len_bytes);
    let mut crc_bytes = [0u8; 4];
    crc_bytes.copy_from_slice(&contents[16..20]);
    let crc = u32::from_be_bytes(crc_bytes);
    let body = &contents[SNAPSHOT_HEADER_BYTES..];
    if body.len() as u64 != body_len {
        return Err(corrupt(
            8,
            &format!(
                "length field says {body_len} bytes, file holds {}",
                body.len()
            ),
        ));
    }
    if crc32c::crc32c(body) != crc {
        return Err(corrupt(SNAPSHOT_HEADER_BYTES, "checksum mismatch"));
    }
    Snapshot::decode(body).map_err(|e| corrupt(SNAPSHOT_HEADER_BYTES, &e.to_string()))
}

/// The result of scanning a WAL.
struct WalScan {
    base_index: u64,
    entries: Vec<Entry>,
    hard_state: HardState,
    /// Bytes of the file that hold whole, valid records.
    valid_bytes: usize,
}

fn scan_wal(path: &Path, contents: &[u8]) -> Result<WalScan, StoreError> {
    let corrupt = |position: usize, reason: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        position: position as u64,
        reason,
    };
    if contents.len() < WAL_HEADER_BYTES
        || &contents[..8] != WAL_MAGIC
        || crc32c::crc32c(&contents[..16]).to_be_bytes() != contents[16..20]
    {
        return Err(corrupt(0, "not a metadata WAL (bad header)".into()));
    }
    let mut base_bytes = [0u8; 8];
    base_bytes.copy_from_slice(&contents[8..16]);
    let mut scan = WalScan {
        base_index: u64::from_be_bytes(base_bytes),
        entries: Vec::new(),
        hard_state: HardState::default(),
        valid_bytes: WAL_HEADER_BYTES,
    };
    let mut at = WAL_HEADER_BYTES;
    while at < contents.len() {
        let remaining = contents.len() - at;
        if remaining < RECORD_HEADER_BYTES {
            break; // torn header at the tail
        }
        let mut word = [0u8; 4];
        word.copy_from_slice(&contents[at..at + 4]);
        let body_len = u32::from_be_bytes(word) as usize;
        word.copy_from_slice(&contents[at + 4..at + 8]);
        let crc = u32::from_be_bytes(word);
        let body_start = at + RECORD_HEADER_BYTES;
        if body_len > remaining - RECORD_HEADER_BYTES {
            break; // the record runs past the end: torn
        }
        if body_len == 0 || body_len > METADATA_RECORD_SIZE_BYTES_MAX {
            return Err(corrupt(at, format!("implausible record length {body_len}")));
        }
        let body = &contents[body_start..body_start + body_len];
        let end = body_start + body_len;
        if crc32c::crc32c(body) != crc {
            if end == contents.len() {
                break; // the last record was half written: torn
            }
            return Err(corrupt(
                at,
                "record checksum mismatch with more records after it".into(),
            ));
        }
        let payload = &body[1..];
        match body[0] {
            KIND_ENTRY => {
                let entry = Entry::decode(payload).map_err(|e| corrupt(at, e.to_string()))?;
                if let Some(last) = scan.entries.last()
                    && entry.index > last.index + 1
                {
                    return Err(corrupt(
                        at,
                        format!("entry {} follows entry {}", entry.index, last.index),
                    ));
                }
                // Entries are contiguous, so "drop every entry from this index on" is a cut.
                if let Some(first) = scan.entries.first() {
                    let keep = entry.index.saturating_sub(first.index) as usize;
                    scan.entries.truncate(keep);
                }
                scan.entries.push(entry);
            }
            KIND_HARD_STATE => {
                scan.hard_state =
                    HardState::decode(payload).map_err(|e| corrupt(at, e.to_string()))?;
            }
            other => return Err(corrupt(at, format!("unknown record kind {other}"))),
        }
        at = end;
        scan.valid_bytes = at;
    }
    Ok(scan)
}

impl FileBackend {
    /// Opens the metadata directory under `data_dir`, creating it if needed. Nothing is read
    /// until [`LogBackend::recover`].
    pub fn open(data_dir: &Path) -> Result<FileBackend, StoreError> {
        let dir = data_dir.join(METADATA_DIR_NAME);
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        Ok(FileBackend {
            wal_path: dir.join(numbered_name(WAL_PREFIX, 0, WAL_SUFFIX)),
            dir,
            wal: None,
        })
    }

    /// The metadata directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn list(&self) -> Result<(Vec<u64>, Vec<u64>), StoreError> {
        let mut wals = Vec::new();
        let mut snapshots = Vec::new();
        for item in fs::read_dir(&self.dir).map_err(io_error(&self.dir))? {
            let item = item.map_err(io_error(&self.dir))?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(TEMP_SUFFIX) {
                // Half-written by a crash before its rename: never part of the durable state.
                let path = item.path();
                fs::remove_file(&path).map_err(io_error(&path))?;
            } else if let Some(index) = parse_numbered(name, WAL_PREFIX, WAL_SUFFIX) {
                wals.push(index);
            } else if let Some(index) = parse_numbered(name, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX) {
                snapshots.push(index);
            }
        }
        wals.sort_unstable();
        snapshots.sort_unstable();
        Ok((wals, snapshots))
    }

    fn remove_others(&self, wals: &[u64], snapshots: &[u64], keep: u64) -> Result<(), StoreError> {
        let mut removed = false;
        for &index in wals.iter().filter(|&&i| i != keep) {
            let path = self.dir.join(numbered_name(WAL_PREFIX, index, WAL_SUFFIX));
            fs::remove_file(&path).map_err(io_error(&path))?;
            removed = true;
        }
        for &index in snapshots.iter().filter(|&&i| i != keep) {
            let path = self
                .dir
                .join(numbered_name(SNAPSHOT_PREFIX, index, SNAPSHOT_SUFFIX));
            fs::remove_file(&path).map_err(io_error(&path))?;
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn open_wal_for_append(&mut self, path: PathBuf) -> Result<(), StoreError> {
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        self.wal = Some(file);
        self.wal_path = path;
        Ok(())
    }

    fn write_and_sync(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.wal_path.clone();
        let file = match &mut self.wal {
            Some(file) => file,
            None => {
                return Err(StoreError::Io {
                    path,
                    source: io::Error::other("the WAL is not open (recover first)"),
                });
            }
        };
        file.write_all(bytes)
            .and_then(|()| file.sync_data())
            .map_err(io_error(&path))
    }
}

impl LogBackend for FileBackend {
    fn recover(&mut self) -> Result<Recovered, StoreError> {
        let (wals, snapshots) = self.list()?;
        let Some(&base) = wals.last() else {
            // A fresh directory: start an empty WAL.
            let path = self.dir.join(numbered_name(WAL_PREFIX, 0, WAL_SUFFIX));
            write_file_atomically(&self.dir, &path, &wal_header(0))?;
            self.remove_others(&[], &snapshots, 0)?;
            self.open_wal_for_append(path)?;
            return Ok(Recovered::default());
        };
        let snapshot = if base == 0 {
            Snapshot::default()
        } else {
            if !snapshots.contains(&base) {
                let path = self.dir.join(numbered_name(WAL_PREFIX, base, WAL_SUFFIX));
                return Err(StoreError::Corrupt {
                    position: 0,
                    reason: format!(
                        "it continues snapshot {base}, but {} is missing",
                        numbered_name(SNAPSHOT_PREFIX, base, SNAPSHOT_SUFFIX)
                    ),
                    path,
                });
            }
            let path = self
                .dir
                .join(numbered_name(SNAPSHOT_PREFIX, base, SNAPSHOT_SUFFIX));
            let snapshot = read_snapshot(&path)?;
            if snapshot.metadata.as_ref().map(|m| m.index) != Some(base) {
                return Err(StoreError::Corrupt {
                    path,
                    position: 0,
                    reason: "the snapshot's index does not match its name".into(),
                });
            }
            snapshot
        };
        let path = self.dir.join(numbered_name(WAL_PREFIX, base, WAL_SUFFIX));
        let contents = read_whole(&path)?;
        let scan = scan_wal(&path, &contents)?;
        if scan.base_index != base {
            return Err(StoreError::Corrupt {
                path,
                position: 8,
                reason: format!("header says base {}, name says {base}", scan.base_index),
            });
        }
        if scan.valid_bytes < contents.len() {
            tracing::warn!(
                file = %path.display(),
                valid_bytes = scan.valid_bytes,
                dropped_bytes = contents.len() - scan.valid_bytes,
                "metadata WAL has a torn tail (an unclean stop); truncating it"
            );
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_error(&path))?;
            file.set_len(scan.valid_bytes as u64)
                .and_then(|()| file.sync_all())
                .map_err(io_error(&path))?;
        }
        self.remove_others(&wals, &snapshots, base)?;
        self.open_wal_for_append(path)?;
        Ok(Recovered {
            snapshot,
            hard_state: scan.hard_state,
            entries: scan.entries,
        })
    }

    fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        for entry in entries {
            encode_record(&mut buf, KIND_ENTRY, entry);
        }
        if let Some(hard_state) = hard_state {
            encode_record(&mut buf, KIND_HARD_STATE, hard_state);
        }
        if buf.is_empty() {
            return Ok(());
        }
        self.write_and_sync(&buf)
    }

    fn install_snapshot(
        &mut self,
        snapshot: &Snapshot,
        entries: &[Entry],
        hard_state: &HardState,
    ) -> Result<(), StoreError> {
        let index = snapshot.metadata.as_ref().map_or(0, |m| m.index);
        let snapshot_path = self
            .dir
            .join(numbered_name(SNAPSHOT_PREFIX, index, SNAPSHOT_SUFFIX));
        write_file_atomically(&self.dir, &snapshot_path, &encode_snapshot(snapshot))?;
        let mut wal = wal_header(index);
        encode_record(&mut wal, KIND_HARD_STATE, hard_state);
        for entry in entries {
            encode_record(&mut wal, KIND_ENTRY, entry);
        }
        let wal_path = self.dir.join(numbered_name(WAL_PREFIX, index, WAL_SUFFIX));
        // The rename of this WAL is the commit point of the whole switch.
        write_file_atomically(&self.dir, &wal_path, &wal)?;
        self.wal = None;
        let (wals, snapshots) = self.list()?;
        self.remove_others(&wals, &snapshots, index)?;
        self.open_wal_for_append(wal_path)
    }
}
