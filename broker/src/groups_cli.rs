//! `spate groups list|describe`: consumer groups with their lag, through the Kafka protocol
//! only (Metadata, ListGroups, FindCoordinator, DescribeGroups or ConsumerGroupDescribe,
//! OffsetFetch, ListOffsets), so the commands work against any Kafka cluster, like Kafka's
//! `kafka-consumer-groups --list` and `--describe`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use kafka_protocol::messages::consumer_group_describe_response::ConsumerGroupDescribeResponse;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, ConsumerGroupDescribeRequest, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, ListGroupsRequest,
    ListGroupsResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use spate_protocol::error::ErrorCode;

use crate::group::consumer_protocol::assignment_partitions;
use crate::kafka_client::{ClientError, KafkaConnection};

/// ListOffsets timestamp meaning "the log end offset".
const LATEST_TIMESTAMP: i64 = -1;

/// `spate groups`.
#[derive(Debug, Args)]
pub struct GroupsArgs {
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Debug, Subcommand)]
enum GroupsCommand {
    /// List the consumer groups of the cluster, with their state and type.
    List {
        /// A broker of the cluster.
        #[arg(long, env = "SPATE_BOOTSTRAP", default_value = "127.0.0.1:9092")]
        bootstrap: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Describe a group: its members, and per partition the committed offset, the log end
    /// offset and the lag.
    Describe {
        /// The group id.
        group: String,
        /// A broker of the cluster.
        #[arg(long, env = "SPATE_BOOTSTRAP", default_value = "127.0.0.1:9092")]
        bootstrap: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Kafka(String),
}

fn kafka_error(what: &str, code: i16) -> CommandError {
    use kafka_protocol::error::ParseResponseErrorCode;
    let name = match code.err() {
        Some(error) => format!("{error:?}"),
        None => format!("error code {code}"),
    };
    CommandError::Kafka(format!("{what}: {name}"))
}

/// A listed group.
#[derive(Debug, Clone, serde::Serialize)]
struct Listed {
    group: String,
    state: String,
    group_type: String,
    protocol_type: String,
}

/// One partition of a described group.
#[derive(Debug, Clone, serde::Serialize)]
struct PartitionRow {
    topic: String,
    partition: i32,
    committed_offset: Option<i64>,
    log_end_offset: Option<i64>,
    lag: Option<i64>,
    member_id: Option<String>,
    client_host: Option<String>,
    client_id: Option<String>,
}

/// A member of a described group.
#[derive(Debug, Clone, serde::Serialize)]
struct MemberRow {
    member_id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    partitions: Vec<(String, i32)>,
}

/// A described group.
#[derive(Debug, Clone, serde::Serialize)]
struct Described {
    group: String,
    state: String,
    coordinator: String,
    members: Vec<MemberRow>,
    partitions: Vec<PartitionRow>,
}

/// Runs `spate groups ...`.
pub fn run(args: GroupsArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("spate: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match args.command {
            GroupsCommand::List { bootstrap, json } => {
                let groups = list(&bootstrap).await?;
                if json {
                    println!("{}", serde_json::json!({ "groups": groups }));
                } else {
                    print_list(&groups);
                }
                Ok::<(), CommandError>(())
            }
            GroupsCommand::Describe {
                group,
                bootstrap,
                json,
            } => {
                let described = describe(&bootstrap, &group).await?;
                if json {
                    println!("{}", serde_json::json!(described));
                } else {
                    print_described(&described);
                }
                Ok(())
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("spate: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Broker addresses and partition leaders from a Metadata request for `topics` (none: just
/// the brokers).
async fn metadata(
    connection: &mut KafkaConnection,
    topics: &[String],
) -> Result<(BTreeMap<i32, String>, BTreeMap<(String, i32), i32>), CommandError> {
    let version = connection.version(ApiKey::Metadata, (1, 12))?;
    let mut request = MetadataRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|t| {
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
            })
            .collect(),
    ));
    if version >= 4 {
        request.allow_auto_topic_creation = false;
    }
    let response: MetadataResponse = connection.send(ApiKey::Metadata, version, &request).await?;
    let brokers = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let mut leaders = BTreeMap::new();
    for topic in &response.topics {
        let Some(name) = &topic.name else { continue };
        for p in &topic.partitions {
            leaders.insert(
                (name.0.as_str().to_string(), p.partition_index),
                p.leader_id.0,
            );
        }
    }
    Ok((brokers, leaders))
}

async fn list(bootstrap: &str) -> Result<Vec<Listed>, CommandError> {
    let mut connection = KafkaConnection::connect(bootstrap).await?;
    let (brokers, _) = metadata(&mut connection, &[]).await?;
    let mut groups: BTreeMap<String, Listed> = BTreeMap::new();
    // Every broker coordinates its own share of the groups.
    for address in brokers.values() {
        let mut broker = KafkaConnection::connect(address).await?;
        let version = broker.version(ApiKey::ListGroups, (0, 5))?;
        let response: ListGroupsResponse = broker
            .send(ApiKey::ListGroups, version, &ListGroupsRequest::default())
            .await?;
        if response.error_code != 0 {
            return Err(kafka_error(
                &format!("ListGroups on {address}"),
                response.error_code,
            ));
        }
        for g in response.groups {
            let group = g.group_id.0.as_str().to_string();
            groups.insert(
                group.clone(),
                Listed {
                    group,
                    state: if version >= 4 {
                        g.group_state.as_str().to_string()
                    } else {
                        String::new()
                    },
                    group_type: if version >= 5 {
                        g.group_type.as_str().to_string()
                    } else {
                        String::new()
                    },
                    protocol_type: g.protocol_type.as_str().to_string(),
                },
            );
        }
    }
    Ok(groups.into_values().collect())
}

async fn find_coordinator(
    connection: &mut KafkaConnection,
    group: &str,
) -> Result<String, CommandError> {
    let version = connection.version(ApiKey::FindCoordinator, (0, 6))?;
    let key = StrBytes::from_string(group.to_string());
    let mut request = FindCoordinatorRequest::default();
    if version >= 4 {
        request.coordinator_keys = vec![key];
    } else {
        request.key = key;
    }
    let response: FindCoordinatorResponse = connection
        .send(ApiKey::FindCoordinator, version, &request)
        .await?;
    let (code, host, port) = match response.coordinators.first() {
        Some(c) => (c.error_code, c.host.clone(), c.port),
        None => (response.error_code, response.host.clone(), response.port),
    };
    if code != 0 {
        return Err(kafka_error(&format!("FindCoordinator for {group}"), code));
    }
    Ok(format!("{}:{port}", host.as_str()))
}

async fn describe(bootstrap: &str, group: &str) -> Result<Described, CommandError> {
    let mut connection = KafkaConnection::connect(bootstrap).await?;
    let coordinator = find_coordinator(&mut connection, group).await?;
    let mut coordinator_connection = KafkaConnection::connect(&coordinator).await?;
    let (state, members) = describe_members(&mut coordinator_connection, group).await?;

    // Committed offsets: OffsetFetch with all topics (null), v2-v7 share one layout.
    let version = coordinator_connection.version(ApiKey::OffsetFetch, (2, 7))?;
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_topics(None);
    let fetched: OffsetFetchResponse = coordinator_connection
        .send(ApiKey::OffsetFetch, version, &request)
        .await?;
    if fetched.error_code != 0 {
        return Err(kafka_error("OffsetFetch", fetched.error_code));
    }
    let mut committed: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for t in &fetched.topics {
        for p in &t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                committed.insert(
                    (t.name.0.as_str().to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    let mut partitions: BTreeSet<(String, i32)> = committed.keys().cloned().collect();
    for m in &members {
        partitions.extend(m.partitions.iter().cloned());
    }
    let topics: Vec<String> = partitions
        .iter()
        .map(|(t, _)| t.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let log_end = log_end_offsets(&mut connection, &topics, &partitions).await?;
    let mut owners: BTreeMap<(String, i32), &MemberRow> = BTreeMap::new();
    for m in &members {
        for p in &m.partitions {
            owners.insert(p.clone(), m);
        }
    }
    let rows = partitions
        .iter()
        .map(|key| {
            let committed_offset = committed.get(key).copied();
            let log_end_offset = log_end.get(key).copied();
            let owner = owners.get(key);
            PartitionRow {
                topic: key.0.clone(),
                partition: key.1,
                committed_offset,
                log_end_offset,
                lag: match (committed_offset, log_end_offset) {
                    (Some(c), Some(e)) => Some((e - c).max(0)),
                    _ => None,
                },
                member_id: owner.map(|m| m.member_id.clone()),
                client_host: owner.map(|m| m.client_host.clone()),
                client_id: owner.map(|m| m.client_id.clone()),
            }
        })
        .collect();
    if state == "Dead" && members.is_empty() && partitions.is_empty() {
        return Err(CommandError::Kafka(format!(
            "consumer group {group} does not exist"
        )));
    }
    Ok(Described {
        group: group.to_string(),
        state,
        coordinator,
        members,
        partitions: rows,
    })
}

/// The group's state and members, from DescribeGroups, or ConsumerGroupDescribe for KIP-848
/// groups (which DescribeGroups reports as not found).
async fn describe_members(
    connection: &mut KafkaConnection,
    group: &str,
) -> Result<(String, Vec<MemberRow>), CommandError> {
    let group_id = GroupId(StrBytes::from_string(group.to_string()));
    let version = connection.version(ApiKey::DescribeGroups, (0, 5))?;
    let response: DescribeGroupsResponse = connection
        .send(
            ApiKey::DescribeGroups,
            version,
            &DescribeGroupsRequest::default().with_groups(vec![group_id.clone()]),
        )
        .await?;
    let Some(described) = response.groups.first() else {
        return Err(CommandError::Kafka(
            "DescribeGroups returned no group".into(),
        ));
    };
    let not_found = described.error_code == ErrorCode::GroupIdNotFound.code()
        || described.group_state.as_str() == "Dead";
    if not_found && let Ok(version) = connection.version(ApiKey::ConsumerGroupDescribe, (0, 1)) {
        let response: ConsumerGroupDescribeResponse = connection
            .send(
                ApiKey::ConsumerGroupDescribe,
                version,
                &ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id]),
            )
            .await?;
        if let Some(g) = response.groups.first()
            && g.error_code == 0
        {
            let members = g
                .members
                .iter()
                .map(|m| MemberRow {
                    member_id: m.member_id.as_str().to_string(),
                    instance_id: m.instance_id.as_ref().map(|i| i.as_str().to_string()),
                    client_id: m.client_id.as_str().to_string(),
                    client_host: m.client_host.as_str().to_string(),
                    partitions: m
                        .assignment
                        .topic_partitions
                        .iter()
                        .flat_map(|tp| {
                            tp.partitions
                                .iter()
                                .map(|p| (tp.topic_name.0.as_str().to_string(), *p))
                        })
                        .collect(),
                })
                .collect();
            return Ok((g.group_state.as_str().to_string(), members));
        }
    }
    if described.error_code != 0 && !not_found {
        return Err(kafka_error("DescribeGroups", described.error_code));
    }
    let members = described
        .members
        .iter()
        .map(|m| MemberRow {
            member_id: m.member_id.as_str().to_string(),
            instance_id: m.group_instance_id.as_ref().map(|i| i.as_str().to_string()),
            client_id: m.client_id.as_str().to_string(),
            client_host: m.client_host.as_str().to_string(),
            partitions: if described.protocol_type.as_str() == "consumer" {
                assignment_partitions(&m.member_assignment).unwrap_or_default()
            } else {
                Vec::new()
            },
        })
        .collect();
    Ok((described.group_state.as_str().to_string(), members))
}

/// Log end offsets of `partitions`, asked of each partition's leader.
async fn log_end_offsets(
    bootstrap: &mut KafkaConnection,
    topics: &[String],
    partitions: &BTreeSet<(String, i32)>,
) -> Result<BTreeMap<(String, i32), i64>, CommandError> {
    let mut ends = BTreeMap::new();
    if topics.is_empty() {
        return Ok(ends);
    }
    let (brokers, leaders) = metadata(bootstrap, topics).await?;
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for (topic, partition) in partitions {
        if let Some(leader) = leaders.get(&(topic.clone(), *partition)) {
            by_leader
                .entry(*leader)
                .or_default()
                .entry(topic.clone())
                .or_default()
                .push(*partition);
        }
    }
    for (leader, topics) in by_leader {
        let Some(address) = brokers.get(&leader) else {
            continue;
        };
        let mut connection = KafkaConnection::connect(address).await?;
        let version = connection.version(ApiKey::ListOffsets, (1, 7))?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic)))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(p)
                                            .with_current_leader_epoch(-1)
                                            .with_timestamp(LATEST_TIMESTAMP)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let response: ListOffsetsResponse = connection
            .send(ApiKey::ListOffsets, version, &request)
            .await?;
        for t in response.topics {
            for p in t.partitions {
                if p.error_code == 0 {
                    ends.insert((t.name.0.as_str().to_string(), p.partition_index), p.offset);
                }
            }
        }
    }
    Ok(ends)
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<width$}", width = widths[i]))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

fn print_list(groups: &[Listed]) {
    let mut rows = vec![vec![
        "GROUP".to_string(),
        "STATE".to_string(),
        "TYPE".to_string(),
        "PROTOCOL-TYPE".to_string(),
    ]];
    for g in groups {
        rows.push(vec![
            g.group.clone(),
            or_dash(Some(&g.state).filter(|s| !s.is_empty())),
            or_dash(Some(&g.group_type).filter(|s| !s.is_empty())),
            or_dash(Some(&g.protocol_type).filter(|s| !s.is_empty())),
        ]);
    }
    print_table(&rows);
}

fn print_described(described: &Described) {
    println!(
        "Group {} is {} ({} members), coordinator {}",
        described.group,
        described.state,
        described.members.len(),
        described.coordinator
    );
    println!();
    let mut rows = vec![
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    for p in &described.partitions {
        rows.push(vec![
            described.group.clone(),
            p.topic.clone(),
            p.partition.to_string(),
            or_dash(p.committed_offset),
            or_dash(p.log_end_offset),
            or_dash(p.lag),
            or_dash(p.member_id.clone()),
            or_dash(p.client_host.clone()),
            or_dash(p.client_id.clone()),
        ]);
    }
    print_table(&rows);
}
