//! The content-addressed image store.
//!
//! Layout under the persistent root:
//!
//! ```text
//! store.lock                  flock held while image records, tags or layers change
//! tmp/<pid>-<rand>/           staging for one operation; a dead process's staging is swept at open
//! blobs/sha256/<hex>          manifests and configs, verified against their digest
//! layers/<hex>/diff/          one unpacked layer, keyed by its diff id: stored once, however many
//!                             images share it
//! layers/<hex>/layer.json     its size, compressed digest and short link id
//! layers/l/<link>             short symlink to ../<hex>/diff, so overlay mounts of deep images fit
//!                             in one page of mount options
//! images/<hex>.json           an image record, keyed by the config digest (the image id)
//! tags.json                   full `registry/repo:tag` → image id
//! containers/<id>/image-id    written by the runtime: which image a container was made from
//! ```
//!
//! Every step that publishes something is a rename of a complete, verified object, and an image
//! record is written only after all of its blobs and layers exist, so a load or pull killed at any
//! point leaves no half image listed; the next attempt finds the finished layers and goes on.

use super::digest::{Digest, InvalidDigest};
use super::manifest::ManifestError;
use super::reference::{InvalidReference, Reference};
use super::unpack::{self, UnpackError, UnpackOutcome};
use crate::fsutil::{self, FileLock};

mod images;
mod ingest;

pub use ingest::Ingest;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("image store at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("no such image: {0} (see `berth images`, or `berth pull` / `berth image load` it)")]
    NoSuchImage(String),
    #[error("image reference {0:?} matches more than one image id: give more digits")]
    AmbiguousImage(String),
    #[error("blob {expected} failed verification: its content hashes to {actual}; the source is corrupt or was tampered with, nothing was stored")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("layer {expected} failed verification: its uncompressed content hashes to {actual}; the layer is corrupt, nothing was stored")]
    DiffIdMismatch { expected: Digest, actual: Digest },
    #[error(
        "blob {digest} is {actual} bytes but its descriptor says {expected}: the source is corrupt"
    )]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("layer {layer}: {source}")]
    Unpack { layer: String, source: UnpackError },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Reference(#[from] InvalidReference),
    #[error(transparent)]
    Digest(#[from] InvalidDigest),
    #[error("layer {0} is missing from the store: load or pull the image again")]
    MissingLayer(Digest),
    #[error("image {image} is in use by container(s) {containers}: remove them first, or use -f to untag it anyway")]
    InUse { image: String, containers: String },
    #[error(
        "image {image} is referenced by several tags ({tags}): remove them by name, or use -f"
    )]
    MultipleTags { image: String, tags: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attaches the path to an io::Error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// One layer of an image, bottom-most first in [`ImageRecord::layers`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRef {
    pub diff_id: Digest,
    /// Digest of the blob as distributed (compressed), when known.
    pub blob: Option<Digest>,
    pub media_type: String,
}

/// What the store knows about one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image id: digest of its config blob.
    pub id: Digest,
    /// Digest of the manifest it was loaded or pulled with (stored as a blob).
    pub manifest: Option<Digest>,
    /// `registry/repo@sha256:…` names the manifest is known under (docker's RepoDigests).
    #[serde(default)]
    pub repo_digests: Vec<String>,
    pub layers: Vec<LayerRef>,
    pub architecture: String,
    pub os: String,
    /// When the image was built (from its config).
    pub created: Option<String>,
    /// When the image entered this store (RFC 3339).
    pub added: String,
}

/// Metadata kept next to an unpacked layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerInfo {
    pub diff_id: Digest,
    /// Bytes of file content in the layer.
    pub size: u64,
    pub link: String,
}

/// A listed image with its tags.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    pub record: ImageRecord,
    /// Full `registry/repo:tag` names pointing at it.
    pub tags: Vec<String>,
    /// Sum of its layers' content sizes.
    pub size: u64,
}

/// What `rmi` and `prune` did, in docker's words.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub enum Removal {
    Untagged(String),
    Deleted(Digest),
}

/// A staging directory for one operation, removed when dropped.
pub struct Staging {
    path: PathBuf,
}

