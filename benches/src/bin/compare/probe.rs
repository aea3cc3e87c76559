//! A few Kafka requests on raw sockets, for what a client library would blur: the startup probe
//! (the first produce a fresh broker acknowledges, to the millisecond) and many idle clients.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use spate_protocol::records::{Compression, RecordBatchBuilder};

/// Socket timeout of one probe request.
const PROBE_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect timeout of one attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// Largest response a probe accepts.
const RESPONSE_SIZE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Metadata v9 (flexible, with auto-creation) and Produce v9: served by Kafka 4.x and Spate.
const METADATA_VERSION: i16 = 9;
const PRODUCE_VERSION: i16 = 9;
/// ApiVersions v3: what current clients send first.
const API_VERSIONS_VERSION: i16 = 3;

fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("bad address {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to nothing"))
}

/// Whether a TCP connection to `addr` succeeds.
pub fn can_connect(addr: &str) -> bool {
    resolve(addr)
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, CONNECT_TIMEOUT).ok())
        .is_some()
}

fn connect(addr: &str) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&resolve(addr)?, CONNECT_TIMEOUT)
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(PROBE_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends one request and decodes its response.
fn call<Req: Encodable, Resp: Decodable>(
    stream: &mut TcpStream,
    api_key: ApiKey,
    version: i16,
    body: &Req,
) -> Result<Resp> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("spate-compare")))
        .encode(&mut buf, api_key.request_header_version(version))
        .context("cannot encode the request header")?;
    body.encode(&mut buf, version)
        .context("cannot encode the request")?;
    let mut frame = Vec::with_capacity(buf.len() + 4);
    frame.extend_from_slice(&(buf.len() as u32).to_be_bytes());
    frame.extend_from_slice(&buf);
    stream.write_all(&frame)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = u32::from_be_bytes(size) as usize;
    if size > RESPONSE_SIZE_BYTES_MAX {
        bail!("response of {size} bytes is too large");
    }
    let mut body = vec![0u8; size];
    stream.read_exact(&mut body)?;
    let mut body = Bytes::from(body);
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    ResponseHeader::decode(&mut body, header_version).context("bad response header")?;
    Resp::decode(&mut body, version).context("bad response body")
}

/// One produce with `acks=all` of one small record to partition 0 of `topic` (auto-created by
/// the Metadata request), sent to the partition's leader. `Ok` only when acknowledged without
/// error.
pub fn produce_once(bootstrap: &str, topic: &str) -> Result<()> {
    let first = bootstrap.split(',').next().unwrap_or(bootstrap);
    let mut stream = connect(first)?;
    let name = TopicName(StrBytes::from_string(topic.to_owned()));
    let metadata: MetadataResponse = call(
        &mut stream,
        ApiKey::Metadata,
        METADATA_VERSION,
        &MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name.clone())),
            ]))
            .with_allow_auto_topic_creation(true),
    )?;
    let topic_meta = metadata.topics.first().context("no topic in Metadata")?;
    if topic_meta.error_code != 0 {
        bail!("Metadata error {} for {topic}", topic_meta.error_code);
    }
    let partition = topic_meta
        .partitions
        .iter()
        .find(|p| p.partition_index == 0)
        .context("no partition 0 yet")?;
    if partition.error_code != 0 || partition.leader_id.0 < 0 {
        bail!(
            "partition 0 has no leader yet (error {})",
            partition.error_code
        );
    }
    let leader = metadata
        .brokers
        .iter()
        .find(|b| b.node_id == partition.leader_id)
        .context("the leader is not among the brokers")?;
    let leader_addr = format!("{}:{}", leader.host.as_str(), leader.port);
    let mut stream = if leader_addr == first {
        stream
    } else {
        connect(&leader_addr)?
    };
    let mut builder = RecordBatchBuilder::new(Compression::None);
    builder
        .append(0, None, Some(Bytes::from_static(b"startup probe")), vec![])
        .context("cannot build the probe record")?;
    let records = builder.build().context("cannot build the probe batch")?;
    let response: ProduceResponse = call(
        &mut stream,
        ApiKey::Produce,
        PRODUCE_VERSION,
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(PROBE_IO_TIMEOUT.as_millis() as i32)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(name)
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(records)),
                    ]),
            ]),
    )?;
    let code = response
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .map(|p| p.error_code)
        .context("empty Produce response")?;
    if code != 0 {
        bail!("Produce error {code}");
    }
    Ok(())
}

/// Waits until every one of `partitions` partitions of `topic` has a leader in the Metadata
/// that `bootstrap`'s first node answers. CreateTopics may answer before the partitions are
/// ready (Kafka's does), and a producer started then measures leader elections, not throughput.
pub fn wait_topic_ready(
    bootstrap: &str,
    topic: &str,
    partitions: u32,
    timeout: Duration,
) -> Result<()> {
    let first = bootstrap.split(',').next().unwrap_or(bootstrap);
    let deadline = std::time::Instant::now() + timeout;
    let name = TopicName(StrBytes::from_string(topic.to_owned()));
    let mut last = String::from("no answer");
    while std::time::Instant::now() < deadline {
        let ready = connect(first).and_then(|mut stream| {
            let metadata: MetadataResponse = call(
                &mut stream,
                ApiKey::Metadata,
                METADATA_VERSION,
                &MetadataRequest::default()
                    .with_topics(Some(vec![
                        MetadataRequestTopic::default().with_name(Some(name.clone())),
                    ]))
                    .with_allow_auto_topic_creation(false),
            )?;
            let led = metadata
                .topics
                .first()
                .filter(|t| t.error_code == 0)
                .map_or(0, |t| {
                    t.partitions
                        .iter()
                        .filter(|p| p.error_code == 0 && p.leader_id.0 >= 0)
                        .count()
                });
            Ok(led)
        });
        match ready {
            Ok(led) if led >= partitions as usize => return Ok(()),
            Ok(led) => last = format!("{led} of {partitions} partitions have a leader"),
            Err(error) => last = format!("{error:#}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("topic {topic} not ready within {timeout:?}: {last}")
}

/// Opens `count` client connections to `addr`, each past its ApiVersions handshake, and
/// returns them (idle until dropped).
pub fn open_idle_clients(addr: &str, count: usize) -> Result<Vec<TcpStream>> {
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = connect(addr).with_context(|| format!("client {i}"))?;
        let response: ApiVersionsResponse = call(
            &mut stream,
            ApiKey::ApiVersions,
            API_VERSIONS_VERSION,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("spate-compare"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        )
        .with_context(|| format!("ApiVersions of client {i}"))?;
        if response.error_code != 0 {
            bail!("ApiVersions error {} for client {i}", response.error_code);
        }
        clients.push(stream);
    }
    Ok(clients)
}
