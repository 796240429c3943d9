//! The container's mounts, made by init before `pivot_root`, every one through a file
//! descriptor resolved inside the container root.
//!
//! Image content is hostile: a layer can plant `/proc` as a symlink to `/etc`, or `/dev` as a
//! symlink to `/`, so that a mount meant for the container lands elsewhere (CVE-2019-19921,
//! CVE-2023-27561, CVE-2023-28642, CVE-2026-41579). Every target is therefore opened with
//! `openat2` anchored on the root's fd — `RESOLVE_NO_SYMLINKS` for the kernel filesystems
//! (proc, sys, dev must be real directories), `RESOLVE_IN_ROOT` for the /etc files (an image
//! may legitimately make /etc/resolv.conf a symlink, which then resolves inside the root) —
//! missing directories are made with `mkdirat` chains on those fds (CVE-2024-45310), and the
//! mount goes to `/proc/self/fd/<fd>`: the object that was checked, whatever the path says by
//! then.

use crate::cgroup::{Layout, Version};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use std::ffi::CString;
use std::io;
use std::path::Path;

/// A file the runtime writes on the host and bind-mounts into the container.
#[derive(Clone, Debug)]
pub struct BindFile {
    pub source: std::path::PathBuf,
    /// Absolute path inside the container, e.g. `/etc/hosts`.
    pub target: String,
}

/// What [`setup`] mounts besides the fixed set.
pub struct MountPlan<'a> {
    pub cgroups: Option<&'a Layout>,
    pub files: &'a [BindFile],
    /// `-v` and `--tmpfs`, mounted last, in order.
    pub user: &'a [UserMount],
    /// `--privileged`: /sys read-write.
    pub writable_sys: bool,
    /// `--read-only`: the root is remounted read-only once every mount point exists.
    pub read_only_root: bool,
}

/// A mount the user asked for: `-v HOST:CTR[:ro|rw]` or `--tmpfs CTR[:opts]`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum UserMount {
    Bind {
        /// Absolute, canonical host path (checked to exist at create).
        source: std::path::PathBuf,
        /// Absolute path inside the container.
        target: String,
        read_only: bool,
        /// The source is a directory (else the target is made a file).
        dir: bool,
    },
    Tmpfs {
        target: String,
        /// MS_* flags.
        flags: u64,
        /// fs data: size=, mode=, uid=, gid=, nr_inodes=.
        data: String,
    },
}

const NOSUID: libc::c_ulong = libc::MS_NOSUID;
const NODEV: libc::c_ulong = libc::MS_NODEV;
const NOEXEC: libc::c_ulong = libc::MS_NOEXEC;

/// Device nodes of /dev, as docker makes them: (name, major, minor), all mode 0666.
pub const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Symlinks of /dev: (name, target).
pub const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
    ("core", "/proc/kcore"),
];

/// The path through which the kernel reaches the object behind `fd`.
pub fn fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// mount(2) with optional source, fstype and data. `target` is usually an [`fd_path`].
pub fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(io::Error::from);
    let source = source.map(c).transpose()?;
    let target = c(target)?;
    let fstype = fstype.map(c).transpose()?;
    let data = data.map(c).transpose()?;
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is NULL or a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data).cast(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn open2(
    dir: BorrowedFd<'_>,
    path: &str,
    flags: OFlags,
    resolve: ResolveFlags,
) -> io::Result<OwnedFd> {
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { "." } else { path };
    rustix::fs::openat2(
        dir,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        resolve | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(io::Error::from)
}

/// Opens (O_PATH) the directory `rel` under `root`, making missing components (0755) one
/// `mkdirat` at a time; no component may be a symlink.
pub fn ensure_dir(root: BorrowedFd<'_>, rel: &str) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH;
    let mut cur = open2(root, ".", flags, resolve)?;
    for comp in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if comp == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "`..` in a mount target",
            ));
        }
        cur = match open2(cur.as_fd(), comp, flags, resolve) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match rustix::fs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open2(cur.as_fd(), comp, flags, resolve)?
            }
            Err(e) => return Err(e),
        };
    }
    Ok(cur)
}

