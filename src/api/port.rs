//! Published ports: `[HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp]`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    #[serde(default = "tcp")]
    pub protocol: Protocol,
    /// Only traffic to this host address; `None`: every host address (127.0.0.1 included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
}

fn tcp() -> Protocol {
    Protocol::Tcp
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(
            f,
            "{}->{}/{}",
            self.host_port,
            self.container_port,
            self.protocol.as_str()
        )
    }
}

impl PortMapping {
    /// Checks what the parser checks, for mappings that came as JSON.
    pub fn validate(&self) -> Result<(), String> {
        if self.host_port == 0 || self.container_port == 0 {
            return Err(format!(
                "invalid port mapping {self}: ports must be 1-65535"
            ));
        }
        if let Some(ip) = self.host_ip {
            if ip.is_multicast() {
                return Err(format!(
                    "invalid port mapping {self}: {ip} is not a unicast address"
                ));
            }
        }
        Ok(())
    }
}

fn parse_num(s: &str, what: &str, spec: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "invalid port spec {spec:?}: {what} {s:?} is not a port number (1-65535); use [HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp]"
        )),
    }
}

/// Parses `[HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp]` (an IPv6 host address in brackets).
pub fn parse_port(spec: &str) -> Result<PortMapping, String> {
    let usage = |why: &str| {
        format!("invalid port spec {spec:?}: {why}; use [HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp]")
    };
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, "tcp")) => (r, Protocol::Tcp),
        Some((r, "udp")) => (r, Protocol::Udp),
        Some((_, p)) => return Err(usage(&format!("unknown protocol {p:?}"))),
        None => (spec, Protocol::Tcp),
    };
    let (host_ip, ports) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, ports) = r
            .split_once("]:")
            .ok_or_else(|| usage("unclosed '[' around the host address"))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| usage(&format!("{ip:?} is not an IP address")))?;
        (Some(ip), ports)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            2 => (None, rest),
            3 => {
                let ip: IpAddr = parts[0]
                    .parse()
                    .map_err(|_| usage(&format!("{:?} is not an IP address", parts[0])))?;
                (Some(ip), &rest[parts[0].len() + 1..])
            }
            1 => return Err(usage("both a host port and a container port are needed")),
            _ => return Err(usage("too many ':'")),
        }
    };
    let (h, c) = ports
        .split_once(':')
        .ok_or_else(|| usage("both a host port and a container port are needed"))?;
    let m = PortMapping {
        protocol,
        host_ip,
        host_port: parse_num(h, "host port", spec)?,
        container_port: parse_num(c, "container port", spec)?,
    };
    m.validate()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_specs() {
        let m = parse_port("8080:80").unwrap();
        assert_eq!(
            (m.host_ip, m.host_port, m.container_port, m.protocol),
            (None, 8080, 80, Protocol::Tcp)
        );
        let m = parse_port("127.0.0.1:53:5353/udp").unwrap();
        assert_eq!(m.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(m.protocol, Protocol::Udp);
        let m = parse_port("[::1]:8443:443/tcp").unwrap();
        assert_eq!(m.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(m.to_string(), "[::1]:8443->443/tcp");
        for bad in [
            "80",
            "0:80",
            "x:80",
            "8080:80/sctp",
            "1.2.3:80:80",
            "a:b:c:d",
            "70000:80",
            "[::1:80:80",
            "224.0.0.1:80:80",
        ] {
            let e = parse_port(bad).unwrap_err();
            assert!(e.contains("invalid port"), "{bad}: {e}");
        }
    }
}
