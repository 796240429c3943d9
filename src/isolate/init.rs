//! The container's init: what the cloned child does, as PID 1 of its new PID namespace,
//! between clone(2) and execve(2).
//!
//! 1. Wait on the sync pipe until the parent has put it into the container's cgroup and bound
//!    its network namespace (EOF instead: the parent died; give up).
//! 2. `unshare(CLONE_NEWCGROUP)`: the cgroup namespace is rooted at the container's cgroup.
//! 3. `lo` up, hostname.
//! 4. `/` recursively slave (nothing mounted here reaches the host), overlay root, the mounts
//!    of [`super::mounts`] (with `-v`, `--tmpfs`, `--read-only`), `pivot_root`, masked and
//!    read-only paths (not with `--privileged`), `--ulimit`s.
//! 5. User lookup in the container's /etc, working directory, capabilities, ids,
//!    no_new_privs, executable lookup in the container's `PATH`.
//! 6. Mark every fd but 0-2 close-on-exec, install the seccomp filters (the very last step;
//!    before the capabilities drop when no_new_privs is off) and `execve`.
//!
//! Failures are written to the report pipe (close-on-exec, so a successful exec shows as EOF)
//! as one exit-code byte and a message, and the child exits with that code: 125 for a setup
//! failure, 127 for a missing executable, 126 for one that cannot be executed. The phrases
//! "executable file not found in $PATH", "no such file or directory" and "permission denied"
//! are an API: podman maps them to its 127/126 errors.

use super::{mounts, namespaces, pivot_root, user, Spec};
use rustix::fd::{AsFd, OwnedFd};
use std::convert::Infallible;
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::panic::AssertUnwindSafe;

pub(super) const EXIT_SETUP: u8 = 125;
pub(super) const EXIT_CANNOT_EXEC: u8 = 126;
pub(super) const EXIT_NOT_FOUND: u8 = 127;

pub(super) struct Fail {
    code: u8,
    msg: String,
}

pub(super) fn setup(msg: impl Into<String>) -> Fail {
    Fail {
        code: EXIT_SETUP,
        msg: msg.into(),
    }
}

/// Runs in the child right after clone; never returns.
pub(super) fn child_main(spec: &Spec, sync: OwnedFd, report: OwnedFd, mask: &libc::sigset_t) -> ! {
    guarded(report, || run(spec, sync, mask))
}

/// Runs a child's setup `f` (which ends in execve); on failure or panic, writes the exit code
/// and message to the report pipe and exits with that code. Never returns.
pub(super) fn guarded(report: OwnedFd, f: impl FnOnce() -> Result<Infallible, Fail>) -> ! {
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    let fail = match result {
        Ok(Ok(never)) => match never {},
        Ok(Err(fail)) => fail,
        Err(_) => setup("container init panicked"),
    };
    let mut out = vec![fail.code];
    out.extend_from_slice(fail.msg.as_bytes());
    let _ = std::fs::File::from(report).write_all(&out);
    // SAFETY: _exit ends this process at once, without running the parent's atexit handlers
    // or destructors on state copied from it.
    unsafe { libc::_exit(fail.code as libc::c_int) }
}

fn run(spec: &Spec, sync: OwnedFd, mask: &libc::sigset_t) -> Result<Infallible, Fail> {
    reset_signal_dispositions();
    if let Some(stdio) = &spec.stdio {
        super::reaper::install_stdio(stdio).map_err(setup)?;
    }
    // The container must not outlive the runtime that monitors it and cleans up after it.
    kill_on_parent_death();

    // Into the cgroup before anything else runs: a fork bomb is bounded from its first fork.
    for tasks in &spec.self_join {
        std::fs::write(tasks, "0").map_err(|e| {
            setup(format!(
                "cannot join the cgroup through {}: {e}",
                tasks.display()
            ))
        })?;
    }
    let mut go = [0u8; 1];
    let mut sync = std::fs::File::from(sync);
    match sync.read(&mut go) {
        Ok(1) => {}
        _ => return Err(setup("the runtime went away before the container started")),
    }
    drop(sync);

    rustix::thread::unshare(rustix::thread::UnshareFlags::NEWCGROUP)
        .map_err(|e| setup(format!("cannot create the cgroup namespace: {e}")))?;
    if spec.new_netns {
        namespaces::loopback_up().map_err(|e| setup(format!("cannot bring up lo: {e}")))?;
    }
    nix::unistd::sethostname(&spec.hostname)
        .map_err(|e| setup(format!("cannot set the hostname {:?}: {e}", spec.hostname)))?;

    mount_root(spec)?;
    if !spec.security.privileged {
        let root = open_root("/")?;
        pivot_root::protect_paths(root.as_fd()).map_err(setup)?;
        drop(root);
    }
    if let Some(tty) = &spec.tty {
        // After pivot_root: the pty comes from the container's own devpts. Before the
        // capabilities drop: the slave is handed to the container user (fchown).
        let uid = if spec.user.is_empty() {
            0
        } else {
            user::resolve(&spec.user).map_err(setup)?.uid
        };
        crate::tty::pty::attach_in_container(tty, uid).map_err(setup)?;
    }
    finish(
        &Process {
            argv: &spec.argv,
            env: &spec.env,
            user: &spec.user,
            cwd: &spec.cwd,
            create_cwd: true,
            capabilities: spec.capabilities,
            security: &spec.security,
            init: spec.init,
        },
        mask,
    )
}

