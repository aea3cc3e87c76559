//! kafkajs (Node.js) runs the standard client scenario. Its consumer needs a consumer group.

use spate_e2e::clients::{Program, ProgramClient};
use spate_e2e::scenario;

#[test]
fn kafkajs_round_trip_offsets_and_configs() {
    scenario::must_pass(ProgramClient::find(Program::KafkaJs));
}
