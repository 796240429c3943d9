//! `berth pull`, `login` and `logout` against a real registry (docker distribution) on 127.0.0.1.
//!
//! Each test starts its own registry (killed by its Drop guard), pushes images built in memory
//! with skopeo or the raw distribution API, and runs the `berth` binary against its own temp
//! root. Nothing leaves 127.0.0.1.

#[path = "common/oci.rs"]
mod oci;
#[path = "common/registry.rs"]
mod registry;

use berth::image::digest::Digest;
use berth::image::manifest::Platform;
use berth::image::reference::Reference;
use berth::image::registry::{
    self as reg, CredentialStore, PullObserver, PullOptions, RegistryError,
};
use berth::image::store::Store;
use oci::{Compression, OciImageBuilder, OciIndexBuilder};
use registry::{free_port, Registry, RegistryAuth, ThrottledProxy, TokenServer};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// ---- fixtures --------------------------------------------------------------------------------

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            tmp: tempfile::Builder::new()
                .prefix("berth-pull-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    /// A fresh directory for an OCI layout.
    fn layout(&self, name: &str) -> PathBuf {
        let p = self.tmp.path().join("layouts").join(name);
        fs::create_dir_all(&p).expect("layout dir");
        p
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.args(args)
            .env("BERTH_ROOT", self.root())
            .env("BERTH_RUN_ROOT", self.tmp.path().join("run"))
            .env(
                "BERTH_CGROUP_PARENT",
                format!("/berth-test-pull-{}", std::process::id()),
            )
            .env_remove("BERTH_INSECURE_REGISTRIES")
            .env_remove("BERTH_LOG_LEVEL")
            .stdin(Stdio::null());
        cmd
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run berth")
    }

    /// Runs berth, expecting success; returns (stdout, stderr).
    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.berth(args);
        let (stdout, stderr) = texts(&out);
        assert!(
            out.status.success(),
            "berth {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}"
        );
        (stdout, stderr)
    }

    /// Runs berth, expecting failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        let (stdout, stderr) = texts(&out);
        assert!(
            !out.status.success(),
            "berth {args:?} succeeded unexpectedly:\nstdout: {stdout}\nstderr: {stderr}"
        );
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        stderr
    }

    fn store(&self) -> Store {
        Store::open(&self.root()).expect("open store")
    }

    /// Full names of the tags `berth images` would list, and the count of images.
    fn images(&self) -> (Vec<String>, usize) {
        let list = self.store().images().expect("list images");
        let mut tags: Vec<String> = list.iter().flat_map(|i| i.tags.clone()).collect();
        tags.sort();
        (tags, list.len())
    }

    /// Content of `path` in the image's merged layers (top-most layer that has it).
    fn file_in_image(&self, image: &str, path: &str) -> Option<Vec<u8>> {
        let store = self.store();
        let record = store.resolve(image).expect("resolve image");
        store
            .layer_dirs(&record)
            .iter()
            .rev()
            .find_map(|d| fs::read(d.join(path)).ok())
    }
}

fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn small_image(tag_text: &str) -> OciImageBuilder {
    OciImageBuilder::new()
        .layer(vec![
            ("etc/hello", b"hi\n".as_slice(), 0o644),
            ("bin/tool", b"#!/bin/sh\n".as_slice(), 0o755),
        ])
        .layer(vec![("etc/version", tag_text.as_bytes(), 0o644)])
}

/// Counts a library pull's events.
#[derive(Default)]
struct Counter {
    events: Mutex<Vec<String>>,
}

impl Counter {
    fn count(&self, prefix: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }
}

impl PullObserver for Counter {
    fn layer_exists(&self, blob: &Digest) {
        self.events.lock().unwrap().push(format!("exists {blob}"));
    }
    fn layer_started(&self, blob: &Digest, _size: u64) {
        self.events.lock().unwrap().push(format!("started {blob}"));
    }
    fn layer_done(&self, blob: &Digest) {
        self.events.lock().unwrap().push(format!("done {blob}"));
    }
}

// ---- pulls -----------------------------------------------------------------------------------

