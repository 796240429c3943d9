//! Mounting an overlay of shared image layers.
//!
//! # Two ways to make the mount
//!
//! [`MountApi::LayerFds`] — the new mount API (`fsopen`/`fsconfig`/`fsmount`/`move_mount`) with
//! every layer, the upper and the work dir handed to the kernel as an open directory fd
//! (`lowerdir+`, `upperdir`, `workdir` by `FSCONFIG_SET_FD`, Linux 6.13+). No option string, so no
//! page limit and no path escaping; nothing depends on the cwd; and when the kernel refuses,
//! it says why on the fs-context fd, and that text goes into the error. (`lowerdir+` *strings*,
//! Linux 6.8+, are not used: `fsconfig` caps each string at 256 bytes, so long store paths fail.)
//!
//! [`MountApi::Legacy`] — `mount(2)` with one option string, which the kernel copies into a
//! single page: at most 4095 bytes. 128 absolute layer paths under
//! `/var/lib/berth/layers/<64 hex>/diff` need ~13 KiB, so lowers are given *relative* to
//! [`LowerLayers::base`] (`l/<10 chars>`, 13 bytes a layer with its `:` separator: ~300 layers
//! fit) and the mount runs with cwd = base. The cwd belongs to the whole process (all threads
//! share one `fs_struct`), and the daemon and the test harness are multi-threaded: a `chdir`
//! there would race with every relative path any other thread uses. So the mount runs on a
//! short-lived helper thread that first calls `unshare(CLONE_FS)` — giving *that thread* its own
//! cwd/root/umask — then `chdir(base)` and `mount(2)`, and exits. A new thread inherits the
//! mount namespace of the thread that spawned it, so a caller that unshared its mount namespace
//! still mounts in it. (Spawning a thread allocates: in a child forked from a multi-threaded
//! process, prefer `LayerFds`, which needs no thread.) Upper, work and target are absolute.
//!
//! [`MountApi::Auto`] (what [`mount_overlay`] and [`super::ContainerRootfs`] use) tries `LayerFds`
//! and falls back to `Legacy` when the kernel lacks it (no `fsopen`, or the first `lowerdir+`
//! fd is refused with EINVAL).
//!
//! # Options (and why)
//!
//! docker's overlay2 driver passes `index=off` (when the kernel knows it) plus lowerdir/upperdir/
//! workdir; containerd's snapshotter does the same. berth passes, each only if this kernel's
//! overlay module knows it (`/sys/module/overlay/parameters/<name>`):
//!
//! - `index=off`: the inodes index ties upper files to lower inodes by file handle and fs UUID;
//!   with shared lowers it makes mounts fail with ESTALE/EBUSY after layers are moved, restored
//!   or reused (moby#37970). We never need hard-link-preserving copy-up or NFS export.
//! - `redirect_dir=nofollow` (`off` on kernels before 4.15): directory renames return EXDEV and
//!   `mv` falls back to copying, as on docker with distribution defaults. Upper then holds only
//!   plain files, whiteouts and opaque dirs: a portable OCI diff. And redirect xattrs inside
//!   image layers — untrusted input — are never followed.
//! - `metacopy=off`: metadata-only copy-up leaves data-less files in upper that point into a
//!   lower layer; upper would not be a self-contained diff, and the kernel docs warn against
//!   metacopy on untrusted layers.
//!
//! - `volatile`, only for a [`Durability::Volatile`] root (a `--rm` container's, whose writes
//!   are thrown away when it exits): overlayfs then never syncs the upper filesystem. Without it,
//!   unmounting the overlay syncs the whole upper filesystem and flushes the disk's cache, and
//!   that happens when the container's last process exits, inside its `exit`: every
//!   `run --rm` would wait for the disk (about 0.45 ms of an 8 ms run on this host). podman
//!   uses `volatile` for `--rm` containers too. A crash leaves such an upper unmountable
//!   (`work/work/incompat/volatile`), which does not matter for a root nobody mounts again.
//!   Linux 5.10+; older kernels get a durable mount.
//!
//! Not passed: `userxattr` (we are root, and layers carry `trusted.overlay.*` whiteout/opaque
//! markers), `volatile` for a durable root (a crash would lose container writes), `xino`/`uuid`
//! (defaults are fine).
//! Mount flags are none, like docker: device nodes and setuid binaries in images work as usual.

