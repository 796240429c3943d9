//! Stored registry credentials (`<root>/auth.json`) and `berth login` / `logout`.
//!
//! The file has docker's `config.json` shape, `{"auths": {"HOST[:PORT]": {"auth":
//! "<base64 user:password>"}}}`, so it reads familiarly and other keys survive a rewrite. It is
//! created with mode 0600 and replaced atomically: the new content goes to a temporary file
//! created 0600 (never world-readable, even for a moment), which is fsynced and renamed over the
//! old one, under a lock so that concurrent logins do not lose each other's entries.

use super::auth::Challenge;
use super::client::{Client, ClientOptions};
use super::{RegistryError, Result};
use crate::fsutil::{self, FileLock};
use crate::image::reference::{Reference, DEFAULT_REGISTRY};
use base64::prelude::{Engine as _, BASE64_STANDARD};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const AUTH_FILE: &str = "auth.json";
const LOCK_FILE: &str = "auth.json.lock";

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The credentials file under a berth root.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    dir: PathBuf,
}

impl CredentialStore {
    /// The store at `<root>/auth.json` (the file need not exist yet).
    pub fn new(root: &Path) -> CredentialStore {
        CredentialStore {
            dir: root.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(AUTH_FILE)
    }

    fn file_err(&self, reason: impl Into<String>) -> RegistryError {
        RegistryError::CredentialFile {
            path: self.path(),
            reason: reason.into(),
        }
    }

    fn read(&self) -> Result<serde_json::Value> {
        let path = self.path();
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(serde_json::json!({ "auths": {} }))
            }
            Err(e) => return Err(self.file_err(format!("cannot read it: {e}"))),
        };
        let doc: serde_json::Value = serde_json::from_slice(&data).map_err(|e| {
            self.file_err(format!(
                "malformed ({e}): fix or delete it, then `berth login` again"
            ))
        })?;
        if !doc.is_object() || !doc.get("auths").is_none_or(|a| a.is_object()) {
            return Err(self.file_err("malformed (expected {\"auths\": {...}}): fix or delete it, then `berth login` again"));
        }
        Ok(doc)
    }

    /// The stored credential for `registry` (as normalized by [`normalize_registry`]), if any.
    pub fn get(&self, registry: &str) -> Result<Option<Credential>> {
        let doc = self.read()?;
        let Some(entry) = doc.get("auths").and_then(|a| a.get(registry)) else {
            return Ok(None);
        };
        let bad = || {
            self.file_err(format!(
                "the entry for {registry} is malformed: run `berth login {registry}` again"
            ))
        };
        let encoded = entry.get("auth").and_then(|a| a.as_str()).ok_or_else(bad)?;
        let decoded = BASE64_STANDARD.decode(encoded).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, pass) = text.split_once(':').ok_or_else(bad)?;
        Ok(Some(Credential {
            username: user.to_string(),
            password: pass.to_string(),
        }))
    }

    /// Stores (replacing) the credential for `registry`.
    pub fn set(&self, registry: &str, cred: &Credential) -> Result<()> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| self.file_err(format!("cannot create its directory: {e}")))?;
        let _lock = self.lock()?;
        let mut doc = self.read()?;
        let encoded = BASE64_STANDARD.encode(format!("{}:{}", cred.username, cred.password));
        let auths = doc
            .as_object_mut()
            .map(|o| o.entry("auths").or_insert_with(|| serde_json::json!({})));
        match auths.and_then(|a| a.as_object_mut()) {
            Some(a) => a.insert(registry.to_string(), serde_json::json!({ "auth": encoded })),
            None => return Err(self.file_err("malformed: fix or delete it")),
        };
        self.write(&doc)
    }

    /// Removes the credential for `registry`; `false` if there was none.
    pub fn remove(&self, registry: &str) -> Result<bool> {
        if !self.path().exists() {
            return Ok(false);
        }
        let _lock = self.lock()?;
        let mut doc = self.read()?;
        let removed = doc
            .get_mut("auths")
            .and_then(|a| a.as_object_mut())
            .and_then(|a| a.remove(registry))
            .is_some();
        if removed {
            self.write(&doc)?;
        }
        Ok(removed)
    }

    fn lock(&self) -> Result<FileLock> {
        let path = self.dir.join(LOCK_FILE);
        FileLock::exclusive(&path)
            .map_err(|e| self.file_err(format!("cannot lock {}: {e}", path.display())))
    }

    /// Atomic replacement with a file that is 0600 from its creation.
    fn write(&self, doc: &serde_json::Value) -> Result<()> {
        let path = self.path();
        let tmp = self
            .dir
            .join(format!(".{AUTH_FILE}.tmp-{}", fsutil::random_suffix()));
        let data = serde_json::to_vec_pretty(doc).map_err(|e| self.file_err(e.to_string()))?;
        let result = (|| -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            // The umask can only take bits away; make it exactly 0600 whatever it was.
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            f.write_all(&data)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            fsutil::sync_dir(&self.dir)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(self.file_err(format!("cannot write it: {e}")));
        }
        Ok(())
    }
}

