//! Reading the mount table, unmounting, and deleting a container's root safely.

use super::RootfsError;
use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{unmount, UnmountFlags};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How often an unmount loop retries before giving up (mounts can be stacked on one point).
const MAX_UNMOUNT_ROUNDS: usize = 64;

/// The mount points of the calling thread's mount namespace, in mount-table order (a mount
/// comes after the one it sits on). `/proc/thread-self`, not `/proc/self`: a thread that
/// unshared its mount namespace sees its own table only there.
pub(crate) fn mount_points() -> io::Result<Vec<PathBuf>> {
    let data = match fs::read("/proc/thread-self/mountinfo") {
        Ok(d) => d,
        Err(_) => fs::read("/proc/self/mountinfo")?,
    };
    Ok(data
        .split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4))
        .map(|field| PathBuf::from(OsString::from_vec(unescape_octal(field))))
        .collect())
}

/// mountinfo writes space, tab, newline and backslash in paths as `\040`, `\011`, `\012`, `\134`.
fn unescape_octal(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 4 <= field.len() {
            let digits = &field[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

/// The path as the mount table spells it: absolute, symlinks resolved where it exists.
fn table_path(path: &Path) -> PathBuf {
    if let Ok(p) = fs::canonicalize(path) {
        return p;
    }
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Whether something is mounted exactly at `path`. Asks `statx` (Linux 5.8+ reports mount
/// roots: one call, where the table costs a path resolution and a read of the whole table);
/// else looks in the mount table, or compares device numbers with the parent when that cannot
/// be read (no /proc).
pub(crate) fn is_mount_point(path: &Path) -> bool {
    let mount_root = libc::STATX_ATTR_MOUNT_ROOT as u64;
    if let Ok(st) = statx(CWD, path, AtFlags::empty(), StatxFlags::BASIC_STATS) {
        if st.stx_attributes_mask & mount_root != 0 {
            return st.stx_attributes & mount_root != 0;
        }
    }
    in_mount_table(path)
}

/// [`is_mount_point`] from the mount table alone.
fn in_mount_table(path: &Path) -> bool {
    let path = table_path(path);
    match mount_points() {
        Ok(points) => points.contains(&path),
        Err(_) => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            match (fs::metadata(&path), fs::metadata(parent)) {
                (Ok(a), Ok(b)) => a.dev() != b.dev(),
                _ => false,
            }
        }
    }
}

/// Mount points at or below `dir`, deepest (and most recently stacked) first.
fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>, RootfsError> {
    let dir = table_path(dir);
    let points = mount_points().map_err(|e| {
        RootfsError::io(
            "cannot read the mount table",
            Path::new("/proc/thread-self/mountinfo"),
            e,
        )
    })?;
    let mut under: Vec<PathBuf> = points.into_iter().filter(|p| p.starts_with(&dir)).collect();
    // Later entries sit on earlier ones; among those, longer paths are deeper.
    under.reverse();
    under.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().as_bytes().len()));
    Ok(under)
}

/// Unmounts one mount at `target`: plainly first, lazily (MNT_DETACH) if it is busy.
/// Returns Ok(false) if nothing was mounted there.
fn unmount_one(target: &Path) -> Result<bool, RootfsError> {
    // UMOUNT_NOFOLLOW: never unmount whatever a symlink planted at `target` points to.
    match unmount(target, UnmountFlags::NOFOLLOW) {
        Ok(()) => Ok(true),
        Err(Errno::INVAL) | Err(Errno::NOENT) => Ok(false),
        Err(Errno::BUSY) => match unmount(target, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH) {
            Ok(()) => Ok(true),
            Err(Errno::INVAL) | Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(unmount_error(target, e)),
        },
        Err(e) => Err(unmount_error(target, e)),
    }
}

fn unmount_error(target: &Path, e: Errno) -> RootfsError {
    let detail = match e {
        Errno::PERM => ": unmounting needs CAP_SYS_ADMIN; run berth as root",
        _ => "",
    };
    RootfsError::Unmount {
        target: target.to_path_buf(),
        source: e.into(),
        detail: detail.to_string(),
    }
}

/// Unmounts every mount stacked at `target`; nothing mounted is fine.
pub(crate) fn unmount_all_at(target: &Path) -> Result<(), RootfsError> {
    let target = table_path(target);
    for _ in 0..MAX_UNMOUNT_ROUNDS {
        if !is_mount_point(&target) {
            return Ok(());
        }
        if !unmount_one(&target)? {
            return Ok(());
        }
    }
    Err(still_mounted(&target))
}

/// Unmounts everything at or below `dir`, deepest first, until the mount table shows none.
pub(crate) fn unmount_all_under(dir: &Path) -> Result<(), RootfsError> {
    for _ in 0..MAX_UNMOUNT_ROUNDS {
        let under = mounts_under(dir)?;
        if under.is_empty() {
            return Ok(());
        }
        for point in &under {
            unmount_one(point)?;
        }
    }
    Err(still_mounted(dir))
}

fn still_mounted(path: &Path) -> RootfsError {
    RootfsError::Unmount {
        target: path.to_path_buf(),
        source: io::Error::from(io::ErrorKind::ResourceBusy),
        detail: ": mounts keep reappearing there; stop whatever is mounting them".to_string(),
    }
}

/// Deletes the tree at `path` (gone already is fine), without following symlinks out of it.
///
/// overlayfs leaves `work/work` (and `work/index`) owned by root with mode 000, and a
/// container can create such directories in `upper/` too. Root with CAP_DAC_OVERRIDE deletes
/// them anyway; a runtime with fewer capabilities gets EACCES, so on EACCES every directory is
/// made `u+rwx` and the removal retried. Callers make sure nothing is mounted below `path`.
pub(crate) fn remove_tree(path: &Path) -> Result<(), RootfsError> {
    match fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
        Err(e) => return Err(RootfsError::io("cannot remove", path, e)),
    }
    make_dirs_accessible(path).map_err(|e| RootfsError::io("cannot make removable", path, e))?;
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RootfsError::io("cannot remove", path, e)),
    }
}

/// chmod u+rwx on every directory in the tree (symlinks are not followed: `symlink_metadata`).
fn make_dirs_accessible(dir: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode((mode | 0o700) & 0o7777))?;
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            make_dirs_accessible(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_octal(br"/a\040b\134c"), b"/a b\\c".to_vec());
        assert_eq!(unescape_octal(br"/plain"), b"/plain".to_vec());
        assert_eq!(unescape_octal(br"/trail\04"), br"/trail\04".to_vec());
        assert_eq!(unescape_octal(br"/x\9999"), br"/x\9999".to_vec());
    }

    #[test]
    fn root_is_a_mount_point() {
        assert!(is_mount_point(Path::new("/")));
        assert!(mount_points().map(|p| !p.is_empty()).unwrap_or(false));
    }

    #[test]
    fn statx_and_the_mount_table_agree() {
        let mut paths = mount_points().expect("mount table");
        assert!(paths.len() > 2);
        // And paths that are no mount points: subdirectories of each, and missing ones.
        let inside: Vec<PathBuf> = paths
            .iter()
            .filter_map(|p| fs::read_dir(p).ok()?.flatten().next().map(|e| e.path()))
            .collect();
        paths.extend(inside);
        paths.push(PathBuf::from("/no/such/berth/path"));
        let mut mounted = 0;
        for p in &paths {
            assert_eq!(is_mount_point(p), in_mount_table(p), "{}", p.display());
            mounted += usize::from(in_mount_table(p));
        }
        assert!(
            mounted > 2 && mounted < paths.len(),
            "{mounted} of {}",
            paths.len()
        );
    }
}
