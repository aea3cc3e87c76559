//! TCP transport between quorum members, on the controller port.
//!
//! Each node dials every peer it sends to and keeps one outbound connection per peer, fed by a
//! bounded queue: when the queue is full a message is dropped, which raft tolerates (it resends)
//! and forwarded commands tolerate (they are resent on a timer and deduplicated). A lost
//! connection is redialled with exponential backoff. Accepted connections carry the peer's raft
//! messages and forwarded commands in; answers to forwarded commands go back on the connection
//! the command came on (a joining learner's address is not known yet when it asks to join).
//!
//! Every connection opens with a hello (cluster id, node id, voter ids). A node of another
//! cluster, or one configured with other voters, is answered with a refusal and disconnected; a
//! frame that does not decode closes its connection and nothing else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use spate_protocol::types::NodeId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::node::PeerMessage;
use crate::wire::{
    self, Body, FRAME_LENGTH_BYTES, Frame, Hello, PEER_FRAME_SIZE_BYTES_MAX, PEER_PROTOCOL_VERSION,
    Refused, WireError,
};

/// Frames queued per outbound connection. Raft sends at most a few messages per tick to a peer;
/// a queue this deep only fills while the peer is unreachable, and then dropping is right.
pub const PEER_QUEUE_FRAMES_MAX: usize = 1024;
/// Accepted connections served at once. A cluster needs one per peer; the margin absorbs
/// reconnects whose old connection has not closed yet.
pub const INBOUND_CONNECTIONS_MAX: usize = 256;
/// First wait before redialling a peer, in ms.
pub const RECONNECT_BACKOFF_MIN_MS: u64 = 50;
/// Longest wait between redials, in ms; well below the election timeout so a restarted leader
/// candidate is heard quickly.
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 1_000;
/// How long a dial may take, in ms.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// How long an accepted connection may take to say hello, in ms.
pub const HELLO_TIMEOUT_MS: u64 = 5_000;

/// What the transport hands to the node's driver.
#[derive(Debug)]
pub enum Inbound {
    /// A message from a peer.
    Message(NodeId, PeerMessage),
    /// A peer refused this node's hello: a configuration mismatch.
    Refused {
        /// The refusing peer.
        by: NodeId,
        /// Its reason.
        reason: String,
    },
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the {PEER_FRAME_SIZE_BYTES_MAX}-byte limit")]
    TooLarge(usize),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// Reads one frame body; `None` at a clean end of stream.
async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
) -> Result<Option<Vec<u8>>, ConnectionError> {
    let mut len = [0u8; FRAME_LENGTH_BYTES];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > PEER_FRAME_SIZE_BYTES_MAX {
        return Err(ConnectionError::TooLarge(len));
    }
    // Grow with the data actually received, not with what the length field claims.
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let read = reader.take(len as u64).read_to_end(&mut body).await?;
    if read != len {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    Ok(Some(body))
}

/// A serial number and the frame queue of an accepted connection's writer.
type AcceptedWriter = (u64, mpsc::Sender<Vec<u8>>);

struct Outbound {
    address: String,
    frames: mpsc::Sender<Vec<u8>>,
}

struct Shared {
    hello: Hello,
    voter_ids: Vec<i32>,
    deliver: Deliver,
    outbound: Mutex<HashMap<NodeId, Outbound>>,
    /// The writer of the newest accepted connection from each peer, with a serial number so that
    /// an old connection closing does not remove a newer one.
    accepted: Mutex<HashMap<NodeId, AcceptedWriter>>,
    next_serial: Mutex<u64>,
    runtime: tokio::runtime::Handle,
    shutdown: watch::Receiver<bool>,
}

/// Where the transport hands what it receives. It must not block: the node's driver drains it.
pub type Deliver = Box<dyn Fn(Inbound) + Send + Sync>;

/// The transport of one node. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    shared: Arc<Shared>,
}

impl Transport {
    /// Starts accepting on `listener`; messages go to `inbox`.
    pub fn start(
        listener: TcpListener,
        hello: Hello,
        deliver: Deliver,
        runtime: tokio::runtime::Handle,
        shutdown: watch::Receiver<bool>,
    ) -> Transport {
        let mut voter_ids = hello.voter_ids.clone();
        voter_ids.sort_unstable();
        let shared = Arc::new(Shared {
            hello,
            voter_ids,
            deliver,
            outbound: Mutex::new(HashMap::new()),
            accepted: Mutex::new(HashMap::new()),
            next_serial: Mutex::new(0),
            runtime: runtime.clone(),
            shutdown,
        });
        runtime.spawn(accept_loop(listener, shared.clone()));
        Transport { shared }
    }

