//! Capped decompression of untrusted streams for every codec, and codec round trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spate_protocol_fuzz::decompress_and_round_trip(data);
});
