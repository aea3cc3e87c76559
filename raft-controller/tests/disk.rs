//! The metadata log on disk: recovery after clean and unclean stops, torn tails, corruption
//! refused with the file named, snapshot installation as one atomic switch, and a seeded
//! random-operation comparison against the in-memory backend.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use spate_controller::disk::{FileBackend, METADATA_DIR_NAME, StoreError};
use spate_controller::store::{LogBackend, MemBackend, Recovered};

fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index,
        term,
        data: data.to_vec(),
        ..Entry::default()
    }
}

fn hard_state(term: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote: 1,
        commit,
    }
}

fn snapshot(index: u64, term: u64, data: &[u8]) -> Snapshot {
    Snapshot {
        data: data.to_vec(),
        metadata: Some(SnapshotMetadata {
            conf_state: Some(ConfState {
                voters: vec![1, 2, 3],
                ..ConfState::default()
            }),
            index,
            term,
        }),
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join(METADATA_DIR_NAME))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn newest_wal(dir: &Path) -> PathBuf {
    let name = files(dir)
        .into_iter()
        .rfind(|n| n.ends_with(".log"))
        .unwrap();
    dir.join(METADATA_DIR_NAME).join(name)
}

fn recover(dir: &Path) -> Result<Recovered, StoreError> {
    FileBackend::open(dir).unwrap().recover()
}

#[test]
fn entries_and_hard_state_survive_a_reopen_and_later_entries_replace_a_conflicting_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = FileBackend::open(dir.path()).unwrap();
    assert_eq!(backend.recover().unwrap(), Recovered::default());
    backend
        .persist(
            &[entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c")],
            Some(&hard_state(1, 2)),
        )
        .unwrap();
    // A new leader's entries replace the uncommitted tail (Raft §5.3).
    backend
        .persist(
            &[entry(3, 2, b"C"), entry(4, 2, b"D")],
            Some(&hard_state(2, 3)),
        )
        .unwrap();
    drop(backend);
    let recovered = recover(dir.path()).unwrap();
    assert_eq!(
        recovered.entries,
        vec![
            entry(1, 1, b"a"),
            entry(2, 1, b"b"),
            entry(3, 2, b"C"),
            entry(4, 2, b"D")
        ]
    );
    assert_eq!(recovered.hard_state, hard_state(2, 3));
    assert_eq!(recovered.snapshot, Snapshot::default());
}

#[test]
fn a_torn_tail_is_cut_off_and_logged_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = FileBackend::open(dir.path()).unwrap();
    backend.recover().unwrap();
    backend
        .persist(&[entry(1, 1, b"kept")], Some(&hard_state(1, 1)))
        .unwrap();
    backend.persist(&[entry(2, 1, b"torn")], None).unwrap();
    drop(backend);
    // Cut the last record in half, as a crash during its write would.
    let wal = newest_wal(dir.path());
    let len = fs::metadata(&wal).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let recovered = recover(dir.path()).unwrap();
    assert_eq!(recovered.entries, vec![entry(1, 1, b"kept")]);
    assert!(
        fs::metadata(&wal).unwrap().len() < len - 5,
        "the torn bytes are gone"
    );

    // A last record whose checksum fails (garbage written over it) is torn too.
    let mut backend = FileBackend::open(dir.path()).unwrap();
    backend.recover().unwrap();
    backend.persist(&[entry(2, 1, b"again")], None).unwrap();
    drop(backend);
    let mut file = OpenOptions::new().write(true).open(&wal).unwrap();
    file.seek(SeekFrom::End(-2)).unwrap();
    file.write_all(b"!!").unwrap();
    drop(file);
    assert_eq!(
        recover(dir.path()).unwrap().entries,
        vec![entry(1, 1, b"kept")]
    );
}

