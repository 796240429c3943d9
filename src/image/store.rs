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
use super::manifest::{ConfigSummary, ManifestError};
use super::reference::{InvalidReference, Reference};
use super::unpack::{self, UnpackError, UnpackOutcome};
use crate::fsutil::{self, FileLock};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    #[error("blob {digest} is {actual} bytes but its descriptor says {expected}: the source is corrupt")]
    SizeMismatch { digest: Digest, expected: u64, actual: u64 },
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
    #[error("image {image} is referenced by several tags ({tags}): remove them by name, or use -f")]
    MultipleTags { image: String, tags: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attaches the path to an io::Error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| StoreError::Io { path: path.to_path_buf(), source })
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
        let store = Store { root: root.to_path_buf() };
        for dir in [store.tmp_dir(), store.blobs_dir(), store.layers_dir().join("l"), store.images_dir()] {
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
        let path = self.tmp_dir().join(format!("{}-{}", std::process::id(), fsutil::random_suffix()));
        fs::create_dir(&path).at(&path)?;
        Ok(Staging { path })
    }

    /// Removes staging directories whose owning process is gone (a load or pull that was killed).
    fn sweep_staging(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.split('-').next()).and_then(|p| p.parse::<i32>().ok());
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
            return Err(StoreError::DigestMismatch { expected: expected.clone(), actual });
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
            return Err(StoreError::DigestMismatch { expected: digest.clone(), actual });
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
        let data = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingLayer(diff_id.clone()),
            _ => StoreError::Io { path: path.clone(), source: e },
        })?;
        serde_json::from_slice(&data).map_err(|e| StoreError::Io { path, source: io::Error::other(e) })
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
                return Err(StoreError::DigestMismatch { expected: blob.clone(), actual: outcome.blob_digest });
            }
            if outcome.blob_size != size {
                return Err(StoreError::SizeMismatch { digest: blob.clone(), expected: size, actual: outcome.blob_size });
            }
        }
        if &outcome.diff_id != diff_id {
            return Err(StoreError::DiffIdMismatch { expected: diff_id.clone(), actual: outcome.diff_id });
        }
        self.publish_layer(staging, diff_id, outcome.size).map(|(info, _)| info)
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

    fn unpack_to_staging<R: Read>(&self, input: R, layer: &str) -> Result<(Staging, UnpackOutcome)> {
        let staging = self.staging()?;
        let content = staging.path().join("diff");
        fs::create_dir(&content).at(&content)?;
        let outcome = unpack::unpack_layer(input, &content)
            .map_err(|source| StoreError::Unpack { layer: layer.to_string(), source })?;
        Ok((staging, outcome))
    }

    /// Moves a verified, unpacked layer from staging into place and links it. The flag says
    /// whether this call published it (false: a concurrent ingest got there first).
    fn publish_layer(&self, staging: Staging, diff_id: &Digest, size: u64) -> Result<(LayerInfo, bool)> {
        let info = LayerInfo { diff_id: diff_id.clone(), size, link: new_link_id() };
        let meta = staging.path().join("layer.json");
        fsutil::write_json_atomic(&meta, &info).at(&meta)?;
        let dest = self.layer_root(diff_id);
        match fs::rename(staging.path(), &dest) {
            Ok(()) => {}
            // Another load or pull finished the same layer first: theirs is as good as ours.
            Err(e) if dest.join("layer.json").is_file() => {
                tracing::debug!("layer {diff_id} appeared concurrently ({e}); using the existing one");
                return Ok((self.layer_info(diff_id)?, false));
            }
            Err(e) => return Err(StoreError::Io { path: dest, source: e }),
        }
        self.layer_link(diff_id)?;
        Ok((info, true))
    }

    /// Starts a load, pull or import: layers it adds are removed again unless it commits.
    pub fn begin_ingest(&self) -> Result<Ingest> {
        Ok(Ingest {
            store: self.clone(),
            _guard: self.ingest_guard()?,
            added: Mutex::new(Vec::new()),
        })
    }

    /// Removes layers that a failed ingest published, unless an image record uses them by now.
    fn discard_layers(&self, layers: &[Digest]) -> Result<()> {
        let _lock = self.lock()?;
        let live = self.referenced_layers()?;
        for diff_id in layers.iter().filter(|d| !live.contains(d.hex())) {
            self.remove_layer(diff_id)?;
        }
        Ok(())
    }

    fn remove_layer(&self, diff_id: &Digest) -> Result<()> {
        if let Ok(info) = self.layer_info(diff_id) {
            let _ = fs::remove_file(self.layers_dir().join("l").join(&info.link));
        }
        let dir = self.layer_root(diff_id);
        // Unpublish first (one rename), so a crash mid-delete leaves no half layer listed.
        let doomed = self.tmp_dir().join(format!("{}-rm-{}", std::process::id(), fsutil::random_suffix()));
        match fs::rename(&dir, &doomed) {
            Ok(()) => fsutil::remove_dir_all_if_exists(&doomed).at(&doomed),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io { path: dir, source: e }),
        }
    }

    fn referenced_layers(&self) -> Result<BTreeSet<String>> {
        let mut live = BTreeSet::new();
        for id in self.image_ids()? {
            live.extend(self.image(&id)?.layers.iter().map(|l| l.diff_id.hex().to_string()));
        }
        Ok(live)
    }

    /// Directories of an image's layers, bottom-most first.
    pub fn layer_dirs(&self, image: &ImageRecord) -> Vec<PathBuf> {
        image.layers.iter().map(|l| self.layer_dir(&l.diff_id)).collect()
    }

    /// Short links of an image's layers relative to [`Store::layers_dir`], TOP-most first (the
    /// order overlayfs takes `lowerdir` in).
    pub fn overlay_lowers(&self, image: &ImageRecord) -> Result<Vec<String>> {
        image.layers.iter().rev().map(|l| self.layer_link(&l.diff_id)).collect()
    }

    // ---- images and tags ---------------------------------------------------------------------

    fn image_path(&self, id: &Digest) -> PathBuf {
        self.images_dir().join(format!("{}.json", id.hex()))
    }

    pub fn image(&self, id: &Digest) -> Result<ImageRecord> {
        let path = self.image_path(id);
        let data = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::NoSuchImage(id.to_string()),
            _ => StoreError::Io { path: path.clone(), source: e },
        })?;
        serde_json::from_slice(&data).map_err(|e| StoreError::Io { path, source: io::Error::other(e) })
    }

    fn image_ids(&self) -> Result<Vec<Digest>> {
        let dir = self.images_dir();
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            if let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                if let Ok(d) = Digest::from_hex(hex) {
                    ids.push(d);
                }
            }
        }
        Ok(ids)
    }

    fn read_tags(&self) -> Result<Tags> {
        let path = self.tags_path();
        match fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| StoreError::Io { path, source: io::Error::other(e) }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Tags::new()),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    fn write_tags(&self, tags: &Tags) -> Result<()> {
        let path = self.tags_path();
        fsutil::write_json_atomic(&path, tags).at(&path)
    }

    /// Records an image whose layers are already in the store, stores its config and manifest
    /// blobs, and points `tags` at it (moving a tag away from another image, as docker does).
    /// This is the single step that makes a loaded or pulled image visible.
    pub fn commit_image(
        &self,
        mut record: ImageRecord,
        config: &[u8],
        manifest: Option<&[u8]>,
        tags: &[Reference],
    ) -> Result<ImageRecord> {
        let summary = ConfigSummary::parse(config)?;
        if summary.rootfs.diff_ids.len() != record.layers.len() {
            return Err(ManifestError::LayerCountMismatch {
                layers: record.layers.len(),
                diff_ids: summary.rootfs.diff_ids.len(),
            }
            .into());
        }
        let _lock = self.lock()?;
        for layer in &record.layers {
            if !self.has_layer(&layer.diff_id) {
                return Err(StoreError::MissingLayer(layer.diff_id.clone()));
            }
        }
        self.put_blob(&record.id, config)?;
        if let (Some(digest), Some(bytes)) = (&record.manifest, manifest) {
            self.put_blob(digest, bytes)?;
        }
        // Merge with what an earlier load of the same image recorded.
        if let Ok(existing) = self.image(&record.id) {
            for d in existing.repo_digests {
                if !record.repo_digests.contains(&d) {
                    record.repo_digests.push(d);
                }
            }
            record.added = existing.added;
        }
        let path = self.image_path(&record.id);
        fsutil::write_json_atomic(&path, &record).at(&path)?;
        if !tags.is_empty() {
            let mut all = self.read_tags()?;
            for t in tags {
                if let Some(key) = t.tagged() {
                    all.insert(key, record.id.clone());
                }
            }
            self.write_tags(&all)?;
        }
        Ok(record)
    }

    /// All images with their tags, newest first.
    pub fn images(&self) -> Result<Vec<ImageSummary>> {
        let tags = self.read_tags()?;
        let mut out = Vec::new();
        for id in self.image_ids()? {
            let record = match self.image(&id) {
                Ok(r) => r,
                Err(StoreError::NoSuchImage(_)) => continue, // removed while we listed
                Err(e) => return Err(e),
            };
            let size = record.layers.iter().filter_map(|l| self.layer_info(&l.diff_id).ok()).map(|i| i.size).sum();
            let tags = tags.iter().filter(|(_, v)| **v == id).map(|(k, _)| k.clone()).collect();
            out.push(ImageSummary { record, tags, size });
        }
        out.sort_by(|a, b| b.record.added.cmp(&a.record.added).then_with(|| a.record.id.cmp(&b.record.id)));
        Ok(out)
    }

    /// Finds an image by tag (`busybox`, `busybox:1.36`, full names), by `name@digest`, by full
    /// id (`sha256:…`) or by a unique prefix of its id.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord> {
        if let Some(id) = self.resolve_id(name)? {
            return self.image(&id);
        }
        Err(StoreError::NoSuchImage(name.to_string()))
    }

    fn resolve_id(&self, name: &str) -> Result<Option<Digest>> {
        if let Ok(d) = name.parse::<Digest>() {
            return Ok(self.image_path(&d).is_file().then_some(d));
        }
        let hexlike = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if hexlike {
            let matches: Vec<Digest> = self.image_ids()?.into_iter().filter(|d| d.hex().starts_with(name)).collect();
            match matches.len() {
                1 => return Ok(matches.into_iter().next()),
                0 => {}
                // A name like `deadbeef` could also be a repository; prefer the unique id rule.
                _ => return Err(StoreError::AmbiguousImage(name.to_string())),
            }
        }
        let reference = match Reference::parse(name) {
            Ok(r) => r,
            Err(e) if hexlike => return Err(StoreError::NoSuchImage(format!("{name} ({e})"))),
            Err(e) => return Err(e.into()),
        };
        if let Some(digest) = &reference.digest {
            let wanted = format!("{}@{}", reference.name(), digest);
            for id in self.image_ids()? {
                if let Ok(rec) = self.image(&id) {
                    if rec.repo_digests.contains(&wanted) || rec.manifest.as_ref() == Some(digest) {
                        return Ok(Some(id));
                    }
                }
            }
            return Ok(None);
        }
        let key = reference.tagged().unwrap_or_default();
        Ok(self.read_tags()?.get(&key).cloned())
    }

    /// `berth tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let target = Reference::parse(target)?;
        let Some(key) = target.tagged().filter(|_| target.digest.is_none()) else {
            return Err(InvalidReference { input: target.to_string(), reason: "a tag target cannot carry a digest".into() }.into());
        };
        let _lock = self.lock()?;
        let id = self.resolve_id(source)?.ok_or_else(|| StoreError::NoSuchImage(source.to_string()))?;
        let mut tags = self.read_tags()?;
        tags.insert(key, id);
        self.write_tags(&tags)
    }

    /// Ids of containers (under [`Store::containers_dir`]) made from `image`.
    pub fn containers_using(&self, image: &Digest) -> Vec<String> {
        let mut users = Vec::new();
        let Ok(entries) = fs::read_dir(self.containers_dir()) else { return users };
        for entry in entries.flatten() {
            let file = entry.path().join("image-id");
            if let Ok(text) = fs::read_to_string(&file) {
                if text.trim() == image.to_string() {
                    users.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        users.sort();
        users
    }

    /// `berth rmi [-f] NAME|ID`, with docker's meaning: a tag name removes that tag, and the image
    /// too when it was the last tag; an id removes the image and all its tags (refused when several
    /// tags point at it, unless forced). An image that a container uses is refused unless forced,
    /// and then only untagged: its layers stay until the container is gone.
    pub fn remove_image(&self, name: &str, force: bool) -> Result<Vec<Removal>> {
        let _lock = self.lock()?;
        let id = self.resolve_id(name)?.ok_or_else(|| StoreError::NoSuchImage(name.to_string()))?;
        let mut tags = self.read_tags()?;
        let image_tags: Vec<String> = tags.iter().filter(|(_, v)| **v == id).map(|(k, _)| k.clone()).collect();
        let by_tag = Reference::parse(name)
            .ok()
            .and_then(|r| r.tagged())
            .filter(|k| image_tags.contains(k));
        let users = self.containers_using(&id);
        let mut done = Vec::new();

        if let Some(key) = &by_tag {
            if image_tags.len() > 1 || (!users.is_empty() && force) {
                tags.remove(key);
                self.write_tags(&tags)?;
                done.push(Removal::Untagged(display_tag(key)));
                return Ok(done);
            }
        } else if image_tags.len() > 1 && !force {
            return Err(StoreError::MultipleTags {
                image: id.short().to_string(),
                tags: image_tags.iter().map(|t| display_tag(t)).collect::<Vec<_>>().join(", "),
            });
        }
        if !users.is_empty() {
            if !force {
                return Err(StoreError::InUse { image: name.to_string(), containers: users.join(", ") });
            }
            for t in &image_tags {
                tags.remove(t);
                done.push(Removal::Untagged(display_tag(t)));
            }
            self.write_tags(&tags)?;
            return Ok(done);
        }
        for t in &image_tags {
            tags.remove(t);
            done.push(Removal::Untagged(display_tag(t)));
        }
        self.write_tags(&tags)?;
        let path = self.image_path(&id);
        fs::remove_file(&path).at(&path)?;
        done.push(Removal::Deleted(id));
        self.collect_garbage_locked()?;
        Ok(done)
    }

    /// `berth image prune [-a]`: removes images without tags (all unused images with `all`) that
    /// no container uses, then every layer and blob nothing references.
    pub fn prune(&self, all: bool) -> Result<Vec<Removal>> {
        let _lock = self.lock()?;
        let mut tags = self.read_tags()?;
        let mut done = Vec::new();
        for id in self.image_ids()? {
            if !self.containers_using(&id).is_empty() {
                continue;
            }
            let image_tags: Vec<String> = tags.iter().filter(|(_, v)| **v == id).map(|(k, _)| k.clone()).collect();
            if !image_tags.is_empty() && !all {
                continue;
            }
            for t in image_tags {
                tags.remove(&t);
                done.push(Removal::Untagged(display_tag(&t)));
            }
            let path = self.image_path(&id);
            fs::remove_file(&path).at(&path)?;
            done.push(Removal::Deleted(id));
        }
        self.write_tags(&tags)?;
        self.collect_garbage_locked()?;
        Ok(done)
    }

    /// Removes layers and blobs that no image record references. Caller holds the store lock.
    /// While a load or pull is in flight its layers are not yet referenced, so collection is
    /// skipped then (never waited for): the next `rmi` or `prune` finishes the job.
    fn collect_garbage_locked(&self) -> Result<()> {
        let path = self.root.join("ingest.lock");
        let Some(_no_ingest) = FileLock::try_exclusive(&path).at(&path)? else {
            tracing::info!("a load or pull is in progress; unused layers will be removed by a later rmi or prune");
            return Ok(());
        };
        let mut live_layers = BTreeSet::new();
        let mut live_blobs = BTreeSet::new();
        for id in self.image_ids()? {
            let rec = self.image(&id)?;
            live_blobs.insert(rec.id.hex().to_string());
            if let Some(m) = &rec.manifest {
                live_blobs.insert(m.hex().to_string());
            }
            live_layers.extend(rec.layers.iter().map(|l| l.diff_id.hex().to_string()));
        }
        let layers = self.layers_dir();
        for entry in fs::read_dir(&layers).at(&layers)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "l" || live_layers.contains(&name) {
                continue;
            }
            match Digest::from_hex(&name) {
                Ok(d) => self.remove_layer(&d)?,
                Err(_) => tracing::warn!("ignoring unexpected entry {} in the layer store", entry.path().display()),
            }
        }
        let blobs = self.blobs_dir();
        for entry in fs::read_dir(&blobs).at(&blobs)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !live_blobs.contains(&name) {
                fs::remove_file(entry.path()).at(&entry.path())?;
            }
        }
        Ok(())
    }
}

