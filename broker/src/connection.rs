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

use futures::StreamExt;
use spate_protocol::frame::{FrameCodec, FrameError};
use spate_storage::FileRegion;
use std::io::{self, IoSlice};

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::Broker;
use crate::dispatch::{Reply, RequestContext};
use crate::response_frame::{ResponseFrame, ZERO_COPY_THRESHOLD_BYTES};

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
        while let Some(reply) = rx.recv().await {
            let (frame, then_close) = match reply {
                Reply::Ready(frame) => (frame, false),
                Reply::ReadyThenClose(frame) => (frame, true),
                Reply::Deferred(future) => (future.await, false),
                Reply::None => continue,
            };
            if frame.is_empty() || write_frame(&mut write_half, &frame).await.is_err() || then_close
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
                let then_close = matches!(reply, Reply::ReadyThenClose(_));
                if tx.send(reply).await.is_err() || then_close {
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

/// Writes the size prefix and every chunk of `frame`. Large record slices that come from a
/// segment go with `sendfile` from the segment file, so the kernel moves them from the page
/// cache to the socket without a copy through user memory (Kafka sends its `FileRecords` the
/// same way); the rest goes with vectored writes, the chunks held by reference.
async fn write_frame(out: &mut OwnedWriteHalf, frame: &ResponseFrame) -> io::Result<()> {
    let prefix = (frame.len() as u32).to_be_bytes();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(frame.chunks().len() + 1);
    parts.push(&prefix);
    parts.extend(frame.chunks().iter().map(|c| c.as_ref()));
    let mut pending = 0;
    for index in 0..parts.len() {
        if parts[index].len() < ZERO_COPY_THRESHOLD_BYTES {
            continue;
        }
        if let Some(region) = spate_storage::file_region(parts[index]) {
            write_all_vectored(out, &parts[pending..index]).await?;
            send_region(out.as_ref(), &region).await?;
            pending = index + 1;
        }
    }
    write_all_vectored(out, &parts[pending..]).await
}

/// Writes every byte of `parts` with as few `writev` calls as the socket allows.
async fn write_all_vectored(out: &mut OwnedWriteHalf, parts: &[&[u8]]) -> io::Result<()> {
    let (mut index, mut offset) = (0, 0);
    while index < parts.len() {
        let slices: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&parts[index][offset..]))
            .chain(parts[index + 1..].iter().map(|p| IoSlice::new(p)))
            .take(IOV_MAX_PER_WRITE)
            .collect();
        let mut written = out.write_vectored(&slices).await?;
        if written == 0 && slices.iter().any(|s| !s.is_empty()) {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while index < parts.len() {
            let left = parts[index].len() - offset;
            if written >= left {
                written -= left;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                break;
            }
        }
    }
    Ok(())
}

/// Sends a region of a segment file to the socket with `sendfile`, waiting whenever the socket
/// buffer is full. A file that ends before the region does (it never should: segment bytes are
/// never shrunk away under a reader) fails the write, which closes the connection, as Kafka does
/// when its `FileRecords` turn out shorter than the response it announced.
async fn send_region(socket: &TcpStream, region: &FileRegion) -> io::Result<()> {
    let mut position = region.position();
    let end = position + region.len() as u64;
    while position < end {
        socket.writable().await?;
        let count = usize::try_from(end - position).unwrap_or(usize::MAX);
        let sent = socket.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(socket, region.file(), Some(&mut position), count)
                .map_err(io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file ended inside the records being sent",
                ));
            }
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Slices handed to one `writev` (Linux's IOV_MAX is 1024).
const IOV_MAX_PER_WRITE: usize = 512;
