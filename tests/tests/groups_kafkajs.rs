//! kafkajs (Node.js) in a consumer group: the shared split scenario (its round-robin assignor,
//! eager rebalances, commits after every batch).

use spate_e2e::clients::KafkaClient;
use spate_e2e::groups::{MemberProgram, SplitScenario, split_scenario};
use spate_e2e::rdkafka_client::Rdkafka;
use spate_e2e::scenario::work_dir;
use spate_e2e::target::{Target, TargetKind, TargetOptions};

#[test]
fn kafkajs_group_splits_partitions_and_resumes_at_commits() {
    let run = || -> anyhow::Result<()> {
        let kind = TargetKind::from_env()?;
        let target = Target::start(TargetOptions {
            configs: vec![("group.initial.rebalance.delay.ms".into(), "300".into())],
        })?;
        let work = work_dir(kind, "groups-kafkajs")?;
        let bootstrap = target.bootstrap();
        let scenario = SplitScenario {
            program: MemberProgram::KafkaJs,
            protocol: None,
            assignor: None,
            session_timeout_ms: Some(10_000),
            name: "groups-kafkajs".into(),
        };
        split_scenario(&scenario, &bootstrap, &work, &|topic, partitions| {
            Rdkafka.create_topic(&bootstrap, topic, partitions, &[], &work)
        })
    };
    if let Err(e) = run() {
        panic!("{e:#}");
    }
}
