//! Batches back to back, as in a segment or a `records` field: header view, CRC, in-place edits.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spate_protocol_fuzz::batch_header(data);
});
