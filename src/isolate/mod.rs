//! Isolation: the process chain that turns a command into a container.
//!
//! ```text
//! berth (parent, the monitor)            child (PID 1 of the new PID namespace)
//! ───────────────────────────            ───────────────────────────────────────
//! spawn(): clone(NEWNS|NEWUTS|NEWIPC|
//!          NEWPID[|NEWNET])  ──────────► waits on the sync pipe
//! caller: cgroup.procs ← pid,
//!         bind netns, write state
//! start(): "go" on the sync pipe ──────► unshare(NEWCGROUP), mounts, pivot_root, masks,
//!          reads the report pipe ◄────── user, caps, no_new_privs, execve
//!          (EOF = exec happened)
//! Running::wait(): forwards signals,
//!          reaps, 0-255 or 128+N
//! ```
//!
//! Synchronous and small on purpose: no async runtime, no re-exec of the binary, no JSON
//! handshakes; two pipes carry one byte and, on failure, one message. Seams for the next part:
//! an `--init` reaper as PID 1, seccomp (applied last, after no_new_privs), a pty, detached
//! runs.

mod bpf;
pub mod caps;
pub mod exec;
mod init;
pub mod mounts;
pub mod namespaces;
pub mod pivot_root;
mod reaper;
pub mod rlimits;
pub mod seccomp;
pub mod syscalls;
pub mod user;

pub use exec::{spawn_exec, ExecSpec};
pub use mounts::BindFile;
pub use user::DOCKER_DEFAULT_CAPS;

use crate::cgroup::Layout;
use crate::rootfs::ContainerRootfs;
use rustix::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

/// Exit code for a failure of the runtime itself (docker's convention).
pub const EXIT_RUNTIME_ERROR: i32 = 125;

/// Everything the child needs, prepared by the parent before clone.
#[derive(Debug)]
pub struct Spec {
    pub rootfs: ContainerRootfs,
    pub hostname: String,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    /// `uid[:gid]` or `name[:group]`, looked up in the container; "" is root.
    pub user: String,
    pub cwd: String,
    pub new_netns: bool,
    /// `--pid`: a new PID namespace (the default), the host's, or another container's.
    pub pid_ns: NsShare,
    /// `--ipc`: a new IPC namespace (the default), the host's, or another container's.
    pub ipc_ns: NsShare,
    /// `--init`: PID 1 stays a minimal reaper ([`reaper`]) and the command runs as its child.
    pub init: bool,
    /// The container's stdin, stdout and stderr; `None` leaves the runtime's own.
    pub stdio: Option<StdioFds>,
    /// `-t`: init allocates a pty in the container's devpts, makes it the controlling terminal
    /// and fds 0-2 (replacing `stdio`), and sends the master back ([`crate::tty::pty`]).
    pub tty: Option<crate::tty::PtyRequest>,
    /// The host's cgroup layout, to mount /sys/fs/cgroup inside; `None` leaves it out.
    pub cgroups: Option<Layout>,
    /// Files the child writes "0" to, to move itself into its cgroup before anything else
    /// (see `Cgroup::self_join_files`); empty when the parent moves it.
    pub self_join: Vec<PathBuf>,
    /// The cgroup v2 directory to create the child in (`Cgroup::clone_target`); if the kernel
    /// cannot, [`Spawned::in_cgroup`] says so and the parent moves the child.
    pub into_cgroup: Option<OwnedFd>,
    /// Files bind-mounted into the container (/etc/hostname, /etc/hosts, /etc/resolv.conf).
    pub files: Vec<BindFile>,
    /// Effective/permitted/bounding capabilities for a root process.
    pub capabilities: u64,
    /// no_new_privs, seccomp, rlimits, user mounts, `--privileged` and `--read-only`.
    pub security: Security,
}

/// Whether a container gets a namespace of its own or shares one.
#[derive(Debug, Default)]
pub enum NsShare {
    #[default]
    New,
    /// The runtime's own (the host's).
    Host,
    /// The namespace behind this fd (`/proc/<pid>/ns/*` of another container's process).
    Join(OwnedFd),
}

impl NsShare {
    pub fn is_new(&self) -> bool {
        matches!(self, NsShare::New)
    }

    fn target(&self) -> Option<BorrowedFd<'_>> {
        match self {
            NsShare::Join(fd) => Some(fd.as_fd()),
            _ => None,
        }
    }
}

/// The security options of a container, ready for init.
#[derive(Debug, Clone)]
pub struct Security {
    /// no_new_privs (docker's `--security-opt no-new-privileges`; berth's default is on).
    pub no_new_privs: bool,
    /// Seccomp filters, installed in order (empty: unconfined).
    pub seccomp: Vec<seccompiler::BpfProgram>,
    pub rlimits: Vec<rlimits::Ulimit>,
    /// `--privileged`: no masked or read-only paths, /sys writable.
    pub privileged: bool,
    /// `-v` bind mounts and `--tmpfs` mounts, in order.
    pub mounts: Vec<mounts::UserMount>,
    /// `--read-only`: the root filesystem is mounted read-only.
    pub read_only_root: bool,
}

