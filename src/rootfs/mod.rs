//! Container root filesystems: an overlayfs mount of an image's shared, read-only layers under a
//! per-container writable layer.
//!
//! ```text
//! <root>/layers/<diffid-hex>/diff        one unpacked image layer (the store owns it)
//! <root>/layers/l/<LINKID>               short symlink → ../<diffid-hex>/diff
//! <root>/containers/<id>/fs/             this module's directory for one container:
//!                           lower.json   the lower layers, so a later process can mount it
//!                           upper/       the container's writes (and whiteouts of deletes)
//!                           work/        overlayfs' scratch dir (same filesystem as upper/)
//!                           merged/      the default mount point of the assembled root
//! ```
//!
//! Lower layers are named by a base directory plus *relative short paths* ([`LowerLayers`]):
//! the classic `mount(2)` call passes all options in one page (4096 bytes), and 128+ absolute
//! paths under `/var/lib/berth/layers/<64 hex>/diff` do not fit, while `l/<10 chars>` do (about
//! 300 of them). See [`overlay`] for the two ways a mount is made and the options chosen.
//!
//! The layer directories are shared by every container of an image and are never written:
//! overlayfs copies a file up into `upper/` before the first change, records deletes as
//! whiteouts (0:0 character devices) and replaced directories as opaque ones.
//!
//! Concurrency: one [`ContainerRootfs`] is driven by one caller at a time (the container
//! lifecycle serializes create/mount/remove of a container); different containers are
//! independent. Keep one live mount per container: overlayfs does not support two mounts that
//! share an upper dir.

mod mounts;
pub mod overlay;

pub(crate) use mounts::remove_tree;
pub use overlay::{
    mount_overlay, mount_overlay_as, mount_overlay_with, Durability, MountApi, OVERLAY_MAX_LOWERS,
};

use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Lower layers for an overlay mount: paths relative to `base`, TOP-most first (overlayfs
/// order), e.g. `base = <root>/layers`, `rel = ["l/k3j9x0a2b1", …]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LowerLayers {
    pub base: PathBuf,
    pub rel: Vec<String>,
}

impl LowerLayers {
    pub fn new(base: impl Into<PathBuf>, rel: Vec<String>) -> LowerLayers {
        LowerLayers {
            base: base.into(),
            rel,
        }
    }

    /// The absolute layer directories, TOP-most first.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.rel.iter().map(|r| self.base.join(r)).collect()
    }

    /// Checks the shape (1..=500 layers, absolute base, plain relative paths inside it) and that
    /// every layer directory exists. Touches nothing.
    pub fn validate(&self) -> Result<(), RootfsError> {
        self.validate_shape()?;
        for dir in self.dirs() {
            check_dir(&dir, DirRole::Layer)?;
        }
        Ok(())
    }

    pub(crate) fn validate_shape(&self) -> Result<(), RootfsError> {
        if self.rel.is_empty() {
            return Err(RootfsError::NoLayers);
        }
        if self.rel.len() > OVERLAY_MAX_LOWERS {
            return Err(RootfsError::TooManyLayers {
                count: self.rel.len(),
                max: OVERLAY_MAX_LOWERS,
            });
        }
        if !self.base.is_absolute() {
            return Err(RootfsError::InvalidBase {
                base: self.base.clone(),
            });
        }
        for rel in &self.rel {
            let reason = if rel.is_empty() {
                Some("it is empty")
            } else if rel.contains('\0') {
                Some("it contains a NUL byte")
            } else if Path::new(rel).is_absolute() {
                Some("it is absolute; give it relative to the base directory")
            } else if Path::new(rel)
                .components()
                .any(|c| matches!(c, Component::ParentDir))
            {
                Some("it contains `..`; layer paths must stay inside the base directory")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(RootfsError::InvalidLayerPath {
                    rel: rel.clone(),
                    reason,
                });
            }
        }
        Ok(())
    }
}

