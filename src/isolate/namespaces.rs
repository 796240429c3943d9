//! Namespaces: the clone(2) that makes them, the loopback interface of a new network
//! namespace, and the bind mount that keeps a network namespace reachable by path.

use super::IsolateError;
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The namespaces a container gets at clone time. The cgroup namespace is not among them: the
/// child unshares it only after the parent has moved it into the container's cgroup, so that
/// the namespace's root is that cgroup and `/proc/self/cgroup` reads `/` inside (a cgroup
/// namespace made at clone time would be rooted at the runtime's own cgroup).
///
/// A PID or IPC namespace that is shared (`--pid`/`--ipc host` or `container:NAME`) is left out:
/// the child then inherits the caller's, which [`JoinForClone`] has pointed at the target.
pub fn clone_flags(new_netns: bool, new_pidns: bool, new_ipcns: bool) -> libc::c_int {
    let mut flags = libc::CLONE_NEWNS | libc::CLONE_NEWUTS;
    if new_pidns {
        flags |= libc::CLONE_NEWPID;
    }
    if new_ipcns {
        flags |= libc::CLONE_NEWIPC;
    }
    if new_netns {
        flags |= libc::CLONE_NEWNET;
    }
    flags
}

/// The namespaces `berth exec` joins, in the order it joins them, with their setns types.
/// The mount namespace is last (after it, paths are the container's); the PID namespace is
/// joined by the parent before it forks ([`JoinForClone`]), since `setns(CLONE_NEWPID)` only
/// places the caller's future children. The user namespace is not used by berth.
pub const EXEC_NAMESPACES: [(&str, libc::c_int); 6] = [
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("pid", libc::CLONE_NEWPID),
    ("mnt", libc::CLONE_NEWNS),
];

/// Opens `/proc/<pid>/ns/<name>` (close-on-exec). `pid` 0 is this process.
pub fn open_ns(pid: libc::pid_t, name: &str) -> Result<rustix::fd::OwnedFd, IsolateError> {
    let path = if pid == 0 {
        format!("/proc/self/ns/{name}")
    } else {
        format!("/proc/{pid}/ns/{name}")
    };
    rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| IsolateError::io("cannot open the namespace", Path::new(&path), e.into()))
}

