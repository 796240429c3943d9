//! The container's pty: allocated by the container's init inside its own devpts instance, and
//! the master handed to the monitor over a unix socketpair (`SCM_RIGHTS`), as runc's
//! `--console-socket` does.
//!
//! Why inside: a pty from the host's devpts would put a host device (and the host's
//! `/dev/pts` numbering) into the container, and `/proc/self/fd/0` would lead out of its
//! devpts. Allocated from the container's `newinstance` devpts, after `pivot_root`, the slave is
//! `/dev/pts/0` of the container, and the monitor only ever holds the master.
//!
//! The slave is opened with `TIOCGPTPEER` (Linux 4.13), from the master itself, not by a path
//! a process could race to replace; a path open of `/dev/pts/N` is only the fallback for older
//! kernels.

use super::{TtyError, WindowSize};
use rustix::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::io;

/// What the container's init needs to allocate its pty: the socket to send the master on and
/// the window size to start with.
#[derive(Debug)]
pub struct PtyRequest {
    socket: OwnedFd,
    size: Option<WindowSize>,
}

/// A socketpair for the master: the monitor's end and the container's request.
pub fn request(size: Option<WindowSize>) -> Result<(OwnedFd, PtyRequest), TtyError> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair fills the two-element array we own.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(TtyError::last("create a socketpair"));
    }
    // SAFETY: both fds were just returned by socketpair and are owned by nobody else.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((
        ours,
        PtyRequest {
            socket: theirs,
            size,
        },
    ))
}

fn fail(what: &str) -> String {
    format!(
        "cannot {what} for the container's terminal: {}",
        io::Error::last_os_error()
    )
}

fn owned(fd: libc::c_int, what: &str) -> Result<OwnedFd, String> {
    if fd < 0 {
        return Err(fail(what));
    }
    // SAFETY: a fresh fd just returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// In the container's init, after `pivot_root` and before `execve`: allocates a pty in the
/// container's devpts, makes the slave the controlling terminal and fds 0-2 of this process
/// (a new session), gives it to `uid` (the container user), and sends the master to the
/// monitor. Only the copies on 0-2 stay open here.
pub fn attach_in_container(req: &PtyRequest, uid: u32) -> Result<(), String> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // The container's own devpts (mounted newinstance with ptmxmode=0666), not the host's.
    // SAFETY: open(2) of a NUL-terminated literal.
    let master = owned(
        unsafe { libc::open(c"/dev/pts/ptmx".as_ptr(), flags) },
        "open /dev/pts/ptmx",
    )?;
    let m = master.as_raw_fd();
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int we own.
    if unsafe { libc::ioctl(m, libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(fail("unlock the pty"));
    }
    if let Some(size) = req.size {
        super::winsize::set(m, size).map_err(|e| format!("cannot set the window size: {e}"))?;
    }
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new fd.
    let peer = unsafe { libc::ioctl(m, libc::TIOCGPTPEER, flags) };
    let slave = if peer >= 0 {
        owned(peer, "open the pty slave")?
    } else {
        let mut n: libc::c_uint = 0;
        // SAFETY: TIOCGPTN writes the pty number into our local.
        if unsafe { libc::ioctl(m, libc::TIOCGPTN, &mut n) } != 0 {
            return Err(fail("find the pty number"));
        }
        let path = std::ffi::CString::new(format!("/dev/pts/{n}"))
            .map_err(|_| "bad pty path".to_string())?;
        // SAFETY: open(2) of a NUL-terminated path we own.
        owned(
            unsafe { libc::open(path.as_ptr(), flags) },
            "open the pty slave",
        )?
    };
    let s = slave.as_raw_fd();
    if uid != 0 {
        // The user's own terminal, as login does; the group stays devpts' gid=5 (tty).
        // SAFETY: fchown of an fd we own; -1 keeps the group.
        if unsafe { libc::fchown(s, uid, u32::MAX) } != 0 {
            return Err(fail("hand the pty to the container user"));
        }
    }
    // A new session whose controlling terminal is the slave: ^C on it signals the
    // foreground process group, and job control works. Not a group leader (a fresh clone
    // child), so setsid cannot fail with EPERM.
    // SAFETY: setsid and TIOCSCTTY act on this process only.
    unsafe {
        if libc::setsid() < 0 {
            return Err(fail("start a session"));
        }
        if libc::ioctl(s, libc::TIOCSCTTY, 0) != 0 {
            return Err(fail("make the pty the controlling terminal"));
        }
    }
    for target in 0..3 {
        // SAFETY: dup2 onto a standard fd number from an fd we own (the copy is not
        // close-on-exec; the original is).
        if unsafe { libc::dup2(s, target) } < 0 {
            return Err(fail("put the pty on the standard fds"));
        }
    }
    send_fd(&req.socket, &master).map_err(|e| format!("cannot send the pty to berth: {e}"))
    // master and slave close here: the container keeps only fds 0-2, the monitor the master.
}

/// Sends `fd` as SCM_RIGHTS with a one-byte message.
fn send_fd(socket: &OwnedFd, fd: &OwnedFd) -> io::Result<()> {
    let fd_size = std::mem::size_of::<libc::c_int>() as libc::c_uint;
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: msghdr is plain data; every pointer set below points into locals that outlive
    // the sendmsg call, and CMSG_SPACE(sizeof(int)) fits the 64-byte control buffer.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(fd_size) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_size) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
        loop {
            if libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }
}

/// In the monitor, once the container's command runs: the master its init sent (already
/// queued, so this does not block). Close-on-exec.
pub fn receive_master(socket: &OwnedFd) -> Result<OwnedFd, TtyError> {
    let mut control = [0u64; 8];
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: as in send_fd; the kernel writes at most msg_controllen bytes of control data
    // into our buffer, and we read one int out of a SCM_RIGHTS header it filled.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = loop {
            let n = libc::recvmsg(
                socket.as_raw_fd(),
                &mut msg,
                libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
            );
            if n >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break n;
            }
        };
        if n < 0 {
            return Err(TtyError::last("receive the pty from the container"));
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if n == 0
            || cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(TtyError::Io {
                action: "receive the pty from the container",
                source: io::Error::new(io::ErrorKind::InvalidData, "no file descriptor was sent"),
            });
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}
