//! berthd's configuration file (TOML). Every key is optional; docs/api.md lists each one with
//! its default. A missing file means all defaults.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = "/etc/berth/berthd.toml";

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Socket path; default `<run-root>/berthd.sock`. `--socket` and `BERTH_SOCKET` win.
    pub socket: Option<PathBuf>,
    /// Log level when neither `--log-level` nor `BERTH_LOG_LEVEL` is given.
    pub log_level: String,
    /// `plain` or `json`, when `--log-format` is not given.
    pub log_format: String,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// Seconds between background reconciles (0: only at start and on request).
    pub reconcile_interval_secs: u64,
    /// Where `/metrics` and `/healthz` are served (`--metrics-addr` wins); default loopback
    /// only, `0.0.0.0:9480` exposes them to the network; empty: not served.
    pub metrics_addr: String,
    /// Seconds between rounds of the watch loop (OOM events, limits restored; 0: off).
    pub watch_interval_secs: u64,
    /// Write back container limits changed behind berth's back.
    pub enforce_limits: bool,
    pub default_network: DefaultNetwork,
    pub firewall: FirewallConfig,
    pub dns: DnsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: None,
            log_level: "info".into(),
            log_format: "plain".into(),
            max_body_bytes: 1 << 20,
            reconcile_interval_secs: 60,
            metrics_addr: super::metrics::DEFAULT_ADDR.into(),
            watch_interval_secs: 5,
            enforce_limits: true,
            default_network: DefaultNetwork::default(),
            firewall: FirewallConfig::default(),
            dns: DnsConfig::default(),
        }
    }
}

/// `[default_network]`: the network berthd creates at start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultNetwork {
    pub enabled: bool,
    pub name: String,
    pub bridge: String,
    pub subnet: String,
    /// An IPv6 subnet too (dual stack); none by default.
    pub subnet6: Option<String>,
    pub mtu: Option<u32>,
}

impl Default for DefaultNetwork {
    fn default() -> Self {
        DefaultNetwork {
            enabled: true,
            name: "berth".into(),
            bridge: "berth0".into(),
            // outside docker's 172.17-31/16 and podman's 10.88/16 and 10.89.x pools
            subnet: "10.209.0.0/16".into(),
            subnet6: None,
            mtu: None,
        }
    }
}

/// `[firewall]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirewallConfig {
    /// Manage NAT, published ports and isolation in berth's nftables table.
    pub enabled: bool,
    /// The table (family inet) berth owns; nothing else is touched.
    pub table: String,
}

impl Default for FirewallConfig {
    fn default() -> Self {
        FirewallConfig {
            enabled: true,
            table: "berth".into(),
        }
    }
}

/// `[dns]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Answer DNS on each network's gateway address.
    pub enabled: bool,
    pub port: u16,
    /// Upstream resolvers for other names; empty: the host's /etc/resolv.conf.
    pub upstreams: Vec<SocketAddr>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            enabled: true,
            port: 53,
            upstreams: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `path`; a missing file is the defaults when `required` is false.
    pub fn load(path: &Path, required: bool) -> Result<Config, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Config::default())
            }
            Err(e) => return Err(format!("config file {}: {e}", path.display())),
        };
        let c: Config =
            toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
        c.check()
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        if !matches!(self.log_format.as_str(), "plain" | "json") {
            return Err(format!(
                "log_format {:?}: use \"plain\" or \"json\"",
                self.log_format
            ));
        }
        if !self.metrics_addr.is_empty()
            && self.metrics_addr.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(format!(
                "metrics_addr {:?}: use ADDRESS:PORT, e.g. \"127.0.0.1:9480\"",
                self.metrics_addr
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err("max_body_bytes must be at least 1024".into());
        }
        let t = self.firewall.table.as_bytes();
        if t.is_empty()
            || !t[0].is_ascii_alphabetic()
            || !t.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            return Err(format!(
                "firewall.table {:?}: use letters, digits and '_', starting with a letter",
                self.firewall.table
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c, Config::default());
        let c: Config = toml::from_str(
            "log_format = \"json\"\n[default_network]\nbridge = \"brt1\"\nsubnet = \"10.231.1.0/24\"\n[firewall]\ntable = \"berth_t1\"\n[dns]\nenabled = false\n",
        )
        .unwrap();
        assert_eq!(c.default_network.bridge, "brt1");
        assert_eq!(c.default_network.name, "berth");
        assert!(!c.dns.enabled);
        assert!(toml::from_str::<Config>("nope = 1").is_err());
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            Config::load(&d.path().join("missing.toml"), false).unwrap(),
            Config::default()
        );
        assert!(Config::load(&d.path().join("missing.toml"), true).is_err());
    }
}
