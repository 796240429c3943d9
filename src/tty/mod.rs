//! Terminals: `berth run -t` / `start -a -i` with a pseudo-terminal, as docker does it.
//!
//! ```text
//! caller's terminal            monitor (berth)                      container
//! ─────────────────            ───────────────                      ─────────
//! raw while attached ──stdin──► relay ──(-i)──► pty master ◄═══════► pty slave = fds 0-2,
//! (guardian restores) ◄─stdout─ relay ◄───────── pty master          controlling terminal
//!                               └──► json log (stream "stdout")
//! SIGWINCH ───────────────────► TIOCSWINSZ on the master ──────────► SIGWINCH (kernel)
//! ```
//!
//! - [`pty`]: the container side. The pty is allocated by the container's init, after
//!   `pivot_root`, from the container's own devpts instance (`/dev/pts/ptmx`, mounted
//!   `newinstance`), so the slave is `/dev/pts/0` inside and no host pty or devpts is ever
//!   visible to the container. Init opens the slave through the master (`TIOCGPTPEER`, no path
//!   lookup), makes it its controlling terminal (`setsid` + `TIOCSCTTY`) and fds 0-2, and sends
//!   the master to the monitor over a unix socketpair (`SCM_RIGHTS`) before `execve`.
//! - [`raw`]: the caller side. While attached with `-it`, the caller's terminal is raw
//!   (`cfmakeraw`), so every key, ^C included, reaches the pty, whose line discipline turns ^C
//!   into SIGINT for the container's foreground process group. A forked guardian holds the
//!   saved settings and restores them if berth dies without doing so (even by SIGKILL).
//! - [`winsize`]: window sizes and a SIGWINCH watcher (self-pipe).
//! - [`relay`]: the monitor's copy loop between the caller, the master and the log.
//!
//! Nothing here knows about containers: the monitor ([`crate::container`]) wires it up.

pub mod pty;
pub mod raw;
pub mod relay;
pub mod winsize;

pub use pty::PtyRequest;
pub use winsize::WindowSize;

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    #[error("cannot {action} for the container's terminal: {source}")]
    Io {
        action: &'static str,
        source: io::Error,
    },
}

impl TtyError {
    pub(crate) fn last(action: &'static str) -> TtyError {
        TtyError::Io {
            action,
            source: io::Error::last_os_error(),
        }
    }
}

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: libc::c_int) -> bool {
    // SAFETY: isatty only inspects the fd number.
    unsafe { libc::isatty(fd) == 1 }
}