#[test]
fn damage_in_the_middle_of_the_wal_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = FileBackend::open(dir.path()).unwrap();
    backend.recover().unwrap();
    for i in 1..=5 {
        backend
            .persist(&[entry(i, 1, b"payload-payload")], Some(&hard_state(1, i)))
            .unwrap();
    }
    drop(backend);
    let wal = newest_wal(dir.path());
    let before = fs::read(&wal).unwrap();
    // Flip one byte inside the second record's payload.
    let mut damaged = before.clone();
    let position = 20 + 40;
    damaged[position] ^= 0xff;
    fs::write(&wal, &damaged).unwrap();
    let error = recover(dir.path()).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{text}");
    assert!(text.contains(&wal.display().to_string()), "{text}");
    assert!(text.contains("refusing to start"), "{text}");
    // Nothing was "repaired": the file is as it was found.
    assert_eq!(fs::read(&wal).unwrap(), damaged);

    // A damaged header is refused too.
    let mut header = before.clone();
    header[2] ^= 0xff;
    fs::write(&wal, &header).unwrap();
    let text = recover(dir.path()).unwrap_err().to_string();
    assert!(text.contains(&wal.display().to_string()), "{text}");
}

#[test]
fn installing_a_snapshot_keeps_the_tail_and_removes_older_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = FileBackend::open(dir.path()).unwrap();
    backend.recover().unwrap();
    let entries: Vec<Entry> = (1..=10).map(|i| entry(i, 1, b"x")).collect();
    backend.persist(&entries, Some(&hard_state(1, 10))).unwrap();
    backend
        .install_snapshot(
            &snapshot(7, 1, b"image-at-7"),
            &entries[7..],
            &hard_state(1, 10),
        )
        .unwrap();
    backend.persist(&[entry(11, 2, b"y")], None).unwrap();
    assert_eq!(
        files(dir.path()),
        vec![
            "snapshot-00000000000000000007.snap".to_string(),
            "wal-00000000000000000007.log".to_string()
        ]
    );
    backend
        .install_snapshot(
            &snapshot(9, 1, b"image-at-9"),
            &[entry(10, 1, b"x"), entry(11, 2, b"y")],
            &hard_state(2, 11),
        )
        .unwrap();
    drop(backend);
    assert_eq!(
        files(dir.path()),
        vec![
            "snapshot-00000000000000000009.snap".to_string(),
            "wal-00000000000000000009.log".to_string()
        ]
    );
    let recovered = recover(dir.path()).unwrap();
    assert_eq!(recovered.snapshot, snapshot(9, 1, b"image-at-9"));
    assert_eq!(
        recovered.entries,
        vec![entry(10, 1, b"x"), entry(11, 2, b"y")]
    );
    assert_eq!(recovered.hard_state, hard_state(2, 11));
}

#[test]
fn a_crash_between_writing_a_snapshot_and_switching_the_wal_keeps_the_old_pair() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = FileBackend::open(dir.path()).unwrap();
    backend.recover().unwrap();
    let entries: Vec<Entry> = (1..=6).map(|i| entry(i, 1, b"x")).collect();
    backend.persist(&entries, Some(&hard_state(1, 6))).unwrap();
    backend
        .install_snapshot(&snapshot(3, 1, b"at-3"), &entries[3..], &hard_state(1, 6))
        .unwrap();
    drop(backend);
    let meta = dir.path().join(METADATA_DIR_NAME);
    // The next switch got as far as its snapshot file and a half-written WAL temp file.
    fs::copy(
        meta.join("snapshot-00000000000000000003.snap"),
        meta.join("snapshot-00000000000000000005.snap"),
    )
    .unwrap();
    fs::write(meta.join("wal-00000000000000000005.log.tmp"), b"partial").unwrap();
    let recovered = recover(dir.path()).unwrap();
    assert_eq!(recovered.snapshot, snapshot(3, 1, b"at-3"));
    assert_eq!(recovered.entries, entries[3..].to_vec());
    assert_eq!(
        files(dir.path()),
        vec![
            "snapshot-00000000000000000003.snap".to_string(),
            "wal-00000000000000000003.log".to_string()
        ]
    );
}