impl Default for Security {
    fn default() -> Security {
        Security {
            no_new_privs: true,
            seccomp: Vec::new(),
            rlimits: Vec::new(),
            privileged: false,
            mounts: Vec::new(),
            read_only_root: false,
        }
    }
}

/// The ends of the container's standard streams that the container gets (dup'ed onto 0-2).
#[derive(Debug)]
pub struct StdioFds {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    #[error("berth must be single-threaded when it starts a container (clone copies one thread only); start containers from a single-threaded helper process")]
    MultiThreaded,
    #[error("cannot create the container's namespaces: {0}{hint}", hint = clone_hint(.0))]
    Clone(io::Error),
    #[error("cannot create a pipe to the container process: {0}")]
    Pipe(io::Error),
    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("container setup failed: {0}")]
    Setup(String),
    /// The command could not be executed: code 127 (not found) or 126 (not executable).
    #[error("{message}")]
    Exec { code: i32, message: String },
    #[error("cannot wait for the container process {pid}: {source}")]
    Wait { pid: i32, source: io::Error },
}

fn clone_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) => ": creating namespaces needs root (CAP_SYS_ADMIN)",
        Some(libc::ENOSPC) | Some(libc::EUSERS) => {
            ": a namespace limit is reached; see /proc/sys/user/max_*_namespaces"
        }
        _ => "",
    }
}

impl IsolateError {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> IsolateError {
        IsolateError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The exit code `berth run` reports for this error: 126/127 for exec failures, else 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            IsolateError::Exec { code, .. } => *code,
            _ => EXIT_RUNTIME_ERROR,
        }
    }
}

/// How the container's first process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// The shell convention: the exit code, or 128+N when killed by signal N.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// Signals the monitor passes on to the container instead of dying of them.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The container's pid, for the signal handler.
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe; pid is our own child.
        unsafe { libc::kill(pid, sig) };
    }
}

fn forwarded_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in FORWARDED {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

fn set_handlers(handler: libc::sighandler_t) {
    for sig in FORWARDED {
        // SAFETY: a zeroed sigaction with a valid handler (SIG_DFL or forward_signal, which
        // only calls async-signal-safe kill) and an empty mask.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = handler;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

fn stop_forwarding() {
    CHILD.store(0, Ordering::SeqCst);
    set_handlers(libc::SIG_DFL);
}

fn pipe() -> Result<(OwnedFd, OwnedFd), IsolateError> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-element array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(IsolateError::Pipe(io::Error::last_os_error()));
    }
    // SAFETY: both fds were just returned by pipe2 and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn reap(pid: i32) -> Result<ExitStatus, IsolateError> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child, writing into a local.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            if libc::WIFEXITED(status) {
                return Ok(ExitStatus::Exited(libc::WEXITSTATUS(status)));
            }
            if libc::WIFSIGNALED(status) {
                return Ok(ExitStatus::Signaled(libc::WTERMSIG(status)));
            }
            continue;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(IsolateError::Wait { pid, source: e });
        }
    }
}

fn kill_and_reap(pid: i32) {
    // SAFETY: SIGKILL to our own, not yet reaped child (its pid cannot have been reused).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = reap(pid);
}

/// Clones the container's first process into new namespaces. It waits, doing nothing of the
/// user's, until [`Spawned::start`]: the caller puts it into its cgroup first. Dropping the
/// `Spawned` without starting kills and reaps the child.
pub fn spawn(spec: &Spec) -> Result<Spawned, IsolateError> {
    let flags = namespaces::clone_flags(spec.new_netns, spec.pid_ns.is_new(), spec.ipc_ns.is_new());
    let mut join = Vec::new();
    if let Some(fd) = spec.pid_ns.target() {
        join.push((fd, libc::CLONE_NEWPID));
    }
    if let Some(fd) = spec.ipc_ns.target() {
        join.push((fd, libc::CLONE_NEWIPC));
    }
    let into = spec.into_cgroup.as_ref().map(|fd| fd.as_fd());
    fork_child(flags, &join, into, |sync_r, report_w, old| {
        init::child_main(spec, sync_r, report_w, old)
    })
}

