//! `berth pull`, `login` and `logout` over the OCI distribution protocol.
//!
//! - [`client`]: one registry connection: HTTPS (plain HTTP only for insecure registries), the
//!   `/v2/` ping, authentication retries, redirects that never carry credentials to another host,
//!   and docker's error bodies turned into [`RegistryError`]s that say what to do.
//! - [`auth`]: `WWW-Authenticate` challenges, bearer tokens and basic credentials.
//! - [`credentials`]: `<root>/auth.json` (mode 0600), and `login` / `logout`.
//! - [`pull`]: manifest and platform resolution, and the concurrent, streaming layer download
//!   straight into [`Store::add_layer`](super::store::Store::add_layer).
//! - [`progress`]: what a pull reports while it runs: bars on a terminal, lines otherwise.
//!
//! Nothing here writes to the store except through `add_layer` and `commit_image`, so a pull that
//! fails or is killed at any point lists no image, and the next pull reuses the finished layers.

pub mod auth;
pub mod client;
pub mod credentials;
pub mod progress;
#[cfg(test)]
mod protocol_tests;
pub mod pull;
#[cfg(test)]
mod testserver;

pub use client::{Client, ClientOptions};
pub use credentials::{login, logout, normalize_registry, Credential, CredentialStore};
pub use progress::{LineProgress, NoProgress, ProgressMode, PullObserver, TerminalProgress};
pub use pull::{pull, resolve, PullOptions, Pulled, Resolved};

use super::digest::Digest;
use super::manifest::ManifestError;
use super::reference::{InvalidReference, DEFAULT_REGISTRY};
use super::store::StoreError;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

/// The environment variable holding extra insecure registries, comma-separated.
pub const INSECURE_REGISTRIES_ENV: &str = "BERTH_INSECURE_REGISTRIES";

/// Where docker hub's registry API actually lives.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] InvalidReference),
    #[error("cannot reach registry {registry} at {url}: {reason}: check the registry address and that it is up{hint}")]
    Unreachable {
        registry: String,
        url: String,
        reason: String,
        hint: String,
    },
    #[error("registry {registry} timed out {what}: check the network and that the registry is up, then pull again")]
    Timeout { registry: String, what: String },
    #[error("TLS with registry {registry} failed: {reason}: if it serves plain HTTP, mark it insecure with --insecure-registry {registry}")]
    Tls { registry: String, reason: String },
    #[error("{registry} does not look like an OCI registry: GET {url} answered HTTP {status}")]
    NotARegistry {
        registry: String,
        url: String,
        status: u16,
    },
    #[error("{what} does not exist in {repository} at {registry}: check the name and tag (the registry does not know it)")]
    ManifestUnknown {
        what: String,
        repository: String,
        registry: String,
    },
    #[error("repository {repository} does not exist at {registry}, or needs a login: check the name, or run `berth login {registry}`")]
    RepositoryUnknown {
        repository: String,
        registry: String,
    },
    #[error("authentication to {registry} failed ({reason}): run `berth login {registry}`")]
    AuthFailed { registry: String, reason: String },
    #[error("login to {registry} failed: the registry rejected the user name or password; nothing was stored")]
    BadCredentials { registry: String },
    #[error("registry {registry} refuses more requests for now (HTTP 429): wait a while, or `berth login {registry}` for a higher limit")]
    TooManyRequests { registry: String },
    #[error("registry {registry} answered GET {url} with HTTP {status}{message}")]
    Status {
        registry: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("registry {registry} sent an authentication challenge berth cannot use ({challenge:?}): {reason}")]
    Challenge {
        registry: String,
        challenge: String,
        reason: String,
    },
    #[error("token server {realm} for {registry} failed: {reason}")]
    Token {
        registry: String,
        realm: String,
        reason: String,
    },
    #[error("refusing to send credentials for {registry} over plain HTTP to {url}: mark the host insecure with --insecure-registry if that is intended")]
    InsecureCredentials { registry: String, url: String },
    #[error("the registry sent {what} that hashes to {actual}, not {expected}: the registry is corrupt or was tampered with; nothing was stored")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("the registry sent {what} of {actual} bytes where its descriptor says {expected}: the registry is corrupt; nothing was stored")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("the registry sent more bytes for {what} than the {expected} its descriptor says: the registry is corrupt; nothing was stored")]
    BlobTooLong { what: String, expected: u64 },
    #[error("{what} from {registry} is larger than {limit} bytes: it is not an image manifest or config")]
    TooLarge {
        what: String,
        registry: String,
        limit: u64,
    },
    #[error("downloading {what} from {registry} failed: {error}: pull again to resume")]
    Transfer {
        what: String,
        registry: String,
        error: io::Error,
    },
    #[error("{reference} is not a container image: its config has media type {media_type:?}")]
    NotAnImage {
        reference: String,
        media_type: String,
    },
    #[error("the image is for {os}/{architecture}; berth runs linux images only")]
    WrongOs { os: String, architecture: String },
    #[error("{0}: image indexes nest more than four deep")]
    TooDeep(String),
    #[error("the redirect from {from} to {location:?} is invalid: {reason}")]
    BadRedirect {
        from: String,
        location: String,
        reason: String,
    },
    #[error("{path}: {reason}")]
    CredentialFile { path: PathBuf, reason: String },
    #[error(
        "invalid --insecure-registry {0:?}: give HOST, HOST:PORT or an IP range like 10.0.0.0/8"
    )]
    InvalidInsecureRegistry(String),
    /// A layer the store refused (digest, size or tar trouble); its blob digest names it.
    #[error("layer {blob}: {error}")]
    Layer { blob: Digest, error: StoreError },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// The host (with port) that serves `registry`'s API: docker hub's name maps to its API host.