use super::{check_dir, DirRole, LowerLayers, RootfsError};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{openat, statx, AtFlags, Mode, OFlags, StatxFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_fd, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen,
    mount2, move_mount, FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags,
};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// overlayfs' own limit on lower layers (`OVL_MAX_STACK`).
pub const OVERLAY_MAX_LOWERS: usize = 500;

const PARAMS_DIR: &str = "/sys/module/overlay/parameters";

/// How to make the mount; see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MountApi {
    /// `LayerFds` where the kernel has it, else `Legacy`.
    #[default]
    Auto,
    /// `mount(2)` with relative lowerdirs, from a helper thread with its own cwd. Every kernel.
    Legacy,
    /// `fsopen`/`fsconfig` with a directory fd per layer. Linux 6.13+.
    LayerFds,
}

/// Whether the writes in a root's upper layer must survive a crash of the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// The upper filesystem is synced when the overlay goes away, as overlayfs does by default.
    #[default]
    Durable,
    /// Never synced (overlayfs' `volatile`): for a root that is deleted when its container exits.
    Volatile,
}

/// Mounts an overlay of `lowers` (read-only, TOP-most first) under `upper` (writable) with
/// overlayfs' scratch dir `work` (same filesystem as `upper`, empty or left by an earlier mount
/// of the same upper) at `target`. Same as [`mount_overlay_with`]`(MountApi::Auto, …)`.
pub fn mount_overlay(
    lowers: &LowerLayers,
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), RootfsError> {
    mount_overlay_with(MountApi::Auto, lowers, upper, work, target)
}

/// [`mount_overlay`] with an explicit choice of mount API. Everything is checked before the
/// kernel is asked, so bad input gives an error that names the path, and nothing is mounted.
pub fn mount_overlay_with(
    api: MountApi,
    lowers: &LowerLayers,
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), RootfsError> {
    mount_overlay_as(api, Durability::Durable, lowers, upper, work, target)
}

/// [`mount_overlay_with`] with a choice of [`Durability`].
pub fn mount_overlay_as(
    api: MountApi,
    durability: Durability,
    lowers: &LowerLayers,
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), RootfsError> {
    lowers.validate()?;
    let upper = absolute(upper)?;
    let work = absolute(work)?;
    let target = absolute(target)?;
    check_dir(&upper, DirRole::Upper)?;
    check_dir(&work, DirRole::Work)?;
    check_dir(&target, DirRole::Target)?;
    check_upper_work(&upper, &work)?;
    let mut options = Options::detect();
    options.volatile = durability == Durability::Volatile && kernel_has_volatile();
    match api {
        MountApi::Legacy => mount_legacy(&options, lowers, &upper, &work, &target),
        MountApi::LayerFds => match mount_fds(&options, lowers, &upper, &work, &target)? {
            FdOutcome::Mounted => Ok(()),
            FdOutcome::Unsupported(detail) => Err(RootfsError::LayerFdsUnsupported {
                detail: with_prefix(": ", &detail),
            }),
        },
        MountApi::Auto => match mount_fds(&options, lowers, &upper, &work, &target)? {
            FdOutcome::Mounted => Ok(()),
            FdOutcome::Unsupported(detail) => {
                tracing::debug!(%detail, "overlay layers by fd unsupported; using mount(2)");
                mount_legacy(&options, lowers, &upper, &work, &target).map_err(|e| match e {
                    RootfsError::Mount {
                        target,
                        source,
                        detail: d,
                    } if !detail.is_empty() => RootfsError::Mount {
                        target,
                        source,
                        detail: format!("{d} (the fd-based attempt said: {detail})"),
                    },
                    e => e,
                })
            }
        },
    }
}

