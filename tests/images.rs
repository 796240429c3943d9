//! The image store through the `berth` CLI: load (OCI layouts and `docker save`), import,
//! tags, removal and garbage collection, whiteouts, verification and bad input.
//! Every test uses its own temporary root.

#[path = "common/layout.rs"]
mod layout;

use layout::{file, Entry, Image};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::Builder::new()
                .prefix("berth-test-img")
                .tempdir()
                .unwrap(),
        }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn berth(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .env("BERTH_ROOT", self.root())
            .env("BERTH_RUN_ROOT", self.dir.path().join("run"))
            .env(
                "BERTH_CGROUP_PARENT",
                format!("/berth-test-{}", std::process::id()),
            )
            .output()
            .unwrap()
    }
    /// Runs berth and returns stdout, failing the test if it failed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
    /// Runs berth expecting failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            !out.status.success(),
            "berth {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }
    fn images(&self) -> Vec<Value> {
        serde_json::from_str::<Vec<Value>>(&self.ok(&["images", "--format", "json"])).unwrap()
    }
    fn layer_dirs(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.root().join("layers"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "l")
            .collect();
        v.sort();
        v
    }
    /// The store holds nothing: no image, layer, blob or staging left.
    fn assert_store_empty(&self) {
        assert!(
            self.images().is_empty(),
            "images listed: {:?}",
            self.images()
        );
        assert!(
            self.layer_dirs().is_empty(),
            "layers left: {:?}",
            self.layer_dirs()
        );
        assert_eq!(
            fs::read_dir(self.root().join("blobs/sha256"))
                .unwrap()
                .count(),
            0,
            "blobs left"
        );
        assert_eq!(
            fs::read_dir(self.root().join("tmp")).unwrap().count(),
            0,
            "staging left"
        );
        assert_eq!(
            fs::read_dir(self.root().join("layers/l")).unwrap().count(),
            0,
            "links left"
        );
    }
}

fn inspect(env: &Env, name: &str) -> Value {
    let v: Vec<Value> = serde_json::from_str(&env.ok(&["image", "inspect", name])).unwrap();
    v.into_iter().next().unwrap()
}

fn base_layer() -> Vec<Entry> {
    vec![
        Entry::Dir("etc", 0o755),
        file("etc/os-release", "ID=berth-test\n"),
        Entry::Dir("bin", 0o755),
        file("bin/tool", "#!/bin/sh\n"),
    ]
}

