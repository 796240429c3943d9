//! Applying tar entries to the layer directory.
//!
//! Every entry's parent comes from the [`Resolver`] (resolved in the root); the last component is
//! created relative to that fd with `*at` calls that never follow it: `mkdirat`,
//! `openat(O_CREAT|O_EXCL|O_NOFOLLOW)`, `symlinkat`, `linkat` (target also resolved in the root,
//! flags 0 so a symlink target is linked, not followed), `mknodat`. An existing name is removed
//! first (a directory with everything in it) unless a directory merges into a directory.
//! Metadata order: owner, then mode (chown clears setuid/setgid), then xattrs (chown clears
//! `security.capability` too), then times. Directory times are set at the very end, since
//! creating children changes them.

use super::safe_path::{normalize, split_last, Resolver};
use super::tar::{Header, Kind, Source, TarReader, Time};
use super::whiteout::{self, Special};
use super::UnpackError;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::{self, BufRead, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

struct DirTime {
    path: std::ops::Range<usize>,
    times: Timestamps,
}

/// Unpacks entries into one layer directory.
pub(super) struct Unpacker {
    res: Resolver,
    path: Vec<u8>,
    link: Vec<u8>,
    proc_path: Vec<u8>,
    dir_paths: Vec<u8>,
    dir_times: Vec<DirTime>,
    /// Bytes we may still write before asking statvfs again.
    space_left: u64,
    written: u64,
}

impl Unpacker {
    pub fn new(dest: &Path) -> Result<Self, UnpackError> {
        let res = Resolver::open(dest).map_err(|source| UnpackError::Dest {
            dest: dest.to_path_buf(),
            source,
        })?;
        // Fail here, before reading anything, on kernels without openat2.
        match res.open_in_root(b"") {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS)) => {
                return Err(UnpackError::NoOpenat2(e))
            }
            Err(source) => {
                return Err(UnpackError::Dest {
                    dest: dest.to_path_buf(),
                    source,
                })
            }
            Ok(_) => {}
        }
        Ok(Unpacker {
            res,
            path: Vec::with_capacity(256),
            link: Vec::with_capacity(256),
            proc_path: Vec::with_capacity(64),
            dir_paths: Vec::new(),
            dir_times: Vec::new(),
            space_left: 0,
            written: 0,
        })
    }

    /// Applies every entry up to the end-of-archive marker.
    pub fn run<R: BufRead>(&mut self, mut tar: TarReader<R>) -> Result<(), UnpackError> {
        while let Some((hdr, src)) = tar.next_entry()? {
            self.entry(hdr, src)?;
        }
        Ok(())
    }

    /// Sets the deferred directory times; returns the bytes of file data written.
    pub fn finish(mut self) -> Result<u64, UnpackError> {
        let times = std::mem::take(&mut self.dir_times);
        let paths = std::mem::take(&mut self.dir_paths);
        for t in &times {
            let path = &paths[t.path.clone()];
            let (dir, name) = split_last(path);
            if name.is_empty() {
                let root = rfs::openat(
                    self.res.root(),
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .and_then(|fd| rfs::futimens(&fd, &t.times));
                root.map_err(|e| fs_error(path, "set the times of the layer root", e.into()))?;
                continue;
            }
            // A later entry may have replaced the directory or a directory on its route: then
            // there is nothing (or something else) to stamp, and it is skipped.
            let Ok(parent) = self.res.take(dir, false) else {
                continue;
            };
            let is_dir = rfs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
            if is_dir {
                rfs::utimensat(&parent, name, &t.times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| fs_error(path, "set directory times", e.into()))?;
            }
            self.res.give_back(dir, parent);
        }
        Ok(self.written)
    }

    fn entry<R: BufRead>(&mut self, h: &Header, src: &mut Source<R>) -> Result<(), UnpackError> {
        let mut path = std::mem::take(&mut self.path);
        normalize(&h.path, &mut path).map_err(|w| entry_error(&h.path, w))?;
        let result = self.entry_at(h, src, &path);
        self.path = path;
        result
    }

    fn entry_at<R: BufRead>(
        &mut self,
        h: &Header,
        src: &mut Source<R>,
        path: &[u8],
    ) -> Result<(), UnpackError> {
        let (dir, name) = split_last(path);
        if name.is_empty() {
            return self.root_entry(h);
        }
        let special = whiteout::classify(path).map_err(|w| entry_error(&h.path, w))?;
        if special == Special::Ignore {
            return Ok(());
        }
        let parent = self
            .res
            .take(dir, true)
            .map_err(|e| fs_error(&h.path, "resolve the parent directory inside the layer", e))?;
        let fd = parent.as_fd();
        match special {
            Special::Opaque => whiteout::make_opaque(fd)
                .map_err(|e| fs_error(&h.path, "mark the directory opaque", e))?,
            Special::Whiteout(target) => {
                self.remove(fd, target)
                    .map_err(|e| fs_error(&h.path, "remove the whited-out path", e))?;
                whiteout::make_whiteout(fd, target)
                    .map_err(|e| fs_error(&h.path, "create the whiteout device", e))?;
            }
            Special::Ignore => {}
            Special::None => match h.kind {
                Kind::Regular => self.file(h, src, fd, name)?,
                Kind::Dir => self.dir(h, fd, name, path)?,
                Kind::Symlink => self.symlink(h, fd, name)?,
                Kind::HardLink => self.hardlink(h, fd, name)?,
                Kind::Char | Kind::Block | Kind::Fifo => self.node(h, fd, name)?,
            },
        }
        self.res.give_back(dir, parent);
        Ok(())
    }

    /// `./` in the archive: the layer root's own metadata.
    fn root_entry(&mut self, h: &Header) -> Result<(), UnpackError> {
        if h.kind != Kind::Dir {
            return Err(entry_error(
                &h.path,
                "names the layer root but is not a directory",
            ));
        }
        let fd = rfs::openat(
            self.res.root(),
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fs_error(&h.path, "open the layer root", e.into()))?;
        self.meta_fd(h, &fd)?;
        self.defer_dir_time(h, b"");
        Ok(())
    }

    fn file<R: BufRead>(
        &mut self,
        h: &Header,
        src: &mut Source<R>,
        parent: BorrowedFd,
        name: &[u8],
    ) -> Result<(), UnpackError> {
        self.check_space(h)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = self
            .create(parent, name, |p| {
                rfs::openat(p, name, flags, Mode::from_raw_mode(0o600))
            })
            .map_err(|e| fs_error(&h.path, "create file", e))?;
        let mut file = File::from(fd);
        let mut left = h.size;
        while left > 0 {
            // Written straight from the stream's buffer: no copy in user space.
            let offset = src.offset();
            let chunk = match src.data() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(UnpackError::Truncated {
                        offset,
                        what: format!("entry {:?}: {e}", String::from_utf8_lossy(&h.path)),
                    })
                }
                Err(source) => return Err(UnpackError::Read { offset, source }),
            };
            let n = chunk.len();
            file.write_all(chunk)
                .map_err(|e| fs_error(&h.path, "write file data", e))?;
            src.consume_data(n);
            left -= n as u64;
        }
        self.written += h.size;
        self.meta_fd(h, &file)?;
        rfs::futimens(&file, &times(h)).map_err(|e| fs_error(&h.path, "set file times", e.into()))
    }

    fn dir(
        &mut self,
        h: &Header,
        parent: BorrowedFd,
        name: &[u8],
        path: &[u8],
    ) -> Result<(), UnpackError> {
        let mode = Mode::from_raw_mode(0o700);
        match rfs::mkdirat(parent, name, mode) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| fs_error(&h.path, "inspect the existing path", e.into()))?;
                // A directory over a directory merges; anything else is replaced.
                if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                    self.remove(parent, name)
                        .map_err(|e| fs_error(&h.path, "replace the existing path", e))?;
                    rfs::mkdirat(parent, name, mode)
                        .map_err(|e| fs_error(&h.path, "create directory", e.into()))?;
                }
            }
            Err(e) => return Err(fs_error(&h.path, "create directory", e.into())),
        }
        let fd = rfs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fs_error(&h.path, "open directory", e.into()))?;
        self.meta_fd(h, &fd)?;
        self.defer_dir_time(h, path);
        Ok(())
    }

    fn symlink(&mut self, h: &Header, parent: BorrowedFd, name: &[u8]) -> Result<(), UnpackError> {
        if h.link.is_empty() || h.link.contains(&0) {
            return Err(entry_error(
                &h.path,
                "symlink target is empty or contains a NUL byte",
            ));
        }
        // The target is stored verbatim: it is only ever followed inside the layer root (by us,
        // through openat2) or inside the container.
        self.create(parent, name, |p| rfs::symlinkat(h.link.as_slice(), p, name))
            .map_err(|e| fs_error(&h.path, "create symlink", e))?;
        self.meta_at(h, parent, name, false)
    }

    fn hardlink(&mut self, h: &Header, parent: BorrowedFd, name: &[u8]) -> Result<(), UnpackError> {
        let mut link = std::mem::take(&mut self.link);
        let result = (|| {
            normalize(&h.link, &mut link)
                .map_err(|w| entry_error(&h.path, format!("hard link target: {w}")))?;
            let (tdir, tname) = split_last(&link);
            if tname.is_empty() {
                return Err(entry_error(&h.path, "hard link to the layer root"));
            }
            // The target is resolved in the root like any path of the archive (`..` clamped,
            // symlinks followed inside the root) and its last component is not followed: a hard
            // link can only ever point at an inode that is already inside the layer.
            let tparent = self.res.open_in_root(tdir).map_err(|e| {
                entry_error(
                    &h.path,
                    format!(
                        "hard link target {:?} is not in the layer: {e}",
                        String::from_utf8_lossy(&h.link)
                    ),
                )
            })?;
            self.create(parent, name, |p| {
                rfs::linkat(&tparent, tname, p, name, AtFlags::empty())
            })
            .map_err(|e| {
                fs_error(
                    &h.path,
                    &format!("hard link to {:?}", String::from_utf8_lossy(&h.link)),
                    e,
                )
            })
        })();
        self.link = link;
        result
    }

    fn node(&mut self, h: &Header, parent: BorrowedFd, name: &[u8]) -> Result<(), UnpackError> {
        let (ft, dev) = match h.kind {
            Kind::Char => (
                FileType::CharacterDevice,
                rfs::makedev(h.dev_major, h.dev_minor),
            ),
            Kind::Block => (
                FileType::BlockDevice,
                rfs::makedev(h.dev_major, h.dev_minor),
            ),
            _ => (FileType::Fifo, 0),
        };
        self.create(parent, name, |p| {
            rfs::mknodat(p, name, ft, Mode::from_raw_mode(0o600), dev)
        })
        .map_err(|e| fs_error(&h.path, "create device node", e))?;
        self.meta_at(h, parent, name, true)
    }

    /// Runs `op` (which creates `name` in `parent`); if the name is taken, removes what is there
    /// and runs it once more.
    fn create<T>(
        &mut self,
        parent: BorrowedFd,
        name: &[u8],
        op: impl Fn(BorrowedFd) -> rustix::io::Result<T>,
    ) -> io::Result<T> {
        match op(parent) {
            Err(Errno::EXIST) => {
                self.remove(parent, name)?;
                Ok(op(parent)?)
            }
            other => Ok(other?),
        }
    }

    /// Removes whatever is at `name` in `parent` (a directory with its contents), without
    /// following symlinks. Removing a directory or symlink invalidates the resolver cache.
    fn remove(&mut self, parent: BorrowedFd, name: &[u8]) -> io::Result<()> {
        let st = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(()),
            other => other?,
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                self.res.invalidate();
                remove_tree(parent, name, 0)?;
                rfs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
            }
            FileType::Symlink => {
                self.res.invalidate();
                rfs::unlinkat(parent, name, AtFlags::empty())?;
            }
            _ => rfs::unlinkat(parent, name, AtFlags::empty())?,
        }
        Ok(())
    }

    /// Owner, mode and xattrs through an open fd (files and directories).
    fn meta_fd<Fd: AsFd>(&self, h: &Header, fd: Fd) -> Result<(), UnpackError> {
        let (uid, gid) = owner(h)?;
        rfs::fchown(&fd, Some(uid), Some(gid))
            .map_err(|e| fs_error(&h.path, "set owner", e.into()))?;
        rfs::fchmod(&fd, Mode::from_raw_mode(h.mode))
            .map_err(|e| fs_error(&h.path, "set mode", e.into()))?;
        for (name, value) in h.xattrs().filter(|(n, _)| whiteout::xattr_allowed(n)) {
            ignore_unsupported(rfs::fsetxattr(&fd, name, value, XattrFlags::empty()))
                .map_err(|e| fs_error(&h.path, "set extended attribute", e.into()))?;
        }
        Ok(())
    }

    /// Owner, mode (devices and fifos only), xattrs and times of `name` in `parent`, never
    /// following it (symlinks, devices, fifos: nodes we cannot or must not open).
    fn meta_at(
        &mut self,
        h: &Header,
        parent: BorrowedFd,
        name: &[u8],
        chmod: bool,
    ) -> Result<(), UnpackError> {
        let (uid, gid) = owner(h)?;
        rfs::chownat(
            parent,
            name,
            Some(uid),
            Some(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| fs_error(&h.path, "set owner", e.into()))?;
        if chmod {
            // fchmodat cannot refuse to follow a symlink before Linux 6.6 (following one is how
            // CVE-2021-32760 chmod-ed files outside containerd's unpack directory), but `name`
            // is the device or fifo mknodat just created, in a directory nobody else writes to.
            rfs::chmodat(parent, name, Mode::from_raw_mode(h.mode), AtFlags::empty())
                .map_err(|e| fs_error(&h.path, "set mode", e.into()))?;
        }
        if h.has_xattrs() {
            // lsetxattr on /proc/self/fd/N/NAME: the parent through its fd, NAME not followed.
            self.proc_path.clear();
            write!(self.proc_path, "/proc/self/fd/{}/", parent.as_raw_fd())
                .map_err(|e| fs_error(&h.path, "format a path", e))?;
            self.proc_path.extend_from_slice(name);
            for (xname, value) in h.xattrs().filter(|(n, _)| whiteout::xattr_allowed(n)) {
                ignore_unsupported(rfs::lsetxattr(
                    self.proc_path.as_slice(),
                    xname,
                    value,
                    XattrFlags::empty(),
                ))
                .map_err(|e| fs_error(&h.path, "set extended attribute", e.into()))?;
            }
        }
        rfs::utimensat(parent, name, &times(h), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| fs_error(&h.path, "set times", e.into()))
    }

    fn defer_dir_time(&mut self, h: &Header, path: &[u8]) {
        let start = self.dir_paths.len();
        self.dir_paths.extend_from_slice(path);
        self.dir_times.push(DirTime {
            path: start..self.dir_paths.len(),
            times: times(h),
        });
    }

    /// Refuses a file larger than the free space of the layer's filesystem before writing it.
    /// statvfs is asked again only when the running estimate says the file would not fit.
    fn check_space(&mut self, h: &Header) -> Result<(), UnpackError> {
        if h.size <= self.space_left {
            self.space_left -= h.size;
            return Ok(());
        }
        let st = rfs::fstatvfs(self.res.root())
            .map_err(|e| fs_error(&h.path, "measure free space", e.into()))?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        if h.size > free {
            return Err(UnpackError::NoSpace {
                path: String::from_utf8_lossy(&h.path).into_owned(),
                size: h.size,
                free,
            });
        }
        self.space_left = free - h.size;
        Ok(())
    }
}