fn absolute(path: &Path) -> Result<PathBuf, RootfsError> {
    std::path::absolute(path).map_err(|e| RootfsError::io("cannot make absolute", path, e))
}

/// What overlayfs would refuse about upper and work, checked here because the kernel says why
/// only in its log (pr_err), never to the caller.
fn check_upper_work(upper: &Path, work: &Path) -> Result<(), RootfsError> {
    let apart = |why: &'static str| RootfsError::UpperWorkApart {
        upper: upper.to_path_buf(),
        work: work.to_path_buf(),
        why,
    };
    if upper.starts_with(work) || work.starts_with(upper) {
        return Err(apart("one is inside the other"));
    }
    // "Same mount", not just same filesystem: a bind mount of the same fs is refused too.
    let id = |p: &Path| -> Result<(u64, bool), RootfsError> {
        let st = statx(CWD, p, AtFlags::empty(), StatxFlags::MNT_ID)
            .map_err(|e| RootfsError::io("cannot inspect", p, e.into()))?;
        if st.stx_mask & StatxFlags::MNT_ID.bits() != 0 {
            Ok((st.stx_mnt_id, true))
        } else {
            let dev = (u64::from(st.stx_dev_major) << 32) | u64::from(st.stx_dev_minor);
            Ok((dev, false))
        }
    };
    if id(upper)? != id(work)? {
        return Err(apart("they are on different mounts"));
    }
    Ok(())
}

fn with_prefix(prefix: &str, s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("{prefix}{s}")
    }
}

/// The options besides the layers; see the module docs for the choice.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    pairs: Vec<(&'static str, &'static str)>,
    /// The flag `volatile` (see [`Durability::Volatile`]).
    volatile: bool,
    /// The overlay module was not loaded yet, so support was assumed rather than seen.
    assumed: bool,
}

impl Options {
    fn detect() -> Options {
        let params = Path::new(PARAMS_DIR);
        if !params.is_dir() {
            return Options {
                pairs: vec![
                    ("index", "off"),
                    ("redirect_dir", "nofollow"),
                    ("metacopy", "off"),
                ],
                volatile: false,
                assumed: true,
            };
        }
        let has = |name: &str| params.join(name).exists();
        let mut pairs = Vec::new();
        if has("index") {
            pairs.push(("index", "off"));
        }
        if has("redirect_always_follow") {
            pairs.push(("redirect_dir", "nofollow"));
        } else if has("redirect_dir") {
            pairs.push(("redirect_dir", "off"));
        }
        if has("metacopy") {
            pairs.push(("metacopy", "off"));
        }
        Options {
            pairs,
            volatile: false,
            assumed: false,
        }
    }

    /// The same choice redone from what the (now loaded) module says it supports.
    fn redetect(&self) -> Options {
        Options {
            volatile: self.volatile,
            ..Options::detect()
        }
    }
}

/// overlayfs knows `volatile` from Linux 5.10 on; it has no module parameter to look for.
fn kernel_has_volatile() -> bool {
    // SAFETY: uname fills the struct it is given; all-zero bytes are a valid `utsname`.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return false;
    }
    // SAFETY: the kernel NUL-terminates `release` within its 65 bytes.
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) }.to_string_lossy();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (5, 10)
}

// ---- mount(2) with relative lowers ------------------------------------------------------------