impl Staging {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fsutil::remove_dir_all_if_exists(&self.path);
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

type Tags = BTreeMap<String, Digest>;

impl Store {
    /// Opens (creating if needed) the store under `root`, sweeping staging left by dead processes.
    pub fn open(root: &Path) -> Result<Store> {
        let store = Store {
            root: root.to_path_buf(),
        };
        for dir in [
            store.tmp_dir(),
            store.blobs_dir(),
            store.layers_dir().join("l"),
            store.images_dir(),
        ] {
            fs::create_dir_all(&dir).at(&dir)?;
        }
        store.sweep_staging();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }
    /// The base directory that short layer links (`l/<link>`) are relative to.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }
    fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }
    fn tags_path(&self) -> PathBuf {
        self.root.join("tags.json")
    }
    /// Where the runtime keeps containers; the store only reads their `image-id` files.
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Takes the store's exclusive lock.
    pub fn lock(&self) -> Result<FileLock> {
        let path = self.root.join("store.lock");
        FileLock::exclusive(&path).at(&path)
    }

    /// Held (shared) by every load and pull from its first layer to its commit, so that garbage
    /// collection never removes a layer that is unpacked but not yet recorded in an image.
    pub fn ingest_guard(&self) -> Result<FileLock> {
        let path = self.root.join("ingest.lock");
        FileLock::shared(&path).at(&path)
    }

    /// A fresh staging directory on the store's filesystem (so results can be renamed in).
    pub fn staging(&self) -> Result<Staging> {
        let path = self.tmp_dir().join(format!(
            "{}-{}",
            std::process::id(),
            fsutil::random_suffix()
        ));
        fs::create_dir(&path).at(&path)?;
        Ok(Staging { path })
    }

