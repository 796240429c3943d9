//! Overlay container roots on the real kernel (run as root).
//!
//! Each test works in its own temp dir; `Env`'s Drop detaches every mount under it before the
//! dir is deleted, so nothing leaks even when a test panics.

use berth::rootfs::{mount_overlay_with, ContainerRootfs, LowerLayers, MountApi, RootfsError};
use rand::Rng;
use rustix::fs::{FileType, Mode, XattrFlags, CWD};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

// ---- fixtures --------------------------------------------------------------------------------

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("berth-rootfs-")
            .tempdir()
            .expect("create temp dir");
        Env { tmp }
    }

    fn path(&self) -> PathBuf {
        fs::canonicalize(self.tmp.path()).expect("canonical temp dir")
    }

    /// A layer store at `<tmp>/<sub>/layers`, as `image::store` lays it out.
    fn store(&self, sub: &str) -> Store {
        let base = self.path().join(sub).join("layers");
        fs::create_dir_all(base.join("l")).expect("create layers/l");
        Store {
            base,
            top_first: Vec::new(),
            dirs: Vec::new(),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let root = self.path();
        // Several rounds: mounts can be stacked.
        for _ in 0..8 {
            let under = mounts_under(&root);
            if under.is_empty() {
                break;
            }
            for m in under.iter().rev() {
                let _ = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH);
            }
        }
    }
}

/// Mount points at or below `dir` in this thread's mount namespace, in table order.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/thread-self/mountinfo").expect("read mountinfo");
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect()
}

#[derive(Clone)]
enum E {
    File(&'static str),
    Exec(&'static str),
    Dir,
    Whiteout,
    Opaque,
    Link(&'static str),
}

struct Store {
    base: PathBuf,
    /// Short links relative to `base`, TOP-most first.
    top_first: Vec<String>,
    /// Layer diff dirs, bottom-most first.
    dirs: Vec<PathBuf>,
}

impl Store {
    /// Adds a layer on top: `<base>/<hex>/diff` holding `entries`, and `<base>/l/<id>` →
    /// `../<hex>/diff`. Returns its diff dir.
    fn layer(&mut self, entries: &[(&str, E)]) -> PathBuf {
        let mut rng = rand::thread_rng();
        let hex = hex::encode(rng.gen::<[u8; 32]>());
        let diff = self.base.join(&hex).join("diff");
        fs::create_dir_all(&diff).expect("create diff dir");
        fs::set_permissions(&diff, fs::Permissions::from_mode(0o755)).expect("chmod diff");
        for (path, e) in entries {
            let p = diff.join(path.trim_start_matches('/'));
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).expect("create parent");
            }
            match e {
                E::File(s) => fs::write(&p, s).expect("write file"),
                E::Exec(s) => {
                    fs::write(&p, s).expect("write file");
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
                }
                E::Dir => fs::create_dir_all(&p).expect("mkdir"),
                E::Whiteout => {
                    rustix::fs::mknodat(CWD, &p, FileType::CharacterDevice, Mode::empty(), 0)
                        .expect("mknod whiteout")
                }
                E::Opaque => {
                    fs::create_dir_all(&p).expect("mkdir opaque");
                    rustix::fs::lsetxattr(&p, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                        .expect("set opaque xattr");
                }
                E::Link(t) => std::os::unix::fs::symlink(t, &p).expect("symlink"),
            }
        }
        const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let id: String = (0..10)
            .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char)
            .collect();
        std::os::unix::fs::symlink(format!("../{hex}/diff"), self.base.join("l").join(&id))
            .expect("link");
        self.top_first.insert(0, format!("l/{id}"));
        self.dirs.push(diff.clone());
        diff
    }

    fn lowers(&self) -> LowerLayers {
        LowerLayers::new(&self.base, self.top_first.clone())
    }

    /// Fingerprints of every layer dir.
    fn fingerprint(&self) -> Vec<BTreeMap<String, String>> {
        self.dirs.iter().map(|d| tree(d)).collect()
    }
}

/// Path → type, mode, owner, device, xattrs and content hash, for every entry under `root`.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).expect("lstat");
        let rel = p
            .strip_prefix(root)
            .expect("under root")
            .display()
            .to_string();
        let ft = m.file_type();
        let content = if ft.is_file() {
            hex::encode(Sha256::digest(fs::read(&p).expect("read")))
        } else if ft.is_symlink() {
            fs::read_link(&p).expect("readlink").display().to_string()
        } else {
            String::new()
        };
        let mut names = vec![0u8; 4096];
        let n = rustix::fs::llistxattr(&p, &mut names).unwrap_or(0);
        let mut xattrs = Vec::new();
        for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
            let name = String::from_utf8_lossy(name).to_string();
            let mut v = vec![0u8; 4096];
            let len = rustix::fs::lgetxattr(&p, name.as_str(), &mut v).unwrap_or(0);
            xattrs.push(format!("{name}={}", hex::encode(&v[..len])));
        }
        out.insert(
            rel,
            format!(
                "mode={:o} uid={} gid={} rdev={} xattrs={:?} {content}",
                m.mode(),
                m.uid(),
                m.gid(),
                m.rdev(),
                xattrs
            ),
        );
        if ft.is_dir() {
            for e in fs::read_dir(&p).expect("readdir") {
                stack.push(e.expect("entry").path());
            }
        }
    }
    out
}

