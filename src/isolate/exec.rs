//! `berth exec`: a new process inside a running container.
//!
//! ```text
//! berth exec (single-threaded CLI)        child
//! ────────────────────────────────        ─────
//! opens /proc/<pid>/ns/{ipc,uts,net,
//!   cgroup,pid,mnt} (close-on-exec),
//! becomes undumpable,
//! setns(pid) ─ fork ─ setns(own pid) ───► born in the container's PID namespace
//!                                         "0" → cgroup tasks / cgroup.procs (host paths)
//!                                         setns ipc, uts, net, cgroup, mnt (closes the fds)
//! "go" on the sync pipe ────────────────► rlimits, user, workdir (verified), caps, ids,
//! reads the report pipe ◄──────────────── no_new_privs, seccomp, execve ([`super::init::finish`])
//! ```
//!
//! Defences: the CLI makes itself non-dumpable before the fork, so the child is born
//! non-dumpable and a container process cannot open `/proc/<child>/exe` (the berth binary on
//! the host: CVE-2019-5736) or its fds and cwd while it is still berth; execve of the user's
//! program resets that and leaves no berth image in the container. The namespace fds are
//! closed right after use, every other fd is close-on-exec, and the working directory is
//! checked to lie inside the container after chdir (CVE-2024-21626).

use super::init::{self, setup, Fail, Process};
use super::{fork_child, namespaces, IsolateError, Security, Spawned, StdioFds};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use std::convert::Infallible;
use std::io::Read;
use std::path::PathBuf;

/// Everything the exec'd process needs, prepared by the CLI before the fork.
#[derive(Debug)]
pub struct ExecSpec {
    /// The container's namespaces, `(fd, setns type)` in [`namespaces::EXEC_NAMESPACES`]
    /// order (see [`open_namespaces`]).
    pub namespaces: Vec<(OwnedFd, libc::c_int)>,
    /// Files the child writes "0" to, to move itself into the container's cgroup.
    pub cgroup_join: Vec<PathBuf>,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub cwd: String,
    pub capabilities: u64,
    pub security: Security,
    pub stdio: Option<StdioFds>,
    /// `exec -t`: a pty from the container's devpts, as for the container's own `-t`.
    pub tty: Option<crate::tty::PtyRequest>,
    /// `exec -d`: the process must not die with the CLI.
    pub detached: bool,
}

/// Opens every namespace of process `pid` that exec joins.
pub fn open_namespaces(pid: libc::pid_t) -> Result<Vec<(OwnedFd, libc::c_int)>, IsolateError> {
    namespaces::EXEC_NAMESPACES
        .iter()
        .map(|(name, nstype)| Ok((namespaces::open_ns(pid, name)?, *nstype)))
        .collect()
}

/// Forks the exec'd process into the container. Like [`super::spawn`], it waits for
/// [`Spawned::start`] and reports exec failures with codes 126/127.
pub fn spawn_exec(spec: &ExecSpec) -> Result<Spawned, IsolateError> {
    let pid_ns = spec
        .namespaces
        .iter()
        .find(|(_, t)| *t == libc::CLONE_NEWPID)
        .ok_or_else(|| IsolateError::Setup("exec needs the container's PID namespace".into()))?;
    // Born non-dumpable (the flag is inherited across fork): see the module notes.
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(IsolateError::Setup(format!(
            "cannot make berth non-dumpable: {}",
            std::io::Error::last_os_error()
        )));
    }
    fork_child(
        0,
        &[(pid_ns.0.as_fd(), libc::CLONE_NEWPID)],
        None,
        |sync, report, mask| init::guarded(report, || run(spec, sync, mask)),
    )
}

fn run(spec: &ExecSpec, sync: OwnedFd, mask: &libc::sigset_t) -> Result<Infallible, Fail> {
    init::reset_signal_dispositions();
    if let Some(stdio) = &spec.stdio {
        super::reaper::install_stdio(stdio).map_err(setup)?;
    }
    if !spec.detached {
        // Dies with the CLI, as the container's processes die with their monitor.
        init::kill_on_parent_death();
    }
    // The cgroup first, through the host's /sys/fs/cgroup (before the mount namespace
    // changes), and before the cgroup namespace, whose root is the container's cgroup.
    for file in &spec.cgroup_join {
        std::fs::write(file, "0").map_err(|e| {
            setup(format!(
                "cannot join the container's cgroup through {}: {e}",
                file.display()
            ))
        })?;
    }
    for (fd, nstype) in &spec.namespaces {
        if *nstype == libc::CLONE_NEWPID {
            continue; // joined at birth
        }
        namespaces::setns(fd.as_fd(), *nstype).map_err(|e| {
            setup(format!(
                "cannot join the container's namespace (type {nstype:#x}): {e}"
            ))
        })?;
    }
    // No fd of the runtime stays open into the user's steps (`-w /proc/self/fd/N`).
    for (fd, _) in &spec.namespaces {
        // SAFETY: closes this process's copy of an fd it owns; nothing uses it afterwards,
        // and the child never runs destructors (it leaves through execve or _exit).
        unsafe { libc::close(fd.as_raw_fd()) };
    }
    let mut go = [0u8; 1];
    let mut sync = std::fs::File::from(sync);
    match sync.read(&mut go) {
        Ok(1) => {}
        _ => return Err(setup("berth exec went away before the command started")),
    }
    drop(sync);
    if let Some(tty) = &spec.tty {
        // In the container's mount namespace: the pty comes from its devpts. Before the
        // capabilities drop: the slave is handed to the exec user.
        let uid = if spec.user.is_empty() {
            0
        } else {
            super::user::resolve(&spec.user).map_err(setup)?.uid
        };
        crate::tty::pty::attach_in_container(tty, uid).map_err(setup)?;
    }
    init::finish(
        &Process {
            argv: &spec.argv,
            env: &spec.env,
            user: &spec.user,
            cwd: &spec.cwd,
            create_cwd: false,
            capabilities: spec.capabilities,
            security: &spec.security,
            init: false,
        },
        mask,
    )
}