    /// Sends a message to `to` at `address` (its controller address). Never blocks: a message
    /// that finds the queue full is dropped.
    pub fn send(&self, to: NodeId, address: Option<&str>, message: &PeerMessage) {
        let frame = wire::encode_peer(message);
        if matches!(message, PeerMessage::ForwardReply { .. }) {
            let accepted = self
                .shared
                .accepted
                .lock()
                .get(&to)
                .map(|(_, tx)| tx.clone());
            if let Some(tx) = accepted
                && tx.try_send(frame.clone()).is_ok()
            {
                return;
            }
        }
        let Some(address) = address else {
            tracing::debug!(peer = %to, "no address for a peer; dropping a message");
            return;
        };
        let mut outbound = self.shared.outbound.lock();
        let link = outbound.get(&to).filter(|link| link.address == address);
        let frames = match link {
            Some(link) if !link.frames.is_closed() => link.frames.clone(),
            _ => {
                let (tx, rx) = mpsc::channel(PEER_QUEUE_FRAMES_MAX);
                self.shared.runtime.spawn(run_outbound(
                    to,
                    address.to_string(),
                    rx,
                    self.shared.clone(),
                ));
                outbound.insert(
                    to,
                    Outbound {
                        address: address.to_string(),
                        frames: tx.clone(),
                    },
                );
                tx
            }
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = frames.try_send(frame) {
            tracing::debug!(peer = %to, "peer queue full; dropping a message");
        }
    }
}

fn deliver(shared: &Shared, inbound: Inbound) {
    (shared.deliver)(inbound);
}

/// Dials `to` and writes its queued frames, redialling with backoff; ends when the queue's
/// sender is gone (the address changed) or on shutdown.
async fn run_outbound(
    to: NodeId,
    address: String,
    mut frames: mpsc::Receiver<Vec<u8>>,
    shared: Arc<Shared>,
) {
    let mut shutdown = shared.shutdown.clone();
    let mut backoff_ms = RECONNECT_BACKOFF_MIN_MS;
    let hello = wire::encode_frame(Body::Hello(shared.hello.clone()));
    loop {
        if *shutdown.borrow() {
            return;
        }
        let connected = tokio::time::timeout(
            Duration::from_millis(CONNECT_TIMEOUT_MS),
            TcpStream::connect(&address),
        )
        .await;
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(peer = %to, %address, %error, "cannot reach a quorum peer");
                if !backoff(&mut shutdown, &mut frames, &mut backoff_ms).await {
                    return;
                }
                continue;
            }
            Err(_) => {
                tracing::debug!(peer = %to, %address, "dialling a quorum peer timed out");
                if !backoff(&mut shutdown, &mut frames, &mut backoff_ms).await {
                    return;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        backoff_ms = RECONNECT_BACKOFF_MIN_MS;
        let (mut reader, writer) = stream.into_split();
        let mut writer = BufWriter::new(writer);
        // Reading and writing run as two long-lived loops: a frame half read is never dropped
        // because a frame to send arrived (a select over one-shot reads would lose it).
        let result: Result<(), ConnectionError> = async {
            writer.write_all(&hello).await?;
            writer.flush().await?;
            let reading = async {
                loop {
                    let Some(frame) = read_frame(&mut reader).await? else {
                        return Err(ConnectionError::Protocol(
                            "the peer closed the connection".into(),
                        ));
                    };
                    match wire::decode_frame(&frame)? {
                        Frame::Refused(reason) => {
                            deliver(
                                &shared,
                                Inbound::Refused {
                                    by: to,
                                    reason: reason.clone(),
                                },
                            );
                            return Err(ConnectionError::Protocol(format!("refused: {reason}")));
                        }
                        Frame::Peer(message) => deliver(&shared, Inbound::Message(to, message)),
                        Frame::Hello(_) => {
                            return Err(ConnectionError::Protocol("unexpected hello".into()));
                        }
                    }
                }
            };
            let writing = async {
                while let Some(frame) = frames.recv().await {
                    writer.write_all(&frame).await?;
                    // Coalesce whatever else is queued into the same write.
                    while let Ok(frame) = frames.try_recv() {
                        writer.write_all(&frame).await?;
                    }
                    writer.flush().await?;
                }
                Ok::<(), ConnectionError>(())
            };
            tokio::select! {
                _ = shutdown.changed() => Ok(()),
                read = reading => read,
                written = writing => written,
            }
        }
        .await;
        if *shutdown.borrow() || frames.is_closed() {
            return;
        }
        match result {
            // The queue's sender is gone (the address changed): this link is retired.
            Ok(()) => return,
            Err(error) => {
                tracing::debug!(peer = %to, %address, %error, "quorum connection lost");
                if !backoff(&mut shutdown, &mut frames, &mut backoff_ms).await {
                    return;
                }
            }
        }
    }
}

/// Waits before a redial. Frames queued meanwhile are dropped: raft resends what still
/// matters, and stale heartbeats only confuse a peer. Returns false to stop.
async fn backoff(
    shutdown: &mut watch::Receiver<bool>,
    frames: &mut mpsc::Receiver<Vec<u8>>,
    backoff_ms: &mut u64,
) -> bool {
    let wait = Duration::from_millis(*backoff_ms);
    *backoff_ms = (*backoff_ms * 2).min(RECONNECT_BACKOFF_MAX_MS);
    let sleep = tokio::time::sleep(wait);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            _ = shutdown.changed() => return false,
            frame = frames.recv() => {
                if frame.is_none() {
                    return false;
                }
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(INBOUND_CONNECTIONS_MAX));
    let mut shutdown = shared.shutdown.clone();
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve_inbound(stream, shared).await {
                        tracing::warn!(%peer, %error, "closed a quorum connection");
                    }
                    drop(permit);
                });
            }
            Err(error) => {
                tracing::warn!(%error, "controller listener accept failed");
                tokio::time::sleep(Duration::from_millis(RECONNECT_BACKOFF_MIN_MS)).await;
            }
        }
    }
}

