//! A client's byte stream: frames, request headers, and request bodies of every served API.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spate_protocol_fuzz::request_stream(data);
});