fn is_whiteout(p: &Path) -> bool {
    fs::symlink_metadata(p)
        .map(|m| m.file_type().is_char_device() && m.rdev() == 0)
        .unwrap_or(false)
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse::<u32>().ok());
    let (a, b) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

/// Both mount paths: mount(2) everywhere, layer fds where the kernel has them (6.13+).
fn apis() -> Vec<MountApi> {
    let mut v = vec![MountApi::Legacy, MountApi::Auto];
    if kernel_at_least(6, 13) {
        v.push(MountApi::LayerFds);
    }
    v
}

fn create(env: &Env, name: &str, lowers: LowerLayers) -> ContainerRootfs {
    ContainerRootfs::create(&env.path().join("containers").join(name), lowers)
        .unwrap_or_else(|e| panic!("create {name}: {e}"))
}

// ---- 1. writes land in upper; layers stay untouched -------------------------------------------

#[test]
fn writes_land_in_upper_and_layers_stay_untouched() {
    for api in apis() {
        let env = Env::new();
        let mut store = env.store("s");
        store.layer(&[
            ("etc/passwd", E::File("root:x:0:0\n")),
            ("etc/hosts", E::File("127.0.0.1 localhost\n")),
            ("bin/sh", E::Exec("#!sh\n")),
            ("data/dir/a", E::File("a")),
            ("data/dir/b", E::File("b")),
            ("old/x", E::File("x")),
            ("usr/lib/l.so", E::File("lib")),
        ]);
        store.layer(&[("etc/motd", E::File("hi\n")), ("bin/ls", E::Link("sh"))]);
        let before = store.fingerprint();

        let root = create(&env, "c1", store.lowers());
        root.mount_at_with(root.merged(), api)
            .unwrap_or_else(|e| panic!("{api:?}: {e}"));
        assert!(root.is_mounted());
        let m = root.merged().to_path_buf();
        assert_eq!(read(&m.join("etc/passwd")), "root:x:0:0\n");
        assert_eq!(read(&m.join("bin/ls")), "#!sh\n");

        // modify, chmod, delete (file and dir), rename, create
        fs::write(m.join("etc/passwd"), "root:x:0:0\nme:x:1000:1000\n").expect("modify");
        fs::set_permissions(m.join("bin/sh"), fs::Permissions::from_mode(0o700)).expect("chmod");
        fs::remove_file(m.join("etc/hosts")).expect("delete file");
        fs::remove_dir_all(m.join("old")).expect("delete dir");
        fs::rename(m.join("data/dir/a"), m.join("data/dir/a2")).expect("rename");
        fs::create_dir_all(m.join("new/deep")).expect("mkdir");
        fs::write(m.join("new/deep/file"), "new").expect("create");
        fs::write(m.join("etc/motd"), "changed").expect("modify top layer file");

        assert!(!m.join("etc/hosts").exists());
        assert!(!m.join("old").exists());
        assert_eq!(read(&m.join("data/dir/a2")), "a");
        assert_eq!(read(&m.join("usr/lib/l.so")), "lib");

        let u = root.upper().to_path_buf();
        assert_eq!(read(&u.join("etc/passwd")), "root:x:0:0\nme:x:1000:1000\n");
        assert_eq!(read(&u.join("new/deep/file")), "new");
        assert_eq!(read(&u.join("etc/motd")), "changed");
        assert_eq!(
            fs::metadata(u.join("bin/sh")).expect("copied up").mode() & 0o777,
            0o700
        );
        assert!(
            is_whiteout(&u.join("etc/hosts")),
            "{api:?}: delete of a file is a whiteout"
        );
        assert!(
            is_whiteout(&u.join("old")),
            "{api:?}: delete of a dir is a whiteout"
        );
        assert!(
            is_whiteout(&u.join("data/dir/a")),
            "{api:?}: rename source is a whiteout"
        );
        assert!(!u.join("usr").exists(), "untouched files are not copied up");

        root.unmount().expect("unmount");
        assert!(!root.is_mounted());
        assert_eq!(store.fingerprint(), before, "{api:?}: a layer changed");
        // The writes persist in upper after unmount, and a remount shows them again.
        root.mount_at_with(root.merged(), api).expect("remount");
        assert_eq!(read(&m.join("new/deep/file")), "new");
        assert!(!m.join("etc/hosts").exists());
        root.remove().expect("remove");
        assert_eq!(store.fingerprint(), before);
    }
}

