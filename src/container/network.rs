//! Bridge networks for containers: berth's side of berthd. `berth run --network NAME` parses
//! the flags ([`parse_flags`]), checks at create that berthd runs and knows the networks
//! ([`Runtime::resolve_network`]), and at start — after the netns bind mount, before the go
//! byte — asks berthd to attach the namespace to each network ([`connect`]), then writes the
//! container's `/etc/hosts` and `/etc/resolv.conf` in place (they are already bind-mounted).
//! Teardown ([`disconnect`]) is best effort: berthd's reconcile cleans up whatever a
//! vanished berthd or a killed monitor leaves.
//!
//! Without `--network` a container joins berthd's default network when berthd answers on its
//! socket (`BERTH_SOCKET`, else `<run-root>/berthd.sock`), and gets `none` otherwise.

use super::config::{ConfigError, ContainerConfig, NetworkMode, NetworkRequest};
use super::lifecycle::{ContainerInfo, Runtime};
use super::state::Status;
use super::{ContainerError, Result};
use crate::api::{self, AttachRequest, Client, ClientError, Endpoint, PortMapping, Target};
use serde_json::{json, Map, Value};
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The loopback lines of every container's /etc/hosts.
pub(super) const HOSTS_LOCAL: &str =
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// berthd's socket for a run root: `BERTH_SOCKET`, else `<run-root>/berthd.sock`.
pub fn berthd_socket(run_root: &Path) -> PathBuf {
    match std::env::var_os(api::SOCKET_ENV) {
        Some(s) if !s.is_empty() => PathBuf::from(s),
        _ => api::default_socket(run_root),
    }
}

/// The network flags of `berth run`/`create`, as given.
#[derive(Debug, Default, Clone)]
pub struct NetworkFlags {
    /// `--network`: `none`, `host`, `NAME`, or `name=NAME[,ip=IP][,ip6=IP][,alias=A]...`.
    pub networks: Vec<String>,
    /// `--network-alias` (for the first network).
    pub aliases: Vec<String>,
    /// `--ip`, `--ip6` (for the first network).
    pub ip: Option<String>,
    pub ip6: Option<String>,
    /// `-p/--publish [HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp]` (on the first network).
    pub publish: Vec<String>,
    /// `--dns IP`.
    pub dns: Vec<String>,
    /// `--add-host NAME:IP`.
    pub add_hosts: Vec<String>,
}

/// The parsed network flags.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParsedNetwork {
    /// `None`: no network flag at all (berthd's default network if it runs, else `none`). A
    /// bridge network with an empty name is berthd's default network, asked for explicitly
    /// (by `-p`, `--ip` or `--network-alias` without `--network`).
    pub mode: Option<NetworkMode>,
    pub ports: Vec<PortMapping>,
    pub dns: Vec<IpAddr>,
    pub add_hosts: Vec<(String, IpAddr)>,
}

fn bad(msg: String) -> ConfigError {
    ConfigError::Network(msg)
}