/// The process to run once the container's filesystem view is in place: what the container's
/// first process and `berth exec` have in common.
pub(super) struct Process<'a> {
    pub argv: &'a [String],
    pub env: &'a [String],
    /// `uid[:gid]` or `name[:group]`, looked up in the container; "" is root.
    pub user: &'a str,
    pub cwd: &'a str,
    /// Create a missing working directory (the container's start does, as docker; exec not).
    pub create_cwd: bool,
    pub capabilities: u64,
    pub security: &'a super::Security,
    /// `--init`: fork the reaper right before execve.
    pub init: bool,
}

/// rlimits, user, working directory, capabilities, no_new_privs, seccomp, execve: the last
/// steps, run inside the container's namespaces with `/` already the container's root.
pub(super) fn finish(spec: &Process<'_>, mask: &libc::sigset_t) -> Result<Infallible, Fail> {
    for limit in &spec.security.rlimits {
        limit.apply().map_err(setup)?;
    }

    let exec_user = user::resolve(spec.user).map_err(setup)?;
    let env = final_env(spec.env, &exec_user.home);
    if spec.create_cwd {
        prepare_workdir(spec.cwd)?;
    }
    // Seccomp goes on last, just before execve, so that the runtime's own calls need not be
    // in the profile; that needs no_new_privs. Without it the kernel wants CAP_SYS_ADMIN to
    // install a filter, which only this point (before the capabilities drop) still has, and
    // the profile must then allow what follows: prctl, capset, setgroups, setres[ug]id,
    // chdir, stat, close_range, execve (docker's default does; so does runc's order).
    let nnp = spec.security.no_new_privs;
    if !nnp {
        install_seccomp(&spec.security.seccomp)?;
    }
    user::limit_bounding_and_ambient(spec.capabilities).map_err(setup)?;
    user::switch_user(&exec_user, spec.capabilities).map_err(setup)?;
    enter_workdir(spec.cwd)?;
    if nnp {
        rustix::thread::set_no_new_privs(true)
            .map_err(|e| setup(format!("cannot set no_new_privs: {e}")))?;
    }
    let late_seccomp: &[seccompiler::BpfProgram] = if nnp { &spec.security.seccomp } else { &[] };

    let argv0 = spec.argv.first().ok_or_else(|| setup("no command given"))?;
    let program = find_program(argv0, &env)?;
    if spec.init {
        // Returns in the child; PID 1 stays as the reaper.
        super::reaper::fork_reaper().map_err(setup)?;
    }
    exec(&program, argv0, spec.argv, &env, mask, late_seccomp)
}

fn install_seccomp(programs: &[seccompiler::BpfProgram]) -> Result<(), Fail> {
    super::seccomp::install(programs)
        .map_err(|e| setup(format!("cannot install the seccomp profile: {e}")))
}

/// SIGKILL for this process when its parent dies (PR_SET_PDEATHSIG).
pub(super) fn kill_on_parent_death() {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
}

/// Every signal back to its default action (an ignored SIGPIPE, as Rust programs start with,
/// would otherwise survive execve).
pub(super) fn reset_signal_dispositions() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: setting a default disposition has no memory effects; invalid numbers fail.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

fn open_root(path: &str) -> Result<OwnedFd, Fail> {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| setup(format!("cannot open the container root {path}: {e}")))
}

/// Mounts the overlay root and everything inside it, then pivots into it.
fn mount_root(spec: &Spec) -> Result<(), Fail> {
    // Nothing mounted from here on may propagate to the host.
    mounts::mount(None, "/", None, libc::MS_SLAVE | libc::MS_REC, None)
        .map_err(|e| setup(format!("cannot make / a slave mount: {e}")))?;
    let merged = spec.rootfs.merged();
    spec.rootfs
        .mount_at(merged)
        .map_err(|e| setup(format!("cannot mount the container root: {e}")))?;
    let merged_str = merged
        .to_str()
        .ok_or_else(|| setup(format!("{} is not UTF-8", merged.display())))?;
    mounts::mount(None, merged_str, None, libc::MS_PRIVATE, None)
        .map_err(|e| setup(format!("cannot make the container root private: {e}")))?;
    let root = open_root(merged_str)?;
    let plan = mounts::MountPlan {
        cgroups: spec.cgroups.as_ref(),
        files: &spec.files,
        user: &spec.security.mounts,
        writable_sys: spec.security.privileged,
        read_only_root: spec.security.read_only_root,
    };
    mounts::setup(root.as_fd(), &plan).map_err(setup)?;
    pivot_root::pivot(root.as_fd()).map_err(setup)
}

