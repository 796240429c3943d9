//! Container name resolution: berthd's DNS resolver, one per network.
//!
//! berthd runs one [`DnsServer`] per user network, listening on UDP and TCP port 53 of the
//! network's gateway address (the address the containers' `/etc/resolv.conf` names). It answers:
//!
//! - **Names on this network** — container names and aliases recorded in [`Records`] under the
//!   server's network — from memory: `A` with the IPv4 addresses, `AAAA` with the IPv6 ones,
//!   authoritative, TTL 0 (a removed or re-addressed container is never served stale from a
//!   cache). A known name asked for a type it has nothing of (`AAAA` for a v4-only container,
//!   `MX`, `TXT`, …) gets NOERROR with an empty answer, never NXDOMAIN, so that resolvers do not
//!   give up on the other family. `ANY` gets both families.
//! - **Everything else** is forwarded, byte for byte except for the message id, to the upstream
//!   resolvers (the host's, see [`host_upstreams`]): UDP queries over UDP, TCP queries over TCP,
//!   each upstream in turn with a 2 s timeout. When none answers, the client gets SERVFAIL.
//!
//! Matching: names compare case-insensitively, with or without the trailing dot. A name also
//! matches with the network's name as a search suffix: on network `mynet`, `web.mynet` resolves
//! like `web` (the name podman's aardvark-dns gives as `web.dns.podman`); an exact match wins
//! over the suffix form. Records are per network: a server only ever looks at its own network's
//! names, so containers of one network cannot learn the addresses of another's.
//!
//! Robustness: a packet that does not parse as a DNS query is dropped (UDP) or ends the
//! connection (TCP); a parseable query that is not a plain one-question QUERY gets FORMERR or
//! NOTIMP. Work is bounded: at most [`MAX_UDP_FORWARDS`] UDP forwards in flight (more are dropped,
//! the client retries), at most [`MAX_TCP_CONNECTIONS`] TCP connections (more are closed at
//! once), each with an idle timeout, a per-message read timeout and a query cap; upstream
//! replies are checked (source, id, question) before they are relayed, and the id sent upstream
//! is random, not the client's, so an off-path guess must hit both the port and the id.
//!
//! Not answered locally (forwarded like any other unknown name): reverse (`PTR`) lookups of
//! container addresses.

mod answer;
mod forward;
mod records;
mod resolv;
mod server;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub use records::Records;
pub use resolv::host_upstreams;
pub use server::{DnsHandle, DnsServer};

/// TTL of the answers for container names: 0, so that no cache keeps a stale address.
pub const LOCAL_TTL: u32 = 0;
/// How long one upstream has to answer (UDP round trip, or TCP connect + exchange).
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this many upstreams are tried for one query (glibc's MAXNS).
pub const MAX_UPSTREAMS_TRIED: usize = 3;
/// UDP queries being forwarded at once; further ones are dropped until one finishes.
pub const MAX_UDP_FORWARDS: usize = 256;
/// TCP client connections open at once; further ones are closed on accept.
pub const MAX_TCP_CONNECTIONS: usize = 64;
/// A TCP client connection idle (no new query) for this long is closed.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Queries answered on one TCP connection before it is closed.
pub const TCP_MAX_QUERIES: usize = 1000;

/// Errors of the DNS resolver.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A listening socket could not be bound.
    #[error("dns: cannot listen on {proto} {addr}: {source} (is the address assigned to a local interface and the port free?)")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// Another socket operation failed while setting up the listeners.
    #[error("dns: {context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: io::Error,
    },
}
