//! The host's resolvers, as berthd's upstreams.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::path::Path;

/// The `nameserver` entries of the host's resolv.conf (usually `/etc/resolv.conf`), port 53,
/// in file order, without duplicates, at most three (glibc reads no more). A missing or
/// unreadable file gives an empty list: then every forwarded query gets SERVFAIL.
///
/// Loopback resolvers are kept on purpose. systemd-resolved's `127.0.0.53` (or a local dnsmasq
/// or unbound on `127.0.0.1`) is unreachable from inside a container's network namespace, which
/// is why docker rewrites such entries out of the resolv.conf it gives containers. berthd is
/// different: it runs in the host's namespace and does the forwarding itself, so a loopback
/// upstream is exactly as reachable to it as to any host program, and it is the one that knows
/// the host's split-DNS and VPN configuration.
///
/// A link-local IPv6 server with a zone (`fe80::1%eth0`) gets the interface's index as its
/// scope; one whose interface does not exist is skipped.
pub fn host_upstreams(resolv_conf: &Path) -> Vec<SocketAddr> {
    let Ok(text) = std::fs::read_to_string(resolv_conf) else {
        return Vec::new();
    };
    parse(&text)
}

fn parse(text: &str) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next().and_then(parse_server) else {
            continue;
        };
        if !out.contains(&addr) {
            out.push(addr);
        }
        if out.len() == 3 {
            break;
        }
    }
    out
}

fn parse_server(word: &str) -> Option<SocketAddr> {
    if let Ok(ip) = word.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    let (ip, zone) = word.split_once('%')?;
    let ip = ip.parse().ok()?;
    let scope = match zone.parse::<u32>() {
        Ok(index) => index,
        Err(_) => nix::net::if_::if_nametoindex(zone).ok()?,
    };
    Some(SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, scope)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameservers() {
        let text = "# generated\nsearch example.com\nnameserver 127.0.0.53\n\
                    nameserver 2001:db8::1 # v6\n  nameserver\t192.0.2.1\nnameserver 127.0.0.53\n\
                    ;nameserver 192.0.2.9\nnameserver bogus\nnameserver fe80::1%lo\n\
                    nameserver 192.0.2.2\n";
        let got = parse(text);
        let want: Vec<SocketAddr> = vec![
            "127.0.0.53:53".parse().unwrap(),
            "[2001:db8::1]:53".parse().unwrap(),
            "192.0.2.1:53".parse().unwrap(),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn zones_and_missing_file() {
        let lo = parse("nameserver fe80::1%lo\n");
        match lo.as_slice() {
            [SocketAddr::V6(v6)] => assert_ne!(v6.scope_id(), 0),
            other => panic!("{other:?}"),
        }
        assert!(parse("nameserver fe80::1%no-such-if0\n").is_empty());
        assert_eq!(parse("nameserver fe80::1%7").len(), 1);
        assert!(host_upstreams(Path::new("/nonexistent/resolv.conf")).is_empty());
    }
}
