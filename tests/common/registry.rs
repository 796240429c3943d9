//! A real OCI registry for tests: Debian's `docker-registry` (docker distribution) on
//! 127.0.0.1 with a free port, its own storage and config in a temp dir, killed (by pid) when the
//! guard drops. Images get in with `skopeo copy` or, byte for byte, with [`Registry::push_raw`].
//!
//! Also here: a bearer-token issuer for the registry's `token` auth ([`TokenServer`]), and a
//! bandwidth-limiting TCP proxy that counts what it forwards ([`ThrottledProxy`]).
//!
//! Needs `docker-registry`, `skopeo`, `htpasswd` (apache2-utils) and `openssl`
//! (`scripts/install-deps.sh` installs them). Nothing here talks to any address but 127.0.0.1.
#![allow(dead_code)]

use base64::prelude::{Engine as _, BASE64_STANDARD, BASE64_URL_SAFE_NO_PAD};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Panics with the install hint when a tool the tests need is missing.
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(found, "{name} is not installed: run scripts/install-deps.sh (apt-get install docker-registry skopeo apache2-utils openssl)");
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Waits until `GET /v2/` answers (any status), or the process exits.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        match ureq::get(&format!("http://127.0.0.1:{port}/v2/"))
            .timeout(Duration::from_secs(2))
            .call()
        {
            Ok(_) | Err(ureq::Error::Status(..)) => return true,
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    false
}

fn kill_child(child: &mut Child) {
    // SIGKILL by pid: only the process this guard started.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
}

/// How the registry authenticates.
#[derive(Debug, Clone, Default)]
pub enum RegistryAuth {
    #[default]
    None,
    /// `auth: htpasswd` with one user.
    Htpasswd { user: String, password: String },
    /// `auth: token` trusting `issuer`'s certificate.
    Token {
        realm: String,
        service: String,
        issuer: String,
        cert: PathBuf,
    },
}

