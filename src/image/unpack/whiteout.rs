//! OCI/aufs whiteouts, converted to the form overlayfs reads.
//!
//! - `dir/.wh.NAME` hides `NAME` of lower layers: it becomes a character device 0:0 `dir/NAME`.
//! - `dir/.wh..wh..opq` hides all of `dir` in lower layers: `dir` gets `trusted.overlay.opaque=y`.
//! - Other `.wh..wh.*` names are aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`) and are
//!   skipped, as docker skips them, together with everything under a top-level such directory.

use rustix::fs::{self as rfs, FileType, Mode, OFlags, XattrFlags};
use std::io;
use std::os::fd::AsFd;

pub(super) const PREFIX: &[u8] = b".wh.";
pub(super) const META_PREFIX: &[u8] = b".wh..wh.";
pub(super) const OPAQUE: &[u8] = b".wh..wh..opq";
pub(super) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What an entry's (normalized) path means before its type is looked at.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Special<'a> {
    /// An ordinary entry.
    None,
    /// `dir/.wh..wh..opq`: make the parent opaque.
    Opaque,
    /// `dir/.wh.NAME`: hide `NAME` of lower layers.
    Whiteout(&'a [u8]),
    /// aufs bookkeeping: skip.
    Ignore,
}

/// Classifies a normalized path by its whiteout naming.
pub(super) fn classify(path: &[u8]) -> Result<Special<'_>, &'static str> {
    let name = super::safe_path::split_last(path).1;
    if path.starts_with(META_PREFIX) && path != OPAQUE {
        return Ok(Special::Ignore);
    }
    if name == OPAQUE {
        return Ok(Special::Opaque);
    }
    if name.starts_with(META_PREFIX) {
        return Ok(Special::Ignore);
    }
    match name.strip_prefix(PREFIX) {
        None => Ok(Special::None),
        Some(b"") | Some(b".") | Some(b"..") => {
            Err("whiteout names no file (\".wh.\" must be followed by a file name)")
        }
        Some(target) => Ok(Special::Whiteout(target)),
    }
}

/// Creates the overlayfs whiteout for `name` in `parent`: a character device 0:0. Whatever is at
/// `name` must have been removed already.
pub(super) fn make_whiteout<Fd: AsFd>(parent: Fd, name: &[u8]) -> io::Result<()> {
    rfs::mknodat(
        parent,
        name,
        FileType::CharacterDevice,
        Mode::empty(),
        rfs::makedev(0, 0),
    )?;
    Ok(())
}

/// Marks the directory `dir` (an `O_PATH` fd) opaque for overlayfs.
pub(super) fn make_opaque<Fd: AsFd>(dir: Fd) -> io::Result<()> {
    // fsetxattr needs a real open file, not an O_PATH one: reopen "." relative to it.
    let fd = rfs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rfs::fsetxattr(&fd, OPAQUE_XATTR, b"y", XattrFlags::empty())?;
    Ok(())
}

/// Whether an xattr from the archive may be set. overlayfs' own attributes are refused: a layer
/// that carried `trusted.overlay.redirect`, `.metacopy`, `.origin` or `.upper` could make
/// overlayfs look up files in other layers or trust stale copy-up state. Opaqueness is expressed
/// with `.wh..wh..opq`, which we convert ourselves.
pub(super) fn xattr_allowed(name: &[u8]) -> bool {
    !(name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_whiteouts() {
        assert_eq!(classify(b"etc/passwd"), Ok(Special::None));
        assert_eq!(
            classify(b"etc/.wh.passwd"),
            Ok(Special::Whiteout(b"passwd"))
        );
        assert_eq!(classify(b".wh.etc"), Ok(Special::Whiteout(b"etc")));
        assert_eq!(classify(b"var/.wh..wh..opq"), Ok(Special::Opaque));
        assert_eq!(classify(b".wh..wh..opq"), Ok(Special::Opaque));
        assert_eq!(classify(b".wh..wh.plnk/123.456"), Ok(Special::Ignore));
        assert_eq!(classify(b"a/.wh..wh.aufs"), Ok(Special::Ignore));
        assert_eq!(classify(b".wh..wh.plnk/.wh..wh..opq"), Ok(Special::Ignore));
        assert_eq!(classify(b"a/.wh.x/y"), Ok(Special::None));
        assert!(classify(b"a/.wh.").is_err());
        assert!(classify(b"a/.wh..").is_err());
        assert!(classify(b"a/.wh...").is_err());
        assert_eq!(classify(b"a/.wh....").unwrap(), Special::Whiteout(b"..."));
    }

    #[test]
    fn refuses_overlay_xattrs() {
        assert!(xattr_allowed(b"security.capability"));
        assert!(xattr_allowed(b"user.mime_type"));
        assert!(!xattr_allowed(b"trusted.overlay.redirect"));
        assert!(!xattr_allowed(b"user.overlay.origin"));
    }
}