// ---- 2. layer order, whiteouts and opaque dirs ------------------------------------------------

#[test]
fn higher_layers_shadow_whiteout_and_make_opaque() {
    for api in apis() {
        let env = Env::new();
        let mut store = env.store("s");
        store.layer(&[
            ("a", E::File("0")),
            ("b", E::File("0")),
            ("c", E::File("0")),
            ("d/x", E::File("0")),
            ("d/y", E::File("0")),
            ("e/keep", E::File("0")),
        ]);
        store.layer(&[("a", E::File("1")), ("b", E::Whiteout), ("c", E::File("1"))]);
        store.layer(&[
            ("c", E::File("2")),
            ("d", E::Opaque),
            ("d/z", E::File("2")),
            ("e/new", E::File("2")),
        ]);
        let root = create(&env, "c", store.lowers());
        root.mount_at_with(root.merged(), api)
            .unwrap_or_else(|e| panic!("{api:?}: {e}"));
        let m = root.merged();
        assert_eq!(read(&m.join("a")), "1", "{api:?}: layer 1 shadows layer 0");
        assert_eq!(read(&m.join("c")), "2", "{api:?}: the top layer wins");
        assert!(
            !m.join("b").exists(),
            "{api:?}: a whiteout hides the lower file"
        );
        let mut d: Vec<String> = fs::read_dir(m.join("d"))
            .expect("read d")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        d.sort();
        assert_eq!(d, ["z"], "{api:?}: an opaque dir hides lower contents");
        assert_eq!(read(&m.join("e/keep")), "0", "{api:?}: plain dirs merge");
        assert_eq!(read(&m.join("e/new")), "2");
        root.remove().expect("remove");
    }
}

#[test]
fn a_single_layer_image_mounts() {
    for api in apis() {
        let env = Env::new();
        let mut store = env.store("s");
        store.layer(&[("bin/true", E::Exec("#!"))]);
        let root = create(&env, "c", store.lowers());
        root.mount_at_with(root.merged(), api)
            .unwrap_or_else(|e| panic!("{api:?}: {e}"));
        fs::write(root.merged().join("x"), "y").expect("write");
        assert_eq!(read(&root.merged().join("bin/true")), "#!");
        assert_eq!(read(&root.upper().join("x")), "y");
        // The container's root dir takes its mode from upper: 0755 whatever the umask.
        assert_eq!(
            fs::metadata(root.merged()).expect("stat").mode() & 0o777,
            0o755
        );
        root.remove().expect("remove");
    }
}

// ---- 3. many layers, deep base path -----------------------------------------------------------