#[test]
fn shared_base_layer_is_unpacked_once_and_removed_last() {
    let env = Env::new();
    let layout = env.path("layout");
    let a = Image::new(vec![base_layer(), vec![file("app-a", "a")]]).write_layout(
        &layout,
        &[("org.opencontainers.image.ref.name", "example.com/app-a:1")],
    );
    let b = Image::new(vec![base_layer(), vec![file("app-b", "b")]]).write_layout(
        &layout,
        &[("org.opencontainers.image.ref.name", "example.com/app-b:1")],
    );
    assert_eq!(
        a.diff_ids[0], b.diff_ids[0],
        "fixture: both images start from the same base"
    );
    let out = env.ok(&["image", "load", "-i", layout.to_str().unwrap()]);
    assert!(
        out.contains("Loaded image: example.com/app-a:1")
            && out.contains("Loaded image: example.com/app-b:1"),
        "{out}"
    );

    // Three distinct layers, the base exactly once, and both images' lower dirs point at it.
    assert_eq!(env.layer_dirs().len(), 3);
    let base_dir = env
        .root()
        .join("layers")
        .join(&a.diff_ids[0][7..])
        .join("diff");
    assert!(base_dir.join("etc/os-release").is_file());
    let lowers = |name: &str| {
        inspect(&env, name)["GraphDriver"]["Data"]["LowerDir"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(lowers("example.com/app-a:1").ends_with(base_dir.to_str().unwrap()));
    assert!(lowers("example.com/app-b:1").ends_with(base_dir.to_str().unwrap()));

    // Removing one image keeps the shared base; removing the other frees everything.
    let out = env.ok(&["rmi", "example.com/app-a:1"]);
    assert!(
        out.contains("Untagged: example.com/app-a:1")
            && out.contains(&format!("Deleted: {}", a.config_digest)),
        "{out}"
    );
    assert_eq!(env.layer_dirs().len(), 2);
    assert!(
        base_dir.join("etc/os-release").is_file(),
        "the base layer b still uses was removed"
    );
    env.ok(&["rmi", "example.com/app-b:1"]);
    env.assert_store_empty();
}

#[test]
fn whiteouts_become_overlay_whiteouts_in_a_three_layer_image() {
    let env = Env::new();
    let layout = env.path("layout");
    let img = Image::new(vec![
        vec![
            Entry::Dir("etc", 0o755),
            file("etc/keep", "kept"),
            file("etc/gone", "deleted by layer 2"),
            Entry::Dir("olddir", 0o755),
            file("olddir/x", "x"),
            Entry::Dir("opq", 0o755),
            file("opq/a", "a"),
            file("opq/b", "b"),
        ],
        vec![Entry::Whiteout("etc/gone"), Entry::Whiteout("olddir")],
        vec![
            Entry::Dir("opq", 0o755),
            Entry::Opaque("opq"),
            file("opq/c", "c"),
        ],
    ]);
    let w = img.write_layout(
        &layout,
        &[("io.containerd.image.name", "docker.io/library/wh:test")],
    );
    env.ok(&["image", "load", "-i", layout.to_str().unwrap()]);
    let dir = |i: usize| {
        env.root()
            .join("layers")
            .join(&w.diff_ids[i][7..])
            .join("diff")
    };

    for path in ["etc/gone", "olddir"] {
        let m = fs::symlink_metadata(dir(1).join(path)).unwrap();
        assert!(
            m.file_type().is_char_device() && m.rdev() == 0,
            "{path} is not a 0:0 whiteout"
        );
    }
    assert!(
        !dir(1).join("etc/.wh.gone").exists(),
        "the tar whiteout entry itself was created"
    );
    let mut buf = [0u8; 8];
    let c = std::ffi::CString::new(dir(2).join("opq").to_str().unwrap()).unwrap();
    // SAFETY: valid C string and buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(&buf[..n.max(0) as usize], b"y", "opq is not marked opaque");
    assert!(!dir(2).join("opq/.wh..wh..opq").exists());
    assert_eq!(fs::read_to_string(dir(2).join("opq/c")).unwrap(), "c");
    assert_eq!(
        fs::read_to_string(dir(0).join("etc/gone")).unwrap(),
        "deleted by layer 2",
        "lower layer changed"
    );
}

#[test]
fn docker_save_archives_and_layout_tarballs_load_with_their_tags() {
    let env = Env::new();
    let img = Image::new(vec![base_layer(), vec![file("srv/index.html", "hello")]]);
    let save = env.path("save.tar");
    let w = img.write_docker_save(&save, &["someone/web:1.0", "someone/web:latest"]);
    let out = env.ok(&["load", "-i", save.to_str().unwrap()]);
    assert!(
        out.contains("Loaded image: someone/web:1.0")
            && out.contains("Loaded image: someone/web:latest"),
        "{out}"
    );
    let i = inspect(&env, "someone/web");
    assert_eq!(i["Id"], w.config_digest.as_str());
    assert_eq!(i["Config"]["Cmd"][0], "/bin/sh");
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 2);

    // The same image as a tarred OCI layout, named through --name for its bare tag.
    let layout = env.path("layout");
    img.write_layout(&layout, &[("org.opencontainers.image.ref.name", "v2")]);
    let tarball = env.path("layout.tar");
    let st = Command::new("tar")
        .args([
            "-C",
            layout.to_str().unwrap(),
            "-cf",
            tarball.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let err = env.fails(&["image", "load", "-i", tarball.to_str().unwrap()]);
    assert!(
        err.contains("--name"),
        "a bare tag must ask for --name: {err}"
    );
    env.ok(&[
        "image",
        "load",
        "-i",
        tarball.to_str().unwrap(),
        "--name",
        "someone/web",
    ]);
    assert_eq!(
        inspect(&env, "someone/web:v2")["Id"],
        w.config_digest.as_str()
    );
    // Loading the same layers again unpacked nothing new.
    assert_eq!(env.layer_dirs().len(), 2);
    let ids = env.ok(&["images", "-q"]);
    assert_eq!(ids.lines().count(), 3, "three tags of one image: {ids}");
    assert!(ids.lines().all(|l| l == &w.config_digest[7..19]));
}

#[test]
fn import_makes_a_one_layer_image_and_tag_and_prune_work() {
    let env = Env::new();
    let rootfs = env.path("rootfs.tar");
    fs::write(
        &rootfs,
        layout::layer_tar(&[Entry::Dir("bin", 0o755), file("bin/hello", "hi")]),
    )
    .unwrap();
    let id = env.ok(&[
        "image",
        "import",
        "-c",
        "CMD [\"/bin/hello\"]",
        rootfs.to_str().unwrap(),
        "imported:v1",
    ]);
    let i = inspect(&env, "imported:v1");
    assert_eq!(i["Id"], id.trim());
    assert_eq!(i["Config"]["Cmd"][0], "/bin/hello");
    assert_eq!(
        i["RootFS"]["Layers"][0],
        layout::sha256(&fs::read(&rootfs).unwrap()).as_str()
    );

    env.ok(&["tag", "imported:v1", "localhost:5000/imported:copy"]);
    assert_eq!(
        inspect(&env, "localhost:5000/imported:copy")["Id"],
        id.trim()
    );
    // By id with two tags: refused without -f, and nothing changes.
    let err = env.fails(&["rmi", &id.trim()[7..19]]);
    assert!(err.contains("several tags"), "{err}");
    assert_eq!(env.images().len(), 1);
    // Untagging one leaves the image; prune leaves tagged images alone, prune -a removes them.
    env.ok(&["rmi", "localhost:5000/imported:copy"]);
    assert_eq!(env.layer_dirs().len(), 1);
    assert!(env.ok(&["image", "prune"]).is_empty());
    assert!(env.ok(&["image", "prune", "-a"]).contains("Deleted"));
    env.assert_store_empty();
}

#[test]
fn an_image_a_container_uses_is_kept_until_forced_and_its_layers_until_the_container_goes() {
    let env = Env::new();
    let layout = env.path("layout");
    let w = Image::new(vec![base_layer()]).write_layout(
        &layout,
        &[("io.containerd.image.name", "docker.io/library/used:1")],
    );
    env.ok(&["image", "load", "-i", layout.to_str().unwrap()]);
    let ctr = env.root().join("containers/0123456789ab");
    fs::create_dir_all(&ctr).unwrap();
    fs::write(ctr.join("image-id"), &w.config_digest).unwrap();

    let err = env.fails(&["rmi", "used:1"]);
    assert!(
        err.contains("in use by container") && err.contains("0123456789ab"),
        "{err}"
    );
    let out = env.ok(&["rmi", "-f", "used:1"]);
    assert!(
        out.contains("Untagged") && !out.contains("Deleted"),
        "{out}"
    );
    assert_eq!(
        env.layer_dirs().len(),
        1,
        "layers of an image in use were removed"
    );
    assert!(env.ok(&["image", "prune", "-a"]).is_empty());
    fs::remove_dir_all(&ctr).unwrap();
    env.ok(&["image", "prune"]);
    env.assert_store_empty();
}

/// Corrupts one byte of a blob in a layout.
fn corrupt_blob(layout: &Path, digest: &str) {
    let p = layout.join("blobs/sha256").join(&digest[7..]);
    let mut data = fs::read(&p).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    fs::write(&p, data).unwrap();
}

#[test]
fn corrupt_or_wrong_input_is_refused_and_leaves_the_store_unchanged() {
    let env = Env::new();
    // Something already stored must survive every failed load below.
    let good = env.path("good");
    Image::new(vec![vec![file("ok", "ok")]]).write_layout(
        &good,
        &[("io.containerd.image.name", "docker.io/library/good:1")],
    );
    env.ok(&["image", "load", "-i", good.to_str().unwrap()]);
    let before = (env.images(), env.layer_dirs());
    let check_unchanged = |what: &str| {
        assert_eq!(env.images(), before.0, "{what}: image list changed");
        assert_eq!(env.layer_dirs(), before.1, "{what}: layers changed");
        assert_eq!(
            fs::read_dir(env.root().join("tmp")).unwrap().count(),
            0,
            "{what}: staging left"
        );
    };
    let name = [("io.containerd.image.name", "docker.io/library/bad:1")];

    // A layer blob whose bytes do not match its digest.
    let l = env.path("bad-layer");
    let img = Image::new(vec![
        vec![file("a", "a")],
        vec![file("b", &"b".repeat(10_000))],
    ]);
    let layer_digest = {
        let gz = layout::gzip(&img.layers[1]);
        layout::sha256(&gz)
    };
    img.write_layout(&l, &name);
    corrupt_blob(&l, &layer_digest);
    let err = env.fails(&["image", "load", "-i", l.to_str().unwrap()]);
    assert!(
        err.contains("failed verification") || err.contains("corrupt"),
        "{err}"
    );
    check_unchanged("corrupt layer");

    // A manifest whose config digest is wrong.
    let l = env.path("bad-config");
    let w = Image::new(vec![vec![file("a", "a")]]).write_layout(&l, &name);
    corrupt_blob(&l, &w.config_digest);
    let err = env.fails(&["image", "load", "-i", l.to_str().unwrap()]);
    assert!(
        err.contains(&w.config_digest) && err.contains("verification"),
        "{err}"
    );
    check_unchanged("corrupt config");

    // A missing file, and a directory that is not an image.
    let err = env.fails(&[
        "image",
        "load",
        "-i",
        env.path("nope.tar").to_str().unwrap(),
    ]);
    assert!(
        err.contains("nope.tar") && err.contains("cannot read"),
        "{err}"
    );
    fs::create_dir(env.path("empty")).unwrap();
    let err = env.fails(&["image", "load", "-i", env.path("empty").to_str().unwrap()]);
    assert!(err.contains("neither an OCI image layout"), "{err}");

    // An unknown layer media type.
    let l = env.path("bad-media");
    let w = Image::new(vec![vec![file("a", "a")]]).write_layout(&l, &name);
    let mpath = l.join("blobs/sha256").join(&w.manifest_digest[7..]);
    let m = fs::read_to_string(&mpath).unwrap().replace(
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/x-squashfs",
    );
    fs::write(&mpath, &m).unwrap();
    let mut index: Value =
        serde_json::from_slice(&fs::read(l.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"] = layout::sha256(m.as_bytes()).into();
    index["manifests"][0]["size"] = m.len().into();
    fs::rename(
        &mpath,
        l.join("blobs/sha256")
            .join(&layout::sha256(m.as_bytes())[7..]),
    )
    .unwrap();
    fs::write(l.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let err = env.fails(&["image", "load", "-i", l.to_str().unwrap()]);
    assert!(
        err.contains("unknown layer media type") && err.contains("application/x-squashfs"),
        "{err}"
    );
    check_unchanged("unknown media type");

    // An image for another OS.
    let l = env.path("windows");
    let mut img = Image::new(vec![vec![file("a", "a")]]);
    img.os = "windows";
    img.write_layout(&l, &name);
    let err = env.fails(&["image", "load", "-i", l.to_str().unwrap()]);
    assert!(
        err.contains("windows/amd64") && err.contains("linux images only"),
        "{err}"
    );
    check_unchanged("windows image");

    // Invalid references.
    for bad in ["UPPER:case", "app:", &"x".repeat(200).repeat(2)] {
        let err = env.fails(&["tag", "good:1", bad]);
        assert!(err.contains("invalid reference"), "{bad}: {err}");
    }
    let err = env.fails(&[
        "image",
        "load",
        "-i",
        good.to_str().unwrap(),
        "--name",
        "Bad/Name",
    ]);
    assert!(err.contains("invalid reference"), "{err}");
    let err = env.fails(&["rmi", "not-there:1"]);
    assert!(err.contains("no such image: not-there:1"), "{err}");
    check_unchanged("bad references");
}

#[test]
fn a_load_killed_midway_leaves_no_half_image_and_the_next_load_completes() {
    let env = Env::new();
    let layout = env.path("big");
    // Incompressible content so the layer takes a while to unpack.
    let mut noise = vec![0u8; 48 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in noise.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let small = vec![file("small", "s")];
    let big = vec![Entry::File("noise", noise, 0o644)];
    Image::new(vec![small, big]).write_layout(
        &layout,
        &[("io.containerd.image.name", "docker.io/library/big:1")],
    );

    for delay_ms in [30u64, 150, 400] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["image", "load", "-i", layout.to_str().unwrap()])
            .env("BERTH_ROOT", env.root())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let images = env.images();
        if status.success() {
            assert_eq!(images.len(), 1);
            break;
        }
        assert!(
            images.is_empty(),
            "a killed load left an image listed: {images:?}"
        );
        // Only fully unpacked layers may be published.
        for l in env.layer_dirs() {
            assert!(
                env.root()
                    .join("layers")
                    .join(&l)
                    .join("layer.json")
                    .is_file(),
                "half layer {l} published"
            );
        }
    }
    env.ok(&["image", "load", "-i", layout.to_str().unwrap()]);
    assert_eq!(env.images().len(), 1);
    assert_eq!(
        fs::read_dir(env.root().join("tmp")).unwrap().count(),
        0,
        "the dead load's staging was not swept"
    );
}
