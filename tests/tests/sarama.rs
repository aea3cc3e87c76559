//! IBM Sarama (Go, with its defaults: protocol 2.8, acks=1), as applications such as Dapr use
//! it, runs the standard client scenario.

use spate_e2e::clients::{Program, ProgramClient};
use spate_e2e::scenario;

#[test]
fn sarama_round_trip_offsets_and_configs() {
    scenario::must_pass(ProgramClient::find(Program::Sarama));
}