fn deep_store(env: &Env, layers: usize) -> Store {
    // Three long components: absolute layer paths would be ~680 bytes each.
    let sub = format!(
        "{}/{}/{}",
        "b".repeat(200),
        "e".repeat(200),
        "r".repeat(200)
    );
    let mut store = env.store(&sub);
    for i in 0..layers {
        let name = format!("f{i:03}");
        let content: &'static str = Box::leak(format!("{i}").into_boxed_str());
        store.layer(&[(name.as_str(), E::File(content)), ("top", E::File(content))]);
    }
    let absolute: usize = store.dirs.iter().map(|d| d.as_os_str().len() + 1).sum();
    assert!(
        absolute > 4096,
        "the test must not fit with absolute paths ({absolute} bytes)"
    );
    store
}

fn check_many(env: &Env, store: &Store, api: MountApi, name: &str) {
    let n = store.dirs.len();
    let root = create(env, name, store.lowers());
    root.mount_at_with(root.merged(), api)
        .unwrap_or_else(|e| panic!("{api:?} with {n} layers: {e}"));
    for i in 0..n {
        assert_eq!(read(&root.merged().join(format!("f{i:03}"))), i.to_string());
    }
    assert_eq!(
        read(&root.merged().join("top")),
        (n - 1).to_string(),
        "top-most wins"
    );
    root.remove().expect("remove");
}

#[test]
fn one_hundred_twenty_eight_layers() {
    let env = Env::new();
    let store = deep_store(&env, 128);
    for (i, api) in apis().into_iter().enumerate() {
        check_many(&env, &store, api, &format!("c{i}"));
    }
}

#[test]
fn three_hundred_layers() {
    let env = Env::new();
    let store = deep_store(&env, 300);
    for (i, api) in apis().into_iter().enumerate() {
        check_many(&env, &store, api, &format!("c{i}"));
    }
}

#[test]
fn five_hundred_layers_by_fd_and_a_clear_error_from_mount2() {
    let env = Env::new();
    let store = deep_store(&env, 500);
    if kernel_at_least(6, 13) {
        check_many(&env, &store, MountApi::LayerFds, "fds");
        check_many(&env, &store, MountApi::Auto, "auto");
    }
    let root = create(&env, "legacy", store.lowers());
    match root.mount_at_with(root.merged(), MountApi::Legacy) {
        Err(e @ RootfsError::OptionsTooLong { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("500 layers") && msg.contains("squash"),
                "{msg}"
            );
        }
        other => panic!("expected OptionsTooLong, got {other:?}"),
    }
    assert!(!root.is_mounted());
    root.remove().expect("remove");
}

// ---- 4. containers are isolated ---------------------------------------------------------------

#[test]
fn two_containers_from_the_same_layers_are_isolated() {
    let env = Env::new();
    let mut store = env.store("s");
    store.layer(&[("shared", E::File("base"))]);
    store.layer(&[("etc/conf", E::File("v1"))]);
    let before = store.fingerprint();
    let a = create(&env, "a", store.lowers());
    let b = create(&env, "b", store.lowers());
    a.mount_at_with(a.merged(), MountApi::Legacy)
        .expect("mount a");
    b.mount().expect("mount b");
    fs::write(a.merged().join("only-a"), "a").expect("write a");
    fs::write(a.merged().join("shared"), "changed by a").expect("modify a");
    fs::remove_file(b.merged().join("etc/conf")).expect("delete in b");
    assert!(!b.merged().join("only-a").exists());
    assert_eq!(read(&b.merged().join("shared")), "base");
    assert_eq!(read(&a.merged().join("etc/conf")), "v1");
    assert!(!a.upper().join("etc").exists());
    assert!(!b.upper().join("only-a").exists());
    a.remove().expect("remove a");
    assert_eq!(read(&b.merged().join("shared")), "base");
    b.remove().expect("remove b");
    assert_eq!(store.fingerprint(), before);
}

#[test]
fn legacy_mounts_from_many_threads_leave_the_cwd_alone() {
    let env = Env::new();
    let mut store = env.store("s");
    store.layer(&[("f", E::File("x"))]);
    let cwd = std::env::current_dir().expect("cwd");
    let roots: Vec<ContainerRootfs> = (0..8)
        .map(|i| create(&env, &format!("t{i}"), store.lowers()))
        .collect();
    std::thread::scope(|s| {
        for r in &roots {
            s.spawn(move || {
                for _ in 0..5 {
                    r.mount_at_with(r.merged(), MountApi::Legacy)
                        .expect("mount");
                    assert_eq!(read(&r.merged().join("f")), "x");
                    r.unmount().expect("unmount");
                }
            });
        }
    });
    assert_eq!(std::env::current_dir().expect("cwd"), cwd);
    for r in roots {
        r.remove().expect("remove");
    }
}