/// Opens (O_PATH) the regular file `rel` under `root` as the container would see it (symlinks
/// resolved inside the root), creating it empty if it does not exist. A dangling symlink in its
/// place is replaced by the file (the change lands in the container's writable layer).
pub fn ensure_file(root: BorrowedFd<'_>, rel: &str) -> io::Result<OwnedFd> {
    let in_root = ResolveFlags::IN_ROOT;
    match open2(root, rel, OFlags::PATH, in_root) {
        Ok(fd) => {
            let st = rustix::fs::fstat(&fd)?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the image has something other than a regular file there",
                ));
            }
            return Ok(fd);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let rel_path = Path::new(rel.trim_start_matches('/'));
    let name = rel_path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let parent = rel_path.parent().and_then(|p| p.to_str()).unwrap_or("");
    let dir = match open2(root, parent, OFlags::PATH | OFlags::DIRECTORY, in_root) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => ensure_dir(root, parent)?,
        Err(e) => return Err(e),
    };
    let create =
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(0o644);
    match rustix::fs::openat(&dir, name, create, mode) {
        Ok(_) => {}
        Err(rustix::io::Errno::EXIST) => {
            // A dangling symlink: replace it.
            rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty())?;
            rustix::fs::openat(&dir, name, create, mode)?;
        }
        Err(e) => return Err(e.into()),
    }
    open2(
        dir.as_fd(),
        name,
        OFlags::PATH | OFlags::NOFOLLOW,
        ResolveFlags::BENEATH,
    )
}

/// An error that names the mount target.
fn at(target: &str, what: &str, e: io::Error) -> String {
    format!("cannot {what} at {target}: {e}")
}

/// Mounts a fresh filesystem of `fstype` at the directory `target` inside `root`.
fn mount_fs(
    root: BorrowedFd<'_>,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<(), String> {
    let fd = ensure_dir(root, target).map_err(|e| at(target, "prepare the mount point", e))?;
    mount(
        Some(fstype),
        &fd_path(fd.as_fd()),
        Some(fstype),
        flags,
        data,
    )
    .map_err(|e| at(target, &format!("mount {fstype}"), e))
}

/// Makes every mount of the container inside the root at `root` (the mounted overlay).
pub fn setup(root: BorrowedFd<'_>, plan: &MountPlan<'_>) -> Result<(), String> {
    mount_fs(root, "/proc", "proc", NOSUID | NODEV | NOEXEC, None)?;
    let sys_ro = if plan.writable_sys {
        0
    } else {
        libc::MS_RDONLY
    };
    mount_fs(
        root,
        "/sys",
        "sysfs",
        sys_ro | NOSUID | NODEV | NOEXEC,
        None,
    )?;
    if let Some(layout) = plan.cgroups {
        mount_cgroups(root, layout)?;
    }
    mount_dev(root)?;
    for file in plan.files {
        let fd = ensure_file(root, &file.target)
            .map_err(|e| at(&file.target, "prepare the bind mount", e))?;
        let source = file
            .source
            .to_str()
            .ok_or_else(|| format!("cannot bind-mount {}: not UTF-8", file.source.display()))?;
        mount(
            Some(source),
            &fd_path(fd.as_fd()),
            None,
            libc::MS_BIND,
            None,
        )
        .map_err(|e| at(&file.target, "bind-mount the runtime's file", e))?;
    }
    for m in plan.user {
        mount_user(root, m)?;
    }
    if plan.read_only_root {
        // Every mount point exists by now; /etc/hostname & co. and the user's mounts keep
        // their own flags (a remount changes only this mount).
        let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
        mount(None, &fd_path(root), None, flags, None)
            .map_err(|e| at("/", "make the root read-only", e))?;
    }
    Ok(())
}

/// Opens (O_PATH) the directory `rel` as the container sees it (symlinks resolved inside the
/// root, like docker's securejoin), making missing components one `mkdirat` at a time on the
/// fd of their parent, itself resolved inside the root (CVE-2024-45310).
fn dir_in_root(root: BorrowedFd<'_>, rel: &str) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY;
    let mut cur = open2(root, ".", flags, ResolveFlags::IN_ROOT)?;
    let mut prefix = String::new();
    for comp in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if comp == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "`..` in a mount target",
            ));
        }
        prefix.push('/');
        prefix.push_str(comp);
        cur = match open2(root, &prefix, flags, ResolveFlags::IN_ROOT) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match rustix::fs::mkdirat(&cur, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open2(root, &prefix, flags, ResolveFlags::IN_ROOT)?
            }
            Err(e) => return Err(e),
        };
    }
    Ok(cur)
}

