//! The caller's terminal in raw mode while attached, and a guardian that restores it.
//!
//! [`RawMode::enter`] saves the terminal's settings, forks the guardian, then applies
//! `cfmakeraw`; dropping the guard restores the settings (berth forwards SIGINT, SIGTERM and
//! SIGHUP to the container instead of dying, so those paths end here too).
//!
//! The guardian covers what no destructor can: berth killed by SIGKILL (or crashing) while the
//! terminal is raw would leave the user's shell unusable. It is a tiny forked process that
//! holds the saved settings and the read end of a pipe whose only write end berth holds, and
//! blocks in read(2):
//! - a byte: berth restored the terminal itself ("dismissed"); exit without touching it —
//!   restoring again later could clobber the modes the user's shell has set by then;
//! - EOF: berth is gone without restoring; restore the settings and exit.
//!
//! A pipe rather than `PR_SET_PDEATHSIG`: the kernel closes a dying process's files
//! (exit_files) before it notifies its parent (exit_notify), so the guardian wakes before the
//! user's shell even learns that berth died and restores the terminal before the shell reads
//! its next line; the pipe also needs no signal handler and cannot fire on the death of a
//! thread instead of the process. The guardian keeps every signal blocked (a blocked SIGTTOU
//! lets it set the terminal's modes from a background process group once the shell has taken
//! the terminal back) and closes every fd but 0-2 and its pipe, so it holds none of the
//! container's files or locks.

use super::TtyError;
use rustix::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::io;

/// The terminal `fd` in raw mode until dropped.
pub struct RawMode {
    fd: libc::c_int,
    saved: libc::termios,
    /// The guardian's pid and the write end of its pipe.
    guardian: Option<(libc::pid_t, OwnedFd)>,
}

impl RawMode {
    /// Puts terminal `fd` into raw mode under a guardian; `None` if `fd` is not a terminal.
    /// The process must be single-threaded (it forks).
    pub fn enter(fd: libc::c_int) -> Result<Option<RawMode>, TtyError> {
        if !super::is_terminal(fd) {
            return Ok(None);
        }
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr writes into our local.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(TtyError::last("read the settings of the caller's terminal"));
        }
        let guardian = spawn_guardian(fd, &saved)?;
        let mut raw = saved;
        // SAFETY: cfmakeraw edits our copy; tcsetattr reads it.
        let rc = unsafe {
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(fd, libc::TCSANOW, &raw)
        };
        let mode = RawMode {
            fd,
            saved,
            guardian: Some(guardian),
        };
        if rc != 0 {
            return Err(TtyError::last("put the caller's terminal into raw mode"));
            // `mode` drops: restores (a no-op) and dismisses the guardian.
        }
        Ok(Some(mode))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: tcsetattr reads the settings saved at enter.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
        if let Some((pid, pipe)) = self.guardian.take() {
            // SAFETY: one byte from a live local to the pipe we own.
            unsafe { libc::write(pipe.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
            drop(pipe);
            let mut status = 0;
            // SAFETY: reaps our own child, the guardian, which exits at once.
            while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
                && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
        }
    }
}

fn spawn_guardian(
    fd: libc::c_int,
    saved: &libc::termios,
) -> Result<(libc::pid_t, OwnedFd), TtyError> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills the two-element array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(TtyError::last("create the terminal guardian's pipe"));
    }
    // SAFETY: fresh fds from pipe2, owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Every signal blocked across fork: the guardian keeps them blocked for good (none of the
    // parent's handlers may run in it), the parent restores its mask.
    // SAFETY: sigset_t is plain data, filled by sigfillset; sigprocmask changes only our mask.
    let old = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old);
        old
    };
    // SAFETY: the caller is single-threaded; the child only makes async-signal-safe calls
    // (close_range, read, tcsetattr) and leaves through _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        guardian(fd, saved, read.as_raw_fd());
    }
    // SAFETY: restores the mask saved above.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    if pid < 0 {
        return Err(TtyError::last("fork the terminal guardian"));
    }
    drop(read);
    Ok((pid, write))
}

fn guardian(fd: libc::c_int, saved: &libc::termios, pipe: libc::c_int) -> ! {
    // SAFETY: only async-signal-safe calls on fds of this fresh child, then _exit; `saved`
    // is this process's copy of the parent's memory.
    unsafe {
        // Nothing of berth's but 0-2, the terminal and the pipe: no container files, no locks.
        let mut keep = [fd, pipe];
        keep.sort_unstable();
        let mut lo: libc::c_int = 3;
        for k in keep {
            if k >= lo {
                if k > lo {
                    libc::syscall(libc::SYS_close_range, lo as u32, (k - 1) as u32, 0u32);
                }
                lo = k + 1;
            }
        }
        libc::syscall(libc::SYS_close_range, lo as u32, u32::MAX, 0u32);
        let mut byte = [0u8; 1];
        loop {
            let n = libc::read(pipe, byte.as_mut_ptr().cast(), 1);
            if n == 1 {
                libc::_exit(0); // dismissed: berth restored the terminal
            }
            if n == 0 {
                break; // berth is gone
            }
            if *libc::__errno_location() != libc::EINTR {
                break;
            }
        }
        libc::tcsetattr(fd, libc::TCSANOW, saved);
        libc::_exit(0)
    }
}
