//! From the store to a mounted container root: images loaded through the CLI, their layers
//! stacked with overlayfs by `berth::rootfs`, as the runtime will do it.

#[path = "common/layout.rs"]
mod layout;

use berth::image::store::Store;
use berth::rootfs::{ContainerRootfs, LowerLayers};
use layout::{file, Entry, Image};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Env {
    dir: tempfile::TempDir,
    mounted: Vec<ContainerRootfs>,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("berth-test-ovl")
                .tempdir()
                .unwrap(),
            mounted: Vec::new(),
        }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn load(&self, layout: &Path) {
        let out = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["image", "load", "-i", layout.to_str().unwrap()])
            .env("BERTH_ROOT", self.root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    /// Prepares and mounts a root for container `id` from image `name`, as the runtime does.
    fn container(&mut self, id: &str, name: &str) -> PathBuf {
        let store = Store::open(&self.root()).unwrap();
        let image = store.resolve(name).unwrap();
        let lowers = LowerLayers::new(store.layers_dir(), store.overlay_lowers(&image).unwrap());
        let dir = store.containers_dir().join(id);
        fs::create_dir_all(&dir).unwrap();
        let rootfs = ContainerRootfs::create(&dir, lowers).unwrap();
        rootfs.mount().unwrap();
        let merged = rootfs.merged().to_path_buf();
        self.mounted.push(rootfs);
        merged
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for r in self.mounted.drain(..) {
            let _ = r.remove();
        }
    }
}

/// Paths, modes, owners and content hashes of a tree, to prove it did not change.
fn fingerprint(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                hex::encode(Sha256::digest(fs::read(&p).unwrap()))
            } else {
                String::new()
            };
            out.push(format!(
                "{} {:o} {}:{} {} {}",
                p.strip_prefix(dir).unwrap().display(),
                m.mode(),
                m.uid(),
                m.gid(),
                m.rdev(),
                content
            ));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_three_layer_image_mounts_with_its_deletions_and_writes_stay_in_upper() {
    let mut env = Env::new();
    let layout = env.dir.path().join("layout");
    Image::new(vec![
        vec![
            Entry::Dir("etc", 0o755),
            file("etc/keep", "kept"),
            file("etc/gone", "deleted by layer 2"),
            Entry::Dir("olddir", 0o755),
            file("olddir/x", "x"),
            Entry::Dir("opq", 0o755),
            file("opq/a", "a"),
        ],
        vec![
            Entry::Whiteout("etc/gone"),
            Entry::Whiteout("olddir"),
            file("etc/keep", "kept v2"),
        ],
        vec![
            Entry::Dir("opq", 0o755),
            Entry::Opaque("opq"),
            file("opq/c", "c"),
        ],
    ])
    .write_layout(
        &layout,
        &[("io.containerd.image.name", "docker.io/library/three:1")],
    );
    env.load(&layout);
    let layers_before = fingerprint(&env.root().join("layers"));

    let merged = env.container("c1", "three:1");
    assert_eq!(
        fs::read_to_string(merged.join("etc/keep")).unwrap(),
        "kept v2",
        "upper layers must shadow lower ones"
    );
    assert!(
        !merged.join("etc/gone").exists(),
        "a whited-out file is visible"
    );
    assert!(
        !merged.join("olddir").exists(),
        "a whited-out directory is visible"
    );
    let opq: Vec<_> = fs::read_dir(merged.join("opq"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(opq, vec!["c"], "an opaque directory shows lower content");

    // Modify, delete and create through the mount.
    fs::write(merged.join("etc/keep"), "changed").unwrap();
    fs::remove_file(merged.join("opq/c")).unwrap();
    fs::write(merged.join("new"), "new").unwrap();
    let other = env.container("c2", "three:1");
    assert_eq!(
        fs::read_to_string(other.join("etc/keep")).unwrap(),
        "kept v2",
        "containers see each other's writes"
    );
    assert!(!other.join("new").exists());
    let upper = env.root().join("containers/c1/fs/upper");
    assert_eq!(fs::read_to_string(upper.join("new")).unwrap(), "new");
    assert_eq!(
        fs::read_to_string(upper.join("etc/keep")).unwrap(),
        "changed"
    );
    assert_eq!(
        fingerprint(&env.root().join("layers")),
        layers_before,
        "image layers changed under a container"
    );
}

#[test]
fn an_image_with_128_layers_mounts_from_a_deep_root() {
    let mut env = Env::new();
    let layout = env.dir.path().join("layout");
    let names: Vec<&'static str> = (0..128)
        .map(|i| &*Box::leak(format!("f{i:03}").into_boxed_str()))
        .collect();
    let layers: Vec<Vec<Entry>> = names.iter().map(|n| vec![file(n, n)]).collect();
    Image::new(layers).write_layout(
        &layout,
        &[("io.containerd.image.name", "docker.io/library/deep:1")],
    );
    env.load(&layout);
    // With absolute paths the 128 lowerdirs of this root would not fit in a page of options.
    let per_layer = env
        .root()
        .join("layers")
        .join("x".repeat(64))
        .join("diff")
        .as_os_str()
        .len()
        + 1;
    assert!(per_layer * 128 > 4096);
    let merged = env.container("deep", "deep:1");
    for n in &names {
        assert_eq!(fs::read_to_string(merged.join(n)).unwrap(), *n);
    }
}