/// `setns(fd, nstype)` on the calling thread.
pub fn setns(fd: rustix::fd::BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    use rustix::fd::AsRawFd;
    // SAFETY: setns(2) with an fd we borrow for the call and an integer type.
    if unsafe { libc::setns(fd.as_raw_fd(), nstype) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Points the caller at other namespaces for the duration of a clone, and back on drop.
///
/// `setns(CLONE_NEWPID)` changes only the namespace the caller's *next children* are born in,
/// so joining another container's PID namespace with the single-clone design means: the
/// parent joins it right before clone and returns to its own right after. The IPC namespace
/// is done the same way (the parent is in the target's for the few microseconds of the clone,
/// and the child inherits it), so init needs no extra step. The caller must be
/// single-threaded (setns acts on the calling thread only).
pub struct JoinForClone {
    restore: Vec<(rustix::fd::OwnedFd, libc::c_int)>,
}

impl JoinForClone {
    /// Joins each `(target fd, type)`; on error, undoes what it did.
    pub fn enter(
        targets: &[(rustix::fd::BorrowedFd<'_>, libc::c_int)],
    ) -> Result<JoinForClone, IsolateError> {
        let mut guard = JoinForClone {
            restore: Vec::new(),
        };
        for (fd, nstype) in targets {
            let name = match *nstype {
                libc::CLONE_NEWPID => "pid",
                libc::CLONE_NEWIPC => "ipc",
                _ => {
                    return Err(IsolateError::Setup(format!(
                        "cannot share namespace type {nstype:#x}"
                    )))
                }
            };
            let own = open_ns(0, name)?;
            setns(*fd, *nstype).map_err(|e| {
                IsolateError::Setup(format!("cannot join the {name} namespace to share: {e}"))
            })?;
            guard.restore.push((own, *nstype));
        }
        Ok(guard)
    }
}

impl Drop for JoinForClone {
    fn drop(&mut self) {
        use rustix::fd::AsFd;
        for (fd, nstype) in self.restore.drain(..).rev() {
            if let Err(e) = setns(fd.as_fd(), nstype) {
                tracing::error!("cannot return to berth's own namespace ({nstype:#x}): {e}");
            }
        }
    }
}

/// Whether this process has more than one thread. clone(2) copies only the calling thread: a
/// lock (malloc's, say) held by another thread would stay locked forever in the child.
pub fn is_multithreaded() -> bool {
    match fs::read_dir("/proc/self/task") {
        Ok(tasks) => tasks.count() > 1,
        Err(_) => false,
    }
}

/// fork(2) into new namespaces: `clone(flags | SIGCHLD)` without a new stack, so the child
/// continues on a copy of the caller's stack, exactly as after fork. Returns 0 in the child
/// and the child's pid (in the caller's PID namespace) in the parent.
///
/// # Safety
/// The caller must be single-threaded (see [`is_multithreaded`]), and the child must leave
/// only through `execve` or `_exit`, never by returning into the caller's frames.
pub unsafe fn clone_fork(flags: libc::c_int) -> io::Result<libc::pid_t> {
    // SAFETY: with a NULL stack the kernel gives the child a copy-on-write copy of the whole
    // address space, stack included, as fork does; the pointer arguments are NULL and unused
    // because no CLONE_*TID/SETTLS flag is passed. The caller upholds the contract above.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as libc::pid_t)
}

/// The kernel's `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2, Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// [`clone_fork`] with the child born in the cgroup v2 directory `cgroup` (`clone3` with
/// `CLONE_INTO_CGROUP`): nobody moves it afterwards, so the kernel never takes its global
/// threadgroup lock for it, whose RCU grace period a move by pid pays. An error creates
/// nothing: see [`clone_into_unsupported`] for when to clone with [`clone_fork`] instead.
///
/// # Safety
/// As [`clone_fork`].
pub unsafe fn clone_fork_into(
    flags: libc::c_int,
    cgroup: BorrowedFd<'_>,
) -> io::Result<libc::pid_t> {
    let args = CloneArgs {
        // The namespace flags are the low 32 bits of clone's flags, unchanged in clone3.
        flags: u64::from(flags as u32) | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed; stack 0 with size 0 gives the
    // child a copy-on-write copy of the caller's address space, as fork does. The caller
    // upholds the contract of `clone_fork`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as libc::pid_t)
}

/// Whether [`clone_fork_into`] failed for want of the feature or over this cgroup (no `clone3`
/// before 5.3, no `cgroup` field before 5.7, a cgroup it will not take), where a plain clone
/// and a move by pid may still work (or fail with a clearer error), rather than for want of
/// resources, which would fail a plain clone too.
pub fn clone_into_unsupported(err: &io::Error) -> bool {
    !matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::ENOMEM))
}

/// Brings `lo` up in the calling process's network namespace (a new one starts with it down).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the fd is closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: an all-zero ifreq is a valid value; the name is copied in with its NUL.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own, on our own socket.
    let result = unsafe {
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) < 0 {
            Err(io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: closing the socket made above, exactly once.
    unsafe { libc::close(sock) };
    result
}

/// Bind-mounts the network namespace of `pid` at `target` (created as an empty file), so
/// that it outlives the container's processes and can be entered by path.
pub fn bind_netns(pid: libc::pid_t, target: &Path) -> Result<(), IsolateError> {
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).map_err(|e| IsolateError::io("cannot create", dir, e))?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(target)
        .map_err(|e| IsolateError::io("cannot create", target, e))?;
    let source = format!("/proc/{pid}/ns/net");
    let result = mount_bind(Path::new(&source), target);
    if let Err(e) = result {
        let _ = fs::remove_file(target);
        return Err(IsolateError::io(
            "cannot bind-mount the network namespace at",
            target,
            e,
        ));
    }
    Ok(())
}

fn mount_bind(source: &Path, target: &Path) -> io::Result<()> {
    let src = CString::new(source.as_os_str().as_bytes())?;
    let dst = CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: both strings are NUL-terminated and outlive the call; fstype/data are NULL.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Undoes [`bind_netns`]: detaches every mount at `target` and removes the file. Missing is
/// fine.
pub fn unbind_netns(target: &Path) -> Result<(), IsolateError> {
    let path = CString::new(target.as_os_str().as_bytes())
        .map_err(|e| IsolateError::io("cannot unmount", target, e.into()))?;
    for _ in 0..16 {
        // SAFETY: a NUL-terminated path that outlives the call. UMOUNT_NOFOLLOW: never
        // unmount whatever a symlink planted at `target` points to.
        let rc = unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINVAL) | Some(libc::ENOENT) => break,
                _ => return Err(IsolateError::io("cannot unmount", target, e)),
            }
        }
    }
    match fs::remove_file(target) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(IsolateError::io("cannot remove", target, e))
        }
        _ => Ok(()),
    }
}
