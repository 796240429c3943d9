//! Fixtures for tests/run.rs: a per-test berth environment (temporary roots, a unique cgroup
//! parent, the built-in busybox image loaded) whose Drop removes everything the test made, and
//! builders of hostile images on top of busybox.
#![allow(dead_code)]

use super::layout::{layer_tar, Entry, Image};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The busybox OCI layout, built once for this test binary.
pub fn image_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        // Sweep layouts left by earlier runs whose process is gone.
        if let Ok(entries) = fs::read_dir(&base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("busybox-oci-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = base.join(format!("busybox-oci-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mk-busybox-image.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(&dir)
            .output()
            .expect("run mk-busybox-image.sh");
        assert!(
            out.status.success(),
            "mk-busybox-image.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub cgroup_parent: String,
    pub children: Mutex<Vec<Child>>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("berth-test-run-")
            .tempdir()
            .expect("temp dir");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let env = Env {
            dir,
            cgroup_parent: format!("/berth-test-{}-{n}", std::process::id()),
            children: Mutex::new(Vec::new()),
        };
        env.ok(&[
            "image",
            "load",
            "-i",
            image_dir().to_str().expect("utf-8 path"),
        ]);
        env
    }

    pub fn path(&self) -> PathBuf {
        fs::canonicalize(self.dir.path()).expect("canonical temp dir")
    }
    pub fn root(&self) -> PathBuf {
        self.path().join("root")
    }
    pub fn run_root(&self) -> PathBuf {
        self.path().join("run")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.args(args)
            .env("BERTH_ROOT", self.root())
            .env("BERTH_RUN_ROOT", self.run_root())
            .env("BERTH_CGROUP_PARENT", &self.cgroup_parent)
            .stdin(Stdio::null());
        cmd
    }

    pub fn berth(&self, args: &[&str]) -> Run {
        let out: Output = self.command(args).output().expect("run berth");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs berth, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.berth(args);
        assert_eq!(r.code, 0, "berth {args:?} failed: {}{}", r.stdout, r.stderr);
        r.stdout
    }

    /// `berth run --rm busybox sh -c SCRIPT`, asserting success; returns stdout.
    pub fn sh(&self, flags: &[&str], script: &str) -> String {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "sh", "-c", script]);
        self.ok(&args)
    }

    /// Starts berth in the background (a foreground `run`, say); killed in Drop if still there.
    pub fn spawn(&self, args: &[&str]) {
        let child = self
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        self.children.lock().expect("lock").push(child);
    }

    /// Waits for the last spawned berth to exit; returns its exit code.
    pub fn wait_last(&self) -> i32 {
        let mut child = self
            .children
            .lock()
            .expect("lock")
            .pop()
            .expect("a spawned berth");
        child.wait().expect("wait for berth").code().unwrap_or(-1)
    }

    pub fn inspect(&self, name: &str) -> Value {
        let v: Vec<Value> =
            serde_json::from_str(&self.ok(&["inspect", name])).expect("inspect json");
        v.into_iter().next().expect("one container")
    }

    /// Waits until container `name` runs; returns its host pid.
    pub fn wait_running(&self, name: &str) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.berth(&["inspect", name]);
            if r.code == 0 {
                let v: Vec<Value> = serde_json::from_str(&r.stdout).expect("inspect json");
                let pid = v[0]["State"]["Pid"].as_i64().unwrap_or(0);
                if v[0]["State"]["Status"] == "running" && pid > 0 {
                    // Running means exec'd: wait until the pid is no longer berth's init.
                    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                    if !exe.to_string_lossy().contains("berth") {
                        return pid as i32;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "container {name} did not start: {}",
                r.stderr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The directories of this test's cgroup parent in every hierarchy.
    pub fn cgroup_parent_dirs(&self) -> Vec<PathBuf> {
        let rel = self.cgroup_parent.trim_start_matches('/');
        let mut dirs = vec![Path::new("/sys/fs/cgroup").join(rel)];
        if let Ok(entries) = fs::read_dir("/sys/fs/cgroup") {
            dirs.extend(entries.flatten().map(|e| e.path().join(rel)));
        }
        dirs.into_iter().filter(|d| d.is_dir()).collect()
    }

    /// Container cgroups (leaves) left under this test's parent.
    pub fn cgroup_leaves(&self) -> Vec<PathBuf> {
        let mut leaves = Vec::new();
        for dir in self.cgroup_parent_dirs() {
            for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    leaves.push(e.path());
                }
            }
        }
        leaves
    }

    pub fn mounts_under_tmp(&self) -> Vec<String> {
        let root = self.path();
        mount_points()
            .into_iter()
            .filter(|p| Path::new(p).starts_with(&root))
            .collect()
    }

    /// Asserts that no trace of any container is left: no mount, cgroup, netns file, runtime
    /// state or container directory.
    pub fn assert_nothing_left(&self) {
        assert_eq!(self.mounts_under_tmp(), Vec::<String>::new(), "mounts left");
        assert_eq!(self.cgroup_leaves(), Vec::<PathBuf>::new(), "cgroups left");
        assert_eq!(
            list(&self.run_root().join("netns")),
            Vec::<String>::new(),
            "netns left"
        );
        assert_eq!(
            list(&self.run_root().join("containers")),
            Vec::<String>::new(),
            "state left"
        );
        assert_eq!(
            list(&self.root().join("containers")),
            Vec::<String>::new(),
            "containers left"
        );
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Only the berth processes this test started, by pid.
        if let Ok(mut children) = self.children.lock() {
            for child in children.iter_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Only cgroups under this test's own parent: kill what is in them, then remove them.
        for leaf in self.cgroup_leaves() {
            for _ in 0..100 {
                let procs = fs::read_to_string(leaf.join("cgroup.procs")).unwrap_or_default();
                let pids: Vec<i32> = procs.lines().filter_map(|l| l.parse().ok()).collect();
                if pids.is_empty() {
                    break;
                }
                for pid in pids {
                    // SAFETY: SIGKILL to a process in this test's own cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            for _ in 0..100 {
                if fs::remove_dir(&leaf).is_ok() || !leaf.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for dir in self.cgroup_parent_dirs() {
            let _ = fs::remove_dir(dir);
        }
        for _ in 0..8 {
            let under = self.mounts_under_tmp();
            if under.is_empty() {
                break;
            }
            for m in under.iter().rev() {
                let _ = rustix::mount::unmount(m.as_str(), rustix::mount::UnmountFlags::DETACH);
            }
        }
    }
}

pub fn mount_points() -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .collect()
}

pub fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Splits output at lines of `---`.
pub fn sections(out: &str) -> Vec<String> {
    out.split("---\n").map(str::to_string).collect()
}

/// A fingerprint of a directory tree: type, mode, owner, size, content and link target of
/// every entry, without following symlinks.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    pub fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).expect("read dir").flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let m = fs::symlink_metadata(&p).expect("lstat");
            let rel = p.strip_prefix(base).expect("under base").to_path_buf();
            let mut desc = format!("{:o} {}:{} {}", m.mode(), m.uid(), m.gid(), m.len());
            if m.file_type().is_symlink() {
                desc += &format!(" -> {}", fs::read_link(&p).expect("readlink").display());
            } else if m.is_file() {
                let data = fs::read(&p).expect("read");
                desc += &format!(
                    " {:x}",
                    data.iter()
                        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(*b)))
                );
            }
            out.insert(rel, desc);
            if m.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The uncompressed busybox layer of the built-in image.
pub fn busybox_layer() -> Vec<u8> {
    let blob = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        fs::read(image_dir().join("blobs/sha256").join(hex)).expect("read blob")
    };
    let index: Value =
        serde_json::from_slice(&fs::read(image_dir().join("index.json")).expect("index"))
            .expect("index json");
    let manifest: Value = serde_json::from_slice(&blob(
        index["manifests"][0]["digest"]
            .as_str()
            .expect("manifest digest"),
    ))
    .expect("manifest json");
    let gz = blob(
        manifest["layers"][0]["digest"]
            .as_str()
            .expect("layer digest"),
    );
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .expect("gunzip");
    tar
}

/// Loads busybox with `top` as an extra layer on it, as `name`.
pub fn load_on_busybox(env: &Env, name: &str, top: Vec<Entry>) {
    let layout_dir = env.path().join(format!("layout-{name}"));
    let image = Image {
        layers: vec![busybox_layer(), layer_tar(&top)],
        cmd: vec!["/bin/sh".into()],
        architecture: "amd64",
        os: "linux",
    };
    image.write_layout(&layout_dir, &[("org.opencontainers.image.ref.name", name)]);
    env.ok(&["image", "load", "-i", layout_dir.to_str().expect("utf-8")]);
}