/// Escapes `\`, `,` and `:` with a backslash, as overlayfs' option parser expects.
fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if matches!(b, b'\\' | b',' | b':') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// `index=off,…,lowerdir=l/a:l/b,upperdir=/abs/upper,workdir=/abs/work`.
fn legacy_option_string(
    options: &Options,
    lowers: &LowerLayers,
    upper: &Path,
    work: &Path,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + lowers.rel.len() * 13);
    for (k, v) in &options.pairs {
        out.extend_from_slice(format!("{k}={v},").as_bytes());
    }
    if options.volatile {
        out.extend_from_slice(b"volatile,");
    }
    out.extend_from_slice(b"lowerdir=");
    for (i, rel) in lowers.rel.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        push_escaped(&mut out, rel.as_bytes());
    }
    out.extend_from_slice(b",upperdir=");
    push_escaped(&mut out, upper.as_os_str().as_bytes());
    out.extend_from_slice(b",workdir=");
    push_escaped(&mut out, work.as_os_str().as_bytes());
    out
}

/// The longest option string mount(2) takes: one page, with its terminating NUL.
fn max_option_len() -> usize {
    // SAFETY: sysconf only reads a constant; no memory is passed.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(4096).max(4096) - 1
}

fn mount_legacy(
    options: &Options,
    lowers: &LowerLayers,
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), RootfsError> {
    let first = mount_legacy_once(options, lowers, upper, work, target);
    match &first {
        // The module was not loaded when the options were chosen; the failed mount loaded it.
        // Choose again from what it supports and retry once if that changes anything.
        Err(RootfsError::Mount { source, .. })
            if options.assumed && source.raw_os_error() == Some(libc::EINVAL) =>
        {
            let seen = options.redetect();
            if !seen.assumed && seen.pairs != options.pairs {
                return mount_legacy_once(&seen, lowers, upper, work, target);
            }
            first
        }
        _ => first,
    }
}

enum Step {
    Unshare,
    Chdir,
    Mount,
}

fn mount_legacy_once(
    options: &Options,
    lowers: &LowerLayers,
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), RootfsError> {
    let data = legacy_option_string(options, lowers, upper, work);
    let max = max_option_len();
    if data.len() > max {
        return Err(RootfsError::OptionsTooLong {
            target: target.to_path_buf(),
            len: data.len(),
            max,
            layers: lowers.rel.len(),
        });
    }
    // Paths came from `Path`s and checked strings: a NUL here is a bug upstream, reported as input.
    let data = CString::new(data).map_err(|_| RootfsError::InvalidLayerPath {
        rel: String::from("<upper or work path>"),
        reason: "it contains a NUL byte",
    })?;
    let base = lowers.base.clone();
    let at = target.to_path_buf();
    let helper = std::thread::Builder::new()
        .name("berth-ovl-mount".into())
        .spawn(move || -> Result<(), (Step, Errno)> {
            // This thread's own cwd: the chdir below must not move any other thread's.
            rustix::thread::unshare(rustix::thread::UnshareFlags::FS)
                .map_err(|e| (Step::Unshare, e))?;
            rustix::process::chdir(&base).map_err(|e| (Step::Chdir, e))?;
            mount2(
                Some("overlay"),
                &at,
                Some("overlay"),
                MountFlags::empty(),
                Some(&data),
            )
            .map_err(|e| (Step::Mount, e))
        })
        .map_err(|e| RootfsError::io("cannot start the mount helper thread for", target, e))?;
    match helper.join() {
        Ok(Ok(())) => Ok(()),
        Ok(Err((Step::Unshare, e))) => Err(RootfsError::io(
            "cannot give the mount helper thread its own cwd (unshare CLONE_FS) for",
            target,
            e.into(),
        )),
        Ok(Err((Step::Chdir, e))) => Err(RootfsError::io(
            "cannot enter the layer base directory",
            &lowers.base,
            e.into(),
        )),
        Ok(Err((Step::Mount, e))) => Err(mount_error(target, e, &[], true)),
        Err(_) => Err(RootfsError::Mount {
            target: target.to_path_buf(),
            source: io::Error::other("the mount helper thread panicked"),
            detail: String::new(),
        }),
    }
}

