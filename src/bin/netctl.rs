//! netctl: the network CLI, a client of berthd's API. Exit codes: 0 ok, 1 the operation
//! failed (berthd refused it, or is not running), 2 usage error.

use berth::api::{
    self, AttachRequest, Client, ClientError, Endpoint, Network, NetworkCreate, Target,
};
use berth::options::GlobalOptions;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

/// Wire namespaces into berth's bridge networks (a client of berthd).
#[derive(Debug, Parser)]
#[command(name = "netctl", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalOptions,

    /// berthd's socket [default: <run-root>/berthd.sock].
    #[arg(long, global = true, env = "BERTH_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "table")]
    format: Format,

    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Manage networks.
    #[command(subcommand)]
    Network(NetCmd),
    /// Attach a container (or namespace) to a network; a second network gives eth1, and so on.
    Attach(AttachArgs),
    /// Detach a container from one network (--network) or from all.
    Detach {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, value_name = "NAME")]
        network: Option<String>,
    },
    /// List endpoints.
    Ls {
        #[arg(long, value_name = "NAME")]
        network: Option<String>,
    },
    /// Show a container's endpoints.
    Inspect {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Release leases of vanished namespaces, delete orphan veths, restore berth's firewall.
    Reconcile,
}

#[derive(Debug, Subcommand)]
enum NetCmd {
    /// Create a network.
    Create {
        name: String,
        /// CIDR; at most one IPv4 and one IPv6 (repeat the flag).
        #[arg(long, value_name = "CIDR")]
        subnet: Vec<String>,
        /// Gateway address (default: the first usable address of its subnet).
        #[arg(long, value_name = "IP")]
        gateway: Vec<IpAddr>,
        /// Dual stack: requires an IPv6 --subnet.
        #[arg(long)]
        ipv6: bool,
        /// No NAT, no default route out, no forwarding in or out.
        #[arg(long)]
        internal: bool,
        #[arg(long, value_name = "N")]
        mtu: Option<u32>,
        /// Bridge interface name (default br-<id[:12]>).
        #[arg(long, value_name = "IFNAME")]
        bridge: Option<String>,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls,
    /// Show networks.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// Detach every endpoint first.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct TargetArgs {
    /// A berth container: name, id or unique id prefix.
    #[arg(required_unless_present_any = ["netns", "pid"], conflicts_with_all = ["netns", "pid"])]
    container: Option<String>,
    /// A network namespace berth did not make (/run/netns/NAME, /proc/PID/ns/net).
    #[arg(long, value_name = "PATH", conflicts_with = "pid")]
    netns: Option<String>,
    /// The network namespace of a process.
    #[arg(long, value_name = "PID")]
    pid: Option<i32>,
}

impl TargetArgs {
    fn target(&self) -> Target {
        Target {
            container: self.container.clone(),
            netns: self.netns.as_ref().map(|p| absolute(p)),
            pid: self.pid,
        }
    }
}

fn absolute(p: &str) -> String {
    let pb = PathBuf::from(p);
    if pb.is_absolute() {
        return p.to_string();
    }
    std::env::current_dir()
        .map(|d| d.join(pb).to_string_lossy().into_owned())
        .unwrap_or_else(|_| p.to_string())
}

#[derive(Debug, Args)]
struct AttachArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Network (default: berthd's default network).
    #[arg(long, value_name = "NAME")]
    network: Option<String>,
    /// IPv4 address.
    #[arg(long, value_name = "IP")]
    ip: Option<IpAddr>,
    /// IPv6 address.
    #[arg(long, value_name = "IP")]
    ip6: Option<IpAddr>,
    /// MAC of the container interface.
    #[arg(long, value_name = "MAC")]
    mac: Option<String>,
    /// Extra DNS name on the network.
    #[arg(long = "alias", value_name = "NAME")]
    aliases: Vec<String>,
    /// Publish a port: [HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp].
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    publish: Vec<String>,
    /// DNS name of the endpoint (default: the container name).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

enum Failure {
    Usage(String),
    Op(ClientError),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Op(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(|| api::default_socket(&cli.global.run_root));
    let client = Client::new(socket);
    match run(&cli, &client) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("netctl: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Op(e)) => {
            if cli.format == Format::Json {
                let (code, status) = match &e {
                    ClientError::Api { code, status, .. } => (code.clone(), *status),
                    ClientError::NotRunning { .. } => ("berthd_not_running".into(), 0),
                    _ => ("client_error".into(), 0),
                };
                let j =
                    serde_json::json!({"message": e.to_string(), "code": code, "status": status});
                eprintln!("{j}");
            } else {
                eprintln!("netctl: {e}");
            }
            ExitCode::from(1)
        }
    }
}

fn print_json(v: &impl Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("netctl: {e}"),
    }
}

fn table(rows: Vec<Vec<String>>) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == cols {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}

fn dash(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn networks_table(nets: &[Network]) {
    let mut rows = vec![vec![
        "NAME".into(),
        "BRIDGE".into(),
        "SUBNETS".into(),
        "GATEWAYS".into(),
        "INTERNAL".into(),
        "ENDPOINTS".into(),
    ]];
    for n in nets {
        rows.push(vec![
            if n.default {
                format!("{} (default)", n.name)
            } else {
                n.name.clone()
            },
            n.bridge.clone(),
            dash(
                &n.subnets
                    .iter()
                    .map(|s| s.subnet.clone())
                    .collect::<Vec<_>>(),
            ),
            dash(
                &n.subnets
                    .iter()
                    .map(|s| s.gateway.to_string())
                    .collect::<Vec<_>>(),
            ),
            if n.internal { "yes" } else { "no" }.into(),
            n.endpoints.to_string(),
        ]);
    }
    table(rows);
}

fn endpoints_table(eps: &[Endpoint]) {
    let mut rows = vec![vec![
        "CONTAINER".into(),
        "NETWORK".into(),
        "INTERFACE".into(),
        "ADDRESSES".into(),
        "MAC".into(),
        "PORTS".into(),
    ]];
    for e in eps {
        rows.push(vec![
            e.name.clone(),
            e.network.clone(),
            e.ifname.clone(),
            dash(&e.addresses),
            e.mac.clone(),
            dash(&e.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
        ]);
    }
    table(rows);
}

fn endpoint_block(e: &Endpoint) {
    println!("{} on {}:", e.name, e.network);
    println!("  container:  {}", e.container_id);
    println!("  interface:  {} (host side {})", e.ifname, e.host_ifname);
    println!("  addresses:  {}", dash(&e.addresses));
    println!(
        "  gateways:   {}",
        dash(&e.gateways.iter().map(|g| g.to_string()).collect::<Vec<_>>())
    );
    println!("  mac:        {}", e.mac);
    println!("  mtu:        {}", e.mtu);
    println!(
        "  default:    {}",
        if e.default_route { "yes" } else { "no" }
    );
    println!("  aliases:    {}", dash(&e.aliases));
    println!(
        "  ports:      {}",
        dash(&e.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>())
    );
    println!("  netns:      {}", e.netns);
}

fn run(cli: &Cli, c: &Client) -> Result<(), Failure> {
    let json = cli.format == Format::Json;
    match &cli.cmd {
        Cmd::Network(NetCmd::Create {
            name,
            subnet,
            gateway,
            ipv6,
            internal,
            mtu,
            bridge,
        }) => {
            if *ipv6 && !subnet.iter().any(|s| s.contains(':')) {
                return Err(Failure::Usage(
                    "--ipv6 needs an IPv6 subnet: add --subnet fdXX:XXXX::/64".into(),
                ));
            }
            let n = c.create_network(&NetworkCreate {
                name: name.clone(),
                subnets: subnet.clone(),
                gateways: gateway.clone(),
                internal: *internal,
                mtu: *mtu,
                bridge: bridge.clone(),
            })?;
            if json {
                print_json(&n);
            } else {
                println!("{}", n.name);
            }
        }
        Cmd::Network(NetCmd::Ls) => {
            let v = c.networks()?;
            if json {
                print_json(&v);
            } else {
                networks_table(&v);
            }
        }
        Cmd::Network(NetCmd::Inspect { names }) => {
            let mut v = Vec::new();
            for n in names {
                v.push(c.network(n)?);
            }
            if json {
                print_json(&v);
            } else {
                networks_table(&v);
            }
        }
        Cmd::Network(NetCmd::Rm { force, names }) => {
            let mut removed = Vec::new();
            let mut first_err = None;
            for n in names {
                match c.delete_network(n, *force) {
                    Ok(x) => {
                        if !json {
                            println!("{}", x.name);
                        }
                        removed.push(x);
                    }
                    Err(e) => {
                        if first_err.is_some() {
                            eprintln!("netctl: {e}");
                        } else {
                            first_err = Some(e);
                        }
                    }
                }
            }
            if json {
                print_json(&removed);
            }
            if let Some(e) = first_err {
                return Err(e.into());
            }
        }
        Cmd::Attach(a) => {
            let mut ports = Vec::new();
            for p in &a.publish {
                ports.push(api::parse_port(p).map_err(Failure::Usage)?);
            }
            let mut req = AttachRequest {
                network: a.network.clone(),
                ip: a.ip,
                ip6: a.ip6,
                mac: a.mac.clone(),
                aliases: a.aliases.clone(),
                ports,
                name: a.name.clone(),
                ..Default::default()
            };
            req.set_target(a.target.target());
            let e = c.attach(&req)?;
            if json {
                print_json(&e);
            } else {
                endpoints_table(std::slice::from_ref(&e));
            }
        }
        Cmd::Detach { target, network } => {
            let d = c.detach(&target.target(), network.as_deref())?;
            if json {
                print_json(&d);
            } else {
                for e in &d.detached {
                    println!("{} {} {}", e.name, e.network, e.ifname);
                }
            }
        }
        Cmd::Ls { network } => {
            let v = c.endpoints(None, network.as_deref())?;
            if json {
                print_json(&v);
            } else {
                endpoints_table(&v);
            }
        }
        Cmd::Inspect { target } => {
            let v = c.endpoints(Some(&target.target()), None)?;
            if json {
                print_json(&v);
            } else if v.is_empty() {
                println!("(no endpoints)");
            } else {
                for e in &v {
                    endpoint_block(e);
                }
            }
        }
        Cmd::Reconcile => {
            let r = c.reconcile()?;
            if json {
                print_json(&r);
            } else {
                println!(
                    "networks: {}, endpoints: {}; removed {} stale endpoint(s), released {} lease(s), deleted {} veth(s){}",
                    r.networks,
                    r.endpoints,
                    r.removed_endpoints.len(),
                    r.released_leases.len(),
                    r.deleted_veths.len(),
                    if r.firewall_restored {
                        "; firewall table restored"
                    } else {
                        ""
                    }
                );
                for x in r.removed_endpoints.iter().chain(&r.released_leases) {
                    println!("  {x}");
                }
            }
        }
    }
    Ok(())
}