/// Why a hello is refused, if it is.
fn check_hello(shared: &Shared, hello: &Hello) -> Option<String> {
    if hello.protocol_version != PEER_PROTOCOL_VERSION {
        return Some(format!(
            "node {} speaks quorum protocol {}, this node {PEER_PROTOCOL_VERSION}",
            hello.node_id, hello.protocol_version
        ));
    }
    if hello.cluster_id != shared.hello.cluster_id {
        return Some(format!(
            "node {} belongs to cluster {}, but node {} belongs to cluster {}",
            hello.node_id, hello.cluster_id, shared.hello.node_id, shared.hello.cluster_id
        ));
    }
    let mut voters = hello.voter_ids.clone();
    voters.sort_unstable();
    if voters != shared.voter_ids {
        return Some(format!(
            "node {} is configured with voters {voters:?}, but node {} with {:?}",
            hello.node_id, shared.hello.node_id, shared.voter_ids
        ));
    }
    if hello.node_id == shared.hello.node_id {
        return Some(format!(
            "node {} connected to itself, or two nodes share id {}",
            hello.node_id, hello.node_id
        ));
    }
    None
}

async fn serve_inbound(stream: TcpStream, shared: Arc<Shared>) -> Result<(), ConnectionError> {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let mut writer = BufWriter::new(writer);
    let first = tokio::time::timeout(
        Duration::from_millis(HELLO_TIMEOUT_MS),
        read_frame(&mut reader),
    )
    .await
    .map_err(|_| ConnectionError::Protocol("no hello in time".into()))??;
    let Some(first) = first else { return Ok(()) };
    let Frame::Hello(hello) = wire::decode_frame(&first)? else {
        return Err(ConnectionError::Protocol(
            "the first frame is not a hello".into(),
        ));
    };
    if let Some(reason) = check_hello(&shared, &hello) {
        tracing::error!(%reason, "refusing a quorum peer");
        let refusal = wire::encode_frame(Body::Refused(Refused {
            reason: reason.clone(),
        }));
        writer.write_all(&refusal).await?;
        writer.flush().await?;
        return Err(ConnectionError::Protocol(format!("refused: {reason}")));
    }
    let peer = NodeId(hello.node_id);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(PEER_QUEUE_FRAMES_MAX);
    let serial = {
        let mut next = shared.next_serial.lock();
        *next += 1;
        *next
    };
    shared.accepted.lock().insert(peer, (serial, tx));
    let mut shutdown = shared.shutdown.clone();
    // Two long-lived loops, as on the dialling side, so no half-read frame is ever dropped.
    let reading = async {
        loop {
            let Some(frame) = read_frame(&mut reader).await? else {
                return Ok(());
            };
            match wire::decode_frame(&frame)? {
                Frame::Peer(message) => deliver(&shared, Inbound::Message(peer, message)),
                Frame::Hello(_) | Frame::Refused(_) => {
                    return Err(ConnectionError::Protocol(format!(
                        "node {peer} sent a second hello or a refusal mid-stream"
                    )));
                }
            }
        }
    };
    let writing = async {
        while let Some(frame) = rx.recv().await {
            writer.write_all(&frame).await?;
            while let Ok(frame) = rx.try_recv() {
                writer.write_all(&frame).await?;
            }
            writer.flush().await?;
        }
        Ok::<(), ConnectionError>(())
    };
    let result = tokio::select! {
        _ = shutdown.changed() => Ok(()),
        read = reading => read,
        written = writing => written,
    };
    let mut accepted = shared.accepted.lock();
    if accepted.get(&peer).is_some_and(|(s, _)| *s == serial) {
        accepted.remove(&peer);
    }
    result
}

/// This node's hello.
pub fn hello(cluster_id: &str, node_id: NodeId, voters: &[NodeId]) -> Hello {
    let mut voter_ids: Vec<i32> = voters.iter().map(|v| v.0).collect();
    voter_ids.sort_unstable();
    Hello {
        protocol_version: PEER_PROTOCOL_VERSION,
        cluster_id: cluster_id.to_string(),
        node_id: node_id.0,
        voter_ids,
    }
}
