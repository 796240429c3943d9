//! The UDP and TCP listeners of one network's resolver.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;

use super::answer::{decide, servfail, Decision, HEADER_LEN};
use super::forward::{forward_tcp, forward_udp, frame};
use super::records::Records;
use super::{
    DnsError, MAX_TCP_CONNECTIONS, MAX_UDP_FORWARDS, TCP_IDLE_TIMEOUT, TCP_MAX_QUERIES,
    UPSTREAM_TIMEOUT,
};

/// Time a TCP client has to send the rest of a message once its length arrived, and to take
/// a reply.
const TCP_IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at finding a port free for both UDP and TCP when the caller asked for port 0.
const EPHEMERAL_TRIES: usize = 16;

/// What every task of one server needs.
struct Shared {
    network: String,
    records: Records,
    upstreams: Vec<SocketAddr>,
}

/// A network's DNS resolver; see the [module documentation](super).
pub struct DnsServer;

/// A running resolver. Dropping it stops the listeners too (without waiting); [`DnsHandle::stop`]
/// also waits until the sockets are closed.
#[derive(Debug)]
pub struct DnsHandle {
    local: SocketAddr,
    udp: JoinHandle<()>,
    tcp: JoinHandle<()>,
}

impl DnsServer {
    /// Listens on UDP and TCP `listen:port` (port 0: one ephemeral port, the same for both)
    /// and serves `network`'s names from `records`, forwarding everything else to `upstreams`.
    ///
    /// Must be called within a tokio runtime. `listen` must be assigned to a local interface
    /// (for an IPv6 gateway, past duplicate address detection or added with `nodad`). An
    /// upstream equal to the server's own address is left out (it would forward to itself).
    pub async fn start(
        listen: IpAddr,
        port: u16,
        network: &str,
        records: Records,
        upstreams: Vec<SocketAddr>,
    ) -> Result<DnsHandle, DnsError> {
        let (udp, tcp) = bind_pair(listen, port).await?;
        let local = udp.local_addr().map_err(|source| DnsError::Io {
            context: "reading the listening address",
            source,
        })?;
        let upstreams = upstreams.into_iter().filter(|u| *u != local).collect();
        let shared = Arc::new(Shared {
            network: network.to_owned(),
            records,
            upstreams,
        });
        tracing::debug!(%local, network, "dns: listening");
        Ok(DnsHandle {
            local,
            udp: tokio::spawn(serve_udp(Arc::new(udp), shared.clone())),
            tcp: tokio::spawn(serve_tcp(tcp, shared)),
        })
    }
}

impl DnsHandle {
    /// The address the server listens on, for UDP and TCP (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops the listeners and every query in progress, and waits until the sockets are closed.
    pub async fn stop(mut self) {
        self.udp.abort();
        self.tcp.abort();
        // Aborted tasks end with a cancellation error, which is the expected outcome.
        let _ = (&mut self.udp).await;
        let _ = (&mut self.tcp).await;
    }
}

impl Drop for DnsHandle {
    fn drop(&mut self) {
        self.udp.abort();
        self.tcp.abort();
    }
}

async fn bind_pair(listen: IpAddr, port: u16) -> Result<(UdpSocket, TcpListener), DnsError> {
    let tries = if port == 0 { EPHEMERAL_TRIES } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let want = SocketAddr::new(listen, port);
        let udp = UdpSocket::bind(want)
            .await
            .map_err(|source| DnsError::Bind {
                proto: "udp",
                addr: want,
                source,
            })?;
        let bound = udp.local_addr().map_err(|source| DnsError::Io {
            context: "reading the udp listening address",
            source,
        })?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            // The ephemeral port UDP got may be taken for TCP: try another one.
            Err(e) if port == 0 && e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(source) => {
                return Err(DnsError::Bind {
                    proto: "tcp",
                    addr: bound,
                    source,
                })
            }
        }
    }
    Err(DnsError::Bind {
        proto: "tcp",
        addr: SocketAddr::new(listen, port),
        source: last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)),
    })
}

async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65535];
    // Owned here, so aborting this task aborts the forwards in flight too.
    let mut forwards = JoinSet::new();
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, peer) = match received {
                    Ok(got) => got,
                    Err(e) => {
                        // Transient (e.g. ENOBUFS, or an ICMP error queued on the socket).
                        tracing::debug!(error = %e, "dns: udp receive failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let packet = &buf[..n];
                match decide(packet, &shared.network, &shared.records, true) {
                    Decision::Drop => tracing::trace!(%peer, "dns: dropped a malformed packet"),
                    Decision::Reply(reply) => {
                        if let Err(e) = socket.send_to(&reply, peer).await {
                            tracing::debug!(%peer, error = %e, "dns: udp send failed");
                        }
                    }
                    Decision::Forward(query) => {
                        if forwards.len() >= MAX_UDP_FORWARDS {
                            tracing::debug!(%peer, "dns: too many forwards in flight, dropped a query");
                            continue;
                        }
                        let packet = packet.to_vec();
                        let (socket, shared) = (socket.clone(), shared.clone());
                        forwards.spawn(async move {
                            let reply = match forward_udp(&packet, &shared.upstreams).await {
                                Some(reply) => Some(reply),
                                None => servfail(&query),
                            };
                            if let Some(reply) = reply {
                                if let Err(e) = socket.send_to(&reply, peer).await {
                                    tracing::debug!(%peer, error = %e, "dns: udp send failed");
                                }
                            }
                        });
                    }
                }
            }
            Some(_) = forwards.join_next(), if !forwards.is_empty() => {}
        }
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    // Owned here, so aborting this task closes every client connection too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(got) => got,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::debug!(error = %e, "dns: tcp accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if connections.len() >= MAX_TCP_CONNECTIONS {
                    tracing::debug!(%peer, "dns: too many tcp connections, closed one");
                    continue;
                }
                connections.spawn(serve_connection(stream, shared.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answers the queries of one TCP client in turn until it goes quiet, misbehaves or has had
/// [`TCP_MAX_QUERIES`].
async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    for _ in 0..TCP_MAX_QUERIES {
        let len = match timeout(TCP_IDLE_TIMEOUT, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            _ => return,
        };
        if len < HEADER_LEN {
            return;
        }
        let mut packet = vec![0u8; len];
        match timeout(TCP_IO_TIMEOUT, stream.read_exact(&mut packet)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let reply = match decide(&packet, &shared.network, &shared.records, false) {
            Decision::Drop => return,
            Decision::Reply(reply) => reply,
            Decision::Forward(query) => {
                let forwarded = timeout(
                    UPSTREAM_TIMEOUT * super::MAX_UPSTREAMS_TRIED as u32,
                    forward_tcp(&packet, &shared.upstreams),
                )
                .await
                .ok()
                .flatten();
                match forwarded.or_else(|| servfail(&query)) {
                    Some(reply) => reply,
                    None => return,
                }
            }
        };
        let Ok(framed) = frame(&reply) else { return };
        match timeout(TCP_IO_TIMEOUT, stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}