    /// Removes staging directories whose owning process is gone (a load or pull that was killed).
    fn sweep_staging(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<i32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let _ = fsutil::remove_dir_all_if_exists(&entry.path());
            }
        }
    }

    // ---- blobs -------------------------------------------------------------------------------

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Stores a small blob (manifest, config) after checking it against `expected`.
    pub fn put_blob(&self, expected: &Digest, data: &[u8]) -> Result<()> {
        let actual = Digest::of(data);
        if &actual != expected {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        if self.has_blob(expected) {
            return Ok(());
        }
        let path = self.blob_path(expected);
        fsutil::write_atomic(&path, data).at(&path)
    }

    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let data = fs::read(&path).at(&path)?;
        // Blobs are verified on the way in; checking again on read catches disk corruption and
        // tampering for the price of hashing a few kilobytes.
        let actual = Digest::of(&data);
        if &actual != digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(data)
    }

    // ---- layers ------------------------------------------------------------------------------

    fn layer_root(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir().join(diff_id.hex())
    }

    /// The directory holding a layer's unpacked content.
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layer_root(diff_id).join("diff")
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_root(diff_id).join("layer.json").is_file()
    }

    pub fn layer_info(&self, diff_id: &Digest) -> Result<LayerInfo> {
        let path = self.layer_root(diff_id).join("layer.json");
        read_json(&path, || StoreError::MissingLayer(diff_id.clone()))
    }

    /// The layer's short link, relative to [`Store::layers_dir`] (`l/<link>`); recreates the
    /// symlink if a crash lost it between the layer's rename and the link's creation.
    pub fn layer_link(&self, diff_id: &Digest) -> Result<String> {
        let info = self.layer_info(diff_id)?;
        let link = self.layers_dir().join("l").join(&info.link);
        if fs::symlink_metadata(&link).is_err() {
            let target = Path::new("..").join(diff_id.hex()).join("diff");
            std::os::unix::fs::symlink(&target, &link).at(&link)?;
        }
        Ok(format!("l/{}", info.link))
    }

    /// Unpacks a layer blob into the store unless a layer with `diff_id` is already there.
    /// `expected_blob` (with its size) is checked when given; the diff id is always checked.
    /// On any failure nothing of the layer remains. Callers hold [`Store::ingest_guard`].
    pub fn add_layer<R: Read>(
        &self,
        input: R,
        diff_id: &Digest,
        expected_blob: Option<(&Digest, u64)>,
    ) -> Result<LayerInfo> {
        if self.has_layer(diff_id) {
            return self.layer_info(diff_id);
        }
        let (staging, outcome) = self.unpack_to_staging(input, &diff_id.to_string())?;
        if let Some((blob, size)) = expected_blob {
            if &outcome.blob_digest != blob {
                return Err(StoreError::DigestMismatch {
                    expected: blob.clone(),
                    actual: outcome.blob_digest,
                });
            }
            if outcome.blob_size != size {
                return Err(StoreError::SizeMismatch {
                    digest: blob.clone(),
                    expected: size,
                    actual: outcome.blob_size,
                });
            }
        }
        if &outcome.diff_id != diff_id {
            return Err(StoreError::DiffIdMismatch {
                expected: diff_id.clone(),
                actual: outcome.diff_id,
            });
        }
        self.publish_layer(staging, diff_id, outcome.size)
            .map(|(info, _)| info)
    }

    /// Unpacks a layer whose digests are not known in advance (`image import`), and returns
    /// what it hashed to along with the stored layer.
    pub fn add_layer_unverified<R: Read>(&self, input: R) -> Result<(LayerInfo, UnpackOutcome)> {
        let (staging, outcome) = self.unpack_to_staging(input, "being imported")?;
        if self.has_layer(&outcome.diff_id) {
            return Ok((self.layer_info(&outcome.diff_id)?, outcome));
        }
        let (info, _) = self.publish_layer(staging, &outcome.diff_id, outcome.size)?;
        Ok((info, outcome))
    }

    fn unpack_to_staging<R: Read>(
        &self,
        input: R,
        layer: &str,
    ) -> Result<(Staging, UnpackOutcome)> {
        let staging = self.staging()?;
        let content = staging.path().join("diff");
        fs::create_dir(&content).at(&content)?;
        let outcome =
            unpack::unpack_layer(input, &content).map_err(|source| StoreError::Unpack {
                layer: layer.to_string(),
                source,
            })?;
        Ok((staging, outcome))
    }

    /// Moves a verified, unpacked layer from staging into place and links it. The flag says
    /// whether this call published it (false: a concurrent ingest got there first).
    fn publish_layer(
        &self,
        staging: Staging,
        diff_id: &Digest,
        size: u64,
    ) -> Result<(LayerInfo, bool)> {
        let info = LayerInfo {
            diff_id: diff_id.clone(),
            size,
            link: new_link_id(),
        };
        let meta = staging.path().join("layer.json");
        fsutil::write_json_atomic(&meta, &info).at(&meta)?;
        let dest = self.layer_root(diff_id);
        match fs::rename(staging.path(), &dest) {
            Ok(()) => {}
            // Another load or pull finished the same layer first: theirs is as good as ours.
            Err(e) if dest.join("layer.json").is_file() => {
                tracing::debug!(
                    "layer {diff_id} appeared concurrently ({e}); using the existing one"
                );
                return Ok((self.layer_info(diff_id)?, false));
            }
            Err(e) => {
                return Err(StoreError::Io {
                    path: dest,
                    source: e,
                })
            }
        }
        self.layer_link(diff_id)?;
        Ok((info, true))
    }

    fn remove_layer(&self, diff_id: &Digest) -> Result<()> {
        if let Ok(info) = self.layer_info(diff_id) {
            let _ = fs::remove_file(self.layers_dir().join("l").join(&info.link));
        }
        let dir = self.layer_root(diff_id);
        // Unpublish first (one rename), so a crash mid-delete leaves no half layer listed.
        let doomed = self.tmp_dir().join(format!(
            "{}-rm-{}",
            std::process::id(),
            fsutil::random_suffix()
        ));
        match fs::rename(&dir, &doomed) {
            Ok(()) => fsutil::remove_dir_all_if_exists(&doomed).at(&doomed),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io {
                path: dir,
                source: e,
            }),
        }
    }

    /// Directories of an image's layers, bottom-most first.
    pub fn layer_dirs(&self, image: &ImageRecord) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .map(|l| self.layer_dir(&l.diff_id))
            .collect()
    }

    /// Short links of an image's layers relative to [`Store::layers_dir`], TOP-most first (the
    /// order overlayfs takes `lowerdir` in).
    pub fn overlay_lowers(&self, image: &ImageRecord) -> Result<Vec<String>> {
        image
            .layers
            .iter()
            .rev()
            .map(|l| self.layer_link(&l.diff_id))
            .collect()
    }
}

/// Reads a JSON record of the store; a missing file becomes the error `missing` makes.
fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    missing: impl FnOnce() -> StoreError,
) -> Result<T> {
    let data = match fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source: e,
            })
        }
    };
    serde_json::from_slice(&data).map_err(|e| StoreError::Io {
        path: path.to_path_buf(),
        source: io::Error::other(format!(
            "corrupt record ({e}); remove it or restore it from a backup"
        )),
    })
}

/// `docker.io/library/busybox:latest` → `busybox:latest`, for messages and tables.
pub fn display_tag(full: &str) -> String {
    match Reference::parse(full) {
        Ok(r) => format!("{}:{}", r.familiar_name(), r.tag.unwrap_or_default()),
        Err(_) => full.to_string(),
    }
}

/// 10 random lower-case alphanumerics: short enough that 500 layers fit in one page of overlay
/// mount options (`l/` + 10 + `:` = 13 bytes a layer).
fn new_link_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..10)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
