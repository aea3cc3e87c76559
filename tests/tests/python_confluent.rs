//! confluent-kafka (Python, librdkafka) runs the standard client scenario.

use spate_e2e::clients::{Program, ProgramClient};
use spate_e2e::scenario;

#[test]
fn confluent_kafka_python_round_trip_offsets_and_configs() {
    scenario::must_pass(ProgramClient::find(Program::ConfluentPython));
}