/// A running registry; killed on drop.
pub struct Registry {
    pub port: u16,
    pub auth: RegistryAuth,
    child: Child,
    dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(RegistryAuth::None)
    }

    pub fn start_with(auth: RegistryAuth) -> Registry {
        require_tool("docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .expect("temp dir");
        let auth_yaml = match &auth {
            RegistryAuth::None => String::new(),
            RegistryAuth::Htpasswd { user, password } => {
                require_tool("htpasswd");
                let out = Command::new("htpasswd").args(["-Bbn", user, password]).output().expect("run htpasswd");
                assert!(out.status.success(), "htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
                let path = dir.path().join("htpasswd");
                fs::write(&path, &out.stdout).expect("write htpasswd");
                format!("auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n", path.display())
            }
            RegistryAuth::Token { realm, service, issuer, cert } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                cert.display()
            ),
        };
        // The port is free when chosen but could be taken before the registry binds it: retry.
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\n  secret: berth-test-secret\n{auth_yaml}",
                    dir.path().join("storage").display()
                ),
            )
            .expect("write registry config");
            let log = fs::File::create(dir.path().join("registry.log")).expect("registry log");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log fd"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            if wait_ready(&mut child, port) {
                return Registry {
                    port,
                    auth,
                    child,
                    dir,
                };
            }
            kill_child(&mut child);
        }
        panic!("docker-registry did not start on 127.0.0.1 after 5 attempts");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the registry's filesystem storage keeps a blob (`sha256:<hex>`): tests overwrite it
    /// to make the registry serve corrupt content.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The registry's own log, for assertion messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `skopeo copy [extra] oci:LAYOUT:TAG docker://HOST/DEST` (DEST is `repo:tag`).
    pub fn push(&self, layout: &Path, tag: &str, dest: &str, extra: &[&str]) {
        require_tool("skopeo");
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ]);
        let creds;
        if let RegistryAuth::Htpasswd { user, password } = &self.auth {
            creds = format!("{user}:{password}");
            cmd.args(["--dest-creds", &creds]);
        }
        cmd.args(extra);
        cmd.arg(format!("oci:{}:{tag}", layout.display()));
        cmd.arg(format!("docker://{}/{dest}", self.host()));
        let out = cmd.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy to {dest} failed: {}\nregistry log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Like [`push`](Self::push) with explicit credentials (token-auth registries).
    pub fn push_with_creds(
        &self,
        layout: &Path,
        tag: &str,
        dest: &str,
        creds: &str,
        extra: &[&str],
    ) {
        let mut args = vec!["--dest-creds", creds];
        args.extend_from_slice(extra);
        self.push(layout, tag, dest, &args);
    }

    /// Uploads `blobs` and then `manifest` under `reference` exactly as given, through the
    /// distribution API (monolithic uploads). For registries without auth.
    pub fn push_raw(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        manifest: &[u8],
        blobs: &[Vec<u8>],
    ) {
        let base = format!("http://{}", self.host());
        for blob in blobs {
            let digest = format!(
                "sha256:{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(blob))
            );
            let resp = ureq::post(&format!("{base}/v2/{repo}/blobs/uploads/"))
                .call()
                .expect("start blob upload");
            let location = resp
                .header("location")
                .expect("upload location")
                .to_string();
            let url = if location.starts_with("http") {
                location
            } else {
                format!("{base}{location}")
            };
            let sep = if url.contains('?') { '&' } else { '?' };
            ureq::put(&format!("{url}{sep}digest={digest}"))
                .set("Content-Type", "application/octet-stream")
                .send_bytes(blob)
                .unwrap_or_else(|e| panic!("upload blob {digest}: {e}"));
        }
        ureq::put(&format!("{base}/v2/{repo}/manifests/{reference}"))
            .set("Content-Type", media_type)
            .send_bytes(manifest)
            .unwrap_or_else(|e| panic!("put manifest {repo}:{reference}: {e}\n{}", self.log()));
    }

    /// The manifest the registry serves for `repo:reference` (no auth), and its content type.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> (Vec<u8>, String) {
        let accept =
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json, \
                      application/vnd.docker.distribution.manifest.v2+json";
        let resp = ureq::get(&format!(
            "http://{}/v2/{repo}/manifests/{reference}",
            self.host()
        ))
        .set("Accept", accept)
        .call()
        .expect("get manifest");
        let ct = resp.header("content-type").unwrap_or_default().to_string();
        let mut body = Vec::new();
        resp.into_reader()
            .read_to_end(&mut body)
            .expect("read manifest");
        (body, ct)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

