//! `berth run`, `create`, `start`, `rm`, `ps`, `inspect`: argument parsing and output.
//!
//! Exit codes follow docker: `run` and `start` return the container's exit code (128+N when
//! signal N killed it), 126 when the command cannot be executed, 127 when it is not found, and
//! 125 when berth itself fails; `create` also returns 125 on failure.

use anyhow::Result;
use berth::container::network::{parse_flags, NetworkFlags};
use berth::container::{ContainerInfo, CreateOptions, Runtime, Status};
use berth::options::GlobalOptions;
use clap::{ArgAction, Args, ValueEnum};
use serde_json::{json, Value};
use std::io::{self, Write};

// Flags shared by `run` and `create` (docker's grammar). Option parsing stops at the image:
// everything after it is the command. (A plain comment: a doc comment here would become the
// `about` of `run` and `create`, whose arguments are built after their own about.)
#[derive(Args)]
pub struct ContainerFlags {
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Give the container a name (unique).
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to pass the host's value).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory inside the container (absolute).
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// Container hostname (default: the short id).
    #[arg(short = 'h', long = "hostname", value_name = "NAME")]
    hostname: Option<String>,
    /// Replace the image's entrypoint (and clear its Cmd).
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// Network: `none` (own namespace, loopback only), `host`, or a berthd network NAME
    /// (repeatable: eth0, eth1, ...; `name=NAME,ip=IP,ip6=IP,alias=A` sets them per network).
    /// Default: berthd's default network when berthd runs, else `none`.
    #[arg(long, value_name = "NETWORK")]
    network: Vec<String>,
    /// Extra DNS name of the container on its (first) network.
    #[arg(long = "network-alias", value_name = "NAME")]
    network_alias: Vec<String>,
    /// IPv4 address on the (first) network.
    #[arg(long, value_name = "IP")]
    ip: Option<String>,
    /// IPv6 address on the (first) network.
    #[arg(long, value_name = "IP")]
    ip6: Option<String>,
    /// Publish a container port on the host: [HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp].
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    publish: Vec<String>,
    /// DNS server for the container's /etc/resolv.conf (replaces berthd's resolver).
    #[arg(long, value_name = "IP")]
    dns: Vec<String>,
    /// Add a line to the container's /etc/hosts (NAME:IP).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_host: Vec<String>,
    /// Run as uid[:gid] or name[:group].
    #[arg(short = 'u', long = "user", value_name = "USER")]
    user: Option<String>,
    /// Run a minimal init as PID 1 that forwards signals and reaps zombies.
    #[arg(long)]
    init: bool,
    /// Signal that `berth stop` sends (default: the image's StopSignal, else SIGTERM).
    #[arg(long, value_name = "SIGNAL")]
    stop_signal: Option<String>,
    /// Seconds `berth stop` waits before it kills the container (default 10).
    #[arg(long, value_name = "SECONDS")]
    stop_timeout: Option<u32>,
    /// Give the container every capability, no seccomp profile, no masked or read-only paths
    /// and a writable /sys.
    #[arg(long)]
    privileged: bool,
    /// Add a capability (NET_ADMIN or CAP_NET_ADMIN; ALL for every one).
    #[arg(long, value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop a capability (ALL: keep only those of --cap-add).
    #[arg(long, value_name = "CAP")]
    cap_drop: Vec<String>,
    /// no-new-privileges[=true|false], seccomp=unconfined or seccomp=PROFILE.json.
    #[arg(long, value_name = "OPT")]
    security_opt: Vec<String>,
    /// Resource limit name=soft[:hard] (nofile, nproc, core, memlock, stack, ...; -1: unlimited).
    #[arg(long, value_name = "LIMIT")]
    ulimit: Vec<String>,
    /// Bind-mount HOST:CONTAINER[:ro|rw] (HOST absolute and existing).
    #[arg(short = 'v', long = "volume", value_name = "HOST:CTR[:MODE]")]
    volume: Vec<String>,
    /// Mount a tmpfs at CONTAINER[:OPTIONS] (default nosuid,nodev,noexec).
    #[arg(long, value_name = "CTR[:OPTS]")]
    tmpfs: Vec<String>,
    /// Mount the container's root filesystem read-only.
    #[arg(long)]
    read_only: bool,
    /// PID namespace: `host`, or `container:NAME` to share another container's.
    #[arg(long, value_name = "MODE")]
    pid: Option<String>,
    /// IPC namespace: `private` (default), `shareable`, `host`, or `container:NAME`.
    #[arg(long, value_name = "MODE")]
    ipc: Option<String>,
    /// Read environment variables from a file (KEY=VALUE lines, `#` comments, bare KEY takes
    /// berth's value); -e flags win.
    #[arg(long, value_name = "FILE")]
    env_file: Vec<String>,
    /// Set a label (KEY=VALUE).
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Allocate a pseudo-terminal for the container's stdio (with -i the caller's terminal
    /// goes raw while attached).
    #[arg(short = 't', long)]
    tty: bool,
    #[command(flatten)]
    resources: crate::resources::ResourceArgs,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
    /// The image, then the command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        value_name = "IMAGE [COMMAND [ARG...]]"
    )]
    command: Vec<String>,
}

