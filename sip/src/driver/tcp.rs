//! TCP connections: one task per connection reads and frames messages (Content-Length, 64 KiB
//! bound) and writes what the endpoint sends to that peer. Connections are reused by peer
//! address in both directions; an outbound send to an unknown peer connects first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::message::{Message, ParseError, StreamFramer};

pub(super) enum TcpInput {
    Message(SocketAddr, Result<Message, ParseError>),
    Connected(SocketAddr, mpsc::UnboundedSender<Bytes>),
    Closed(SocketAddr),
}

pub(super) struct Connections {
    writers: HashMap<SocketAddr, mpsc::UnboundedSender<Bytes>>,
    inbound: mpsc::UnboundedSender<TcpInput>,
}

impl Connections {
    pub(super) fn new(inbound: mpsc::UnboundedSender<TcpInput>) -> Connections {
        Connections {
            writers: HashMap::new(),
            inbound,
        }
    }

    pub(super) fn register(&mut self, peer: SocketAddr, writer: mpsc::UnboundedSender<Bytes>) {
        self.writers.insert(peer, writer);
    }

    pub(super) fn remove(&mut self, peer: SocketAddr) {
        self.writers.remove(&peer);
    }

    pub(super) fn send(&mut self, peer: SocketAddr, payload: Bytes) {
        if let Some(w) = self.writers.get(&peer) {
            if w.send(payload.clone()).is_ok() {
                return;
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // Queued before the connection exists; written once connected.
        let _ = tx.send(payload);
        self.writers.insert(peer, tx);
        let inbound = self.inbound.clone();
        tokio::spawn(async move {
            match TcpStream::connect(peer).await {
                Ok(stream) => run_connection(stream, peer, rx, inbound).await,
                Err(_) => {
                    let _ = inbound.send(TcpInput::Closed(peer));
                }
            }
        });
    }
}

/// Inbound connections beyond this are closed at once (each costs a task and buffers).
const MAX_INBOUND_CONNECTIONS: usize = 10_000;
/// A connection that carries nothing from the peer for this long is closed (RFC 5626
/// keep-alives count). Long: a call over TCP may be silent in signalling for its whole length.
const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

pub(super) async fn accept_loop(listener: TcpListener, inbound: mpsc::UnboundedSender<TcpInput>) {
    let open = Arc::new(AtomicUsize::new(0));
    while let Ok((stream, peer)) = listener.accept().await {
        if open.load(Ordering::Relaxed) >= MAX_INBOUND_CONNECTIONS {
            drop(stream);
            continue;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        if inbound.send(TcpInput::Connected(peer, tx)).is_err() {
            return;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let (inbound, open) = (inbound.clone(), open.clone());
        tokio::spawn(async move {
            run_connection(stream, peer, rx, inbound).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    mut outgoing: mpsc::UnboundedReceiver<Bytes>,
    inbound: mpsc::UnboundedSender<TcpInput>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let write = async move {
        while let Some(b) = outgoing.recv().await {
            if writer.write_all(&b).await.is_err() {
                return;
            }
        }
    };
    let inbound_read = inbound.clone();
    let read = async move {
        let mut framer = StreamFramer::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match tokio::time::timeout(IDLE_TIMEOUT, reader.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) | Err(_) => return,
                Ok(Ok(n)) => framer.push(&buf[..n]),
            }
            loop {
                match framer.next_message() {
                    Ok(Some(msg)) => {
                        if inbound_read.send(TcpInput::Message(peer, Ok(msg))).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    // Framing is lost: report (for counting / a 400 when answerable) and close.
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "closing SIP TCP connection: framing lost");
                        let _ = inbound_read.send(TcpInput::Message(peer, Err(e)));
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = read => {}
        _ = write => {}
    }
    let _ = inbound.send(TcpInput::Closed(peer));
}