/// clone(2)s a child into `flags`' new namespaces and, for the clone, into the namespaces
/// `join` names (see [`namespaces::JoinForClone`]), and into the cgroup v2 directory `into`
/// where the kernel can; the child runs `child` with the read end of the sync pipe, the write
/// end of the report pipe and the signal mask to restore before execve. Forwarded signals are
/// blocked across the clone.
fn fork_child(
    flags: libc::c_int,
    join: &[(BorrowedFd<'_>, libc::c_int)],
    into: Option<BorrowedFd<'_>>,
    child: impl FnOnce(OwnedFd, OwnedFd, &libc::sigset_t) -> std::convert::Infallible,
) -> Result<Spawned, IsolateError> {
    if namespaces::is_multithreaded() {
        return Err(IsolateError::MultiThreaded);
    }
    let (sync_r, sync_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    // Block the forwarded signals across clone: the child must not get one before it has
    // reset its handlers, and the parent installs its forwarding handlers only once it knows
    // the child's pid. The child restores the old mask just before execve.
    let block = forwarded_set();
    // SAFETY: sigset_t is plain data; sigprocmask writes the old mask into our local.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid sets owned by this frame.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &block, &mut old) };
    let joined = match namespaces::JoinForClone::enter(join) {
        Ok(j) => j,
        Err(e) => {
            // SAFETY: restores the mask saved above.
            unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            return Err(e);
        }
    };
    let (cloned, in_cgroup) = match into {
        // SAFETY: as below.
        Some(cgroup) => match unsafe { namespaces::clone_fork_into(flags, cgroup) } {
            Ok(pid) => (Ok(pid), true),
            Err(e) if namespaces::clone_into_unsupported(&e) => {
                tracing::debug!(error = %e, "cannot create the child in its cgroup; moving it");
                // SAFETY: as below.
                (unsafe { namespaces::clone_fork(flags) }, false)
            }
            Err(e) => (Err(e), false),
        },
        // SAFETY: the process is single-threaded (checked above), and the child below leaves
        // only through `child`, which ends in execve or _exit (it never returns).
        None => (unsafe { namespaces::clone_fork(flags) }, false),
    };
    if matches!(cloned, Ok(0)) {
        drop(sync_w);
        drop(report_r);
        // `child` returns an uninhabited type: rustc sees the call itself as diverging.
        #[allow(unreachable_code)]
        match child(sync_r, report_w, &old) {}
    }
    drop(joined); // back in the parent's own namespaces
    let pid = match cloned {
        Ok(pid) => pid,
        Err(e) => {
            // SAFETY: restores the mask saved above.
            unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            return Err(IsolateError::Clone(e));
        }
    };
    drop(sync_r);
    drop(report_w);
    CHILD.store(pid, Ordering::SeqCst);
    set_handlers(forward_signal as *const () as libc::sighandler_t);
    // SAFETY: restores the mask saved above; pending signals now reach forward_signal.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    Ok(Spawned {
        pid,
        in_cgroup,
        sync: Some(sync_w),
        report: Some(report_r),
    })
}

/// A container process that exists but waits for [`start`](Spawned::start).
#[derive(Debug)]
pub struct Spawned {
    pid: i32,
    in_cgroup: bool,
    sync: Option<OwnedFd>,
    report: Option<OwnedFd>,
}

impl Spawned {
    /// The child's pid in the caller's PID namespace.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the child was created in the cgroup the spec asked for (`into_cgroup`).
    pub fn in_cgroup(&self) -> bool {
        self.in_cgroup
    }

    /// Lets the child set up and exec, and waits until it has exec'd (the report pipe closes)
    /// or failed. On failure the child is reaped and the error says why, with the exit code
    /// to report ([`IsolateError::exit_code`]).
    pub fn start(mut self) -> Result<Running, IsolateError> {
        let pid = self.pid;
        if let Some(sync) = self.sync.take() {
            // A failed write means the child is gone; its report (or exit) says why.
            let _ = File::from(sync).write_all(&[1]);
        }
        let mut report = Vec::new();
        if let Some(fd) = self.report.take() {
            // An error here (never seen on a pipe) leaves `report` empty, read as an exec.
            let _ = File::from(fd).read_to_end(&mut report);
        }
        self.pid = 0; // from here on, this function reaps the child or hands it on
        if report.is_empty() {
            // EOF without a message: execve succeeded (the close-on-exec pipe closed). Every
            // failure before it writes a report first, so a child that is already gone ran
            // the command, which ended quickly: `Running::wait` reaps it and reports its
            // status (checking with waitpid here raced fast commands into false setup errors).
            // Only a signal before execve (none is sent by berth) would read as 128+N.
            return Ok(Running { pid });
        }
        let code = i32::from(report[0]);
        let message = String::from_utf8_lossy(&report[1..]).into_owned();
        let _ = reap(pid);
        stop_forwarding();
        if code == i32::from(init::EXIT_NOT_FOUND) || code == i32::from(init::EXIT_CANNOT_EXEC) {
            Err(IsolateError::Exec { code, message })
        } else {
            Err(IsolateError::Setup(message))
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.pid > 0 {
            kill_and_reap(self.pid);
            stop_forwarding();
        }
    }
}

/// The container's command, running. Dropping it without [`wait`](Running::wait) kills it.
#[derive(Debug)]
pub struct Running {
    pid: i32,
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Lets the command run on unwatched (`exec -d`): it is neither waited for nor killed, and
    /// signals are no longer forwarded to it. Returns its pid.
    pub fn release(mut self) -> i32 {
        stop_forwarding();
        std::mem::replace(&mut self.pid, 0)
    }

    /// Waits for the command to end, passing SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and
    /// SIGUSR2 on to it meanwhile.
    pub fn wait(mut self) -> Result<ExitStatus, IsolateError> {
        let pid = std::mem::replace(&mut self.pid, 0);
        let result = reap(pid);
        stop_forwarding();
        result
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.pid > 0 {
            kill_and_reap(self.pid);
            stop_forwarding();
        }
    }
}
