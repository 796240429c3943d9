//! `berth exec` and `berth top`, and the namespaces a container shares with another one
//! (`--pid`/`--ipc host|container:NAME`).
//!
//! exec runs from the CLI itself, in the foreground or (`-d`) unwatched: no monitor, no lock,
//! no log (as with docker, exec output is not in `logs`). The process joins every namespace of
//! the container's first process and its cgroup, gets the container's capabilities, seccomp
//! profile, no_new_privs and ulimits, and the container's environment with `-e` on top
//! ([`crate::isolate::spawn_exec`] has the process chain and the defences). It dies with the
//! container: the kernel kills a PID namespace's processes when its init exits, and the
//! monitor's teardown kills whatever is left in the cgroup.

use super::config::{self, ContainerConfig, NsMode, UserSpec};
use super::detach::Streams;
use super::lifecycle::Runtime;
use super::state::{self, ContainerRecord, Status};
use super::{id, ContainerError, Result};
use crate::isolate::{self, namespaces, ExecSpec, NsShare, StdioFds};
use rustix::fd::OwnedFd;
use std::fs::{self, File};

/// The flags of `berth exec`.
#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// `-e KEY=VALUE` / `-e KEY` (and `--env-file` lines before them).
    pub env: Vec<String>,
    /// `-u`: replaces the container's user.
    pub user: Option<String>,
    /// `-w`: replaces the container's working directory (must exist).
    pub workdir: Option<String>,
    /// `-i`: pipe our stdin to the process.
    pub interactive: bool,
    /// `-d`: start it and return at once.
    pub detach: bool,
    /// `-t`: a pty.
    pub tty: bool,
}

/// One process of a container as `berth top` shows it.
#[derive(Debug, Clone)]
pub struct TopProcess {
    pub pid: i32,
    pub ppid: i32,
    /// Effective uid (host view).
    pub uid: u32,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
    /// CPU time (user + system) in clock ticks.
    pub cpu_ticks: u64,
    /// `tty_nr` of /proc/<pid>/stat (0: none).
    pub tty_nr: u64,
    /// The command line, or `[comm]` for a process without one.
    pub cmd: String,
}

impl Runtime {
    /// The host pid of a running container's first process, checked against its start time.
    fn running_pid(&self, record: &ContainerRecord) -> Result<(i32, u64)> {
        match state::read_state(&self.paths, &record.id)? {
            Some(st)
                if st.effective_status() == Status::Running
                    && st.pid > 0
                    && (st.pid_start == 0
                        || state::process_start_time(st.pid) == Some(st.pid_start)) =>
            {
                Ok((st.pid, st.pid_start))
            }
            _ => Err(ContainerError::NotRunning(record.name.clone())),
        }
    }

    /// `berth exec`: runs a command in a running container. Returns its exit code (128+N when
    /// signal N killed it; 126/127 when it cannot be executed), or 0 at once with `detach`.
    pub fn exec(&self, query: &str, opts: &ExecOptions) -> Result<i32> {
        let record = self.resolve(query)?;
        let c = &record.config;
        if opts.args.is_empty() {
            return Err(config::ConfigError::NoCommand.into());
        }
        let user = opts.user.clone().unwrap_or_else(|| c.user.clone());
        if !user.is_empty() {
            UserSpec::parse(&user)?;
        }
        let cwd = opts
            .workdir
            .clone()
            .unwrap_or_else(|| c.working_dir.clone());
        config::check_workdir(&cwd)?;
        let mut env = c.env.clone();
        config::merge_env(&mut env, &opts.env, |k| std::env::var(k).ok())?;
        let security = c.security.isolate()?;

        let (pid, pid_start) = self.running_pid(&record)?;
        let namespaces = isolate::exec::open_namespaces(pid)
            .map_err(|_| ContainerError::NotRunning(record.name.clone()))?;
        // Opened from the right process? A pid reused meanwhile has another start time.
        if pid_start != 0 && state::process_start_time(pid) != Some(pid_start) {
            return Err(ContainerError::NotRunning(record.name.clone()));
        }
        let cgroup = self.cgroup_of(&record.id)?;

        let (mut streams, stdio, tty) = if opts.detach {
            (None, null_stdio()?, None)
        } else if opts.tty {
            let (streams, stdio, pty) = Streams::tty(opts.interactive, true)?;
            (Some(streams), stdio, Some(pty))
        } else {
            let (streams, stdio) = Streams::new(opts.interactive)?;
            (Some(streams), stdio, None)
        };
        let mut spec = ExecSpec {
            namespaces,
            cgroup_join: cgroup.join_files(),
            argv: opts.args.clone(),
            env,
            user,
            cwd,
            capabilities: c.security.capabilities(),
            security,
            stdio: Some(stdio),
            tty,
            detached: opts.detach,
        };
        let spawned = isolate::spawn_exec(&spec);
        // Only the process holds its ends of the stdio and the namespaces now.
        spec.stdio = None;
        spec.tty = None;
        spec.namespaces.clear();
        let running = spawned?.start()?;
        let Some(streams) = streams.as_mut() else {
            running.release();
            return Ok(0);
        };
        streams.relay(&mut None, true);
        Ok(running.wait()?.code())
    }