#[test]
fn a_corrupt_snapshot_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = FileBackend::open(dir.path()).unwrap();
    backend.recover().unwrap();
    backend
        .persist(
            &[entry(1, 1, b"x"), entry(2, 1, b"y")],
            Some(&hard_state(1, 2)),
        )
        .unwrap();
    backend
        .install_snapshot(&snapshot(2, 1, b"the image bytes"), &[], &hard_state(1, 2))
        .unwrap();
    drop(backend);
    let path = dir
        .path()
        .join(METADATA_DIR_NAME)
        .join("snapshot-00000000000000000002.snap");
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let error = recover(dir.path()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("checksum"), "{text}");

    // A missing snapshot that the WAL continues from is refused as well.
    fs::remove_file(&path).unwrap();
    let text = recover(dir.path()).unwrap_err().to_string();
    assert!(text.contains("wal-00000000000000000002.log"), "{text}");
}

/// SplitMix64, so the random operations below are the same on every run of a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Random appends (with conflicting rewrites), hard states, snapshots and reopens: the file
/// backend always recovers exactly what the in-memory model holds.
#[test]
fn random_operations_recover_what_the_model_holds() {
    let seeds: u64 = std::env::var("SPATE_DISK_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    for seed in 0..seeds {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed);
        let mut file = FileBackend::open(dir.path()).unwrap();
        file.recover().unwrap();
        let mut model = MemBackend::new();
        let mut state = Recovered::default();
        let mut term = 1;
        for step in 0..60 {
            let snapshot_index = state.snapshot.metadata.as_ref().map_or(0, |m| m.index);
            let last = state.entries.last().map_or(snapshot_index, |e| e.index);
            match rng.below(10) {
                0..=5 => {
                    // Append, possibly rewriting a suffix after the snapshot.
                    let start = snapshot_index + 1 + rng.below(last - snapshot_index + 1);
                    if rng.below(3) == 0 {
                        term += 1;
                    }
                    let count = 1 + rng.below(4);
                    let batch: Vec<Entry> = (start..start + count)
                        .map(|i| entry(i, term, format!("{seed}-{step}-{i}").as_bytes()))
                        .collect();
                    let hs = (rng.below(2) == 0).then(|| hard_state(term, start));
                    file.persist(&batch, hs.as_ref()).unwrap();
                    model.persist(&batch, hs.as_ref()).unwrap();
                    state.entries.retain(|e| e.index < start);
                    state.entries.extend(batch);
                    if let Some(hs) = hs {
                        state.hard_state = hs;
                    }
                }
                6 | 7 if last > snapshot_index => {
                    let at = snapshot_index + 1 + rng.below(last - snapshot_index);
                    let kept: Vec<Entry> = state
                        .entries
                        .iter()
                        .filter(|e| e.index > at)
                        .cloned()
                        .collect();
                    let snap = snapshot(at, term, format!("image-{at}").as_bytes());
                    let hs = hard_state(term, at);
                    file.install_snapshot(&snap, &kept, &hs).unwrap();
                    model.install_snapshot(&snap, &kept, &hs).unwrap();
                    state = Recovered {
                        snapshot: snap,
                        hard_state: hs,
                        entries: kept,
                    };
                }
                _ => {
                    drop(file);
                    file = FileBackend::open(dir.path()).unwrap();
                    let recovered = file.recover().unwrap();
                    assert_eq!(recovered, state, "seed {seed} step {step}: reopen differs");
                }
            }
            assert_eq!(
                model.recover().unwrap(),
                state,
                "seed {seed}: model drifted"
            );
        }
        drop(file);
        assert_eq!(
            recover(dir.path()).unwrap(),
            state,
            "seed {seed}: final reopen differs"
        );
    }
}
