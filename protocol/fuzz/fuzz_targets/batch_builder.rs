//! Structured batches through the builder and back through the view and iterator.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: spate_protocol_fuzz::BuilderInput| {
    spate_protocol_fuzz::build_and_read_back(input);
});