#[test]
fn pull_by_tag_oci_gzip_and_again_downloads_nothing() {
    let env = Env::new();
    let registry = Registry::start();
    let layout = env.layout("app");
    let built = small_image("v1").build(&layout, "v1");
    registry.push(&layout, "v1", "team/app:v1", &[]);
    let name = format!("{}/team/app:v1", registry.host());

    let (stdout, stderr) = env.ok(&["pull", &name]);
    assert!(
        stdout.contains(&format!("Digest: {}", built.manifest_digest)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Status: Downloaded newer image for {name}")),
        "{stdout}"
    );
    for d in &built.layer_digests {
        let short = &d[7..19];
        assert!(
            stderr.contains(&format!("{short}: downloading")),
            "{stderr}"
        );
        assert!(stderr.contains(&format!("{short}: done")), "{stderr}");
    }
    assert_eq!(env.images(), (vec![name.clone()], 1));
    assert_eq!(
        env.file_in_image(&name, "etc/hello").as_deref(),
        Some(&b"hi\n"[..])
    );
    assert_eq!(
        env.file_in_image(&name, "etc/version").as_deref(),
        Some(&b"v1"[..])
    );
    let record = env.store().resolve(&name).unwrap();
    assert_eq!(record.id.to_string(), built.config_digest);
    assert_eq!(
        record.repo_digests,
        vec![format!(
            "{}/team/app@{}",
            registry.host(),
            built.manifest_digest
        )]
    );
    assert_eq!(record.architecture, "amd64");

    // Again: every layer is known, nothing is downloaded, and docker's words say so.
    let (stdout, stderr) = env.ok(&["pull", &name]);
    assert!(
        stdout.contains(&format!("Status: Image is up to date for {name}")),
        "{stdout}"
    );
    assert!(!stderr.contains("downloading"), "{stderr}");
    assert_eq!(stderr.matches("already exists").count(), 2, "{stderr}");
    assert_eq!(env.images().1, 1);
}

#[test]
fn docker_schema2_manifests_pull() {
    let env = Env::new();
    let registry = Registry::start();
    let layout = env.layout("d");
    small_image("schema2").build(&layout, "v1");
    registry.push(&layout, "v1", "dock:v1", &["--format", "v2s2"]);
    let (manifest, content_type) = registry.get_manifest("dock", "v1");
    assert_eq!(
        content_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let name = format!("{}/dock:v1", registry.host());
    let (stdout, _) = env.ok(&["pull", &name]);
    assert!(
        stdout.contains(&format!("Digest: {}", oci::sha256(&manifest))),
        "{stdout}"
    );
    assert_eq!(
        env.file_in_image(&name, "etc/version").as_deref(),
        Some(&b"schema2"[..])
    );
    let record = env.store().resolve(&name).unwrap();
    assert!(record
        .layers
        .iter()
        .all(|l| l.media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip"));
}

#[test]
fn zstd_and_uncompressed_layers_pull() {
    let env = Env::new();
    let registry = Registry::start();
    let layout = env.layout("z");
    small_image("zstd")
        .compression(Compression::Zstd)
        .build(&layout, "v1");
    registry.push(&layout, "v1", "zs:v1", &[]);
    let (manifest, _) = registry.get_manifest("zs", "v1");
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert!(
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["mediaType"] == Compression::Zstd.media_type()),
        "skopeo changed the layers: {m}"
    );
    let name = format!("{}/zs:v1", registry.host());
    env.ok(&["pull", &name]);
    assert_eq!(
        env.file_in_image(&name, "etc/version").as_deref(),
        Some(&b"zstd"[..])
    );

    // Plain tar layers, pushed byte for byte (skopeo would compress them).
    let plain = env.layout("plain");
    let built = small_image("plain")
        .compression(Compression::None)
        .build(&plain, "v1");
    let mut blobs: Vec<Vec<u8>> = built
        .layer_digests
        .iter()
        .map(|d| fs::read(plain.join("blobs/sha256").join(&d[7..])).unwrap())
        .collect();
    blobs.push(built.config.clone());
    registry.push_raw("plain", "v1", oci::OCI_MANIFEST, &built.manifest, &blobs);
    let name = format!("{}/plain:v1", registry.host());
    let (stdout, _) = env.ok(&["pull", &name]);
    assert!(stdout.contains(&built.manifest_digest), "{stdout}");
    assert_eq!(
        env.file_in_image(&name, "etc/version").as_deref(),
        Some(&b"plain"[..])
    );
    // The two images share their bottom layer's diff id (same tar): stored once.
    assert_eq!(env.store().images().unwrap().len(), 2);
}

#[test]
fn pull_by_digest_verifies_and_leaves_the_image_untagged() {
    let env = Env::new();
    let registry = Registry::start();
    let layout = env.layout("a");
    let built = small_image("bydigest").build(&layout, "v1");
    registry.push(&layout, "v1", "app:v1", &[]);
    let name = format!("{}/app@{}", registry.host(), built.manifest_digest);
    let (stdout, _) = env.ok(&["pull", &name]);
    assert!(
        stdout.contains(&format!("Status: Downloaded newer image for {name}")),
        "{stdout}"
    );
    assert_eq!(env.images(), (vec![], 1));
    // `berth run NAME@DIGEST` finds it by its repo digest.
    assert_eq!(
        env.store().resolve(&name).unwrap().id.to_string(),
        built.config_digest
    );

    // A digest the registry does not have: nothing changes.
    let missing = format!("{}/app@{}", registry.host(), Digest::of(b"nothing"));
    let err = env.fails(&["pull", &missing]);
    assert!(
        err.contains(&format!(
            "manifest {} does not exist in app at {}",
            Digest::of(b"nothing"),
            registry.host()
        )),
        "{err}"
    );
    assert_eq!(env.images().1, 1);
}

#[test]
fn multi_platform_index_picks_the_host_or_the_asked_platform() {
    let env = Env::new();
    let registry = Registry::start();
    let layout = env.layout("multi");
    let index = OciIndexBuilder::new()
        .image(OciImageBuilder::new().layer(vec![("arch", b"amd64".as_slice(), 0o644)]))
        .image(
            OciImageBuilder::new()
                .platform("linux", "arm64", Some("v8"))
                .layer(vec![("arch", b"arm64".as_slice(), 0o644)]),
        )
        .build(&layout, "v1");
    registry.push(&layout, "v1", "multi:v1", &["--all"]);
    let name = format!("{}/multi:v1", registry.host());

    let host = Platform::host().architecture;
    if host == "amd64" || host == "arm64" {
        let (stdout, _) = env.ok(&["pull", &name]);
        assert!(
            stdout.contains(&format!("Digest: {}", index.index_digest)),
            "{stdout}"
        );
        assert_eq!(
            env.file_in_image(&name, "arch"),
            Some(host.as_bytes().to_vec())
        );
    }
    let (stdout, _) = env.ok(&["pull", "--platform", "linux/arm64", &name]);
    assert!(
        stdout.contains(&format!("Digest: {}", index.index_digest)),
        "{stdout}"
    );
    assert_eq!(
        env.file_in_image(&name, "arch").as_deref(),
        Some(&b"arm64"[..])
    );
    let record = env.store().resolve(&name).unwrap();
    assert_eq!(
        (
            record.architecture.as_str(),
            record.manifest.as_ref().map(|d| d.to_string())
        ),
        ("arm64", Some(index.images[1].manifest_digest.clone()))
    );
    env.ok(&["pull", "--platform", "linux/amd64", &name]);
    assert_eq!(
        env.file_in_image(&name, "arch").as_deref(),
        Some(&b"amd64"[..])
    );

    let before = env.images();
    let err = env.fails(&["pull", "--platform", "linux/s390x", &name]);
    assert!(
        err.contains("no linux/s390x variant") && err.contains("linux/amd64, linux/arm64/v8"),
        "{err}"
    );
    let err = env.fails(&["pull", "--platform", "s390x", &name]);
    assert!(err.contains("invalid platform"), "{err}");
    assert_eq!(env.images(), before);
}

#[test]
fn layers_already_stored_are_not_downloaded_again() {
    let env = Env::new();
    let registry = Registry::start();
    let proxy = ThrottledProxy::start(registry.port, 1 << 30);
    let layout = env.layout("l");
    let base = vec![("big", oci::incompressible(1 << 20, 7), 0o644)];
    let one = OciImageBuilder::new()
        .layer(base.clone())
        .layer(vec![("one", b"1".to_vec(), 0o644)])
        .build(&layout, "one");
    let two = OciImageBuilder::new()
        .layer(base)
        .layer(vec![("two", b"2".to_vec(), 0o644)])
        .build(&layout, "two");
    registry.push(&layout, "one", "app:one", &[]);
    registry.push(&layout, "two", "app:two", &[]);

    // Through the library, counting what it does.
    let store = Store::open(&env.root()).unwrap();
    let creds = CredentialStore::new(&env.root());
    let counter = Counter::default();
    let r = Reference::parse(&format!("{}/app:one", proxy.host())).unwrap();
    let pulled = reg::pull(&store, &creds, &r, &PullOptions::default(), &counter).unwrap();
    assert_eq!(
        (
            pulled.downloaded.len(),
            pulled.existing.len(),
            counter.count("started")
        ),
        (2, 0, 2)
    );
    assert!(proxy.bytes_sent() > 1 << 20);

    let sent = proxy.bytes_sent();
    let counter = Counter::default();
    let r = Reference::parse(&format!("{}/app:two", proxy.host())).unwrap();
    let pulled = reg::pull(&store, &creds, &r, &PullOptions::default(), &counter).unwrap();
    assert_eq!(
        pulled.existing,
        vec![Digest::of(
            &fs::read(layout.join("blobs/sha256").join(&two.layer_digests[0][7..])).unwrap()
        )]
    );
    assert_eq!(
        pulled
            .downloaded
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>(),
        vec![two.layer_digests[1].clone()]
    );
    assert_eq!((counter.count("exists"), counter.count("started")), (1, 1));
    assert!(
        proxy.bytes_sent() - sent < 64 << 10,
        "{} bytes for a one-byte layer",
        proxy.bytes_sent() - sent
    );
    assert!(!pulled.up_to_date);

    let sent = proxy.bytes_sent();
    let r = Reference::parse(&format!("{}/app:one", proxy.host())).unwrap();
    let pulled = reg::pull(
        &store,
        &creds,
        &r,
        &PullOptions::default(),
        &Counter::default(),
    )
    .unwrap();
    assert!(pulled.up_to_date && pulled.downloaded.is_empty());
    assert_eq!(pulled.id.to_string(), one.config_digest);
    assert!(proxy.bytes_sent() - sent < 16 << 10);
}

// ---- errors ----------------------------------------------------------------------------------

#[test]
fn nonexistent_tag_and_unreachable_registry_fail_clearly_and_change_nothing() {
    let env = Env::new();
    let registry = Registry::start();
    let layout = env.layout("a");
    small_image("x").build(&layout, "v1");
    registry.push(&layout, "v1", "app:v1", &[]);

    let err = env.fails(&["pull", &format!("{}/app:nope", registry.host())]);
    assert!(
        err.contains(&format!(
            "tag \"nope\" does not exist in app at {}",
            registry.host()
        )),
        "{err}"
    );
    let err = env.fails(&["pull", &format!("{}/other:v1", registry.host())]);
    assert!(
        err.contains("does not exist") && err.contains("other"),
        "{err}"
    );

    let port = free_port();
    let err = env.fails(&["pull", &format!("127.0.0.1:{port}/app:v1")]);
    assert!(
        err.contains(&format!("cannot reach registry 127.0.0.1:{port}"))
            && err.contains("connection refused"),
        "{err}"
    );
    assert!(err.contains("check the registry address"), "{err}");

    let err = env.fails(&["pull", "app:"]);
    assert!(err.contains("invalid reference"), "{err}");
    assert_eq!(env.images(), (vec![], 0));
    let layers: Vec<_> = fs::read_dir(env.root().join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        layers,
        vec![std::ffi::OsString::from("l")],
        "no layer was stored"
    );
}

#[test]
fn corrupt_blobs_from_the_registry_are_refused_and_nothing_is_kept() {
    let env = Env::new();
    let registry = Registry::start();
    let layout = env.layout("c");
    let built = OciImageBuilder::new()
        .layer(vec![("a", oci::incompressible(64 << 10, 1), 0o644)])
        .layer(vec![("b", oci::incompressible(64 << 10, 2), 0o644)])
        .build(&layout, "v1");
    registry.push(&layout, "v1", "c:v1", &[]);
    // Same length, other bytes: only the digest can tell.
    let path = registry.blob_data_path(&built.layer_digests[1]);
    let mut data = fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::write(&path, &data).unwrap();

    let err = env.fails(&["pull", &format!("{}/c:v1", registry.host())]);
    assert!(
        err.contains(&format!("layer {}: ", built.layer_digests[1])) && err.contains("corrupt"),
        "{err}"
    );
    assert_eq!(env.images().1, 0);
    let layers: Vec<_> = fs::read_dir(env.root().join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        layers,
        vec![std::ffi::OsString::from("l")],
        "the good layer was rolled back too"
    );
}

#[test]
fn library_errors_are_typed() {
    let env = Env::new();
    let registry = Registry::start();
    let layout = env.layout("a");
    small_image("x")
        .config_media_type("application/vnd.cncf.helm.config.v1+json")
        .build(&layout, "chart");
    registry.push(&layout, "chart", "chart:v1", &[]);
    let store = Store::open(&env.root()).unwrap();
    let creds = CredentialStore::new(&env.root());
    let pull = |name: &str| {
        reg::pull(
            &store,
            &creds,
            &Reference::parse(name).unwrap(),
            &PullOptions::default(),
            &Counter::default(),
        )
    };
    match pull(&format!("{}/chart:v1", registry.host())) {
        Err(e @ RegistryError::NotAnImage { .. }) => {
            assert!(e.to_string().contains("is not a container image"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        pull(&format!("{}/chart:v2", registry.host())),
        Err(RegistryError::ManifestUnknown { .. })
    ));
    assert!(matches!(
        pull(&format!("127.0.0.1:{}/x:v1", free_port())),
        Err(RegistryError::Unreachable { .. })
    ));
    assert_eq!(store.images().unwrap().len(), 0);
}

// ---- authentication --------------------------------------------------------------------------

#[test]
fn basic_auth_login_pull_logout() {
    let env = Env::new();
    let registry = Registry::start_with(RegistryAuth::Htpasswd {
        user: "alice".into(),
        password: "s3cret".into(),
    });
    let layout = env.layout("p");
    small_image("private").build(&layout, "v1");
    registry.push(&layout, "v1", "private:v1", &[]);
    let host = registry.host();
    let name = format!("{host}/private:v1");
    let auth_json = env.root().join("auth.json");

    let err = env.fails(&["pull", &name]);
    assert!(
        err.contains(&format!("authentication to {host} failed"))
            && err.contains(&format!("berth login {host}")),
        "{err}"
    );

    let err = env.fails(&["login", "-u", "alice", "-p", "wrong", &host]);
    assert!(
        err.contains(&format!("login to {host} failed")) && err.contains("nothing was stored"),
        "{err}"
    );
    assert!(!auth_json.exists());

    let mut child = env
        .command(&["login", "-u", "alice", "--password-stdin", &host])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(
        out.status.success() && stdout.contains("Login Succeeded"),
        "{stdout}{stderr}"
    );
    assert_eq!(fs::metadata(&auth_json).unwrap().mode() & 0o777, 0o600);
    let stored = CredentialStore::new(&env.root())
        .get(&host)
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.username.as_str(), stored.password.as_str()),
        ("alice", "s3cret")
    );

    env.ok(&["pull", &name]);
    assert_eq!(
        env.file_in_image(&name, "etc/version").as_deref(),
        Some(&b"private"[..])
    );

    // A wrong password on top of a stored one is refused and leaves the stored one alone.
    env.fails(&["login", "-u", "alice", "-p", "bad", &host]);
    assert_eq!(
        CredentialStore::new(&env.root())
            .get(&host)
            .unwrap()
            .unwrap()
            .password,
        "s3cret"
    );

    let (stdout, _) = env.ok(&["logout", &host]);
    assert!(
        stdout.contains(&format!("Removing login credentials for {host}")),
        "{stdout}"
    );
    assert_eq!(CredentialStore::new(&env.root()).get(&host).unwrap(), None);
    let (stdout, _) = env.ok(&["logout", &host]);
    assert!(stdout.contains("Not logged in"), "{stdout}");
    assert_eq!(fs::metadata(&auth_json).unwrap().mode() & 0o777, 0o600);
}

#[test]
fn token_auth_login_and_pull() {
    let env = Env::new();
    let tokens = TokenServer::start("bob", "tok3n");
    let registry = Registry::start_with(tokens.registry_auth());
    let layout = env.layout("t");
    small_image("token").build(&layout, "v1");
    registry.push_with_creds(&layout, "v1", "team/secret:v1", "bob:tok3n", &[]);
    let host = registry.host();
    let name = format!("{host}/team/secret:v1");

    // Anonymous: the token grants nothing, so the registry refuses.
    let err = env.fails(&["pull", &name]);
    assert!(
        err.contains(&format!("authentication to {host} failed")),
        "{err}"
    );
    let err = env.fails(&["login", "-u", "bob", "-p", "nope", &host]);
    assert!(
        err.contains("login to") && err.contains("nothing was stored"),
        "{err}"
    );
    assert!(!env.root().join("auth.json").exists());

    env.ok(&["login", "-u", "bob", "-p", "tok3n", &host]);
    let (stdout, _) = env.ok(&["pull", &name]);
    assert!(stdout.contains("Downloaded newer image"), "{stdout}");
    assert_eq!(
        env.file_in_image(&name, "etc/version").as_deref(),
        Some(&b"token"[..])
    );
    let requests = tokens.requests.lock().unwrap().clone();
    let pull_request = requests
        .iter()
        .rev()
        .find(|(_, valid)| *valid)
        .expect("an authenticated token request");
    assert!(
        pull_request
            .0
            .contains("scope=repository%3Ateam%2Fsecret%3Apull"),
        "{requests:?}"
    );
    assert!(
        pull_request.0.contains("service=berth-test-registry")
            && pull_request.0.contains("account=bob"),
        "{requests:?}"
    );
}

// ---- interruption ----------------------------------------------------------------------------

#[test]
fn pull_killed_mid_download_leaves_no_image_and_the_next_pull_completes() {
    let env = Env::new();
    let registry = Registry::start();
    let layout = env.layout("big");
    let mut image = OciImageBuilder::new().compression(Compression::None);
    for i in 0..3 {
        image = image.layer(vec![(
            format!("data/{i}"),
            oci::incompressible(8 << 20, i),
            0o644,
        )]);
    }
    image.build(&layout, "v1");
    registry.push(&layout, "v1", "big:v1", &[]);
    // 24 MiB at 4 MiB/s: the kill lands well inside the download.
    let proxy = ThrottledProxy::start(registry.port, 4 << 20);
    let name = format!("{}/big:v1", proxy.host());

    let mut child = env
        .command(&["pull", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines
            .next()
            .expect("berth pull ended before downloading")
            .unwrap();
        if line.contains(": downloading") {
            break;
        }
        assert!(Instant::now() < deadline, "no download started");
    }
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the pull finished before it was killed: make the image bigger"
    );

    let out = env.berth(&["images"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stdout.contains("big"),
        "a killed pull left an image listed:\n{stdout}"
    );
    assert_eq!(env.images().1, 0);

    let (stdout, _) = env.ok(&["pull", &name]);
    assert!(stdout.contains("Downloaded newer image"), "{stdout}");
    let out = env.berth(&["images"]);
    assert!(texts(&out).0.contains("big"), "{}", texts(&out).0);
    assert_eq!(
        env.file_in_image(&name, "data/2").map(|d| d.len()),
        Some(8 << 20)
    );
    // Staging of the killed process was swept when the store was opened again.
    assert_eq!(fs::read_dir(env.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn quiet_pull_prints_only_the_name() {
    let env = Env::new();
    let registry = Registry::start();
    let layout = env.layout("q");
    small_image("q").build(&layout, "v1");
    registry.push(&layout, "v1", "q:v1", &[]);
    let name = format!("{}/q:v1", registry.host());
    let (stdout, stderr) = env.ok(&["pull", "-q", &name]);
    assert_eq!(stdout, format!("{name}\n"));
    assert_eq!(stderr, "");
}

/// An `--insecure-registry` name is needed for plain HTTP anywhere but loopback; here the
/// registry is on loopback, so only the parsing is exercised.
#[test]
fn insecure_registry_flags_are_checked() {
    let env = Env::new();
    let err = env.fails(&[
        "pull",
        "--insecure-registry",
        "10.0.0.0/99",
        "127.0.0.1:1/x:v1",
    ]);
    assert!(err.contains("invalid --insecure-registry"), "{err}");
}
