//! Test fixtures: OCI image layouts built in memory, for `skopeo copy oci:DIR:TAG …` and for
//! `berth image load`.
//!
//! ```ignore
//! let img = OciImageBuilder::new().layer(vec![("etc/hello", b"hi".as_slice(), 0o644)]).build(dir, "v1");
//! let multi = OciIndexBuilder::new()
//!     .image(OciImageBuilder::new().layer(vec![("arch", b"amd64".as_slice(), 0o644)]))
//!     .image(OciImageBuilder::new().platform("linux", "arm64", None).layer(vec![("arch", b"arm64".as_slice(), 0o644)]))
//!     .build(dir, "multi");
//! ```
//!
//! Tars have fixed mtimes and owners, so the same files always give the same digests.
#![allow(dead_code)]

use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::Write;
use std::path::Path;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    pub fn compress(self, tar: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => tar.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(tar).expect("gzip");
                e.finish().expect("gzip")
            }
            Compression::Zstd => zstd::encode_all(tar, 1).expect("zstd"),
        }
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A tar of regular files (parent directories are added as 0755 entries first).
pub fn tar_of(files: &[(String, Vec<u8>, u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (path, data, mode) in files {
        let mut parent = Path::new(path).parent();
        let mut chain = Vec::new();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            chain.push(p.to_path_buf());
            parent = p.parent();
        }
        for d in chain.into_iter().rev() {
            if dirs.insert(d.clone()) {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                b.append_data(&mut h, &d, &[][..]).expect("tar dir");
            }
        }
        let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64);
        b.append_data(&mut h, path, &data[..]).expect("tar file");
    }
    b.into_inner().expect("tar")
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// `n` bytes that do not compress, from a seed (the same seed gives the same bytes).
pub fn incompressible(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// One image: layers bottom-most first, a config naming their diff ids, a manifest.
#[derive(Debug, Clone)]
pub struct OciImageBuilder {
    layers: Vec<(Vec<u8>, Compression)>,
    compression: Compression,
    os: String,
    architecture: String,
    variant: Option<String>,
    cmd: Vec<String>,
    config_media_type: String,
}

impl Default for OciImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// What writing an image's blobs produced (digests as `sha256:<hex>` strings).
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub manifest_digest: String,
    pub manifest_size: usize,
    pub manifest: Vec<u8>,
    pub config_digest: String,
    pub config: Vec<u8>,
    pub diff_ids: Vec<String>,
    /// Digests and sizes of the layer blobs as stored (compressed).
    pub layer_digests: Vec<String>,
    pub layer_sizes: Vec<usize>,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl OciImageBuilder {
    /// linux/amd64, gzip layers, no layers yet.
    pub fn new() -> OciImageBuilder {
        OciImageBuilder {
            layers: Vec::new(),
            compression: Compression::Gzip,
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            cmd: vec!["/bin/sh".into()],
            config_media_type: OCI_CONFIG.into(),
        }
    }

    /// Adds a layer of regular files `(path, content, mode)`, compressed as set by
    /// [`compression`](Self::compression) at build time.
    pub fn layer<P: AsRef<str>, D: AsRef<[u8]>>(mut self, files: Vec<(P, D, u32)>) -> Self {
        let files: Vec<(String, Vec<u8>, u32)> = files
            .into_iter()
            .map(|(p, d, m)| (p.as_ref().to_string(), d.as_ref().to_vec(), m))
            .collect();
        self.layers.push((tar_of(&files), self.compression));
        self
    }

    /// Adds a layer from a ready tar stream.
    pub fn layer_tar(mut self, tar: Vec<u8>) -> Self {
        self.layers.push((tar, self.compression));
        self
    }

    /// Compression of every layer blob (gzip unless set).
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = c;
        for l in self.layers.iter_mut() {
            l.1 = c;
        }
        self
    }

    pub fn platform(mut self, os: &str, architecture: &str, variant: Option<&str>) -> Self {
        self.os = os.into();
        self.architecture = architecture.into();
        self.variant = variant.map(String::from);
        self
    }

    pub fn cmd(mut self, cmd: &[&str]) -> Self {
        self.cmd = cmd.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Overrides the config media type (to make something that is not an image).
    pub fn config_media_type(mut self, m: &str) -> Self {
        self.config_media_type = m.into();
        self
    }

    pub fn config(&self) -> Vec<u8> {
        let diff_ids: Vec<String> = self.layers.iter().map(|(t, _)| sha256(t)).collect();
        let mut cfg = serde_json::json!({
            "architecture": self.architecture, "os": self.os, "created": "2024-01-01T00:00:00Z",
            "config": { "Cmd": self.cmd, "Env": ["PATH=/usr/bin:/bin"] },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        if let Some(v) = &self.variant {
            cfg["variant"] = serde_json::json!(v);
        }
        serde_json::to_vec(&cfg).expect("config json")
    }

    /// Writes the layer, config and manifest blobs into `dir/blobs/sha256` (no index entry).
    pub fn write_blobs(&self, dir: &Path) -> BuiltImage {
        let mut layer_descs = Vec::new();
        let (mut layer_digests, mut layer_sizes) = (Vec::new(), Vec::new());
        for (tar, c) in &self.layers {
            let blob = c.compress(tar);
            let d = put_blob(dir, &blob);
            layer_descs.push(
                serde_json::json!({ "mediaType": c.media_type(), "digest": d, "size": blob.len() }),
            );
            layer_digests.push(d);
            layer_sizes.push(blob.len());
        }
        let config = self.config();
        let cd = put_blob(dir, &config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": { "mediaType": self.config_media_type, "digest": cd, "size": config.len() },
            "layers": layer_descs,
        }))
        .expect("manifest json");
        let md = put_blob(dir, &manifest);
        BuiltImage {
            manifest_digest: md,
            manifest_size: manifest.len(),
            manifest,
            config_digest: cd,
            config,
            diff_ids: self.layers.iter().map(|(t, _)| sha256(t)).collect(),
            layer_digests,
            layer_sizes,
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
    }

    /// Writes the image into the OCI layout at `dir` (created, or extended) under `tag`.
    pub fn build(&self, dir: &Path, tag: &str) -> BuiltImage {
        let built = self.write_blobs(dir);
        add_index_entry(
            dir,
            OCI_MANIFEST,
            &built.manifest_digest,
            built.manifest_size,
            tag,
        );
        built
    }
}

/// A multi-platform image: an image index over several images.
#[derive(Debug, Clone, Default)]
pub struct OciIndexBuilder {
    images: Vec<OciImageBuilder>,
}

#[derive(Debug, Clone)]
pub struct BuiltIndex {
    pub index_digest: String,
    pub images: Vec<BuiltImage>,
}

impl OciIndexBuilder {
    pub fn new() -> OciIndexBuilder {
        OciIndexBuilder::default()
    }

    pub fn image(mut self, image: OciImageBuilder) -> Self {
        self.images.push(image);
        self
    }

    /// Writes every image and an index over them into the layout at `dir`, under `tag`.
    pub fn build(&self, dir: &Path, tag: &str) -> BuiltIndex {
        let images: Vec<BuiltImage> = self.images.iter().map(|i| i.write_blobs(dir)).collect();
        let manifests: Vec<serde_json::Value> = images
            .iter()
            .map(|b| {
                let mut platform =
                    serde_json::json!({ "os": b.os, "architecture": b.architecture });
                if let Some(v) = &b.variant {
                    platform["variant"] = serde_json::json!(v);
                }
                serde_json::json!({
                    "mediaType": OCI_MANIFEST, "digest": b.manifest_digest, "size": b.manifest_size,
                    "platform": platform,
                })
            })
            .collect();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests,
        }))
        .expect("index json");
        let digest = put_blob(dir, &index);
        add_index_entry(dir, OCI_INDEX, &digest, index.len(), tag);
        BuiltIndex {
            index_digest: digest,
            images,
        }
    }
}

/// Stores a blob in the layout and returns its digest.
pub fn put_blob(dir: &Path, data: &[u8]) -> String {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("create blobs dir");
    let d = sha256(data);
    fs::write(blobs.join(&d[7..]), data).expect("write blob");
    d
}

/// Adds (or replaces) the `index.json` entry tagged `tag`.
pub fn add_index_entry(dir: &Path, media_type: &str, digest: &str, size: usize, tag: &str) {
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value = fs::read(&index_path)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_else(|| serde_json::json!({ "schemaVersion": 2, "manifests": [] }));
    let entries = index["manifests"].as_array_mut().expect("index manifests");
    entries.retain(|e| e["annotations"]["org.opencontainers.image.ref.name"] != tag);
    entries.push(serde_json::json!({
        "mediaType": media_type, "digest": digest, "size": size,
        "annotations": { "org.opencontainers.image.ref.name": tag },
    }));
    fs::write(&index_path, serde_json::to_vec(&index).expect("index json"))
        .expect("write index.json");
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
}
