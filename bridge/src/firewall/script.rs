//! Generation of the nft scripts. Every statement names `table inet <ours>`; nothing here
//! can address another table.

use std::fmt::Write;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::{FwNetwork, PortMapping, Proto, COMMENT_PREFIX};

/// The chains of berth's table: (name, base-chain spec or "" for a regular chain).
const CHAINS: &[(&str, &str)] = &[
    // Before conntrack and NAT (raw): drops loopback addresses arriving on our bridges.
    (
        "guard",
        "type filter hook prerouting priority raw; policy accept;",
    ),
    (
        "prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
    ),
    (
        "output",
        "type nat hook output priority -100; policy accept;",
    ),
    ("ports", ""),
    (
        "postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
    ),
    (
        "forward",
        "type filter hook forward priority filter; policy accept;",
    ),
];

/// The sets and maps: (kind, name, spec).
const SETS: &[(&str, &str, &str)] = &[
    // Every berth bridge.
    ("set", "bridges", "type ifname;"),
    // Bridges of internal networks.
    ("set", "internal", "type ifname;"),
    // "br" . "br" for every bridge: traffic that stays inside one network.
    ("set", "same", "type ifname . ifname;"),
    // subnet . bridge for every network (internal ones too): a network's own traffic.
    ("set", "own4", "type ipv4_addr . ifname; flags interval;"),
    ("set", "own6", "type ipv6_addr . ifname; flags interval;"),
    // Subnets of the non-internal networks: masqueraded when they leave their bridge.
    ("set", "masq4", "type ipv4_addr; flags interval;"),
    ("set", "masq6", "type ipv6_addr; flags interval;"),
    // Published ports bound to one host address / to every local address.
    (
        "map",
        "dnat4",
        "type inet_proto . ipv4_addr . inet_service : ipv4_addr . inet_service;",
    ),
    (
        "map",
        "dnat4any",
        "type inet_proto . inet_service : ipv4_addr . inet_service;",
    ),
    (
        "map",
        "dnat6",
        "type inet_proto . ipv6_addr . inet_service : ipv6_addr . inet_service;",
    ),
    (
        "map",
        "dnat6any",
        "type inet_proto . inet_service : ipv6_addr . inet_service;",
    ),
];

/// The rules: (chain, rule). Their number is fixed: networks and ports are set elements.
const RULES: &[(&str, &str)] = &[
    // CVE-2020-8558 (kube-proxy): with route_localnet=1 on a bridge, the kernel stops
    // treating 127.0.0.0/8 arriving on it as martian, so a container could reach services
    // bound to the host's 127.0.0.1. Drop such packets before conntrack and NAT see them.
    ("guard", "iifname @bridges ip daddr 127.0.0.0/8 drop"),
    ("guard", "iifname @bridges ip saddr 127.0.0.0/8 drop"),
    // Published ports: only for packets addressed to this host.
    ("prerouting", "fib daddr type local jump ports"),
    ("output", "fib daddr type local jump ports"),
    (
        "ports",
        "meta nfproto ipv4 dnat ip to meta l4proto . ip daddr . th dport map @dnat4",
    ),
    (
        "ports",
        "meta nfproto ipv4 dnat ip to meta l4proto . th dport map @dnat4any",
    ),
    (
        "ports",
        "meta nfproto ipv6 dnat ip6 to meta l4proto . ip6 daddr . th dport map @dnat6",
    ),
    (
        "ports",
        "meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @dnat6any",
    ),
    // The host's own 127.0.0.1 talking to a published port (needs route_localnet on the bridge).
    (
        "postrouting",
        "oifname @bridges ip saddr 127.0.0.0/8 masquerade",
    ),
    // Hairpin: a DNAT'ed packet going back out the bridge of the network it came from
    // (a container reaching its own or a neighbour's published port through a host address).
    (
        "postrouting",
        "ct status dnat ip saddr . oifname @own4 masquerade",
    ),
    (
        "postrouting",
        "ct status dnat ip6 saddr . oifname @own6 masquerade",
    ),
    // Everything else from a network that stays on its bridge keeps its address.
    ("postrouting", "ip saddr . oifname @own4 return"),
    ("postrouting", "ip6 saddr . oifname @own6 return"),
    ("postrouting", "ip saddr @masq4 masquerade"),
    ("postrouting", "ip6 saddr @masq6 masquerade"),
    // Forwarding: policy accept; only berth's own bridges are constrained.
    ("forward", "iifname . oifname @same accept"),
    ("forward", "iifname @internal drop"),
    ("forward", "oifname @internal drop"),
    ("forward", "ct state established,related accept"),
    ("forward", "oifname @bridges ct status dnat accept"),
    ("forward", "iifname @bridges oifname @bridges drop"),
];

