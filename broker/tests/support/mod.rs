//! A minimal raw Kafka client for protocol-level tests: it speaks exactly the bytes a test asks
//! for, including malformed ones, to an in-process broker on a real socket.

#![allow(dead_code)]

pub mod groups;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use spate_broker::server::{RunningServer, ServeOptions, start};
use spate_broker::settings::BrokerSettings;
use spate_protocol::types::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A broker running in this process on ephemeral ports, with its data in a temp dir.
pub struct TestBroker {
    pub server: Option<RunningServer>,
    pub dir: tempfile::TempDir,
    settings: BrokerSettings,
    static_configs: BTreeMap<String, String>,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        TestBroker::start_with(BrokerSettings::default()).await
    }

    pub async fn start_with(settings: BrokerSettings) -> TestBroker {
        TestBroker::launch(settings, BTreeMap::new()).await
    }

    /// A broker with these broker configs (`--set KEY=VALUE` on the command line).
    pub async fn start_with_configs(configs: &[(&str, &str)]) -> TestBroker {
        let configs = configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TestBroker::launch(BrokerSettings::default(), configs).await
    }

    async fn launch(
        settings: BrokerSettings,
        static_configs: BTreeMap<String, String>,
    ) -> TestBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = start(options(dir.path(), &settings, &static_configs))
            .await
            .expect("broker starts");
        TestBroker {
            server: Some(server),
            dir,
            settings,
            static_configs,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().expect("running").kafka_addr
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr()).await
    }

    /// Stops the broker cleanly and starts it again on the same data dir and settings.
    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        let options = options(self.dir.path(), &self.settings, &self.static_configs);
        let server = start(options).await.expect("broker restarts");
        self.server = Some(server);
    }
}

fn options(
    dir: &std::path::Path,
    settings: &BrokerSettings,
    static_configs: &BTreeMap<String, String>,
) -> ServeOptions {
    ServeOptions {
        node_id: NodeId(0),
        data_dir: dir.to_path_buf(),
        kafka_listen: "127.0.0.1:0".into(),
        kafka_advertise: None,
        admin_listen: "127.0.0.1:0".into(),
        cloudevents_listen: "127.0.0.1:0".into(),
        cluster_id: None,
        rack: None,
        settings: settings.clone(),
        static_configs: static_configs.clone(),
        quorum: Default::default(),
    }
}

pub struct Client {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.expect("connect"),
            correlation_id: 0,
        }
    }

    /// Sends one request and decodes its response.
    pub async fn send<Req, Resp>(&mut self, api_key: ApiKey, version: i16, request: &Req) -> Resp
    where
        Req: Encodable,
        Resp: Decodable,
    {
        let (correlation_id, mut body) = self.send_raw_request(api_key, version, request).await;
        let header_version = if api_key == ApiKey::ApiVersions {
            0
        } else {
            api_key.response_header_version(version)
        };
        let header = ResponseHeader::decode(&mut body, header_version).expect("response header");
        assert_eq!(header.correlation_id, correlation_id);
        Resp::decode(&mut body, version).expect("response body")
    }

    /// Sends a request and returns its correlation id and the raw response frame.
    pub async fn send_raw_request<Req: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> (i32, Bytes) {
        self.correlation_id += 1;
        let correlation_id = self.correlation_id;
        let frame = encode_request(api_key, version, correlation_id, request);
        self.write_frame(&frame).await;
        let response = self.read_frame().await.expect("a response frame");
        (correlation_id, response)
    }

    pub async fn write_frame(&mut self, frame: &[u8]) {
        let mut out = BytesMut::with_capacity(frame.len() + 4);
        out.put_u32(frame.len() as u32);
        out.extend_from_slice(frame);
        self.stream.write_all(&out).await.expect("write");
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads one frame; `None` when the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let read = async {
            let mut size = [0u8; 4];
            self.stream.read_exact(&mut size).await.ok()?;
            let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
            self.stream.read_exact(&mut body).await.ok()?;
            Some(Bytes::from(body))
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("no response within 10 s")
    }

    /// True when the broker has closed the connection (reads hit EOF).
    pub async fn is_closed_by_broker(&mut self) -> bool {
        self.read_frame().await.is_none()
    }
}

pub fn encode_request<Req: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &Req,
) -> Bytes {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("spate-test")));
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("header encodes");
    request.encode(&mut buf, version).expect("request encodes");
    buf.freeze()
}

/// Reads the i16 error code at the start of an ApiVersions v0 body (after the v0 header).
pub fn api_versions_v0_error(mut frame: Bytes) -> (i32, i16) {
    let correlation_id = frame.get_i32();
    (correlation_id, frame.get_i16())
}

/// One batch of keyed records (values `value-of-<key>`), all stamped `timestamp`, compressed with
/// `compression`, optionally from an idempotent producer `(id, epoch, base sequence)`.
pub fn keyed_batch(
    timestamp: i64,
    keys: &[&str],
    producer: Option<(i64, i16, i32)>,
    compression: spate_protocol::records::Compression,
) -> Bytes {
    use spate_protocol::records::RecordBatchBuilder;
    use spate_protocol::types::{ProducerEpoch, ProducerId};
    let mut builder = RecordBatchBuilder::new(compression);
    if let Some((id, epoch, sequence)) = producer {
        builder = builder.producer(ProducerId(id), ProducerEpoch(epoch), sequence);
    }
    for key in keys {
        builder
            .append(
                timestamp,
                Some(Bytes::copy_from_slice(key.as_bytes())),
                Some(Bytes::from(format!("value-of-{key}"))),
                Vec::new(),
            )
            .expect("record fits");
    }
    builder.build().expect("batch builds")
}
