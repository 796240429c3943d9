//! Image records, tags, name resolution, removal and garbage collection.

use super::{
    display_tag, read_json, ImageRecord, ImageSummary, IoContext, Removal, Result, Store,
    StoreError, Tags,
};
use crate::fsutil::{self, FileLock};
use crate::image::digest::Digest;
use crate::image::manifest::ConfigSummary;
use crate::image::reference::{InvalidReference, Reference};
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::PathBuf;

impl Store {
    fn image_path(&self, id: &Digest) -> PathBuf {
        self.images_dir().join(format!("{}.json", id.hex()))
    }

    pub fn image(&self, id: &Digest) -> Result<ImageRecord> {
        read_json(&self.image_path(id), || {
            StoreError::NoSuchImage(id.to_string())
        })
    }

    pub(super) fn image_ids(&self) -> Result<Vec<Digest>> {
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
            Ok(data) => serde_json::from_slice(&data).map_err(|e| StoreError::Io {
                path,
                source: io::Error::other(e),
            }),
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
        ConfigSummary::parse(config)?.check_layer_count(record.layers.len())?;
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
            let size = record
                .layers
                .iter()
                .filter_map(|l| self.layer_info(&l.diff_id).ok())
                .map(|i| i.size)
                .sum();
            let tags = tags
                .iter()
                .filter(|(_, v)| **v == id)
                .map(|(k, _)| k.clone())
                .collect();
            out.push(ImageSummary { record, tags, size });
        }
        out.sort_by(|a, b| {
            b.record
                .added
                .cmp(&a.record.added)
                .then_with(|| a.record.id.cmp(&b.record.id))
        });
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
        let hexlike =
            !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if hexlike {
            let matches: Vec<Digest> = self
                .image_ids()?
                .into_iter()
                .filter(|d| d.hex().starts_with(name))
                .collect();
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
            return Err(InvalidReference {
                input: target.to_string(),
                reason: "a tag target cannot carry a digest".into(),
            }
            .into());
        };
        let _lock = self.lock()?;
        let id = self
            .resolve_id(source)?
            .ok_or_else(|| StoreError::NoSuchImage(source.to_string()))?;
        let mut tags = self.read_tags()?;
        tags.insert(key, id);
        self.write_tags(&tags)
    }

    /// Ids of containers (under [`Store::containers_dir`]) made from `image`.
    pub fn containers_using(&self, image: &Digest) -> Vec<String> {
        let mut users = Vec::new();
        let Ok(entries) = fs::read_dir(self.containers_dir()) else {
            return users;
        };
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
        let id = self
            .resolve_id(name)?
            .ok_or_else(|| StoreError::NoSuchImage(name.to_string()))?;
        let mut tags = self.read_tags()?;
        let image_tags: Vec<String> = tags
            .iter()
            .filter(|(_, v)| **v == id)
            .map(|(k, _)| k.clone())
            .collect();
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
                tags: image_tags
                    .iter()
                    .map(|t| display_tag(t))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if !users.is_empty() {
            if !force {
                return Err(StoreError::InUse {
                    image: name.to_string(),
                    containers: users.join(", "),
                });
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
            let image_tags: Vec<String> = tags
                .iter()
                .filter(|(_, v)| **v == id)
                .map(|(k, _)| k.clone())
                .collect();
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
                Err(_) => tracing::warn!(
                    "ignoring unexpected entry {} in the layer store",
                    entry.path().display()
                ),
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