/// Removes the contents of directory `name` in `parent`, never following symlinks. Uses one fd
/// per level of depth.
fn remove_tree(parent: BorrowedFd, name: &[u8], depth: usize) -> io::Result<()> {
    if depth > 4096 {
        return Err(io::Error::other("directory tree too deep to remove"));
    }
    let fd: OwnedFd = rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut children = Vec::new();
    for entry in rfs::Dir::read_from(&fd)? {
        let entry = entry?;
        let child = entry.file_name().to_bytes();
        if child != b"." && child != b".." {
            children.push((child.to_vec(), entry.file_type()));
        }
    }
    for (child, mut ft) in children {
        if ft == FileType::Unknown {
            ft = FileType::from_raw_mode(
                rfs::statat(&fd, child.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?.st_mode,
            );
        }
        if ft == FileType::Directory {
            remove_tree(fd.as_fd(), &child, depth + 1)?;
            rfs::unlinkat(&fd, child.as_slice(), AtFlags::REMOVEDIR)?;
        } else {
            rfs::unlinkat(&fd, child.as_slice(), AtFlags::empty())?;
        }
    }
    Ok(())
}

fn owner(h: &Header) -> Result<(rfs::Uid, rfs::Gid), UnpackError> {
    // u32::MAX is chown's "leave unchanged": refuse it rather than silently keep our own ids.
    let uid = u32::try_from(h.uid).ok().filter(|&v| v != u32::MAX);
    let gid = u32::try_from(h.gid).ok().filter(|&v| v != u32::MAX);
    match (uid, gid) {
        // SAFETY: from_raw is unsafe only because -1 means "no change" to chown; both values were
        // checked to be real ids above.
        (Some(u), Some(g)) => Ok(unsafe { (rfs::Uid::from_raw(u), rfs::Gid::from_raw(g)) }),
        _ => Err(entry_error(
            &h.path,
            format!("owner {}:{} is out of range", h.uid, h.gid),
        )),
    }
}

fn times(h: &Header) -> Timestamps {
    let ts = |t: Time| Timespec {
        tv_sec: t.sec,
        tv_nsec: t.nsec.into(),
    };
    Timestamps {
        last_access: ts(h.atime.unwrap_or(h.mtime)),
        last_modification: ts(h.mtime),
    }
}

/// A filesystem without xattr support (or without this namespace) is not a reason to fail the
/// layer; docker and containerd skip such attributes too.
fn ignore_unsupported(r: rustix::io::Result<()>) -> rustix::io::Result<()> {
    match r {
        Err(Errno::NOTSUP) => Ok(()),
        other => other,
    }
}

fn entry_error(path: &[u8], what: impl Into<String>) -> UnpackError {
    UnpackError::Entry {
        path: String::from_utf8_lossy(path).into_owned(),
        what: what.into(),
    }
}

fn fs_error(path: &[u8], op: &str, source: io::Error) -> UnpackError {
    UnpackError::Fs {
        path: String::from_utf8_lossy(path).into_owned(),
        op: op.to_string(),
        source,
    }
}