/// The environment with `HOME` from the user's passwd entry unless already set.
fn final_env(env: &[String], home: &str) -> Vec<String> {
    let mut env = env.to_vec();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

/// Creates the working directory (as root, like docker) if the image lacks it. After the
/// pivot, `/` is the container root, so no path can lead out of it.
fn prepare_workdir(cwd: &str) -> Result<(), Fail> {
    if std::fs::metadata(cwd).is_err() {
        std::fs::create_dir_all(cwd)
            .map_err(|e| setup(format!("cannot create the working directory {cwd}: {e}")))?;
    }
    Ok(())
}

/// chdir as the container user, then check that the directory is inside the container root:
/// with a leaked host fd, `cwd=/proc/self/fd/N` would put the process on the host filesystem
/// (CVE-2024-21626). getcwd fails with ENOENT ("unreachable") for a directory outside the root.
fn enter_workdir(cwd: &str) -> Result<(), Fail> {
    rustix::process::chdir(cwd)
        .map_err(|e| setup(format!("cannot change to the working directory {cwd}: {e}")))?;
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() => Ok(()),
        Ok(p) => Err(setup(format!(
            "working directory {cwd} resolves outside the container ({})",
            p.display()
        ))),
        Err(e) => Err(setup(format!(
            "working directory {cwd} is outside the container: {e}"
        ))),
    }
}

fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .find_map(|e| e.strip_prefix(key)?.strip_prefix('='))
}

/// Finds the program as `execvp` would, in the container's `PATH`.
fn find_program(name: &str, env: &[String]) -> Result<String, Fail> {
    if name.contains('/') {
        return Ok(name.to_string());
    }
    let path = env_value(env, "PATH").unwrap_or("");
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = format!("{dir}/{name}");
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            continue;
        }
        let c = CString::new(candidate.as_str()).map_err(|_| setup("NUL in PATH"))?;
        // SAFETY: access(2) on a NUL-terminated path we own.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
            return Ok(candidate);
        }
    }
    Err(Fail {
        code: EXIT_NOT_FOUND,
        msg: format!("exec: {name:?}: executable file not found in $PATH"),
    })
}

fn cstrings(items: &[String]) -> Result<Vec<CString>, Fail> {
    items
        .iter()
        .map(|s| CString::new(s.as_str()).map_err(|_| setup(format!("{s:?} contains a NUL byte"))))
        .collect()
}

fn exec(
    program: &str,
    argv0: &str,
    argv: &[String],
    env: &[String],
    mask: &libc::sigset_t,
    seccomp: &[seccompiler::BpfProgram],
) -> Result<Infallible, Fail> {
    let c_program = CString::new(program).map_err(|_| setup("NUL in the program path"))?;
    let c_argv = cstrings(argv)?;
    let c_env = cstrings(env)?;
    let mut p_argv: Vec<*const libc::c_char> = c_argv.iter().map(|c| c.as_ptr()).collect();
    p_argv.push(std::ptr::null());
    let mut p_env: Vec<*const libc::c_char> = c_env.iter().map(|c| c.as_ptr()).collect();
    p_env.push(std::ptr::null());

    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc::umask(0o022) };
    // No fd of the runtime may reach the container (CVE-2024-21626: a leaked host fd plus
    // cwd=/proc/self/fd/N escaped runc). Marking all fds >= 3 close-on-exec, rather than
    // closing them, keeps the report pipe open until the exec succeeds.
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on our own fds.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        return Err(setup(format!(
            "cannot mark fds close-on-exec: {}",
            io::Error::last_os_error()
        )));
    }
    // SAFETY: restores the signal mask the runtime had before it blocked signals for clone.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, mask, std::ptr::null_mut()) };
    // The last step: from here on only execve runs (and, on failure, the report write).
    install_seccomp(seccomp)?;
    // SAFETY: every pointer array is NULL-terminated and points into CStrings alive here.
    unsafe { libc::execve(c_program.as_ptr(), p_argv.as_ptr(), p_env.as_ptr()) };
    let e = io::Error::last_os_error();
    let shown = if program.contains('/') && !argv0.contains('/') {
        program
    } else {
        argv0
    };
    let (code, what) = match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => {
            (EXIT_NOT_FOUND, "no such file or directory".to_string())
        }
        Some(libc::EACCES) | Some(libc::EPERM) => {
            (EXIT_CANNOT_EXEC, "permission denied".to_string())
        }
        _ => (EXIT_CANNOT_EXEC, e.to_string()),
    };
    Err(Fail {
        code,
        msg: format!("exec: {shown:?}: {what}"),
    })
}