// ---- 5. nothing leaks -------------------------------------------------------------------------

#[test]
fn remove_leaves_no_mount_and_no_directory() {
    let env = Env::new();
    let mut store = env.store("s");
    store.layer(&[("f", E::File("x"))]);
    let cdir = env.path().join("containers").join("c");
    let root = ContainerRootfs::create(&cdir, store.lowers()).expect("create");
    root.mount().expect("mount");
    fs::write(root.merged().join("g"), "y").expect("write");
    assert!(
        root.work().join("work").exists(),
        "overlayfs made work/work"
    );
    assert_eq!(mounts_under(&cdir).len(), 1);

    // A later process opens and unmounts what an earlier one made and mounted.
    drop(root);
    let root = ContainerRootfs::open(&cdir).expect("open");
    assert!(root.is_mounted());
    assert!(matches!(
        root.mount(),
        Err(RootfsError::AlreadyMounted { .. })
    ));
    root.unmount().expect("unmount");
    root.unmount().expect("unmount twice");
    assert!(!root.is_mounted());
    root.mount().expect("mount again");
    root.remove().expect("remove while mounted");
    assert!(
        mounts_under(&cdir).is_empty(),
        "a mount leaked: {:?}",
        mounts_under(&cdir)
    );
    assert!(!cdir.join("fs").exists(), "fs/ remains");
    assert!(cdir.exists(), "the container dir belongs to the caller");

    // Never mounted.
    let root = ContainerRootfs::create(&env.path().join("containers/d"), store.lowers())
        .expect("create d");
    let fs_dir = root.dir().to_path_buf();
    root.remove().expect("remove never-mounted");
    assert!(!fs_dir.exists());
    assert!(matches!(
        ContainerRootfs::create(&cdir, store.lowers()).map(|r| r.remove()),
        Ok(Ok(()))
    ));
}

#[test]
fn remove_never_deletes_through_a_mount_below_it() {
    let env = Env::new();
    let mut store = env.store("s");
    store.layer(&[("vol", E::Dir)]);
    let volume = env.path().join("volume");
    fs::create_dir(&volume).expect("mkdir volume");
    fs::write(volume.join("precious"), "keep me").expect("write volume");
    let root = create(&env, "c", store.lowers());
    root.mount().expect("mount");
    rustix::mount::mount_bind(&volume, root.merged().join("vol")).expect("bind volume");
    // A mode-000 dir made by the container, like overlayfs' own work/work.
    fs::create_dir(root.merged().join("locked")).expect("mkdir");
    fs::write(root.merged().join("locked/f"), "").expect("write");
    fs::set_permissions(
        root.merged().join("locked"),
        fs::Permissions::from_mode(0o000),
    )
    .expect("chmod");
    let fs_dir = root.dir().to_path_buf();
    root.remove().expect("remove");
    assert!(!fs_dir.exists());
    assert_eq!(read(&volume.join("precious")), "keep me");
    assert!(mounts_under(&env.path().join("containers")).is_empty());
}

// ---- 6. bad input -----------------------------------------------------------------------------