// ---- new mount API with layer fds -------------------------------------------------------------

enum FdOutcome {
    Mounted,
    /// This kernel cannot take layers by fd; the detail is what it said, if anything.
    Unsupported(String),
}

/// Directory fds for `fsconfig`. O_RDONLY rather than O_PATH: 6.18 takes O_PATH fds too, but a
/// plain read-only fd is what every kernel with layer fds accepts, and root can always read.
fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

fn open_dir(
    dirfd: BorrowedFd<'_>,
    rel: &Path,
    full: &Path,
    role: DirRole,
) -> Result<OwnedFd, RootfsError> {
    openat(dirfd, rel, dir_flags(), Mode::empty()).map_err(|e| match e {
        // Vanished or replaced since the check: the check reports it with the right words.
        Errno::NOENT | Errno::NOTDIR => match check_dir(full, role) {
            Err(err) => err,
            Ok(()) => RootfsError::io("cannot open", full, e.into()),
        },
        e => RootfsError::io("cannot open", full, e.into()),
    })
}

fn mount_fds(
    options: &Options,
    lowers: &LowerLayers,
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<FdOutcome, RootfsError> {
    let fs = match fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(Errno::NODEV) => return Err(RootfsError::OverlayUnavailable),
        // No new mount API (before 5.2), or a seccomp filter that refuses it.
        Err(Errno::NOSYS) | Err(Errno::PERM) => return Ok(FdOutcome::Unsupported(String::new())),
        Err(e) => return Err(mount_error(target, e, &[], false)),
    };
    let fail = |e: Errno| mount_error(target, e, &kernel_messages(fs.as_fd()), false);
    // fsopen loaded the module if it was not yet: choose from what it really supports.
    let detected;
    let options = if options.assumed {
        detected = options.redetect();
        &detected
    } else {
        options
    };
    // What mountinfo and findmnt show as the source, as with mount(2) (else "none").
    fsconfig_set_string(fs.as_fd(), "source", "overlay").map_err(fail)?;
    for (k, v) in &options.pairs {
        fsconfig_set_string(fs.as_fd(), *k, *v).map_err(fail)?;
    }
    if options.volatile {
        fsconfig_set_flag(fs.as_fd(), "volatile").map_err(fail)?;
    }
    let base = open_dir(CWD, &lowers.base, &lowers.base, DirRole::Layer)?;
    for (i, rel) in lowers.rel.iter().enumerate() {
        let full = lowers.base.join(rel);
        // Opened relative to the base fd, then closed at once: the kernel keeps its own
        // reference, and 500 layers must not mean 500 open fds.
        let layer = open_dir(base.as_fd(), Path::new(rel), &full, DirRole::Layer)?;
        match fsconfig_set_fd(fs.as_fd(), "lowerdir+", layer.as_fd()) {
            Ok(()) => {}
            // Before 6.8 `lowerdir+` is unknown; before 6.13 it takes strings only. Kernels
            // whose overlayfs still uses the legacy mount context (6.1, Debian 12's) refuse any
            // FSCONFIG_SET_FD with EOPNOTSUPP instead of EINVAL: fall back to mount(2) too.
            Err(Errno::INVAL) | Err(Errno::OPNOTSUPP) if i == 0 => {
                return Ok(FdOutcome::Unsupported(
                    kernel_messages(fs.as_fd()).join("; "),
                ))
            }
            Err(e) => return Err(fail(e)),
        }
    }
    for (key, path, role) in [
        ("upperdir", upper, DirRole::Upper),
        ("workdir", work, DirRole::Work),
    ] {
        let dir = open_dir(CWD, path, path, role)?;
        fsconfig_set_fd(fs.as_fd(), key, dir.as_fd()).map_err(fail)?;
    }
    fsconfig_create(fs.as_fd()).map_err(fail)?;
    let mnt = fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )
    .map_err(fail)?;
    move_mount(
        mnt.as_fd(),
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| mount_error(target, e, &[], false))?;
    Ok(FdOutcome::Mounted)
}