impl ContainerFlags {
    fn options(&self) -> berth::container::Result<CreateOptions> {
        let net = parse_flags(&NetworkFlags {
            networks: self.network.clone(),
            aliases: self.network_alias.clone(),
            ip: self.ip.clone(),
            ip6: self.ip6.clone(),
            publish: self.publish.clone(),
            dns: self.dns.clone(),
            add_hosts: self.add_host.clone(),
        })?;
        Ok(CreateOptions {
            image: self.command.first().cloned().unwrap_or_default(),
            args: self.command.get(1..).unwrap_or(&[]).to_vec(),
            name: self.name.clone(),
            env: crate::exec::env_with_files(&self.env_file, &self.env)?,
            workdir: self.workdir.clone(),
            hostname: self.hostname.clone(),
            entrypoint: self.entrypoint.clone(),
            network: net.mode,
            ports: net.ports,
            dns: net.dns,
            add_hosts: net.add_hosts,
            user: self.user.clone(),
            auto_remove: self.rm,
            init: self.init,
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            privileged: self.privileged,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            security_opt: self.security_opt.clone(),
            ulimits: self.ulimit.clone(),
            volumes: self.volume.clone(),
            tmpfs: self.tmpfs.clone(),
            read_only: self.read_only,
            tty: self.tty,
            pid: self.pid.clone(),
            ipc: self.ipc.clone(),
            labels: self.label.clone(),
            resources: self.resources.flags(),
        })
    }
}

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep stdin open: pipe berth's stdin to the container.
    #[arg(short = 'i', long)]
    interactive: bool,
    #[command(flatten)]
    flags: ContainerFlags,
}

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    flags: ContainerFlags,
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach: run in the foreground, relaying the output, and return the exit code.
    #[arg(short = 'a', long)]
    attach: bool,
    /// With -a, pipe berth's stdin to the container.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// The container (id, unique id prefix, or name).
    container: String,
}