pub fn api_host(registry: &str) -> &str {
    match registry {
        DEFAULT_REGISTRY | "index.docker.io" => DOCKER_HUB_API_HOST,
        other => other,
    }
}

/// Registries that may be spoken to over plain HTTP, like docker's `insecure-registries`:
/// `localhost`, `127.0.0.0/8` and `::1` always, plus `--insecure-registry` and
/// [`INSECURE_REGISTRIES_ENV`] entries (`HOST`, `HOST:PORT` or an IP range `A.B.C.D/N`).
#[derive(Debug, Clone, Default)]
pub struct InsecureRegistries {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
enum Entry {
    /// `host:port` matches exactly; `host` matches any port.
    Host(String),
    Range(IpAddr, u8),
}

impl InsecureRegistries {
    /// The given entries, plus those of [`INSECURE_REGISTRIES_ENV`].
    pub fn from_args_and_env(args: &[String]) -> Result<InsecureRegistries> {
        let env = std::env::var(INSECURE_REGISTRIES_ENV).unwrap_or_default();
        let all = args.iter().map(String::as_str).chain(env.split(','));
        let mut out = InsecureRegistries::default();
        for e in all.map(str::trim).filter(|e| !e.is_empty()) {
            out.add(e)?;
        }
        Ok(out)
    }

    /// Adds one entry: `HOST`, `HOST:PORT`, `http://HOST:PORT` or `A.B.C.D/N`.
    pub fn add(&mut self, entry: &str) -> Result<()> {
        let e = entry
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        let e = e.trim_end_matches('/').to_ascii_lowercase();
        if e.is_empty() || e.contains('/') && !e.contains('.') && !e.contains(':') {
            return Err(RegistryError::InvalidInsecureRegistry(entry.to_string()));
        }
        if let Some((ip, bits)) = e.split_once('/') {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| RegistryError::InvalidInsecureRegistry(entry.to_string()))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits: u8 = bits
                .parse()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| RegistryError::InvalidInsecureRegistry(entry.to_string()))?;
            self.entries.push(Entry::Range(ip, bits));
        } else if e.contains(char::is_whitespace) || e.contains('@') {
            return Err(RegistryError::InvalidInsecureRegistry(entry.to_string()));
        } else {
            self.entries.push(Entry::Host(e));
        }
        Ok(())
    }

    /// Whether `registry` (`host[:port]`) may be used over plain HTTP.
    pub fn is_insecure(&self, registry: &str) -> bool {
        let registry = registry.to_ascii_lowercase();
        let (host, _port) = split_host_port(&registry);
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.entries.iter().any(|e| match e {
            Entry::Host(h) => *h == registry || *h == host,
            Entry::Range(net, bits) => ip.is_some_and(|ip| in_range(ip, *net, *bits)),
        })
    }
}

/// `host:port` → (`host`, `Some(port)`); `[::1]:5000` → (`[::1]`, `Some(5000)`).
pub(crate) fn split_host_port(registry: &str) -> (&str, Option<&str>) {
    if registry.starts_with('[') {
        return match registry.split_once("]:") {
            Some((h, p)) => (&registry[..h.len() + 1], Some(p)),
            None => (registry, None),
        };
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (registry, None),
    }
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits as u32)
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits as u32)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_maps_to_its_api_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn loopback_is_insecure_by_default_and_entries_add_more() {
        let mut i = InsecureRegistries::default();
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.4.5",
            "[::1]:80",
        ] {
            assert!(i.is_insecure(r), "{r}");
        }
        assert!(!i.is_insecure("registry.example:5000"));
        assert!(!i.is_insecure("10.1.2.3:5000"));
        i.add("registry.example:5000").unwrap();
        i.add("http://other.example/").unwrap();
        i.add("10.0.0.0/8").unwrap();
        assert!(i.is_insecure("registry.example:5000"));
        assert!(!i.is_insecure("registry.example:5001"));
        assert!(i.is_insecure("other.example:443"));
        assert!(i.is_insecure("10.1.2.3:5000"));
        assert!(!i.is_insecure("11.1.2.3:5000"));
        for bad in ["", "10.0.0.0/33", "a b", "x/8"] {
            assert!(i.add(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_and_port_split() {
        assert_eq!(split_host_port("a.b:5000"), ("a.b", Some("5000")));
        assert_eq!(split_host_port("a.b"), ("a.b", None));
        assert_eq!(split_host_port("[::1]:5000"), ("[::1]", Some("5000")));
    }
}