#[test]
fn a_missing_layer_is_a_clear_error_and_nothing_is_made() {
    let env = Env::new();
    let mut store = env.store("s");
    store.layer(&[("f", E::File("x"))]);
    let mut lowers = store.lowers();
    lowers.rel.push("l/doesnotex".into());
    let cdir = env.path().join("containers").join("c");
    let e = ContainerRootfs::create(&cdir, lowers.clone()).expect_err("missing layer");
    assert!(matches!(e, RootfsError::LayerMissing { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("l/doesnotex") && msg.contains("pull or load"),
        "{msg}"
    );
    assert!(!cdir.exists(), "nothing is created half-way");

    // Straight to mount_overlay: nothing mounted, for either API.
    let (upper, work, target) = (
        env.path().join("u"),
        env.path().join("w"),
        env.path().join("t"),
    );
    for d in [&upper, &work, &target] {
        fs::create_dir(d).expect("mkdir");
    }
    for api in apis() {
        let e = mount_overlay_with(api, &lowers, &upper, &work, &target).expect_err("mount");
        assert!(
            matches!(e, RootfsError::LayerMissing { .. }),
            "{api:?}: {e:?}"
        );
        assert!(mounts_under(&env.path()).is_empty());
    }

    // A layer that vanishes after create: mount fails cleanly; the root can still be removed.
    let root = create(&env, "late", store.lowers());
    fs::remove_dir_all(&store.dirs[0]).expect("delete layer");
    for api in apis() {
        let e = root
            .mount_at_with(root.merged(), api)
            .expect_err("mount without layer");
        assert!(
            matches!(e, RootfsError::LayerMissing { .. }),
            "{api:?}: {e}"
        );
        assert!(!root.is_mounted());
    }
    root.remove().expect("remove");
}

#[test]
fn bad_shapes_are_refused_before_touching_anything() {
    let env = Env::new();
    let mut store = env.store("s");
    store.layer(&[("f", E::File("x"))]);
    let cdir = env.path().join("containers").join("c");
    let cases = [
        LowerLayers::new(&store.base, vec![]),
        LowerLayers::new("relative/base", store.top_first.clone()),
        LowerLayers::new(&store.base, vec!["l/../../../etc".into()]),
        LowerLayers::new(
            &store.base,
            vec![store.base.join("l/x").display().to_string()],
        ),
        LowerLayers::new(&store.base, vec![store.top_first[0].clone(); 501]),
    ];
    for lowers in cases {
        let e = ContainerRootfs::create(&cdir, lowers.clone()).expect_err("bad shape");
        assert!(!e.to_string().is_empty());
        assert!(!cdir.exists(), "{e}: created {}", cdir.display());
    }
    // A file where a layer dir should be.
    let file = store.base.join("l").join("afile");
    fs::write(&file, "").expect("write");
    let e = ContainerRootfs::create(&cdir, LowerLayers::new(&store.base, vec!["l/afile".into()]))
        .expect_err("file as layer");
    assert!(matches!(e, RootfsError::NotADirectory { .. }), "{e:?}");
    // Twice, and open of something never made.
    let root = create(&env, "c", store.lowers());
    let e = ContainerRootfs::create(&cdir, store.lowers()).expect_err("twice");
    assert!(matches!(e, RootfsError::AlreadyExists { .. }), "{e:?}");
    let e = ContainerRootfs::open(&env.path().join("containers/none")).expect_err("open");
    assert!(matches!(e, RootfsError::NotPrepared { .. }), "{e:?}");
    root.remove().expect("remove");
}

/// Drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the calling thread's effective set
/// (capabilities are per thread, so other tests keep theirs).
fn drop_dac_caps_of_this_thread() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and the two data structs v3 requires.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget");
    const CAP_DAC_OVERRIDE: u32 = 1;
    const CAP_DAC_READ_SEARCH: u32 = 2;
    data[0].effective &= !((1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH));
    // SAFETY: as above.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset");
}

#[test]
fn remove_handles_overlays_mode_000_work_dir_without_dac_override() {
    let env = Env::new();
    let mut store = env.store("s");
    store.layer(&[("f", E::File("x"))]);
    let root = create(&env, "c", store.lowers());
    root.mount().expect("mount");
    fs::create_dir(root.merged().join("locked")).expect("mkdir");
    fs::write(root.merged().join("locked/f"), "").expect("write");
    fs::set_permissions(
        root.merged().join("locked"),
        fs::Permissions::from_mode(0o000),
    )
    .expect("chmod");
    let fs_dir = root.dir().to_path_buf();
    std::thread::spawn(move || {
        drop_dac_caps_of_this_thread();
        let ww = root.work().join("work");
        assert_eq!(fs::metadata(&ww).expect("stat work/work").mode() & 0o777, 0);
        let denied = fs::read_dir(&ww).map(|_| ()).expect_err("000 dir readable");
        assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
        root.remove().expect("remove without CAP_DAC_OVERRIDE");
    })
    .join()
    .expect("thread");
    assert!(!fs_dir.exists());
}

#[test]
fn mount_options_are_the_chosen_ones() {
    let params = Path::new("/sys/module/overlay/parameters");
    for api in apis() {
        let env = Env::new();
        let mut store = env.store("s");
        store.layer(&[("f", E::File("x"))]);
        store.layer(&[("g", E::File("y"))]);
        let root = create(&env, "c", store.lowers());
        root.mount_at_with(root.merged(), api).expect("mount");
        let merged = root.merged().display().to_string();
        let info = fs::read_to_string("/proc/thread-self/mountinfo").expect("mountinfo");
        let line = info
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(merged.as_str()))
            .expect("mount listed");
        let opts = line.rsplit(' ').next().unwrap_or_default();
        assert!(line.contains(" - overlay overlay "), "{api:?}: {line}");
        assert!(opts.contains("lowerdir"), "{api:?}: {opts}");
        // Defaults are not listed, so check what must not be there, and the non-default one.
        assert!(!opts.contains("index=on"), "{api:?}: {opts}");
        assert!(!opts.contains("metacopy=on"), "{api:?}: {opts}");
        if params.join("redirect_always_follow").exists() {
            assert!(opts.contains("redirect_dir=nofollow"), "{api:?}: {opts}");
        }
        assert!(
            opts.contains(&format!("upperdir={}", root.upper().display())),
            "{opts}"
        );
        if api == MountApi::Legacy {
            assert!(
                opts.contains(&format!("lowerdir={}", store.top_first.join(":"))),
                "{opts}"
            );
        }
        root.remove().expect("remove");
    }
}