/// What the kernel logged on an fs-context fd ("e overlayfs: …" lines), prefixes dropped.
fn kernel_messages(fs: BorrowedFd<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded: the kernel keeps at most 8 messages per context.
    for _ in 0..16 {
        match rustix::io::read(fs, &mut buf) {
            Ok(n) if n > 0 => {
                let line = String::from_utf8_lossy(&buf[..n]);
                let line = line.trim();
                let line = line
                    .strip_prefix("e ")
                    .or_else(|| line.strip_prefix("w "))
                    .or_else(|| line.strip_prefix("i "))
                    .unwrap_or(line);
                out.push(line.to_string());
            }
            _ => break,
        }
    }
    out
}

fn mount_error(target: &Path, e: Errno, kernel: &[String], legacy: bool) -> RootfsError {
    if e == Errno::NODEV {
        return RootfsError::OverlayUnavailable;
    }
    let mut detail = String::new();
    if !kernel.is_empty() {
        detail.push_str(&format!(" (kernel: {})", kernel.join("; ")));
    }
    let hint = match e {
        Errno::PERM | Errno::ACCESS => "mounting needs CAP_SYS_ADMIN; run berth as root",
        // Most of overlayfs' reasons go to the kernel log only, whichever API is used.
        Errno::INVAL if legacy || kernel.is_empty() => {
            "overlayfs refused the mount; upper and work must be on a filesystem with xattrs \
             and d_type (not overlayfs or NFS), layers must not be overlay mounts too deep to \
             stack; `dmesg | grep overlayfs` has the reason"
        }
        Errno::BUSY => {
            "the upper or work directory is in use by another overlay mount; unmount it first"
        }
        Errno::NOENT | Errno::NOTDIR => {
            "a layer, upper, work or target directory vanished during the mount"
        }
        _ => "",
    };
    if !hint.is_empty() {
        detail.push_str(": ");
        detail.push_str(hint);
    }
    RootfsError::Mount {
        target: target.to_path_buf(),
        source: e.into(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            pairs: vec![("index", "off"), ("redirect_dir", "nofollow")],
            volatile: false,
            assumed: false,
        }
    }

    #[test]
    fn option_string_escapes_and_orders() {
        let lowers = LowerLayers::new("/b", vec!["l/top".into(), "l/a,b:c\\d".into()]);
        let s = legacy_option_string(&opts(), &lowers, Path::new("/u p,x"), Path::new("/w:1"));
        assert_eq!(
            String::from_utf8_lossy(&s),
            r"index=off,redirect_dir=nofollow,lowerdir=l/top:l/a\,b\:c\\d,upperdir=/u p\,x,workdir=/w\:1"
        );
    }

    #[test]
    fn three_hundred_short_links_fit_one_page() {
        let rel: Vec<String> = (0..300).map(|i| format!("l/{i:010}")).collect();
        let lowers = LowerLayers::new("/var/lib/berth/layers", rel);
        let upper = Path::new("/var/lib/berth/containers/0123456789ab/fs/upper");
        let work = Path::new("/var/lib/berth/containers/0123456789ab/fs/work");
        let s = legacy_option_string(&Options::detect(), &lowers, upper, work);
        assert!(s.len() <= 4095, "{} bytes", s.len());
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = mount_error(Path::new("/t"), Errno::PERM, &[], true);
        assert!(e.to_string().contains("run berth as root"), "{e}");
        let e = mount_error(
            Path::new("/t"),
            Errno::INVAL,
            &["overlayfs: bad".into()],
            false,
        );
        assert!(e.to_string().contains("kernel: overlayfs: bad"), "{e}");
        assert!(matches!(
            mount_error(Path::new("/t"), Errno::NODEV, &[], true),
            RootfsError::OverlayUnavailable
        ));
    }
}
