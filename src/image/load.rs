//! `berth image load`: OCI image layouts (a directory or a tar of one) and `docker save`
//! tarballs, with every tag they carry.
//!
//! A tarball is first spooled into a staging directory (only plain files and symlinks that stay
//! inside the archive are taken), then read like a directory. Every blob is checked against its
//! digest on the way into the store, and an image becomes visible only in the final commit.

use super::digest::Digest;
use super::manifest::{
    self, ConfigSummary, Descriptor, ManifestKind, Platform, MAX_METADATA_BYTES,
};
use super::reference::Reference;
use super::store::{ImageRecord, Ingest, IoContext, LayerRef, Result, Staging, Store, StoreError};
use serde::Deserialize;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// containerd's and docker's annotation holding the full image name.
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation holding a tag or, from some tools, a full reference.
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    /// Repository (optionally with tag) for images whose layout gives only a bare tag or none.
    pub name: Option<String>,
    /// Platform to take from multi-platform indexes (the host's by default).
    pub platform: Option<Platform>,
}

/// One image that a load stored.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: Digest,
    pub tags: Vec<Reference>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(path: &Path, reason: impl Into<String>) -> LoadError {
    LoadError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Loads every image found at `input` (a directory or a tar file) into `store`.
pub fn load(store: &Store, input: &Path, opts: &LoadOptions) -> Result<Vec<Loaded>, LoadError> {
    let meta = fs::metadata(input).map_err(|e| invalid(input, format!("cannot read it: {e}")))?;
    let ingest = store.begin_ingest()?;
    if meta.is_dir() {
        load_dir(&ingest, input, input, opts)
    } else {
        let staging = store.staging()?;
        spool_tar(input, &staging)?;
        load_dir(&ingest, staging.path(), input, opts)
    }
}

fn load_dir(
    ingest: &Ingest,
    dir: &Path,
    shown: &Path,
    opts: &LoadOptions,
) -> Result<Vec<Loaded>, LoadError> {
    if dir.join("index.json").is_file() {
        OciLayout {
            dir,
            shown,
            ingest,
            opts,
        }
        .load()
    } else if dir.join("manifest.json").is_file() {
        load_docker_save(ingest, dir, shown, opts)
    } else {
        Err(invalid(
            shown,
            "neither an OCI image layout (no index.json) nor a `docker save` archive (no manifest.json)",
        ))
    }
}

/// Extracts a tar's plain files into staging. Anything that is not a regular file, a directory
/// or a symlink resolving inside the archive is refused: an image archive has no business
/// carrying devices, and nothing may land outside the staging directory.
fn spool_tar(archive: &Path, staging: &Staging) -> Result<(), LoadError> {
    let file = File::open(archive).map_err(|e| invalid(archive, format!("cannot open it: {e}")))?;
    let mut tar = tar::Archive::new(io::BufReader::with_capacity(1 << 20, file));
    let mut links = Vec::new();
    let entries = tar
        .entries()
        .map_err(|e| invalid(archive, format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(archive, format!("corrupt tar archive: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| invalid(archive, format!("bad entry name: {e}")))?
            .into_owned();
        let Some(rel) = clean_relative(&raw) else {
            return Err(invalid(
                archive,
                format!("entry {} escapes the archive", raw.display()),
            ));
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let dest = staging.path().join(&rel);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs::create_dir_all(&dest).at(&dest)?;
        } else if kind.is_file() {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).at(parent)?;
            }
            let mut out = File::create(&dest).at(&dest)?;
            io::copy(&mut entry, &mut out)
                .map_err(|e| invalid(archive, format!("reading {}: {e}", rel.display())))?;
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target =
                entry.link_name().ok().flatten().ok_or_else(|| {
                    invalid(archive, format!("link {} has no target", rel.display()))
                })?;
            // Symlink targets are relative to the link's directory; hardlink targets to the root.
            let base = if kind.is_symlink() {
                rel.parent().unwrap_or(Path::new("")).to_path_buf()
            } else {
                PathBuf::new()
            };
            let resolved = clean_relative(&base.join(&target)).ok_or_else(|| {
                invalid(
                    archive,
                    format!("link {} points outside the archive", rel.display()),
                )
            })?;
            links.push((rel, resolved));
        } else {
            return Err(invalid(
                archive,
                format!("entry {} is not a file, directory or link", rel.display()),
            ));
        }
    }
    // docker save shares identical layers between images through links; materialize them as
    // hard links to the file they name (which the archive must contain).
    for (link, target) in links {
        let (from, to) = (staging.path().join(&target), staging.path().join(&link));
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        if !from.is_file() {
            return Err(invalid(
                archive,
                format!(
                    "link {} names {} which the archive lacks",
                    link.display(),
                    target.display()
                ),
            ));
        }
        fs::hard_link(&from, &to).at(&to)?;
    }
    Ok(())
}

/// Lexically normalizes a path inside an archive: `./a/../b` → `b`; `None` if it climbs out or is
/// absolute.
fn clean_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Reads a small JSON document, refusing absurd sizes.
fn read_small(path: &Path) -> Result<Vec<u8>, LoadError> {
    let file = File::open(path).map_err(|e| invalid(path, format!("cannot read it: {e}")))?;
    let mut data = Vec::new();
    file.take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| invalid(path, format!("cannot read it: {e}")))?;
    if data.len() as u64 > MAX_METADATA_BYTES {
        return Err(invalid(
            path,
            format!("larger than {MAX_METADATA_BYTES} bytes; not an image manifest or config"),
        ));
    }
    Ok(data)
}

/// Checks that the host could run an image with this config.
fn check_os(config: &ConfigSummary, shown: &Path) -> Result<(), LoadError> {
    if !config.os.is_empty() && config.os != "linux" {
        return Err(invalid(
            shown,
            format!(
                "the image is for {}/{}; berth runs linux images only",
                config.os, config.architecture
            ),
        ));
    }
    Ok(())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

struct OciLayout<'a> {
    dir: &'a Path,
    shown: &'a Path,
    ingest: &'a Ingest,
    opts: &'a LoadOptions,
}

impl OciLayout<'_> {
    fn blob(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(d.hex())
    }

    /// Reads a small blob and checks it against its descriptor.
    fn read_verified(&self, desc: &Descriptor) -> Result<Vec<u8>, LoadError> {
        let path = self.blob(&desc.digest);
        let data = read_small(&path)?;
        let actual = Digest::of(&data);
        if actual != desc.digest {
            return Err(StoreError::DigestMismatch {
                expected: desc.digest.clone(),
                actual,
            }
            .into());
        }
        if data.len() as u64 != desc.size {
            return Err(StoreError::SizeMismatch {
                digest: desc.digest.clone(),
                expected: desc.size,
                actual: data.len() as u64,
            }
            .into());
        }
        Ok(data)
    }

    fn load(&self) -> Result<Vec<Loaded>, LoadError> {
        let index_path = self.dir.join("index.json");
        let index: manifest::Index = serde_json::from_slice(&read_small(&index_path)?)
            .map_err(|e| invalid(&index_path, format!("malformed index.json: {e}")))?;
        if index.manifests.is_empty() {
            return Err(invalid(&index_path, "index.json lists no images"));
        }
        let platform = self.opts.platform.clone().unwrap_or_else(Platform::host);
        let mut loaded = Vec::new();
        for top in &index.manifests {
            let tags = self.tags_of(top)?;
            let (manifest_desc, manifest_bytes, manifest) =
                self.resolve_manifest(top, &platform)?;
            let id = self.load_image(&manifest_desc, &manifest_bytes, &manifest, &tags)?;
            loaded.push(Loaded { id, tags });
        }
        Ok(loaded)
    }

    /// The names an index entry carries. containerd's full-name annotation wins; a ref name
    /// counts when it is a full reference, and a bare tag needs `--name` for its repository.
    fn tags_of(&self, desc: &Descriptor) -> Result<Vec<Reference>, LoadError> {
        let full = desc.annotations.get(ANNOTATION_IMAGE_NAME);
        let refname = desc.annotations.get(ANNOTATION_REF_NAME);
        let name = self.opts.name.as_deref();
        let reference = match (full, refname, name) {
            (_, _, Some(n)) if Reference::parse(n).is_ok_and(|_| has_explicit_tag(n)) => n.to_string(),
            (_, Some(tag), Some(n)) if !looks_like_full_reference(tag) => format!("{n}:{tag}"),
            (_, _, Some(n)) => n.to_string(),
            (Some(full), _, None) => full.clone(),
            (None, Some(r), None) if looks_like_full_reference(r) => r.clone(),
            (None, Some(tag), None) => {
                return Err(invalid(
                    self.shown,
                    format!("the image is tagged only {tag:?}, with no repository: give one with --name REPOSITORY"),
                ))
            }
            (None, None, None) => return Ok(Vec::new()),
        };
        Ok(vec![Reference::parse(&reference).map_err(StoreError::from)?])
    }

    /// Follows nested indexes down to the manifest for `platform`.
    fn resolve_manifest(
        &self,
        top: &Descriptor,
        platform: &Platform,
    ) -> Result<(Descriptor, Vec<u8>, manifest::Manifest), LoadError> {
        let mut desc = top.clone();
        for _ in 0..4 {
            let bytes = self.read_verified(&desc)?;
            match manifest::parse(Some(&desc.media_type), &bytes).map_err(StoreError::from)? {
                ManifestKind::Manifest(m) => return Ok((desc, bytes, m)),
                ManifestKind::Index(idx) => {
                    desc = manifest::select_platform(&idx, platform)
                        .map_err(StoreError::from)?
                        .clone();
                }
            }
        }
        Err(invalid(
            self.shown,
            "image indexes nest more than four deep",
        ))
    }

    fn load_image(
        &self,
        desc: &Descriptor,
        manifest_bytes: &[u8],
        m: &manifest::Manifest,
        tags: &[Reference],
    ) -> Result<Digest, LoadError> {
        let config_bytes = self.read_verified(&m.config)?;
        let config = ConfigSummary::parse(&config_bytes).map_err(StoreError::from)?;
        check_os(&config, self.shown)?;
        config
            .check_layer_count(m.layers.len())
            .map_err(StoreError::from)?;
        let mut layers = Vec::new();
        for (layer, diff_id) in m.layers.iter().zip(&config.rootfs.diff_ids) {
            if !self.ingest.store().has_layer(diff_id) {
                let path = self.blob(&layer.digest);
                let file = File::open(&path).map_err(|e| {
                    invalid(&path, format!("layer blob missing from the layout: {e}"))
                })?;
                self.ingest
                    .add_layer(file, diff_id, Some((&layer.digest, layer.size)))?;
            }
            layers.push(LayerRef {
                diff_id: diff_id.clone(),
                blob: Some(layer.digest.clone()),
                media_type: layer.media_type.clone(),
            });
        }
        let record = ImageRecord {
            id: m.config.digest.clone(),
            manifest: Some(desc.digest.clone()),
            repo_digests: Vec::new(),
            layers,
            architecture: config.architecture,
            os: config.os,
            created: config.created,
            added: now(),
        };
        let record = self
            .ingest
            .commit_image(record, &config_bytes, Some(manifest_bytes), tags)?;
        Ok(record.id)
    }
}