/// The key a registry's credentials are stored under: `host[:port]` as image references spell it
/// (`docker.io` for docker hub, whichever of its names or URLs is given). Accepts `https://…`
/// URLs and trailing paths, as `docker login` does.
pub fn normalize_registry(input: &str) -> Result<String> {
    let s = input.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or_default().to_ascii_lowercase();
    let host = match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DEFAULT_REGISTRY.to_string()
        }
        _ => host,
    };
    // Let the reference grammar judge the host: `HOST/x` must parse with HOST as its registry.
    let probe = Reference::parse(&format!("{host}/x"))?;
    if probe.registry != host {
        return Err(crate::image::reference::InvalidReference {
            input: input.to_string(),
            reason: "a registry is a host name with a '.' or a port, or localhost (e.g. registry.example.com, 127.0.0.1:5000)".into(),
        }
        .into());
    }
    Ok(host)
}

/// `berth login`: checks `cred` against `registry` (`GET /v2/` with it), and stores it only if
/// the registry accepts it. A registry that asks for no authentication at all accepts anything,
/// as with docker.
pub fn login(
    store: &CredentialStore,
    registry: &str,
    cred: Credential,
    opts: &ClientOptions,
) -> Result<()> {
    let registry = normalize_registry(registry)?;
    let opts = ClientOptions {
        credential: Some(cred.clone()),
        ..opts.clone()
    };
    let client = Client::connect(&registry, opts)?;
    match client.ping_challenge() {
        None => {}
        Some(Challenge::Basic) | Some(Challenge::Bearer { .. }) => match client.check_auth() {
            Ok(()) => {}
            Err(RegistryError::AuthFailed { .. }) => {
                return Err(RegistryError::BadCredentials { registry })
            }
            Err(e) => return Err(e),
        },
    }
    store.set(&registry, &cred)
}

/// `berth logout`: forgets the credential; `false` if none was stored.
pub fn logout(store: &CredentialStore, registry: &str) -> Result<bool> {
    store.remove(&normalize_registry(registry)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn stores_reads_and_removes_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::new(dir.path());
        assert_eq!(store.get("127.0.0.1:5000").unwrap(), None);
        let c = Credential {
            username: "u".into(),
            password: "p:w".into(),
        };
        store.set("127.0.0.1:5000", &c).unwrap();
        store
            .set(
                "docker.io",
                &Credential {
                    username: "x".into(),
                    password: "y".into(),
                },
            )
            .unwrap();
        assert_eq!(store.get("127.0.0.1:5000").unwrap(), Some(c));
        assert_eq!(fs::metadata(store.path()).unwrap().mode() & 0o777, 0o600);
        assert!(store.remove("127.0.0.1:5000").unwrap());
        assert!(!store.remove("127.0.0.1:5000").unwrap());
        assert_eq!(store.get("127.0.0.1:5000").unwrap(), None);
        assert!(store.get("docker.io").unwrap().is_some());
        assert_eq!(fs::metadata(store.path()).unwrap().mode() & 0o777, 0o600);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| !n.to_string_lossy().contains(".tmp-")),
            "{names:?}"
        );
    }

    #[test]
    fn keeps_unknown_keys_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::new(dir.path());
        fs::write(store.path(), br#"{"auths":{},"credsStore":"x"}"#).unwrap();
        store
            .set(
                "a.example",
                &Credential {
                    username: "u".into(),
                    password: "p".into(),
                },
            )
            .unwrap();
        let doc: serde_json::Value =
            serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
        assert_eq!(doc["credsStore"], "x");
        fs::write(store.path(), b"not json").unwrap();
        let e = store.get("a.example").unwrap_err().to_string();
        assert!(e.contains("malformed") && e.contains("berth login"), "{e}");
    }

    #[test]
    fn registry_names_normalize_like_docker() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/").unwrap(),
            "docker.io"
        );
        assert_eq!(
            normalize_registry("127.0.0.1:5000").unwrap(),
            "127.0.0.1:5000"
        );
        assert_eq!(
            normalize_registry("http://Localhost:5000/").unwrap(),
            "localhost:5000"
        );
        assert_eq!(
            normalize_registry("registry.example.com").unwrap(),
            "registry.example.com"
        );
        assert!(normalize_registry("justaname").is_err());
        assert!(normalize_registry("").is_err());
    }
}