/// A TCP proxy on 127.0.0.1 that forwards to `127.0.0.1:target`, limiting what flows back to
/// the client to about `bytes_per_sec`, and counting it.
pub struct ThrottledProxy {
    pub port: u16,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ThrottledProxy {
    pub fn start(target: u16, bytes_per_sec: u64) -> ThrottledProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (sent2, stop2) = (sent.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                std::thread::spawn(move || pipe(c2, s2, None, None));
                let (sent, stop) = (sent2.clone(), stop2.clone());
                std::thread::spawn(move || {
                    pipe(server, client, Some((bytes_per_sec, sent)), Some(stop))
                });
            }
        });
        ThrottledProxy {
            port,
            sent,
            stop,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Bytes forwarded from the registry to clients so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    limit: Option<(u64, Arc<AtomicU64>)>,
    stop: Option<Arc<AtomicBool>>,
) {
    let start = Instant::now();
    let mut total = 0u64;
    let mut buf = [0u8; 16 << 10];
    loop {
        if stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        total += n as u64;
        if let Some((rate, counter)) = &limit {
            counter.fetch_add(n as u64, Ordering::SeqCst);
            let due = Duration::from_secs_f64(total as f64 / *rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

impl Drop for ThrottledProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A bearer-token issuer for the registry's `auth: token`: JWTs signed RS256 (by `openssl`)
/// with a self-signed certificate that the registry trusts. One user; anonymous requests get a
/// token that grants nothing.
pub struct TokenServer {
    pub port: u16,
    pub service: String,
    pub issuer: String,
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Query strings of token requests, and whether each carried valid credentials.
    pub requests: Arc<Mutex<Vec<(String, bool)>>>,
    pub issued: Arc<AtomicUsize>,
}

impl TokenServer {
    pub fn start(user: &str, password: &str) -> TokenServer {
        require_tool("openssl");
        let dir = tempfile::Builder::new()
            .prefix("berth-token-")
            .tempdir()
            .expect("temp dir");
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=berth-test-token",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl req");
        assert!(
            out.status.success(),
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .expect("openssl x509");
        assert!(der.status.success());
        let x5c = BASE64_STANDARD.encode(&der.stdout);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let issued = Arc::new(AtomicUsize::new(0));
        let (service, issuer) = (
            "berth-test-registry".to_string(),
            "berth-test-issuer".to_string(),
        );
        let expected_auth = format!(
            "Basic {}",
            BASE64_STANDARD.encode(format!("{user}:{password}"))
        );
        let ctx = Arc::new(TokenCtx {
            key,
            x5c,
            service: service.clone(),
            issuer: issuer.clone(),
            expected_auth,
        });
        let (stop2, requests2, issued2) = (stop.clone(), requests.clone(), issued.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (ctx, requests, issued) = (ctx.clone(), requests2.clone(), issued2.clone());
                std::thread::spawn(move || serve_token(conn, &ctx, &requests, &issued));
            }
        });
        TokenServer {
            port,
            service,
            issuer,
            dir,
            stop,
            thread: Some(thread),
            requests,
            issued,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The registry configuration that trusts this issuer.
    pub fn registry_auth(&self) -> RegistryAuth {
        RegistryAuth::Token {
            realm: self.realm(),
            service: self.service.clone(),
            issuer: self.issuer.clone(),
            cert: self.dir.path().join("cert.pem"),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct TokenCtx {
    key: PathBuf,
    x5c: String,
    service: String,
    issuer: String,
    expected_auth: String,
}

fn serve_token(
    conn: TcpStream,
    ctx: &TokenCtx,
    requests: &Mutex<Vec<(String, bool)>>,
    issued: &AtomicUsize,
) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut out = conn;
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    let query = target
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    let valid = authorization.as_deref() == Some(ctx.expected_auth.as_str());
    requests.lock().unwrap().push((query.clone(), valid));
    let respond = |out: &mut TcpStream, status: &str, body: &str| {
        let _ = write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    if authorization.is_some() && !valid {
        respond(
            &mut out,
            "401 Unauthorized",
            r#"{"details":"incorrect username or password"}"#,
        );
        return;
    }
    let mut access = Vec::new();
    if valid {
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if k != "scope" {
                continue;
            }
            // repository:NAME:ACTIONS (NAME has no ':' in these tests)
            let parts: Vec<&str> = v.splitn(3, ':').collect();
            if let [kind, name, actions] = parts.as_slice() {
                access.push(serde_json::json!({ "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>() }));
            }
        }
    }
    let now = chrono::Utc::now().timestamp();
    let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "x5c": [ctx.x5c] });
    let claims = serde_json::json!({
        "iss": ctx.issuer, "sub": if valid { "user" } else { "" }, "aud": ctx.service,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", issued.load(Ordering::SeqCst)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        BASE64_URL_SAFE_NO_PAD.encode(header.to_string()),
        BASE64_URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sign = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&ctx.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl dgst");
    sign.stdin
        .take()
        .expect("stdin")
        .write_all(signing_input.as_bytes())
        .expect("write to openssl");
    let sig = sign.wait_with_output().expect("openssl dgst output");
    assert!(sig.status.success(), "openssl dgst failed");
    let token = format!(
        "{signing_input}.{}",
        BASE64_URL_SAFE_NO_PAD.encode(&sig.stdout)
    );
    issued.fetch_add(1, Ordering::SeqCst);
    respond(
        &mut out,
        "200 OK",
        &serde_json::json!({ "token": token, "expires_in": 300 }).to_string(),
    );
}
