//! Record parsing, decompression (every codec), produce validation and re-encoding of one batch.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spate_protocol_fuzz::record_iteration(data);
});