    /// What `--pid`/`--ipc` give the container at start: a new namespace, the host's, or the
    /// namespace of another container's first process (which must be running).
    pub(super) fn shared_ns(&self, mode: &NsMode, kind: &'static str) -> Result<NsShare> {
        let target = match mode {
            NsMode::Private => return Ok(NsShare::New),
            NsMode::Host => return Ok(NsShare::Host),
            NsMode::Container(target) => target,
        };
        let not_running = || ContainerError::ShareNotRunning {
            kind,
            name: target.clone(),
        };
        let record = self.resolve(target)?;
        let (pid, pid_start) = self.running_pid(&record).map_err(|_| not_running())?;
        let fd = namespaces::open_ns(pid, kind).map_err(|_| not_running())?;
        if pid_start != 0 && state::process_start_time(pid) != Some(pid_start) {
            return Err(not_running());
        }
        Ok(NsShare::Join(fd))
    }

    /// `berth top`: the processes in the container's cgroup, by host pid.
    pub fn top(&self, query: &str) -> Result<Vec<TopProcess>> {
        let record = self.resolve(query)?;
        self.running_pid(&record)?;
        let mut pids = self.cgroup_of(&record.id)?.pids()?;
        pids.sort_unstable();
        Ok(pids.into_iter().filter_map(read_process).collect())
    }
}

/// At create: `container:NAME` becomes `container:<full id>` (the container must exist).
pub(super) fn resolve_ns_targets(
    config: &mut ContainerConfig,
    records: &[ContainerRecord],
) -> Result<()> {
    let pairs: Vec<(String, String)> = records
        .iter()
        .map(|r| (r.id.clone(), r.name.clone()))
        .collect();
    for mode in [&mut config.pid_mode, &mut config.ipc_mode] {
        if let NsMode::Container(target) = mode {
            *target = match id::resolve(&pairs, target) {
                id::Resolved::Found(found) => found.to_string(),
                id::Resolved::Ambiguous => return Err(ContainerError::Ambiguous(target.clone())),
                id::Resolved::NotFound => {
                    return Err(ContainerError::NoSuchContainer(target.clone()))
                }
            };
        }
    }
    Ok(())
}

fn null_stdio() -> Result<StdioFds> {
    let null = std::path::Path::new("/dev/null");
    let open = || -> Result<OwnedFd> {
        let f = File::options()
            .read(true)
            .write(true)
            .open(null)
            .map_err(|e| ContainerError::io("cannot open", null, e))?;
        Ok(OwnedFd::from(f))
    };
    Ok(StdioFds {
        stdin: open()?,
        stdout: open()?,
        stderr: open()?,
    })
}

/// Reads one process from /proc (None if it is gone).
fn read_process(pid: i32) -> Option<TopProcess> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    // Fields after the command name: state is [0], ppid [1], tty_nr [4], utime [11],
    // stime [12], starttime [19] (proc(5) fields 3, 4, 7, 14, 15, 22).
    let rest: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    let num = |i: usize| rest.get(i).and_then(|s| s.parse::<u64>().ok());
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap_or(0);
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(TopProcess {
        pid,
        ppid: rest.get(1)?.parse().ok()?,
        uid,
        start_ticks: num(19)?,
        cpu_ticks: num(11)? + num(12)?,
        tty_nr: num(4)?,
        cmd: if args.is_empty() {
            format!("[{comm}]")
        } else {
            args.join(" ")
        },
    })
}

/// `berth top`'s table (docker's, from `ps -ef`): UID PID PPID C STIME TTY TIME CMD.
pub fn top_table(procs: &[TopProcess]) -> Vec<[String; 8]> {
    // SAFETY: sysconf with a constant name.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    };
    let boot = fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<i64>().ok())
        })
        .unwrap_or(0);
    let uptime_ticks = fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |s| (s * hz as f64) as u64);
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let user = |uid: u32| {
        passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
            .unwrap_or_else(|| uid.to_string())
    };
    let mut rows =
        vec![["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"].map(String::from)];
    for p in procs {
        let elapsed = uptime_ticks.saturating_sub(p.start_ticks).max(1);
        let c = p.cpu_ticks * 100 / elapsed;
        let started = boot + (p.start_ticks / hz) as i64;
        let stime = chrono::DateTime::from_timestamp(started, 0)
            .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
            .unwrap_or_else(|| "?".into());
        let secs = p.cpu_ticks / hz;
        let time = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
        rows.push([
            user(p.uid),
            p.pid.to_string(),
            p.ppid.to_string(),
            c.to_string(),
            stime,
            tty_name(p.tty_nr),
            time,
            p.cmd.clone(),
        ]);
    }
    rows
}

fn tty_name(tty_nr: u64) -> String {
    if tty_nr == 0 {
        return "?".into();
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 => format!("tty{minor}"),
        _ => "?".into(),
    }
}
