//! The Rust `rdkafka` crate (librdkafka in-process) runs the standard client scenario.

use spate_e2e::rdkafka_client::Rdkafka;
use spate_e2e::scenario;

#[test]
fn rdkafka_round_trip_offsets_and_configs() {
    scenario::must_pass(Ok(Rdkafka));
}
