//! The container side of stdio and `--init`.
//!
//! [`install_stdio`] puts the monitor's pipes on fds 0-2 of the container's first process, so
//! that the container never holds a file of the caller's (through /proc/self/fd it could
//! otherwise reopen the caller's terminal or output files).
//!
//! [`fork_reaper`] implements `--init` in process, without exec'ing any binary: right before
//! execve, the container's PID 1 forks; the child goes on to exec the user's command in its own
//! process group, and PID 1 stays behind as a minimal loop that waits for signals with
//! `sigwaitinfo` (every signal blocked, so none is lost and no handler runs), forwards each to
//! the child's process group, reaps every zombie of the namespace, and exits with the child's
//! exit code (128+N when signal N killed it) as soon as the child ends.

use super::StdioFds;
use rustix::fd::AsRawFd;
use std::io;

/// Duplicates the container's stdio onto fds 0, 1 and 2 (dup2 clears close-on-exec on the
/// copies; the originals are close-on-exec and vanish at execve).
pub(super) fn install_stdio(stdio: &StdioFds) -> Result<(), String> {
    for (fd, target) in [
        (stdio.stdin.as_raw_fd(), 0),
        (stdio.stdout.as_raw_fd(), 1),
        (stdio.stderr.as_raw_fd(), 2),
    ] {
        // SAFETY: dup2 onto a standard fd number; both fds are open and ours.
        if unsafe { libc::dup2(fd, target) } < 0 {
            return Err(format!(
                "cannot set up the container's stdio (fd {target}): {}",
                io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Forks the `--init` reaper. Returns in the child (which should exec the command); the
/// reaper itself never returns. Every signal is blocked on return: the caller's exec path
/// restores the runtime's original mask just before execve.
pub(super) fn fork_reaper() -> Result<(), String> {
    // SAFETY: sigset_t is plain data, filled by sigfillset; sigprocmask only changes our mask.
    let all = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        all
    };
    // SAFETY: the container's init is single-threaded (cloned from a single-threaded
    // runtime); the child only calls setpgid and then continues to execve.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(format!(
            "cannot fork the init process: {}",
            io::Error::last_os_error()
        ));
    }
    if child == 0 {
        // Its own process group, so that the reaper can signal it with all its children.
        // With a pty (`-t`), that group is the terminal's foreground group, so that ^C reaches
        // the command directly (as tini does); every signal is blocked here, so tcsetpgrp
        // from what is still a background group does not stop us with SIGTTOU.
        // SAFETY: setpgid, isatty and tcsetpgrp act on ourselves and our own stdin.
        unsafe {
            libc::setpgid(0, 0);
            if libc::isatty(0) == 1 {
                libc::tcsetpgrp(0, libc::getpid());
            }
        }
        return Ok(());
    }
    reap_loop(child, &all)
}

fn reap_loop(child: libc::pid_t, all: &libc::sigset_t) -> ! {
    // SAFETY: closing every fd but 0-2 (the report pipe among them, so that the monitor sees
    // EOF when the child execs) and making the reaper undumpable: other container processes
    // cannot then open /proc/1/exe or /proc/1/mem, which lead to the runtime binary
    // (CVE-2019-5736).
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    loop {
        // SAFETY: siginfo_t is plain data written by sigwaitinfo.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waits for one of the (all blocked) signals in `all`.
        let sig = unsafe { libc::sigwaitinfo(all, &mut info) };
        if sig < 0 {
            continue; // EINTR
        }
        if sig != libc::SIGCHLD {
            // SAFETY: kill(2) to the child's process group, or the child if it has left it.
            unsafe {
                if libc::kill(-child, sig) != 0 {
                    libc::kill(child, sig);
                }
            }
            continue;
        }
        loop {
            let mut status = 0;
            // SAFETY: non-blocking waitpid for any of our children, into a local.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                let code = if libc::WIFSIGNALED(status) {
                    128 + libc::WTERMSIG(status)
                } else {
                    libc::WEXITSTATUS(status)
                };
                // SAFETY: ends the reaper; the kernel kills what is left of the namespace.
                unsafe { libc::_exit(code) };
            }
        }
    }
}
