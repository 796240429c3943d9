//! Window sizes: read from the caller's terminal, set on the pty master, and a SIGWINCH
//! watcher for the monitor's poll loop (the self-pipe trick: the handler writes a byte, the
//! loop polls the read end). The kernel sends SIGWINCH to the container's foreground process
//! group when the master's size changes.

use rustix::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

/// Rows and columns of a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

/// The size of terminal `fd`; `None` if it is not a terminal or has no size (0x0).
pub fn get(fd: libc::c_int) -> Option<WindowSize> {
    // SAFETY: winsize is plain data; TIOCGWINSZ writes it.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes into our local.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } != 0 || ws.ws_row == 0 {
        return None;
    }
    Some(WindowSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// Sets the size of terminal `fd` (a pty master: the kernel signals the slave's foreground
/// process group).
pub fn set(fd: libc::c_int, size: WindowSize) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads our local.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The caller's window size: from stdout if it is a terminal (what the user looks at, as
/// docker does), else from stdin.
pub fn of_caller() -> Option<WindowSize> {
    get(1).or_else(|| get(0))
}

/// Write end of the SIGWINCH self-pipe, for the handler.
static WINCH_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_winch(_: libc::c_int) {
    let fd = WINCH_PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: errno is saved and restored around write(2), which is async-signal-safe;
        // the pipe is non-blocking, so a full pipe (a resize already pending) drops the byte.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, [1u8].as_ptr().cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// SIGWINCH while it lives: [`fd`](ResizeWatcher::fd) becomes readable on a resize.
pub struct ResizeWatcher {
    read: OwnedFd,
    /// The handler's end, closed (after the handler is gone) when the watcher drops.
    _write: OwnedFd,
}

impl ResizeWatcher {
    pub fn install() -> io::Result<ResizeWatcher> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 fills the two-element array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh fds from pipe2, owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        WINCH_PIPE.store(write.as_raw_fd(), Ordering::SeqCst);
        set_handler(on_winch as *const () as libc::sighandler_t);
        Ok(ResizeWatcher {
            read,
            _write: write,
        })
    }

    pub fn fd(&self) -> libc::c_int {
        self.read.as_raw_fd()
    }

    /// Empties the pipe after a wake-up.
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: non-blocking reads into our buffer from our pipe.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
    }
}

impl Drop for ResizeWatcher {
    fn drop(&mut self) {
        set_handler(libc::SIG_DFL);
        WINCH_PIPE.store(-1, Ordering::SeqCst);
    }
}

fn set_handler(handler: libc::sighandler_t) {
    // SAFETY: a zeroed sigaction with SIG_DFL or on_winch (async-signal-safe) and an empty
    // mask; SA_RESTART keeps blocking writes going, poll still returns EINTR.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGWINCH, &act, std::ptr::null_mut());
    }
}
