//! Archive paths, and directories resolved without ever leaving the layer directory.
//!
//! Defends against the layer-tar traversal family: CVE-2014-6407 and CVE-2014-9356 (docker
//! extracted layers through symlinks and hard links planted by the same layer), CVE-2018-1002100
//! (`kubectl cp` wrote `../` paths outside the target), CVE-2021-32760 (containerd chmod-ed
//! through a symlink outside the unpack directory), CVE-2018-15664 (path resolved in one step,
//! used in another). Every path from the archive is first normalized lexically (absolute paths become relative to the layer root, `..`
//! is clamped at the root exactly like `RESOLVE_IN_ROOT` clamps it, the same answer containerd
//! gives), then only its *parent* is resolved by the kernel with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so symlinks the layer planted (`a -> /etc`,
//! `a -> ../../..`) are followed as if the layer directory were `/`. The final component is then
//! created with `*at` calls relative to that directory fd, never following it.

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Normalizes an archive path into `out`: components joined by single `/`, no leading `/`, no
/// `.`, and `..` applied lexically but never above the root (`../../etc/x` → `etc/x`). The
/// empty result is the layer root itself. A NUL byte is an error (no kernel path holds one).
pub(super) fn normalize(raw: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    out.clear();
    if raw.contains(&0) {
        return Err("path contains a NUL byte");
    }
    for comp in raw.split(|&c| c == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                let keep = out.iter().rposition(|&c| c == b'/').unwrap_or(0);
                out.truncate(keep);
            }
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(comp);
            }
        }
    }
    Ok(())
}

/// Splits a normalized path into its parent (possibly empty: the root) and its last component.
pub(super) fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&c| c == b'/') {
        Some(n) => (&path[..n], &path[n + 1..]),
        None => (&path[..0], path),
    }
}

const DIR_FLAGS: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);
const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Resolves directories inside the layer root, caching the last one: layer tars list a
/// directory's entries together, so most entries reuse the previous entry's parent.
///
/// Cache invalidation: a cached path can only resolve differently after a directory or symlink
/// on its route is removed or replaced. Every such removal calls [`Resolver::invalidate`] and
/// drops the cache, whether or not the removed path is a lexical prefix of the cached one (a
/// symlink can alias any route, so prefix tests would not be enough). Creations never invalidate:
/// the cached path already resolved, so nothing on its route was missing.
pub(super) struct Resolver {
    root: OwnedFd,
    key: Vec<u8>,
    cached: Option<OwnedFd>,
    dirty: bool,
}

impl Resolver {
    /// Opens the layer root. The caller chose `dest`; symlinks in it are the caller's business.
    pub fn open(dest: &Path) -> io::Result<Self> {
        let root = rfs::open(dest, DIR_FLAGS, Mode::empty())?;
        Ok(Resolver {
            root,
            key: Vec::with_capacity(256),
            cached: None,
            dirty: false,
        })
    }

    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Takes an `O_PATH` fd of directory `dir` (normalized, relative to the root; empty for the
    /// root), creating missing directories (mode 0755, like docker's `MkdirAll`) when `create`.
    /// Hand it back with [`Resolver::give_back`] to keep it cached.
    pub fn take(&mut self, dir: &[u8], create: bool) -> io::Result<OwnedFd> {
        if self.dirty {
            self.cached = None;
            self.dirty = false;
        }
        if self.key == dir {
            if let Some(fd) = self.cached.take() {
                return Ok(fd);
            }
        }
        match self.open_in_root(dir) {
            Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => self.open_creating(dir),
            other => other,
        }
    }

    /// Caches `fd` as the directory `dir`, unless a removal since it was taken made it suspect.
    pub fn give_back(&mut self, dir: &[u8], fd: OwnedFd) {
        if self.dirty {
            self.dirty = false;
            self.cached = None;
            return;
        }
        self.key.clear();
        self.key.extend_from_slice(dir);
        self.cached = Some(fd);
    }

    /// Forgets the cached directory: call after removing or replacing a directory or symlink.
    pub fn invalidate(&mut self) {
        self.dirty = true;
    }

    /// Resolves `dir` (normalized) inside the root, without creating anything and without the
    /// cache.
    pub fn open_in_root(&self, dir: &[u8]) -> io::Result<OwnedFd> {
        let path: &[u8] = if dir.is_empty() { b"." } else { dir };
        let mut tries = 0;
        loop {
            match rfs::openat2(&self.root, path, DIR_FLAGS, Mode::empty(), RESOLVE) {
                // EAGAIN: a concurrent rename raced with `..` resolution; the kernel asks us to retry.
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                Err(e) => return Err(e.into()),
                Ok(fd) => return Ok(fd),
            }
        }
    }

    /// Slow path: some directory of `dir` is missing. Resolves each prefix in the root, and from
    /// the first missing one on creates directories relative to the last resolved fd.
    fn open_creating(&self, dir: &[u8]) -> io::Result<OwnedFd> {
        let mut fd: Option<OwnedFd> = None;
        let mut creating = false;
        let mut start = 0;
        while start < dir.len() {
            let end = dir[start..]
                .iter()
                .position(|&c| c == b'/')
                .map_or(dir.len(), |n| start + n);
            let comp = &dir[start..end];
            start = end + 1;
            if !creating {
                match self.open_in_root(&dir[..end]) {
                    Ok(f) => {
                        fd = Some(f);
                        continue;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => creating = true,
                    Err(e) => return Err(e),
                }
            }
            let parent = fd.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
            match rfs::mkdirat(parent, comp, Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!(
                            "{:?} exists but does not resolve to a directory inside the layer \
                             (a symlink to a missing target?)",
                            String::from_utf8_lossy(&dir[..end])
                        ),
                    ))
                }
                Err(e) => return Err(e.into()),
            }
            // mkdirat honours the umask; docker's layers get 0755 regardless of it.
            rfs::chmodat(
                parent,
                comp,
                Mode::from_raw_mode(0o755),
                rfs::AtFlags::empty(),
            )?;
            let next = rfs::openat(parent, comp, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
            fd = Some(next);
        }
        match fd {
            Some(fd) => Ok(fd),
            None => self.open_in_root(dir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> String {
        let mut out = Vec::new();
        normalize(raw.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn normalizes_to_relative_paths_inside_the_root() {
        assert_eq!(norm("./usr/bin/env"), "usr/bin/env");
        assert_eq!(norm("/etc/passwd"), "etc/passwd");
        assert_eq!(norm("a//b/./c/"), "a/b/c");
        assert_eq!(norm("a/b/../c"), "a/c");
        assert_eq!(norm("../x"), "x");
        assert_eq!(norm("../../../etc/shadow"), "etc/shadow");
        assert_eq!(norm("a/../../.."), "");
        assert_eq!(norm("/"), "");
        assert_eq!(norm("./"), "");
        assert_eq!(norm("..."), "...");
        assert!(normalize(b"a\0b", &mut Vec::new()).is_err());
    }

    #[test]
    fn splits_parent_and_name() {
        assert_eq!(split_last(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
        assert_eq!(split_last(b""), (&b""[..], &b""[..]));
    }
}