/// Errors of this module. Messages are lower-case, name the path and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("overlayfs is not available: load the overlay module (modprobe overlay)")]
    OverlayUnavailable,
    #[error("the image has no layers: an overlay root needs at least one lower layer")]
    NoLayers,
    #[error("the image has {count} layers but overlayfs stacks at most {max}: squash the image")]
    TooManyLayers { count: usize, max: usize },
    #[error("layer base directory {} is not absolute: give an absolute path", .base.display())]
    InvalidBase { base: PathBuf },
    #[error("invalid layer path {rel:?}: {reason}")]
    InvalidLayerPath { rel: String, reason: &'static str },
    #[error("layer directory {} is missing: the image store is incomplete; pull or load the image again", .path.display())]
    LayerMissing { path: PathBuf },
    #[error("{role} {} is missing: create it first", .path.display())]
    DirMissing { role: &'static str, path: PathBuf },
    #[error("{role} {} is not a directory", .path.display())]
    NotADirectory { role: &'static str, path: PathBuf },
    #[error("overlay upper dir {} and work dir {} must be siblings on one mount, but {why}: put both under one directory", .upper.display(), .work.display())]
    UpperWorkApart {
        upper: PathBuf,
        work: PathBuf,
        why: &'static str,
    },
    #[error(
        "overlay mount options for {} take {len} bytes but mount(2) accepts at most {max}: \
         {layers} layers are too many for this kernel's option page (Linux 6.13+ passes layers \
         by file descriptor without this limit); squash the image or shorten the paths",
        .target.display()
    )]
    OptionsTooLong {
        target: PathBuf,
        len: usize,
        max: usize,
        layers: usize,
    },
    #[error("the kernel does not support overlay layers passed by file descriptor (Linux 6.13+){detail}: use MountApi::Legacy or MountApi::Auto")]
    LayerFdsUnsupported { detail: String },
    #[error("container root {} already exists: remove it first", .dir.display())]
    AlreadyExists { dir: PathBuf },
    #[error("container root {} is not prepared (no {}): create it first", .dir.display(), .record.display())]
    NotPrepared { dir: PathBuf, record: PathBuf },
    #[error("container root record {} is corrupt: {source}; remove the container", .path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("an overlay is already mounted at {}: unmount it first", .target.display())]
    AlreadyMounted { target: PathBuf },
    #[error("cannot mount overlay at {}: {source}{detail}", .target.display())]
    Mount {
        target: PathBuf,
        source: io::Error,
        detail: String,
    },
    #[error("cannot unmount {}: {source}{detail}", .target.display())]
    Unmount {
        target: PathBuf,
        source: io::Error,
        detail: String,
    },
    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl RootfsError {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> RootfsError {
        RootfsError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) enum DirRole {
    Layer,
    Upper,
    Work,
    Target,
}

impl DirRole {
    fn name(self) -> &'static str {
        match self {
            DirRole::Layer => "layer directory",
            DirRole::Upper => "overlay upper directory",
            DirRole::Work => "overlay work directory",
            DirRole::Target => "mount target",
        }
    }
}

/// `path` exists (following symlinks) and is a directory.
pub(crate) fn check_dir(path: &Path, role: DirRole) -> Result<(), RootfsError> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(RootfsError::NotADirectory {
            role: role.name(),
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(match role {
            DirRole::Layer => RootfsError::LayerMissing {
                path: path.to_path_buf(),
            },
            _ => RootfsError::DirMissing {
                role: role.name(),
                path: path.to_path_buf(),
            },
        }),
        Err(e) => Err(RootfsError::io("cannot inspect", path, e)),
    }
}

const FS_DIR: &str = "fs";
const RECORD: &str = "lower.json";
const RECORD_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Record {
    version: u32,
    lowers: LowerLayers,
    /// [`Durability::Volatile`]; absent (durable) in records from before it existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    volatile: bool,
}

/// One container's root filesystem: `<container_dir>/fs/{upper,work,merged}` plus the lower
/// layers it stacks on.
#[derive(Debug)]
pub struct ContainerRootfs {
    dir: PathBuf,
    upper: PathBuf,
    work: PathBuf,
    merged: PathBuf,
    lowers: LowerLayers,
    durability: Durability,
}

impl ContainerRootfs {
    /// Prepares `<container_dir>/fs` (creating `container_dir` if needed): empty `upper/`,
    /// `work/` and `merged/`, and `lower.json` recording `lowers` so a later process can
    /// [`open`](Self::open) and mount it. The layers are checked first; on any error nothing
    /// is left behind. The tree is built under a temporary name and renamed into place, so a
    /// crash never leaves a half-made `fs/`. The rename is not fsynced here: the caller's
    /// durable write into `container_dir` (the container record, fsynced with its directory)
    /// makes it durable, and a `--rm` container, whose record is not durable either, skips the
    /// wait on the disk.
    pub fn create(container_dir: &Path, lowers: LowerLayers) -> Result<Self, RootfsError> {
        Self::create_as(container_dir, lowers, Durability::Durable)
    }

    /// [`create`](Self::create) with a choice of [`Durability`], recorded so that every later
    /// mount of this root makes the same choice.
    pub fn create_as(
        container_dir: &Path,
        lowers: LowerLayers,
        durability: Durability,
    ) -> Result<Self, RootfsError> {
        lowers.validate()?;
        let existed = container_dir.exists();
        fs::create_dir_all(container_dir)
            .map_err(|e| RootfsError::io("cannot create container directory", container_dir, e))?;
        let result = Self::create_in(container_dir, lowers, durability);
        if result.is_err() && !existed {
            // Only an empty directory we made ourselves; never anything else.
            let _ = fs::remove_dir(container_dir);
        }
        result
    }

    fn create_in(
        container_dir: &Path,
        lowers: LowerLayers,
        durability: Durability,
    ) -> Result<Self, RootfsError> {
        let container_dir = fs::canonicalize(container_dir)
            .map_err(|e| RootfsError::io("cannot resolve", container_dir, e))?;
        let dir = container_dir.join(FS_DIR);
        if fs::symlink_metadata(&dir).is_ok() {
            return Err(RootfsError::AlreadyExists { dir });
        }
        let tmp = container_dir.join(format!(".{FS_DIR}.tmp-{}", fsutil::random_suffix()));
        let built = (|| {
            // fs/ is 0700: host users must not reach into a container's files (setuid
            // binaries, secrets). upper/ is the root directory of the container as the
            // container sees it (overlayfs takes the root's mode from upper), hence 0755.
            make_dir(&tmp, 0o700)?;
            make_dir(&tmp.join("upper"), 0o755)?;
            make_dir(&tmp.join("work"), 0o700)?;
            make_dir(&tmp.join("merged"), 0o755)?;
            let record = Record {
                version: RECORD_VERSION,
                lowers: lowers.clone(),
                volatile: durability == Durability::Volatile,
            };
            let path = tmp.join(RECORD);
            // Inside a directory that is renamed into place whole: no fsync needed for the
            // reader's sake, and the container record above it is the durable publication.
            fsutil::write_json_atomic_volatile(&path, &record)
                .map_err(|e| RootfsError::io("cannot write", &path, e))?;
            fs::rename(&tmp, &dir).map_err(|e| match e.raw_os_error() {
                Some(libc::EEXIST) | Some(libc::ENOTEMPTY) => {
                    RootfsError::AlreadyExists { dir: dir.clone() }
                }
                _ => RootfsError::io("cannot move container root into place at", &dir, e),
            })
        })();
        if let Err(e) = built {
            let _ = mounts::remove_tree(&tmp);
            return Err(e);
        }
        Ok(Self::at(dir, lowers, durability))
    }

    /// Opens a root made by [`create`](Self::create), possibly in another process.
    pub fn open(container_dir: &Path) -> Result<Self, RootfsError> {
        let not_prepared = || RootfsError::NotPrepared {
            dir: container_dir.join(FS_DIR),
            record: container_dir.join(FS_DIR).join(RECORD),
        };
        let container_dir = match fs::canonicalize(container_dir) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_prepared()),
            Err(e) => return Err(RootfsError::io("cannot resolve", container_dir, e)),
        };
        let dir = container_dir.join(FS_DIR);
        let path = dir.join(RECORD);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_prepared()),
            Err(e) => return Err(RootfsError::io("cannot read", &path, e)),
        };
        let record: Record =
            serde_json::from_slice(&data).map_err(|source| RootfsError::Corrupt {
                path: path.clone(),
                source,
            })?;
        if record.version != RECORD_VERSION {
            let msg = format!("unknown version {}", record.version);
            return Err(RootfsError::Corrupt {
                path,
                source: serde::de::Error::custom(msg),
            });
        }
        let durability = if record.volatile {
            Durability::Volatile
        } else {
            Durability::Durable
        };
        Ok(Self::at(dir, record.lowers, durability))
    }

    fn at(dir: PathBuf, lowers: LowerLayers, durability: Durability) -> Self {
        ContainerRootfs {
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            dir,
            lowers,
            durability,
        }
    }

    /// `<container_dir>/fs` (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn upper(&self) -> &Path {
        &self.upper
    }
    pub fn work(&self) -> &Path {
        &self.work
    }
    pub fn merged(&self) -> &Path {
        &self.merged
    }
    pub fn lowers(&self) -> &LowerLayers {
        &self.lowers
    }

    /// Mounts the overlay at `merged/` (in the calling thread's mount namespace).
    pub fn mount(&self) -> Result<(), RootfsError> {
        self.mount_at_with(&self.merged, MountApi::Auto)
    }

    /// Mounts the overlay at `target`: the runtime mounts inside a new mount namespace, at a
    /// place of its choosing.
    pub fn mount_at(&self, target: &Path) -> Result<(), RootfsError> {
        self.mount_at_with(target, MountApi::Auto)
    }

    /// [`mount_at`](Self::mount_at) with an explicit choice of mount API.
    pub fn mount_at_with(&self, target: &Path, api: MountApi) -> Result<(), RootfsError> {
        if mounts::is_mount_point(target) {
            return Err(RootfsError::AlreadyMounted {
                target: target.to_path_buf(),
            });
        }
        let (lowers, upper, work) = (&self.lowers, &self.upper, &self.work);
        mount_overlay_as(api, self.durability, lowers, upper, work, target)
    }

    /// Whether something is mounted at `merged/` (in the calling thread's mount namespace).
    pub fn is_mounted(&self) -> bool {
        mounts::is_mount_point(&self.merged)
    }

    /// Unmounts `merged/`. Not mounted is fine (idempotent). A busy mount is detached lazily,
    /// as docker's overlay2 driver does: it vanishes from the tree now and is freed when its
    /// last user goes.
    pub fn unmount(&self) -> Result<(), RootfsError> {
        mounts::unmount_all_at(&self.merged)
    }

    /// Unmounts everything under `fs/` in the calling thread's mount namespace, then deletes
    /// `fs/` entirely, including overlayfs' root-owned mode-000 `work/work`. Deleting never
    /// starts while anything is still mounted below `fs/`, so a mount there (a volume, say)
    /// can never lose files through this call. The container directory itself is left to its
    /// owner.
    pub fn remove(self) -> Result<(), RootfsError> {
        self.release()?;
        mounts::remove_tree(&self.dir)
    }

    /// Unmounts everything under `fs/` and checks that nothing is mounted there any more, so
    /// that the caller may delete the tree later (see `container::trash`).
    pub fn release(&self) -> Result<(), RootfsError> {
        mounts::unmount_all_under(&self.dir)
    }
}