fn has_explicit_tag(name: &str) -> bool {
    let last = name.rsplit('/').next().unwrap_or(name);
    last.contains(':') || name.contains('@')
}

/// `busybox:1.36` or `docker.io/library/busybox` are references; `latest` or `1.36` are tags.
fn looks_like_full_reference(s: &str) -> bool {
    (s.contains(':') || s.contains('/')) && Reference::parse(s).is_ok()
}

/// One entry of a `docker save` manifest.json.
#[derive(Deserialize)]
struct DockerSaveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn load_docker_save(
    ingest: &Ingest,
    dir: &Path,
    shown: &Path,
    opts: &LoadOptions,
) -> Result<Vec<Loaded>, LoadError> {
    let manifest_path = dir.join("manifest.json");
    let entries: Vec<DockerSaveEntry> = serde_json::from_slice(&read_small(&manifest_path)?)
        .map_err(|e| invalid(shown, format!("malformed manifest.json: {e}")))?;
    if entries.is_empty() {
        return Err(invalid(shown, "manifest.json lists no images"));
    }
    let inside = |name: &str| -> Result<PathBuf, LoadError> {
        clean_relative(Path::new(name))
            .map(|rel| dir.join(rel))
            .ok_or_else(|| {
                invalid(
                    shown,
                    format!("manifest.json names {name:?}, outside the archive"),
                )
            })
    };
    let mut loaded = Vec::new();
    for entry in entries {
        let config_bytes = read_small(&inside(&entry.config)?)?;
        let config = ConfigSummary::parse(&config_bytes).map_err(StoreError::from)?;
        check_os(&config, shown)?;
        config
            .check_layer_count(entry.layers.len())
            .map_err(StoreError::from)?;
        let mut layers = Vec::new();
        for (file, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            if !ingest.store().has_layer(diff_id) {
                let path = inside(file)?;
                let f = File::open(&path)
                    .map_err(|e| invalid(&path, format!("layer missing from the archive: {e}")))?;
                // The diff id from the config is the check: a docker save layer is the tar itself.
                ingest.add_layer(f, diff_id, None)?;
            }
            layers.push(LayerRef {
                diff_id: diff_id.clone(),
                blob: None,
                media_type: manifest::OCI_LAYER_TAR.into(),
            });
        }
        let mut tags = Vec::new();
        for t in entry.repo_tags.unwrap_or_default() {
            tags.push(Reference::parse(&t).map_err(StoreError::from)?);
        }
        if tags.is_empty() {
            if let Some(n) = &opts.name {
                tags.push(Reference::parse(n).map_err(StoreError::from)?);
            }
        }
        let record = ImageRecord {
            id: Digest::of(&config_bytes),
            manifest: None,
            repo_digests: Vec::new(),
            layers,
            architecture: config.architecture,
            os: config.os,
            created: config.created,
            added: now(),
        };
        let record = ingest.commit_image(record, &config_bytes, None, &tags)?;
        loaded.push(Loaded {
            id: record.id,
            tags,
        });
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_paths_stay_inside() {
        assert_eq!(
            clean_relative(Path::new("./blobs/sha256/x")),
            Some(PathBuf::from("blobs/sha256/x"))
        );
        assert_eq!(
            clean_relative(Path::new("a/../b")),
            Some(PathBuf::from("b"))
        );
        assert_eq!(clean_relative(Path::new("../x")), None);
        assert_eq!(clean_relative(Path::new("/etc/passwd")), None);
    }

    #[test]
    fn bare_tags_are_not_references() {
        assert!(!looks_like_full_reference("latest"));
        assert!(looks_like_full_reference("busybox:1.36"));
        assert!(looks_like_full_reference(
            "docker.io/library/busybox:latest"
        ));
        assert!(has_explicit_tag("localhost:5000/app:v1"));
        assert!(!has_explicit_tag("localhost:5000/app"));
    }
}
