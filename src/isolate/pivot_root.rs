//! Switching to the container root with `pivot_root`, and hiding what the container must not
//! see or change in /proc and /sys.
//!
//! `chroot` is never used: a process with CAP_SYS_CHROOT escapes a chroot with a second
//! chroot and `..`; after `pivot_root` and a detached unmount, the old root is simply not in
//! the mount namespace any more.

use super::mounts::{fd_path, mount};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use std::io;

/// Paths docker masks (moby `oci/defaults.go`, runc `specconv/example.go`): files get
/// /dev/null bound over them, directories an empty read-only tmpfs.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths docker makes read-only.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Makes the directory `root` (the mounted container root) the root of this mount namespace
/// and detaches the old one. `pivot_root(".", ".")` stacks the old root on top of the new one
/// at `/`, so it needs no put-old directory; unmounting `.` then removes it. The old root is
/// made a recursive slave first so the detach cannot propagate to any peer on the host.
pub fn pivot(root: BorrowedFd<'_>) -> Result<(), String> {
    rustix::process::fchdir(root).map_err(|e| format!("cannot enter the container root: {e}"))?;
    rustix::process::pivot_root(".", ".").map_err(|e| format!("pivot_root failed: {e}"))?;
    mount(None, ".", None, libc::MS_SLAVE | libc::MS_REC, None)
        .map_err(|e| format!("cannot make the old root a slave mount: {e}"))?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| format!("cannot detach the old root: {e}"))?;
    rustix::process::chdir("/").map_err(|e| format!("cannot enter the new root: {e}"))
}

fn open_no_symlinks(root: BorrowedFd<'_>, path: &str) -> io::Result<OwnedFd> {
    rustix::fs::openat2(
        root,
        path.trim_start_matches('/'),
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS | ResolveFlags::BENEATH,
    )
    .map_err(io::Error::from)
}

/// Opens the container's /dev/null and checks that it is the null device (char 1:3): a
/// container process that could swap it for a symlink to a procfs file would have that file
/// bound read-write over the masked paths (CVE-2025-31133). The bind mounts then use this fd.
fn verified_dev_null(root: BorrowedFd<'_>) -> Result<OwnedFd, String> {
    let fd =
        open_no_symlinks(root, "/dev/null").map_err(|e| format!("cannot open /dev/null: {e}"))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| format!("cannot inspect /dev/null: {e}"))?;
    let is_null = FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice
        && rustix::fs::major(st.st_rdev) == 1
        && rustix::fs::minor(st.st_rdev) == 3;
    if !is_null {
        return Err("/dev/null in the container is not the null device (1:3); refusing to mask paths with it".into());
    }
    Ok(fd)
}

/// Masks [`MASKED_PATHS`] and makes [`READONLY_PATHS`] read-only, inside the root `root`
/// (after the pivot: `/`). Paths this kernel lacks are skipped.
pub fn protect_paths(root: BorrowedFd<'_>) -> Result<(), String> {
    let null = verified_dev_null(root)?;
    for path in MASKED_PATHS {
        let fd = match open_no_symlinks(root, path) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot open {path} to mask it: {e}")),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| format!("cannot inspect {path}: {e}"))?;
        let target = fd_path(fd.as_fd());
        let result = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                flags,
                Some("size=0,mode=555"),
            )
        } else {
            mount(
                Some(&fd_path(null.as_fd())),
                &target,
                None,
                libc::MS_BIND,
                None,
            )
        };
        result.map_err(|e| format!("cannot mask {path}: {e}"))?;
    }
    for path in READONLY_PATHS {
        let fd = match open_no_symlinks(root, path) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot open {path} to make it read-only: {e}")),
        };
        let target = fd_path(fd.as_fd());
        mount(
            Some(&target),
            &target,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .map_err(|e| format!("cannot bind {path} onto itself: {e}"))?;
        drop(fd);
        // Re-open: the path now leads to the new bind mount, which is what gets remounted.
        let fd = open_no_symlinks(root, path).map_err(|e| format!("cannot reopen {path}: {e}"))?;
        let flags = libc::MS_BIND
            | libc::MS_REMOUNT
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC;
        mount(None, &fd_path(fd.as_fd()), None, flags, None)
            .map_err(|e| format!("cannot make {path} read-only: {e}"))?;
    }
    Ok(())
}