fn make_dir(path: &Path, mode: u32) -> Result<(), RootfsError> {
    fs::create_dir(path).map_err(|e| RootfsError::io("cannot create directory", path, e))?;
    // Explicitly, so the process umask cannot make the container's root unreadable.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| RootfsError::io("cannot set the mode of", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowers(rel: &[&str]) -> LowerLayers {
        LowerLayers::new("/base", rel.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn shape_is_checked() {
        assert!(matches!(
            lowers(&[]).validate_shape(),
            Err(RootfsError::NoLayers)
        ));
        assert!(lowers(&["l/abc", "l/def"]).validate_shape().is_ok());
        for bad in ["", "/abs", "l/../../etc", "a\0b"] {
            assert!(
                matches!(
                    lowers(&[bad]).validate_shape(),
                    Err(RootfsError::InvalidLayerPath { .. })
                ),
                "{bad:?}"
            );
        }
        let rel = LowerLayers::new("base", vec!["l/a".into()]);
        assert!(matches!(
            rel.validate_shape(),
            Err(RootfsError::InvalidBase { .. })
        ));
        let many: Vec<String> = (0..=OVERLAY_MAX_LOWERS).map(|i| format!("l/{i}")).collect();
        assert!(matches!(
            LowerLayers::new("/b", many).validate_shape(),
            Err(RootfsError::TooManyLayers {
                count: 501,
                max: 500
            })
        ));
    }

    #[test]
    fn messages_name_the_path() {
        let e = RootfsError::LayerMissing {
            path: "/x/l/abc".into(),
        };
        assert!(e.to_string().contains("/x/l/abc"));
        assert!(RootfsError::OverlayUnavailable
            .to_string()
            .contains("modprobe overlay"));
    }
}
