//! One client connection: read frames, decode, dispatch in order, answer in order.
//!
//! Requests are dispatched strictly one after another, so their side effects (appends above all)
//! happen in arrival order, as Kafka guarantees per connection. A request may finish *later*
//! than it was dispatched (an `acks=all` produce waiting for replication, a fetch waiting for
//! data): its response is then a deferred future, and the writer task sends responses in request
//! order regardless of which finishes first. The reader stops reading when
//! [`IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX`] responses are outstanding, which is the per-connection
//! backpressure.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use spate_protocol::frame::{FrameCodec, FrameError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::Broker;
use crate::dispatch::{Reply, RequestContext};

/// Responses a connection may owe before the broker stops reading from it. Clients pipeline at
/// most 5 by default (`max.in.flight.requests.per.connection`); headroom above that keeps
/// well-behaved clients from ever waiting on it.
pub const IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX: usize = 32;

/// Serves one accepted connection until the peer closes it, it misbehaves, or shutdown.
pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
    }
    let (read_half, mut write_half) = stream.into_split();
    let mut frames = FramedRead::new(
        read_half,
        FrameCodec::new(broker.settings.socket_request_max_bytes),
    );
    let (tx, mut rx) = mpsc::channel::<Reply>(IN_FLIGHT_REQUESTS_PER_CONNECTION_MAX);

    let writer = tokio::spawn(async move {
        let mut out = BytesMut::new();
        while let Some(reply) = rx.recv().await {
            let body = match reply {
                Reply::Ready(body) => body,
                Reply::Deferred(future) => future.await,
                Reply::None => continue,
            };
            out.clear();
            out.reserve(4 + body.len());
            out.put_u32(body.len() as u32);
            // Write the prefix and the body without copying the body: it can be megabytes of
            // record data.
            let prefix: Bytes = out.split().freeze();
            if write_half.write_all(&prefix).await.is_err()
                || write_half.write_all(&body).await.is_err()
            {
                break;
            }
        }
        let _ = write_half.shutdown().await;
    });

    let context = RequestContext {
        peer,
        client_id: String::new(),
    };
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => break,
            frame = frames.next() => frame,
        };
        let frame = match frame {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(FrameError::Io(error))) => {
                tracing::debug!(%peer, %error, "connection read failed");
                break;
            }
            Some(Err(error)) => {
                tracing::warn!(%peer, %error, "closing connection: bad frame");
                break;
            }
        };
        match broker.dispatch(&context, frame).await {
            Ok(reply) => {
                if tx.send(reply).await.is_err() {
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(%peer, %error, "closing connection: invalid request");
                break;
            }
        }
    }
    // Let the writer flush what is already owed, then stop.
    drop(tx);
    let _ = writer.await;
}
