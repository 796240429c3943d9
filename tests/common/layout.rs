//! Test fixtures: image layers and whole images written as OCI layouts or `docker save`
//! archives, built in memory so every test controls each byte.
#![allow(dead_code)]

use flate2::write::GzEncoder;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::Write;
use std::path::Path;

/// One entry of a layer tar.
#[derive(Clone)]
pub enum Entry {
    File(&'static str, Vec<u8>, u32),
    Dir(&'static str, u32),
    Symlink(&'static str, &'static str),
    /// `dir/.wh.name`: deletes `dir/name` from lower layers.
    Whiteout(&'static str),
    /// `dir/.wh..wh..opq`: hides everything lower layers have in `dir`.
    Opaque(&'static str),
}

pub fn file(path: &'static str, content: &str) -> Entry {
    Entry::File(path, content.as_bytes().to_vec(), 0o644)
}

/// A plain (uncompressed) layer tar of `entries`, with fixed mtimes so identical entries give
/// identical bytes (and so identical diff ids).
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Entry::File(p, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, &data[..]).unwrap();
            }
            Entry::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            Entry::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
            Entry::Whiteout(p) => {
                let path = Path::new(p);
                let name = format!(".wh.{}", path.file_name().unwrap().to_str().unwrap());
                let full = path.parent().unwrap().join(name);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_data(&mut h, full, &[][..]).unwrap();
            }
            Entry::Opaque(dir) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_data(&mut h, Path::new(dir).join(".wh..wh..opq"), &[][..])
                    .unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// An image under construction: layers bottom-most first.
pub struct Image {
    pub layers: Vec<Vec<u8>>,
    pub cmd: Vec<String>,
    pub architecture: &'static str,
    pub os: &'static str,
}

/// What writing an image produced.
pub struct Written {
    pub config_digest: String,
    pub manifest_digest: String,
    pub diff_ids: Vec<String>,
}

impl Image {
    pub fn new(layers: Vec<Vec<Entry>>) -> Image {
        Image {
            layers: layers.iter().map(|l| layer_tar(l)).collect(),
            cmd: vec!["/bin/sh".into()],
            architecture: "amd64",
            os: "linux",
        }
    }

    pub fn config(&self) -> Vec<u8> {
        let diff_ids: Vec<String> = self.layers.iter().map(|l| sha256(l)).collect();
        serde_json::to_vec(&serde_json::json!({
            "architecture": self.architecture, "os": self.os, "created": "2024-01-01T00:00:00Z",
            "config": { "Cmd": self.cmd, "Env": ["PATH=/usr/bin:/bin"] },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .unwrap()
    }

    /// Writes an OCI layout with gzip layers into `dir` (added to an existing layout's index).
    /// `annotations` go on the index entry (e.g. the ref name).
    pub fn write_layout(&self, dir: &Path, annotations: &[(&str, &str)]) -> Written {
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        let put = |data: &[u8]| -> (String, usize) {
            let d = sha256(data);
            fs::write(blobs.join(&d[7..]), data).unwrap();
            (d, data.len())
        };
        let mut layer_descs = Vec::new();
        for l in &self.layers {
            let (d, n) = put(&gzip(l));
            layer_descs.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n }));
        }
        let config = self.config();
        let (cd, cn) = put(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn },
            "layers": layer_descs,
        }))
        .unwrap();
        let (md, mn) = put(&manifest);
        let index_path = dir.join("index.json");
        let mut index: serde_json::Value = fs::read(&index_path)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_else(|| serde_json::json!({ "schemaVersion": 2, "manifests": [] }));
        let ann: serde_json::Map<String, serde_json::Value> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        index["manifests"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                "annotations": ann,
            }));
        fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Written {
            config_digest: cd,
            manifest_digest: md,
            diff_ids: self.layers.iter().map(|l| sha256(l)).collect(),
        }
    }

    /// Writes a classic `docker save` archive: `<id>/layer.tar` directories, a config JSON and
    /// manifest.json with RepoTags.
    pub fn write_docker_save(&self, tar_path: &Path, repo_tags: &[&str]) -> Written {
        let mut b = tar::Builder::new(fs::File::create(tar_path).unwrap());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, data).unwrap();
        };
        let mut layer_paths = Vec::new();
        for l in &self.layers {
            let dir = &sha256(l)[7..];
            let path = format!("{dir}/layer.tar");
            add(&path, l);
            layer_paths.push(path);
        }
        let config = self.config();
        let cd = sha256(&config);
        add(&format!("{}.json", &cd[7..]), &config);
        let manifest = serde_json::json!([{
            "Config": format!("{}.json", &cd[7..]), "RepoTags": repo_tags, "Layers": layer_paths }]);
        add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
        b.finish().unwrap();
        Written {
            config_digest: cd,
            manifest_digest: String::new(),
            diff_ids: self.layers.iter().map(|l| sha256(l)).collect(),
        }
    }
}
