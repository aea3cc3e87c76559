//! The Java client (org.apache.kafka:kafka-clients 4.3.1) runs the standard client scenario.

use spate_e2e::clients::{Program, ProgramClient};
use spate_e2e::scenario;

#[test]
fn java_kafka_clients_round_trip_offsets_and_configs() {
    scenario::must_pass(ProgramClient::find(Program::Java));
}