fn parse_ip(flag: &str, s: &str, v6: Option<bool>) -> std::result::Result<IpAddr, ConfigError> {
    let ip: IpAddr = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| bad(format!("invalid {flag} {s:?}: not an IP address")))?;
    match v6 {
        Some(true) if !ip.is_ipv6() => Err(bad(format!(
            "invalid {flag} {s:?}: an IPv6 address is needed (use --ip for IPv4)"
        ))),
        Some(false) if !ip.is_ipv4() => Err(bad(format!(
            "invalid {flag} {s:?}: an IPv4 address is needed (use --ip6 for IPv6)"
        ))),
        _ => Ok(ip),
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn check_alias(a: &str) -> std::result::Result<(), ConfigError> {
    if valid_name(a) {
        Ok(())
    } else {
        Err(bad(format!(
            "invalid network alias {a:?}: use letters, digits, '-', '_' and '.'"
        )))
    }
}

/// One `--network` value that names a network.
fn parse_network(spec: &str) -> std::result::Result<NetworkRequest, ConfigError> {
    let mut req = NetworkRequest::default();
    if !spec.contains('=') {
        req.name = spec.to_string();
    } else {
        for part in spec.split(',') {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                bad(format!(
                    "invalid --network {spec:?}: use NAME or name=NAME[,ip=IP][,ip6=IP][,alias=NAME]..."
                ))
            })?;
            match k {
                "name" => req.name = v.to_string(),
                "ip" => req.ip = Some(parse_ip("--network ip", v, Some(false))?),
                "ip6" => req.ip6 = Some(parse_ip("--network ip6", v, Some(true))?),
                "alias" => {
                    check_alias(v)?;
                    req.aliases.push(v.to_string());
                }
                _ => {
                    return Err(bad(format!(
                        "invalid --network {spec:?}: unknown key {k:?} (name, ip, ip6, alias)"
                    )))
                }
            }
        }
    }
    if !valid_name(&req.name) || req.name.len() > 64 {
        return Err(bad(format!(
            "invalid --network {spec:?}: use none, host or a network name (see `netctl network ls`)"
        )));
    }
    Ok(req)
}