#[derive(Args)]
pub struct RmArgs {
    /// Kill a running container before removing it.
    #[arg(short, long)]
    force: bool,
    /// Containers (ids, unique id prefixes, or names).
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Args)]
pub struct PsArgs {
    /// Show all containers (default: only running ones).
    #[arg(short, long)]
    all: bool,
    /// Only show ids.
    #[arg(short, long)]
    quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Do not truncate ids and commands.
    #[arg(long)]
    no_trunc: bool,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Containers (ids, unique id prefixes, or names).
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Prints a runtime error and returns its exit code (125, or 126/127 for exec failures).
pub(crate) fn fail(e: berth::container::ContainerError) -> i32 {
    eprintln!("berth: {e}");
    e.exit_code()
}

pub fn run(g: &GlobalOptions, a: &RunArgs) -> Result<i32> {
    let runtime = match Runtime::from_options(g) {
        Ok(r) => r,
        Err(e) => return Ok(fail(e)),
    };
    let opts = match a.flags.options() {
        Ok(o) => o,
        Err(e) => return Ok(fail(e)),
    };
    if a.detach {
        return match runtime.run_detached(&opts) {
            Ok(id) => {
                writeln!(io::stdout(), "{id}")?;
                Ok(0)
            }
            Err(e) => Ok(fail(e)),
        };
    }
    Ok(runtime.run(&opts, a.interactive).unwrap_or_else(fail))
}

pub fn create(g: &GlobalOptions, a: &CreateArgs) -> Result<i32> {
    let created = Runtime::from_options(g).and_then(|r| r.create(&a.flags.options()?));
    match created {
        Ok(record) => {
            writeln!(io::stdout(), "{}", record.id)?;
            Ok(0)
        }
        Err(e) => Ok(fail(e)),
    }
}

pub fn start(g: &GlobalOptions, a: &StartArgs) -> Result<i32> {
    let runtime = match Runtime::from_options(g) {
        Ok(r) => r,
        Err(e) => return Ok(fail(e)),
    };
    if a.attach || a.interactive {
        return Ok(runtime
            .start(&a.container, a.interactive)
            .unwrap_or_else(fail));
    }
    match runtime.start_detached(&a.container) {
        Ok(_) => {
            writeln!(io::stdout(), "{}", a.container)?;
            Ok(0)
        }
        Err(e) => Ok(fail(e)),
    }
}

pub fn remove(g: &GlobalOptions, a: &RmArgs) -> Result<i32> {
    let runtime = Runtime::from_options(g)?;
    let mut code = 0;
    for c in &a.containers {
        match runtime.remove(c, a.force) {
            Ok(_) => writeln!(io::stdout(), "{c}")?,
            Err(e) => {
                eprintln!("berth: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn inspect(g: &GlobalOptions, a: &InspectArgs) -> Result<i32> {
    let runtime = Runtime::from_options(g)?;
    let mut out = Vec::new();
    let mut code = 0;
    for c in &a.containers {
        match runtime.resolve(c).and_then(|r| runtime.info(r)) {
            Ok(info) => out.push(runtime.inspect_json(&info)),
            Err(e) => {
                eprintln!("berth: {e}");
                code = 1;
            }
        }
    }
    writeln!(io::stdout(), "{}", serde_json::to_string_pretty(&out)?)?;
    Ok(code)
}

pub fn ps(g: &GlobalOptions, a: &PsArgs) -> Result<i32> {
    let runtime = Runtime::from_options(g)?;
    let list = runtime.list(a.all)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if a.quiet {
        for info in &list {
            let id = &info.record.id;
            writeln!(out, "{}", if a.no_trunc { id } else { &id[..12] })?;
        }
        return Ok(0);
    }
    if let Format::Json = a.format {
        let rows: Vec<Value> = list.iter().map(ps_json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        return Ok(0);
    }
    let mut rows = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "NAMES",
    ]
    .map(String::from)];
    for info in &list {
        let r = &info.record;
        let mut command = r.config.argv().join(" ");
        if !a.no_trunc && command.chars().count() > 20 {
            command = command.chars().take(19).collect::<String>() + "…";
        }
        rows.push([
            if a.no_trunc {
                r.id.clone()
            } else {
                r.id[..12].to_string()
            },
            r.config.image.clone(),
            format!("{command:?}"),
            ago(&r.created),
            status_text(info),
            r.name.clone(),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(pad + 3));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(0)
}

fn ps_json(info: &ContainerInfo) -> Value {
    let r = &info.record;
    let st = info.state.as_ref();
    json!({
        "Id": r.id,
        "Names": r.name,
        "Image": r.config.image,
        "ImageId": r.image_id,
        "Command": r.config.argv(),
        "CreatedAt": r.created,
        "State": info.status.as_str(),
        "Status": status_text(info),
        "ExitCode": st.and_then(|s| s.exit_code),
        "Pid": if info.status == Status::Running { st.map_or(0, |s| s.pid) } else { 0 },
        "Labels": r.config.labels,
    })
}

/// docker's STATUS column: `Up 3 seconds`, `Exited (0) 2 minutes ago`, `Created`.
fn status_text(info: &ContainerInfo) -> String {
    let st = info.state.as_ref();
    match info.status {
        Status::Created => "Created".into(),
        Status::Running => {
            let since = st.and_then(|s| s.started_at.as_deref()).unwrap_or("");
            format!("Up {}", duration_since(since))
        }
        Status::Exited => {
            let code = st.and_then(|s| s.exit_code).unwrap_or(0);
            let when = st.and_then(|s| s.finished_at.as_deref()).unwrap_or("");
            format!("Exited ({code}) {}", ago(when))
        }
        Status::Dead => "Dead".into(),
    }
}

fn duration_since(rfc3339: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return "?".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 172_800 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn ago(rfc3339: &str) -> String {
    format!("{} ago", duration_since(rfc3339))
}