/// One load, pull or import in progress. It holds the ingest lock (so garbage collection leaves
/// its layers alone), records the layers it publishes, and when dropped removes those that no
/// committed image uses: a failed ingest leaves the store as it found it.
pub struct Ingest {
    store: Store,
    _guard: FileLock,
    added: Mutex<Vec<Digest>>,
}

impl Ingest {
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// [`Store::add_layer`], remembering a layer this ingest published. Safe to call from
    /// several threads at once.
    pub fn add_layer<R: Read>(&self, input: R, diff_id: &Digest, expected_blob: Option<(&Digest, u64)>) -> Result<LayerInfo> {
        let existed = self.store.has_layer(diff_id);
        let info = self.store.add_layer(input, diff_id, expected_blob)?;
        if !existed {
            self.remember(diff_id);
        }
        Ok(info)
    }

    /// [`Store::add_layer_unverified`], remembering a layer this ingest published.
    pub fn add_layer_unverified<R: Read>(&self, input: R) -> Result<(LayerInfo, UnpackOutcome)> {
        let (info, outcome) = self.store.add_layer_unverified(input)?;
        self.remember(&outcome.diff_id);
        Ok((info, outcome))
    }

    fn remember(&self, diff_id: &Digest) {
        if let Ok(mut added) = self.added.lock() {
            added.push(diff_id.clone());
        }
    }

    /// [`Store::commit_image`]: from here on the image's layers are referenced and stay.
    pub fn commit_image(&self, record: ImageRecord, config: &[u8], manifest: Option<&[u8]>, tags: &[Reference]) -> Result<ImageRecord> {
        self.store.commit_image(record, config, manifest, tags)
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        let added = self.added.get_mut().map(std::mem::take).unwrap_or_default();
        if !added.is_empty() {
            if let Err(e) = self.store.discard_layers(&added) {
                tracing::warn!("could not remove the layers of a failed load: {e}; `berth image prune` will");
            }
        }
    }
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
    (0..10).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}