/// Parses the network flags of `berth run`/`create`, with docker's rules: `none` and `host`
/// stand alone and take no ports, addresses or aliases; `--ip`, `--ip6`, `--network-alias`
/// and `-p` go with the first network.
pub fn parse_flags(f: &NetworkFlags) -> std::result::Result<ParsedNetwork, ConfigError> {
    let ports = f
        .publish
        .iter()
        .map(|p| api::parse_port(p).map_err(bad))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let dns = f
        .dns
        .iter()
        .map(|d| parse_ip("--dns", d, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut add_hosts = Vec::new();
    for h in &f.add_hosts {
        let (name, ip) = h
            .split_once('=')
            .or_else(|| h.split_once(':'))
            .ok_or_else(|| bad(format!("invalid --add-host {h:?}: use NAME:IP")))?;
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '\0') {
            return Err(bad(format!("invalid --add-host {h:?}: use NAME:IP")));
        }
        add_hosts.push((name.to_string(), parse_ip("--add-host", ip, None)?));
    }
    let ip =
        f.ip.as_deref()
            .map(|s| parse_ip("--ip", s, Some(false)))
            .transpose()?;
    let ip6 = f
        .ip6
        .as_deref()
        .map(|s| parse_ip("--ip6", s, Some(true)))
        .transpose()?;
    for a in &f.aliases {
        check_alias(a)?;
    }
    let per_network = ip.is_some() || ip6.is_some() || !f.aliases.is_empty() || !ports.is_empty();

    let mode = if f.networks.is_empty() {
        per_network.then(|| NetworkMode::Bridge {
            networks: vec![NetworkRequest {
                name: String::new(),
                ip,
                ip6,
                aliases: f.aliases.clone(),
            }],
        })
    } else if let Some(special) = f
        .networks
        .iter()
        .find(|n| matches!(n.as_str(), "none" | "host") || n.starts_with("container:"))
    {
        if special.starts_with("container:") {
            return Err(bad(format!(
                "--network {special}: sharing another container's network is not supported yet"
            )));
        }
        if f.networks.len() > 1 {
            return Err(bad(format!(
                "--network {special} cannot be combined with other networks"
            )));
        }
        if per_network {
            return Err(bad(format!(
                "conflicting options: -p, --ip, --ip6 and --network-alias need a bridge network, not --network {special}"
            )));
        }
        Some(if special == "host" {
            NetworkMode::Host
        } else {
            NetworkMode::None
        })
    } else {
        let mut networks = Vec::new();
        for spec in &f.networks {
            let req = parse_network(spec)?;
            if networks.iter().any(|n: &NetworkRequest| n.name == req.name) {
                return Err(bad(format!("network {} is given twice", req.name)));
            }
            networks.push(req);
        }
        let first = &mut networks[0];
        if ip.is_some() {
            first.ip = ip;
        }
        if ip6.is_some() {
            first.ip6 = ip6;
        }
        for a in &f.aliases {
            if !first.aliases.contains(a) {
                first.aliases.push(a.clone());
            }
        }
        Some(NetworkMode::Bridge { networks })
    };
    Ok(ParsedNetwork {
        mode,
        ports,
        dns,
        add_hosts,
    })
}

fn net_err(e: ClientError) -> ContainerError {
    ContainerError::Network(e.to_string())
}

impl Runtime {
    /// A client of berthd for this runtime's run root.
    pub fn berthd(&self) -> Client {
        Client::new(berthd_socket(&self.paths.run_root)).with_timeout(Duration::from_secs(60))
    }

    /// The network a new container gets: `None` (no flag) asks berthd for its default
    /// network and falls back to `none` when berthd does not run; a bridge network needs a
    /// running berthd that knows it (checked before anything is created).
    pub(super) fn resolve_network(&self, mode: Option<&NetworkMode>) -> Result<NetworkMode> {
        let client = self.berthd().with_timeout(Duration::from_secs(10));
        let Some(mode) = mode else {
            return Ok(match client.networks() {
                Ok(nets) => match nets.into_iter().find(|n| n.default) {
                    Some(n) => NetworkMode::Bridge {
                        networks: vec![NetworkRequest {
                            name: n.name,
                            ..Default::default()
                        }],
                    },
                    None => NetworkMode::None,
                },
                Err(ClientError::NotRunning { .. }) => NetworkMode::None,
                Err(e) => {
                    tracing::warn!("berthd did not answer ({e}); the container gets no network (--network none)");
                    NetworkMode::None
                }
            });
        };
        let NetworkMode::Bridge { networks } = mode else {
            return Ok(mode.clone());
        };
        let known = client.networks().map_err(net_err)?;
        let mut out = Vec::with_capacity(networks.len());
        for req in networks {
            let mut req = req.clone();
            if req.name.is_empty() {
                req.name = known
                    .iter()
                    .find(|n| n.default)
                    .map(|n| n.name.clone())
                    .ok_or_else(|| {
                        ContainerError::Network(
                            "berthd has no default network: name one with --network NAME (see `netctl network ls`)".into(),
                        )
                    })?;
            } else if !known.iter().any(|n| n.name == req.name) {
                return Err(ContainerError::Network(format!(
                    "no such network: {} (see `netctl network ls`; create it with `netctl network create {}`)",
                    req.name, req.name
                )));
            }
            if out.iter().any(|n: &NetworkRequest| n.name == req.name) {
                return Err(ContainerError::Network(format!(
                    "network {} is given twice",
                    req.name
                )));
            }
            out.push(req);
        }
        Ok(NetworkMode::Bridge { networks: out })
    }

    /// NetworkSettings for `inspect`: berthd's endpoints of a running container (when berthd
    /// answers), else what the container asked for.
    pub(super) fn network_settings(&self, info: &ContainerInfo) -> Value {
        let r = &info.record;
        let c = &r.config;
        let sandbox = (c.network != NetworkMode::Host && info.status == Status::Running)
            .then(|| self.paths.netns(&r.id).display().to_string());
        let NetworkMode::Bridge { networks } = &c.network else {
            return json!({
                "Networks": { c.network.as_str(): {} },
                "Ports": {},
                "SandboxKey": sandbox,
            });
        };
        let eps = if info.status == Status::Running {
            let target = Target {
                container: Some(r.id.clone()),
                ..Default::default()
            };
            self.berthd()
                .with_timeout(Duration::from_secs(5))
                .endpoints(Some(&target), None)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut nets = Map::new();
        for req in networks {
            let ep = eps.iter().find(|e| e.network == req.name);
            let v4 = ep.and_then(|e| addr_of(e, false));
            let v6 = ep.and_then(|e| addr_of(e, true));
            let gw = |six: bool| {
                ep.and_then(|e| e.gateways.iter().find(|g| g.is_ipv6() == six))
                    .map(ToString::to_string)
                    .unwrap_or_default()
            };
            nets.insert(
                req.name.clone(),
                json!({
                    "IPAddress": v4.map(|(a, _)| a.to_string()).unwrap_or_default(),
                    "IPPrefixLen": v4.map_or(0, |(_, p)| p),
                    "Gateway": gw(false),
                    "GlobalIPv6Address": v6.map(|(a, _)| a.to_string()).unwrap_or_default(),
                    "GlobalIPv6PrefixLen": v6.map_or(0, |(_, p)| p),
                    "IPv6Gateway": gw(true),
                    "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
                    "Aliases": ep.map_or_else(|| req.aliases.clone(), |e| e.aliases.clone()),
                    "Interface": ep.map(|e| e.ifname.clone()).unwrap_or_default(),
                    "HostInterface": ep.map(|e| e.host_ifname.clone()).unwrap_or_default(),
                    "IPAMConfig": {
                        "IPv4Address": req.ip.map(|i| i.to_string()).unwrap_or_default(),
                        "IPv6Address": req.ip6.map(|i| i.to_string()).unwrap_or_default(),
                    },
                }),
            );
        }
        let published: Vec<&PortMapping> = if eps.is_empty() {
            c.ports.iter().collect()
        } else {
            eps.iter().flat_map(|e| &e.ports).collect()
        };
        let mut ports = Map::new();
        for p in published {
            let key = format!("{}/{}", p.container_port, p.protocol.as_str());
            let entry = ports.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = entry {
                list.push(json!({
                    "HostIp": p.host_ip.map_or_else(|| "0.0.0.0".to_string(), |i| i.to_string()),
                    "HostPort": p.host_port.to_string(),
                }));
            }
        }
        let first = networks.first().and_then(|n| nets.get(&n.name)).cloned();
        let field = |k: &str| first.as_ref().map_or(json!(""), |f| f[k].clone());
        json!({
            "Networks": nets,
            "Ports": ports,
            "IPAddress": field("IPAddress"),
            "IPPrefixLen": first.as_ref().map_or(json!(0), |f| f["IPPrefixLen"].clone()),
            "Gateway": field("Gateway"),
            "GlobalIPv6Address": field("GlobalIPv6Address"),
            "MacAddress": field("MacAddress"),
            "SandboxKey": sandbox,
        })
    }
}

/// The IPv4 (or IPv6) address of an endpoint, with its prefix length.
fn addr_of(e: &Endpoint, v6: bool) -> Option<(IpAddr, u8)> {
    e.addresses.iter().find_map(|a| {
        let (ip, len) = a.split_once('/').unwrap_or((a, "0"));
        let ip: IpAddr = ip.parse().ok()?;
        (ip.is_ipv6() == v6).then(|| (ip, len.parse().unwrap_or(0)))
    })
}

/// Attaches the container's namespace (bind-mounted at `<run-root>/netns/<id>`) to each of
/// its networks — the first gets eth0, the default route and the published ports — and
/// rewrites its /etc/hosts and /etc/resolv.conf in place. On error the caller detaches
/// whatever was attached ([`disconnect`]).
pub(super) fn connect(
    rt: &Runtime,
    id: &str,
    name: &str,
    config: &ContainerConfig,
    networks: &[NetworkRequest],
) -> Result<Vec<Endpoint>> {
    let client = rt.berthd();
    let health = client.health().map_err(net_err)?;
    let mut eps = Vec::with_capacity(networks.len());
    for (i, n) in networks.iter().enumerate() {
        let req = AttachRequest {
            container: Some(id.to_string()),
            network: Some(n.name.clone()),
            ip: n.ip,
            ip6: n.ip6,
            aliases: n.aliases.clone(),
            ports: if i == 0 {
                config.ports.clone()
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        let ep = client.attach(&req).map_err(|e| {
            ContainerError::Network(format!(
                "cannot attach container {name} to network {}: {e}",
                n.name
            ))
        })?;
        eps.push(ep);
    }
    let hosts = hosts_file(config, name, &eps);
    let resolv = resolv_conf(config, (health.dns).then_some(&eps[..]));
    for (file, data) in [("hosts", hosts), ("resolv.conf", resolv)] {
        let path = rt.paths.etc_file(id, file);
        rewrite_in_place(&path, &data).map_err(|e| ContainerError::io("cannot write", &path, e))?;
    }
    Ok(eps)
}

/// Detaches the container from every network, best effort: a berthd that is down or knows no
/// endpoint of it is fine (its reconcile releases what a dead namespace held).
pub(super) fn disconnect(client: &Client, id: &str) {
    let target = Target {
        container: Some(id.to_string()),
        ..Default::default()
    };
    match client
        .clone()
        .with_timeout(Duration::from_secs(30))
        .detach(&target, None)
    {
        Ok(d) => tracing::debug!(container = id, endpoints = d.detached.len(), "detached"),
        Err(e) => tracing::debug!(container = id, "detach (best effort): {e}"),
    }
}

/// Truncates and writes `path` keeping its inode: the file is bind-mounted into the
/// container, and a rename would leave the container with the old file.
fn rewrite_in_place(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(data)
}

/// The container's /etc/hosts: the loopback lines, the `--add-host` entries, then each of
/// its addresses with its hostname, name and aliases (as docker orders them).
pub(super) fn hosts_file(config: &ContainerConfig, name: &str, eps: &[Endpoint]) -> Vec<u8> {
    let mut out = String::from(HOSTS_LOCAL);
    for (h, ip) in &config.add_hosts {
        out.push_str(&format!("{ip}\t{h}\n"));
    }
    for ep in eps {
        let mut names: Vec<&str> = vec![&config.hostname];
        for n in std::iter::once(name).chain(ep.aliases.iter().map(String::as_str)) {
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        }
        for a in &ep.addresses {
            let ip = a.split('/').next().unwrap_or(a);
            out.push_str(&format!("{ip}\t{}\n", names.join(" ")));
        }
    }
    out.into_bytes()
}

/// The container's /etc/resolv.conf: `--dns` servers, else berthd's resolver on the first
/// network's gateway (`berthd` given and its DNS on), else the host's non-loopback servers;
/// the host's `search` and `options`, plus `ndots:0` with berthd's resolver (as docker's
/// embedded DNS).
pub(super) fn resolv_conf(config: &ContainerConfig, berthd: Option<&[Endpoint]>) -> Vec<u8> {
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut search = Vec::new();
    let mut options = Vec::new();
    let mut host_ns = Vec::new();
    for line in host.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("search") | Some("domain") => {
                search = w.map(str::to_string).collect();
            }
            Some("options") => options.extend(w.map(str::to_string)),
            Some("nameserver") => {
                if let Some(ip) = w.next().and_then(|s| s.parse::<IpAddr>().ok()) {
                    if !ip.is_loopback() {
                        host_ns.push(ip);
                    }
                }
            }
            _ => {}
        }
    }
    let gateway = berthd.and_then(|eps| {
        let gws = &eps.first()?.gateways;
        gws.iter()
            .find(|g| g.is_ipv4())
            .or_else(|| gws.first())
            .copied()
    });
    let mut out = String::from("# written by berth\n");
    let servers = if !config.dns.is_empty() {
        config.dns.clone()
    } else if let Some(gw) = gateway {
        out.push_str("# berthd's resolver: container names on the network, other names upstream\n");
        options.retain(|o| !o.starts_with("ndots:"));
        options.insert(0, "ndots:0".into());
        vec![gw]
    } else {
        host_ns
    };
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> NetworkFlags {
        NetworkFlags::default()
    }

    #[test]
    fn parses_network_flags() {
        let p = parse_flags(&flags()).unwrap();
        assert_eq!(p.mode, None);
        let mut f = flags();
        f.networks = vec!["web".into(), "name=db,ip=10.1.0.9,alias=pg".into()];
        f.ip = Some("10.0.0.5".into());
        f.aliases = vec!["www".into()];
        f.publish = vec!["127.0.0.1:8080:80".into()];
        f.dns = vec!["192.0.2.1".into()];
        f.add_hosts = vec!["db:10.0.0.9".into(), "v6=::1".into()];
        let p = parse_flags(&f).unwrap();
        let Some(NetworkMode::Bridge { networks }) = p.mode else {
            panic!("{:?}", p.mode)
        };
        assert_eq!(networks[0].name, "web");
        assert_eq!(networks[0].ip, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(networks[0].aliases, ["www"]);
        assert_eq!(networks[1].name, "db");
        assert_eq!(networks[1].aliases, ["pg"]);
        assert_eq!(p.ports.len(), 1);
        assert_eq!(p.add_hosts[1], ("v6".into(), "::1".parse().unwrap()));

        let mut f = flags();
        f.publish = vec!["8080:80".into()];
        let p = parse_flags(&f).unwrap();
        assert!(
            matches!(&p.mode, Some(NetworkMode::Bridge { networks }) if networks[0].name.is_empty())
        );

        for (nets, ip, publish) in [
            (vec!["none"], None, vec!["80:80"]),
            (vec!["host", "web"], None, vec![]),
            (vec!["web", "web"], None, vec![]),
            (vec!["bad name"], None, vec![]),
            (vec!["web"], Some("fd00::1"), vec![]),
            (vec!["web"], None, vec!["80"]),
            (vec!["container:x"], None, vec![]),
        ] {
            let f = NetworkFlags {
                networks: nets.iter().map(|s| s.to_string()).collect(),
                ip: ip.map(Into::into),
                publish: publish.iter().map(|s| s.to_string()).collect(),
                ..flags()
            };
            assert!(parse_flags(&f).is_err(), "{nets:?} {ip:?} {publish:?}");
        }
        let f = NetworkFlags {
            add_hosts: vec!["nohost".into()],
            ..flags()
        };
        assert!(parse_flags(&f).is_err());
    }

    #[test]
    fn hosts_lists_names_aliases_and_extra_hosts() {
        let config: ContainerConfig = serde_json::from_value(json!({
            "hostname": "abc", "user": "", "env": [], "entrypoint": [], "cmd": ["sh"],
            "working_dir": "/", "image": "busybox", "network": "none", "stop_signal": null,
            "auto_remove": false, "add_hosts": [["db", "10.0.0.9"]],
        }))
        .unwrap();
        let ep: Endpoint = serde_json::from_value(json!({
            "container_id": "x", "name": "web", "network": "n", "ifname": "eth0",
            "host_ifname": "v", "addresses": ["10.1.0.2/24", "fd00::2/64"],
            "gateways": ["10.1.0.1"], "mac": "02:42:0a:01:00:02", "mtu": 1500,
            "default_route": true, "aliases": ["www"], "ports": [], "netns": "/x",
            "created": "now",
        }))
        .unwrap();
        let hosts =
            String::from_utf8(hosts_file(&config, "web", std::slice::from_ref(&ep))).unwrap();
        assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
        assert!(hosts.contains("10.0.0.9\tdb\n"), "{hosts}");
        assert!(hosts.contains("10.1.0.2\tabc web www\n"), "{hosts}");
        assert!(hosts.contains("fd00::2\tabc web www\n"), "{hosts}");
        let resolv = String::from_utf8(resolv_conf(&config, Some(&[ep]))).unwrap();
        assert!(resolv.contains("nameserver 10.1.0.1\n"), "{resolv}");
        assert!(resolv.contains("ndots:0"), "{resolv}");
    }
}