/// A `-v` or `--tmpfs` mount. Targets resolve inside the root (CVE-2024-45310, CVE-2026-41579),
/// and the mount goes to the fd that was resolved.
fn mount_user(root: BorrowedFd<'_>, m: &UserMount) -> Result<(), String> {
    match m {
        UserMount::Bind {
            source,
            target,
            read_only,
            dir,
        } => {
            let open = |what| -> Result<OwnedFd, String> {
                if *dir {
                    dir_in_root(root, target).map_err(|e| at(target, what, e))
                } else {
                    ensure_file(root, target).map_err(|e| at(target, what, e))
                }
            };
            let fd = open("prepare the volume's mount point")?;
            let src = source
                .to_str()
                .ok_or_else(|| format!("cannot bind-mount {}: not UTF-8", source.display()))?;
            let flags = libc::MS_BIND | libc::MS_REC;
            mount(Some(src), &fd_path(fd.as_fd()), None, flags, None)
                .map_err(|e| at(target, &format!("bind-mount {src}"), e))?;
            drop(fd);
            if *read_only {
                // Re-open: the path now leads to the new mount, which is what gets remounted.
                let fd = open("reopen the volume")?;
                let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
                mount(None, &fd_path(fd.as_fd()), None, flags, None)
                    .map_err(|e| at(target, "make the volume read-only", e))?;
            }
            Ok(())
        }
        UserMount::Tmpfs {
            target,
            flags,
            data,
        } => {
            let fd = dir_in_root(root, target).map_err(|e| at(target, "prepare the tmpfs", e))?;
            let data = (!data.is_empty()).then_some(data.as_str());
            mount(
                Some("tmpfs"),
                &fd_path(fd.as_fd()),
                Some("tmpfs"),
                *flags as libc::c_ulong,
                data,
            )
            .map_err(|e| at(target, "mount tmpfs", e))
        }
    }
}

/// Checks a path inside the container given on the command line: absolute, no `..`, not `/`,
/// no NUL. Returns it without trailing slashes.
fn container_path(what: &str, spec: &str, p: &str) -> Result<String, String> {
    let bad = |why: &str| format!("invalid {what} {spec:?}: {why}");
    if !p.starts_with('/') {
        return Err(bad(&format!("the container path {p:?} must be absolute")));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(bad("the container path must not contain `..`"));
    }
    if p.contains('\0') {
        return Err(bad("NUL byte"));
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(bad("cannot mount over the container's root `/`"));
    }
    Ok(trimmed.to_string())
}

impl UserMount {
    /// Parses `-v HOST:CTR[:ro|rw]`. HOST must be an absolute path that exists (named volumes
    /// are not supported); it is canonicalized on the host, which the user controls.
    pub fn parse_volume(spec: &str) -> Result<UserMount, String> {
        let bad = |why: String| format!("invalid volume {spec:?}: {why}");
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, ctr, mode) = match parts[..] {
            [h, c] => (h, c, "rw"),
            [h, c, m] => (h, c, m),
            _ => return Err(bad("use HOST:CONTAINER[:ro|rw]".into())),
        };
        let read_only = match mode {
            "rw" => false,
            "ro" => true,
            m => return Err(bad(format!("unknown mode {m:?} (use ro or rw)"))),
        };
        if !host.starts_with('/') {
            return Err(bad(format!(
                "the host path {host:?} must be absolute (named volumes are not supported)"
            )));
        }
        let source = std::fs::canonicalize(host)
            .map_err(|e| bad(format!("the host path {host} cannot be used: {e}")))?;
        let meta = std::fs::metadata(&source)
            .map_err(|e| bad(format!("the host path {host} cannot be used: {e}")))?;
        let target = container_path("volume", spec, ctr)?;
        Ok(UserMount::Bind {
            source,
            target,
            read_only,
            dir: meta.is_dir(),
        })
    }

    /// Parses `--tmpfs CTR[:opts]` with mount(8)-style options; the default is docker's
    /// `nosuid,nodev,noexec`.
    pub fn parse_tmpfs(spec: &str) -> Result<UserMount, String> {
        let (ctr, opts) = spec.split_once(':').unwrap_or((spec, ""));
        let target = container_path("tmpfs", spec, ctr)?;
        let mut flags = NOSUID | NODEV | NOEXEC;
        let mut data = Vec::new();
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => flags |= libc::MS_RDONLY,
                "rw" => flags &= !libc::MS_RDONLY,
                "nosuid" => flags |= NOSUID,
                "suid" => flags &= !NOSUID,
                "nodev" => flags |= NODEV,
                "dev" => flags &= !NODEV,
                "noexec" => flags |= NOEXEC,
                "exec" => flags &= !NOEXEC,
                "sync" => flags |= libc::MS_SYNCHRONOUS,
                "async" => flags &= !libc::MS_SYNCHRONOUS,
                "noatime" => flags |= libc::MS_NOATIME,
                "nodiratime" => flags |= libc::MS_NODIRATIME,
                "relatime" => flags |= libc::MS_RELATIME,
                "strictatime" => flags |= libc::MS_STRICTATIME,
                _ => {
                    let key = o.split_once('=').map(|(k, _)| k);
                    let known = ["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"];
                    if !key.is_some_and(|k| known.contains(&k)) || o.contains('\0') {
                        return Err(format!(
                            "invalid tmpfs {spec:?}: unknown option {o:?} (known: ro, rw, \
                             [no]suid, [no]dev, [no]exec, sync, noatime, size=, mode=, uid=, \
                             gid=, nr_inodes=)"
                        ));
                    }
                    data.push(o);
                }
            }
        }
        Ok(UserMount::Tmpfs {
            target,
            flags,
            data: data.join(","),
        })
    }
}

