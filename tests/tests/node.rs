//! The harness's own contract with a broker process: it starts on free loopback ports, answers
//! Metadata listing itself, restarts on the same data and ports after a clean stop and after a
//! SIGKILL, and (for Spate) reports its listeners in `listeners.json`.

use std::net::TcpStream;

use spate_e2e::probe::metadata_broker_count;
use spate_e2e::target::{Target, TargetOptions};

fn answers_metadata(target: &Target) {
    let bootstrap = target.bootstrap();
    match metadata_broker_count(&bootstrap) {
        Ok(n) => assert_eq!(n, 1, "a single node lists one broker"),
        Err(e) => panic!(
            "no Metadata answer from {bootstrap}: {e:#}\n{}",
            target.logs()
        ),
    }
}

#[test]
fn a_node_serves_metadata_and_survives_restart_and_kill() {
    let mut target = match Target::start(TargetOptions::default()) {
        Ok(t) => t,
        Err(e) => panic!("{e:#}"),
    };
    answers_metadata(&target);
    let bootstrap = target.bootstrap();

    if let Target::Spate(node) = &target {
        let listeners = node.listeners().expect("listeners.json was read");
        // Kafka and admin are always there; the quorum and ingress listeners once they exist.
        let mut addrs = vec![&listeners.kafka, &listeners.admin];
        addrs.extend(listeners.controller.as_ref());
        addrs.extend(listeners.cloudevents.as_ref());
        for addr in addrs {
            assert!(
                !addr.ends_with(":0"),
                "{addr} must be the bound port, not 0"
            );
            TcpStream::connect(addr.as_str())
                .unwrap_or_else(|e| panic!("{addr} from listeners.json is not accepting: {e}"));
        }
    }

    if let Err(e) = target.restart() {
        panic!("clean restart failed: {e:#}");
    }
    assert_eq!(
        target.bootstrap(),
        bootstrap,
        "a restart keeps the Kafka port"
    );
    answers_metadata(&target);

    match &mut target {
        Target::Spate(node) => node.kill9(),
        Target::Kafka(node) => node.kill9(),
    }
    if let Err(e) = target.restart() {
        panic!("restart after SIGKILL failed: {e:#}");
    }
    answers_metadata(&target);
}