#[test]
fn upper_and_work_on_different_mounts_is_a_clear_error() {
    let env = Env::new();
    let mut store = env.store("s");
    store.layer(&[("f", E::File("x"))]);
    let upper = env.path().join("upper");
    let work = env.path().join("tmpfs");
    let target = env.path().join("target");
    for d in [&upper, &work, &target] {
        fs::create_dir(d).expect("mkdir");
    }
    rustix::mount::mount(
        "tmpfs",
        &work,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        "size=1m",
    )
    .expect("mount tmpfs");
    fs::create_dir(upper.join("w")).expect("mkdir upper/w");
    for api in apis() {
        let e = mount_overlay_with(api, &store.lowers(), &upper, &work, &target)
            .expect_err("cross-mount upper/work");
        let msg = e.to_string();
        assert!(
            matches!(e, RootfsError::UpperWorkApart { .. }),
            "{api:?}: {msg}"
        );
        assert!(msg.contains("different mounts") && msg.contains(&work.display().to_string()));
        let e = mount_overlay_with(api, &store.lowers(), &upper, &upper.join("w"), &target)
            .expect_err("nested");
        assert!(e.to_string().contains("inside the other"), "{e}");
        assert!(!mounts_under(&target).iter().any(|m| m == &target));
    }
}

#[test]
fn kernel_refusals_point_to_the_reason() {
    // An overlay as upper: overlayfs refuses it ("not supported as upperdir"), a check only the
    // kernel makes.
    let env = Env::new();
    let mut store = env.store("s");
    store.layer(&[("f", E::File("x")), ("d", E::Dir)]);
    let outer = create(&env, "outer", store.lowers());
    outer.mount().expect("mount outer");
    let upper = outer.merged().join("u");
    let work = outer.merged().join("w");
    let target = env.path().join("target");
    for d in [&upper, &work, &target] {
        fs::create_dir(d).expect("mkdir");
    }
    for api in apis() {
        let e = mount_overlay_with(api, &store.lowers(), &upper, &work, &target)
            .expect_err("overlay as upper");
        let msg = e.to_string();
        assert!(matches!(e, RootfsError::Mount { .. }), "{api:?}: {msg}");
        assert!(msg.contains(&target.display().to_string()), "{msg}");
        assert!(
            msg.contains("dmesg") || msg.contains("kernel: overlay"),
            "{api:?}: {msg}"
        );
        eprintln!("{api:?}: {msg}");
        assert!(!mounts_under(&target).iter().any(|m| m == &target));
    }
    outer.remove().expect("remove");
}
