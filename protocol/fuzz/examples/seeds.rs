//! Writes the seed corpus: `cargo run --example seeds` from protocol/fuzz/.
//!
//! Seeds are small valid inputs for each target, so the fuzzer starts from real batches and real
//! compressed streams instead of having to discover CRCs and codec framings by itself.

use std::fs;
use std::path::Path;

use bytes::Bytes;
use spate_protocol::records::{
    BATCH_HEADER_SIZE_BYTES, Compression, EndTxnMarker, Header, RecordBatchBuilder, compress,
};
use spate_protocol::types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn batch(codec: Compression, records: usize) -> Bytes {
    let mut builder = RecordBatchBuilder::new(codec)
        .base_offset(Offset(100))
        .producer(ProducerId(7), ProducerEpoch(0), 0);
    for i in 0..records {
        let key = (i % 3 != 0).then(|| Bytes::from(format!("k{i}")));
        let value = (i % 4 != 1).then(|| Bytes::from(format!("value {i} ").repeat(i % 5)));
        let headers = (0..i % 3)
            .map(|h| Header::new(format!("h{h}"), format!("{i}")))
            .collect();
        builder
            .append(1_700_000_000_000 + i as i64, key, value, headers)
            .expect("append");
    }
    builder.build().expect("build")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("mkdir");
    fs::write(dir.join(name), bytes).expect("write seed");
}

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let marker = EndTxnMarker {
        commit: true,
        coordinator_epoch: 3,
    }
    .build_batch(
        Offset(5),
        1_700_000_000_000,
        LeaderEpoch(1),
        ProducerId(7),
        ProducerEpoch(0),
    )
    .expect("marker");

    let header_dir = corpus.join("record_batch_header");
    let iteration_dir = corpus.join("record_iteration");
    let decompress_dir = corpus.join("decompress");
    let builder_dir = corpus.join("batch_builder");
    for codec in CODECS {
        let name = codec.name();
        let one = batch(codec, 1);
        let many = batch(codec, 12);
        write(&header_dir, &format!("{name}-1"), &one);
        // Two batches back to back, as in a segment.
        write(
            &header_dir,
            &format!("{name}-pair"),
            &[&one[..], &many[..]].concat(),
        );
        for (label, b) in [("1", &one), ("12", &many)] {
            // record_iteration: [selector, count_hi, count_lo, records payload].
            let count = u16::try_from(if label == "1" { 1 } else { 12 }).expect("small");
            let mut seed = vec![codec.id()];
            seed.extend_from_slice(&count.to_be_bytes());
            seed.extend_from_slice(&b[BATCH_HEADER_SIZE_BYTES..]);
            write(&iteration_dir, &format!("{name}-{label}"), &seed);
        }
        // decompress: [codec, cap selector, stream]; a 64 KiB cap.
        let plain = batch(Compression::None, 12);
        let stream = compress(codec, &plain[BATCH_HEADER_SIZE_BYTES..]).expect("compress");
        let mut seed = vec![codec.id(), 16];
        seed.extend_from_slice(&stream);
        write(&decompress_dir, name, &seed);
    }
    write(&header_dir, "end-txn-marker", &marker);
    let mut seed = vec![0x40, 0, 1];
    seed.extend_from_slice(&marker[BATCH_HEADER_SIZE_BYTES..]);
    write(&iteration_dir, "end-txn-marker", &seed);
    // batch_builder takes arbitrary bytes; a few shapes to start from.
    write(&builder_dir, "zeros", &[0u8; 64]);
    write(&builder_dir, "ramp", &(0u8..=255).collect::<Vec<_>>());
    write(&builder_dir, "marker", &marker);
}