/// Number of rules a complete base holds.
pub(crate) const RULE_COUNT: usize = RULES.len();

/// The base: table, chains, sets and maps (created when missing), every chain flushed and
/// its rules added again. Set and map elements are kept unless `flush_elements`.
pub(crate) fn base(table: &str, flush_elements: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "add table inet {table}");
    for (name, spec) in CHAINS {
        if spec.is_empty() {
            let _ = writeln!(s, "add chain inet {table} {name}");
        } else {
            let _ = writeln!(s, "add chain inet {table} {name} {{ {spec} }}");
        }
    }
    for (kind, name, spec) in SETS {
        let _ = writeln!(s, "add {kind} inet {table} {name} {{ {spec} }}");
    }
    for (name, _) in CHAINS {
        let _ = writeln!(s, "flush chain inet {table} {name}");
    }
    if flush_elements {
        for (kind, name, _) in SETS {
            let _ = writeln!(s, "flush {kind} inet {table} {name}");
        }
    }
    for (chain, rule) in RULES {
        let _ = writeln!(s, "add rule inet {table} {chain} {rule}");
    }
    s
}

fn comment(network: &str) -> String {
    format!("comment \"{COMMENT_PREFIX}{network}\"")
}

/// `subnet` in the form nft lists it: network/prefix, or the bare address for a host prefix.
fn canonical(subnet: &IpNetwork) -> String {
    let full = if subnet.is_ipv6() { 128 } else { 32 };
    if subnet.prefix() == full {
        subnet.network().to_string()
    } else {
        format!("{}/{}", subnet.network(), subnet.prefix())
    }
}

/// The set elements of one network: (set, key in nft syntax).
pub(crate) fn network_elems(n: &FwNetwork) -> Vec<(&'static str, String)> {
    let br = &n.bridge;
    let mut v = vec![
        ("bridges", format!("\"{br}\"")),
        ("same", format!("\"{br}\" . \"{br}\"")),
    ];
    if n.internal {
        v.push(("internal", format!("\"{br}\"")));
    }
    for subnet in &n.subnets {
        let v6 = subnet.is_ipv6();
        let net = canonical(subnet);
        v.push((
            if v6 { "own6" } else { "own4" },
            format!("{net} . \"{br}\""),
        ));
        if !n.internal {
            v.push((if v6 { "masq6" } else { "masq4" }, net));
        }
    }
    v
}

/// `add element` of one key, tagged with its network.
pub(crate) fn add_elem(s: &mut String, table: &str, set: &str, key: &str, network: &str) {
    let _ = writeln!(
        s,
        "add element inet {table} {set} {{ {key} {} }}",
        comment(network)
    );
}

/// The map a mapping lives in and its key in nft syntax.
pub(crate) fn port_key(p: &PortMapping) -> (&'static str, String) {
    let proto = match p.proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    let v6 = p.container_ip.is_ipv6();
    match p.host_ip.filter(|ip| !ip.is_unspecified()) {
        Some(ip) => (
            if v6 { "dnat6" } else { "dnat4" },
            format!("{proto} . {ip} . {}", p.host_port),
        ),
        None => (
            if v6 { "dnat6any" } else { "dnat4any" },
            format!("{proto} . {}", p.host_port),
        ),
    }
}

/// `add element` (or `create element`, which fails if the key exists) for one published port.
pub(crate) fn add_port(s: &mut String, table: &str, p: &PortMapping, create: bool) {
    let verb = if create { "create" } else { "add" };
    let (map, key) = port_key(p);
    let target = match p.container_ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => ip.to_string(),
    };
    let _ = writeln!(
        s,
        "{verb} element inet {table} {map} {{ {key} {} : {target} . {} }}",
        comment(&p.network),
        p.container_port
    );
}

/// `delete element` for a key read back from the kernel.
pub(crate) fn delete_elem(s: &mut String, table: &str, set: &str, key: &str) {
    let _ = writeln!(s, "delete element inet {table} {set} {{ {key} }}");
}
