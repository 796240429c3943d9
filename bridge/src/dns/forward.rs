//! Forwarding of queries that are not about this network's containers.
//!
//! The query goes upstream byte for byte except for its id, which is replaced by a random one;
//! a reply counts only if it comes from that upstream (connected socket), carries that id, has
//! the QR bit and repeats the question. The client's id is put back before the reply is relayed.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout, Instant};

use super::answer::{question_span, HEADER_LEN};
use super::{MAX_UPSTREAMS_TRIED, UPSTREAM_TIMEOUT};

/// Forwards a UDP query to each upstream in turn; the first valid reply wins.
pub(crate) async fn forward_udp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for &upstream in upstreams.iter().take(MAX_UPSTREAMS_TRIED) {
        match udp_exchange(query, upstream).await {
            Ok(Some(reply)) => return Some(reply),
            Ok(None) => tracing::debug!(%upstream, "dns: upstream gave no valid answer in time"),
            Err(e) => tracing::debug!(%upstream, error = %e, "dns: upstream failed"),
        }
    }
    None
}

/// Forwards a TCP query to each upstream in turn, over TCP.
pub(crate) async fn forward_tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for &upstream in upstreams.iter().take(MAX_UPSTREAMS_TRIED) {
        match timeout(UPSTREAM_TIMEOUT, tcp_exchange(query, upstream)).await {
            Ok(Ok(Some(reply))) => return Some(reply),
            Ok(Ok(None)) => tracing::debug!(%upstream, "dns: upstream gave an invalid answer"),
            Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "dns: upstream failed"),
            Err(_) => tracing::debug!(%upstream, "dns: upstream timed out"),
        }
    }
    None
}

/// One UDP round trip. `Ok(None)`: no valid reply before the timeout.
async fn udp_exchange(query: &[u8], upstream: SocketAddr) -> io::Result<Option<Vec<u8>>> {
    let (sent, id) = with_random_id(query)?;
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // A fresh socket per query: a random source port, and a connected socket only accepts
    // datagrams from the upstream and reports its ICMP "port unreachable" at once.
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(&sent).await?;
    let deadline = Instant::now() + UPSTREAM_TIMEOUT;
    let mut buf = vec![0u8; 65535];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining == Duration::ZERO {
            return Ok(None);
        }
        let n = match timeout(remaining, socket.recv(&mut buf)).await {
            Ok(result) => result?,
            Err(_) => return Ok(None),
        };
        if let Some(reply) = accept_reply(&sent, &buf[..n], query) {
            return Ok(Some(reply));
        }
        tracing::debug!(%upstream, id, "dns: ignored a reply that does not match the query");
    }
}

/// One TCP exchange (the caller bounds it in time). `Ok(None)`: the reply did not match.
async fn tcp_exchange(query: &[u8], upstream: SocketAddr) -> io::Result<Option<Vec<u8>>> {
    let (sent, _) = with_random_id(query)?;
    let mut stream = TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    stream.write_all(&frame(&sent)?).await?;
    let len = stream.read_u16().await?;
    let mut reply = vec![0u8; usize::from(len)];
    stream.read_exact(&mut reply).await?;
    Ok(accept_reply(&sent, &reply, query))
}

/// A copy of `query` with a random id, and that id.
fn with_random_id(query: &[u8]) -> io::Result<(Vec<u8>, u16)> {
    if query.len() < HEADER_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "query too short",
        ));
    }
    let id: u16 = rand::random();
    let mut sent = query.to_vec();
    sent[..2].copy_from_slice(&id.to_be_bytes());
    Ok((sent, id))
}

/// The reply with the client's id put back, if `reply` answers `sent`: same id, QR set, one
/// question equal (ignoring ASCII case) to the one sent.
fn accept_reply(sent: &[u8], reply: &[u8], client_query: &[u8]) -> Option<Vec<u8>> {
    if reply.len() < HEADER_LEN || reply[..2] != sent[..2] || reply[2] & 0x80 == 0 {
        return None;
    }
    let qdcount = |m: &[u8]| u16::from_be_bytes([m[4], m[5]]);
    if qdcount(reply) != qdcount(sent) {
        return None;
    }
    if qdcount(sent) == 1 {
        let (q, r) = (question_span(sent)?, question_span(reply)?);
        if !sent[q].eq_ignore_ascii_case(&reply[r]) {
            return None;
        }
    }
    let mut out = reply.to_vec();
    out[..2].copy_from_slice(&client_query[..2]);
    Some(out)
}

/// A DNS-over-TCP frame: two bytes of length, then the message.
pub(crate) fn frame(message: &[u8]) -> io::Result<Vec<u8>> {
    let len = u16::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "dns message over 65535 bytes"))?;
    let mut out = Vec::with_capacity(message.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // id 0xabcd, RD, one question "a." A IN
    const QUERY: &[u8] =
        b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01";

    #[test]
    fn reply_checks() {
        let (sent, id) = with_random_id(QUERY).unwrap();
        assert_eq!(&sent[..2], &id.to_be_bytes());
        assert_eq!(&sent[2..], &QUERY[2..]);
        let mut good = sent.clone();
        good[2] |= 0x80;
        good[12 + 1] = b'A'; // case differs: still the same question
        let relayed = accept_reply(&sent, &good, QUERY).unwrap();
        assert_eq!(&relayed[..2], b"\xab\xcd");
        let mut not_response = sent.clone();
        not_response[2] &= 0x7f;
        assert!(accept_reply(&sent, &not_response, QUERY).is_none());
        let mut wrong_id = good.clone();
        wrong_id[0] ^= 1;
        assert!(accept_reply(&sent, &wrong_id, QUERY).is_none());
        let mut wrong_q = good.clone();
        wrong_q[13] = b'b';
        assert!(accept_reply(&sent, &wrong_q, QUERY).is_none());
        assert!(accept_reply(&sent, &good[..5], QUERY).is_none());
        assert!(with_random_id(b"short").is_err());
    }

    #[test]
    fn framing() {
        assert_eq!(frame(b"abc").unwrap(), b"\x00\x03abc");
        assert!(frame(&vec![0u8; 65536]).is_err());
    }
}