/// /sys/fs/cgroup, read-only, showing the container's cgroup namespace (its own cgroup as
/// the root). Read-only plus a cgroup namespace is the defence in depth against
/// CVE-2022-0492 (a writable v1 `release_agent` runs as host root).
fn mount_cgroups(root: BorrowedFd<'_>, layout: &Layout) -> Result<(), String> {
    let ro = libc::MS_RDONLY | NOSUID | NODEV | NOEXEC;
    let target = "/sys/fs/cgroup";
    if layout.version == Version::V2 {
        return mount_fs(root, target, "cgroup2", ro, None);
    }
    mount_fs(
        root,
        target,
        "tmpfs",
        NOSUID | NODEV | NOEXEC,
        Some("mode=755"),
    )?;
    let base = ensure_dir(root, target).map_err(|e| at(target, "open", e))?;
    for h in &layout.hierarchies {
        let Some(name) = h.mount.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let path = format!("{target}/{name}");
        let fd = ensure_dir(base.as_fd(), name).map_err(|e| at(&path, "prepare", e))?;
        mount(
            Some("cgroup"),
            &fd_path(fd.as_fd()),
            Some("cgroup"),
            ro,
            Some(&h.options),
        )
        .map_err(|e| at(&path, "mount cgroup", e))?;
    }
    if let Some(name) = layout
        .unified
        .as_ref()
        .and_then(|u| u.file_name())
        .and_then(|n| n.to_str())
    {
        let path = format!("{target}/{name}");
        let fd = ensure_dir(base.as_fd(), name).map_err(|e| at(&path, "prepare", e))?;
        mount(
            Some("cgroup2"),
            &fd_path(fd.as_fd()),
            Some("cgroup2"),
            ro,
            None,
        )
        .map_err(|e| at(&path, "mount cgroup2", e))?;
    }
    let flags = libc::MS_REMOUNT | ro;
    mount(None, &fd_path(base.as_fd()), None, flags, Some("mode=755"))
        .map_err(|e| at(target, "make read-only", e))
}

/// /dev as docker makes it: a small tmpfs with only the safe device nodes, a private devpts
/// instance, /dev/shm and /dev/mqueue.
fn mount_dev(root: BorrowedFd<'_>) -> Result<(), String> {
    let opts = Some("mode=755,size=65536k");
    mount_fs(root, "/dev", "tmpfs", NOSUID | libc::MS_STRICTATIME, opts)?;
    let dev = ensure_dir(root, "/dev").map_err(|e| at("/dev", "open", e))?;
    for &(name, major, minor) in DEVICES {
        let mode = Mode::from_raw_mode(0o666);
        rustix::fs::mknodat(
            &dev,
            name,
            FileType::CharacterDevice,
            mode,
            rustix::fs::makedev(major, minor),
        )
        .map_err(|e| at(&format!("/dev/{name}"), "create the device node", e.into()))?;
        // mknod applies the umask; set the mode explicitly.
        rustix::fs::chmodat(&dev, name, mode, rustix::fs::AtFlags::empty())
            .map_err(|e| at(&format!("/dev/{name}"), "set the mode", e.into()))?;
    }
    for &(name, target) in DEV_LINKS {
        rustix::fs::symlinkat(target, &dev, name)
            .map_err(|e| at(&format!("/dev/{name}"), "create the symlink", e.into()))?;
    }
    let devpts = "newinstance,ptmxmode=0666,mode=0620,gid=5";
    mount_fs(root, "/dev/pts", "devpts", NOSUID | NOEXEC, Some(devpts))?;
    let shm = Some("mode=1777,size=65536k");
    mount_fs(root, "/dev/shm", "tmpfs", NOSUID | NODEV | NOEXEC, shm)?;
    mount_fs(root, "/dev/mqueue", "mqueue", NOSUID | NODEV | NOEXEC, None)
}
