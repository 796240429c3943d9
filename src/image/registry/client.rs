//! One registry, spoken to over HTTP(S): the `/v2/` ping that picks the scheme and learns how to
//! authenticate, GETs that answer authentication challenges and follow redirects, and registry
//! errors turned into [`RegistryError`]s that say what to do.

use super::auth::{self, Challenge};
use super::credentials::Credential;
use super::{api_host, InsecureRegistries, RegistryError, Result};
use crate::image::digest::Digest;
use crate::image::manifest::{ACCEPT_MANIFESTS, MAX_METADATA_BYTES};
use serde::Deserialize;
use std::error::Error as _;
use std::io::{self, Read};
use std::sync::Mutex;
use std::time::Duration;

const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));
/// Redirects followed per request (registries redirect blobs to storage once, sometimes twice).
const MAX_REDIRECTS: usize = 8;

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub insecure: InsecureRegistries,
    /// Credential to authenticate with, if any.
    pub credential: Option<Credential>,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on each read (and write): a stalled transfer fails after this long without data.
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: InsecureRegistries::default(),
            credential: None,
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// What a GET is for, so that a failure can be explained in its terms.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Ping,
    Manifest {
        repository: &'a str,
        reference: &'a str,
    },
    Blob {
        repository: &'a str,
        digest: &'a Digest,
    },
}

impl Target<'_> {
    /// The token scope a request for this target needs.
    fn scope(&self) -> Option<String> {
        match self {
            Target::Ping => None,
            Target::Manifest { repository, .. } | Target::Blob { repository, .. } => {
                Some(format!("repository:{repository}:pull"))
            }
        }
    }
}

/// A manifest as the registry served it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    /// The registry's `Docker-Content-Digest` header, when it sent a sha256 one.
    pub digest_header: Option<Digest>,
}

/// A connection to one registry. Shareable between threads: layer downloads run concurrently.
pub struct Client {
    agent: ureq::Agent,
    /// The registry as references name it (`docker.io`, `127.0.0.1:5000`).
    registry: String,
    /// `https://host[:port]` or, for insecure registries that do not speak TLS, `http://…`.
    base: url::Url,
    options: ClientOptions,
    /// How the `/v2/` ping asked to authenticate (`None`: it did not).
    ping_challenge: Option<Challenge>,
    /// The `Authorization` value currently in use.
    authorization: Mutex<Option<String>>,
}

impl Client {
    /// Connects to `registry` (a reference's registry part): pings `https://HOST/v2/`, and for an
    /// insecure registry falls back to `http://` when HTTPS fails, as docker does.
    pub fn connect(registry: &str, options: ClientOptions) -> Result<Client> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(options.connect_timeout)
            .timeout_read(options.read_timeout)
            .timeout_write(options.read_timeout)
            // Redirects are followed by hand so that credentials never go to another host.
            .redirects(0)
            .user_agent(USER_AGENT)
            .build();
        let host = api_host(registry);
        let insecure = options.insecure.is_insecure(registry);
        let schemes: &[&str] = if insecure {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut last_err = None;
        for scheme in schemes {
            let base = url::Url::parse(&format!("{scheme}://{host}/")).map_err(|e| {
                RegistryError::Unreachable {
                    registry: registry.to_string(),
                    url: format!("{scheme}://{host}/"),
                    reason: e.to_string(),
                    hint: String::new(),
                }
            })?;
            let url = base.join("v2/").expect("a constant relative path joins");
            match agent.get(url.as_str()).call() {
                Ok(_) => return Ok(Client::new(agent, registry, base, options, None)),
                Err(ureq::Error::Status(401, resp)) => {
                    let challenge =
                        auth::pick_challenge(&resp.all("www-authenticate")).map_err(|reason| {
                            RegistryError::Challenge {
                                registry: registry.to_string(),
                                challenge: resp.all("www-authenticate").join(", "),
                                reason,
                            }
                        })?;
                    return Ok(Client::new(agent, registry, base, options, Some(challenge)));
                }
                // Any other answer still proves a registry is there; docker accepts it too.
                Err(ureq::Error::Status(..)) => {
                    return Ok(Client::new(agent, registry, base, options, None))
                }
                Err(ureq::Error::Transport(t)) => {
                    tracing::debug!("ping {url}: {t}");
                    last_err = Some(transport_error(registry, url.as_str(), &t, insecure));
                }
            }
        }
        Err(last_err.expect("at least one scheme is tried"))
    }

    fn new(
        agent: ureq::Agent,
        registry: &str,
        base: url::Url,
        options: ClientOptions,
        ping: Option<Challenge>,
    ) -> Client {
        let authorization = match (&ping, &options.credential) {
            (Some(Challenge::Basic), Some(c)) => Some(auth::basic_header(c)),
            _ => None,
        };
        Client {
            agent,
            registry: registry.to_string(),
            base,
            options,
            ping_challenge: ping,
            authorization: Mutex::new(authorization),
        }
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// `https://host[:port]/` or `http://…`.
    pub fn base_url(&self) -> &url::Url {
        &self.base
    }

    /// How the registry's `/v2/` asked to be authenticated, if it did.
    pub fn ping_challenge(&self) -> Option<&Challenge> {
        self.ping_challenge.as_ref()
    }

    /// Authenticates against `/v2/` with the client's credential; `AuthFailed` if refused.
    pub fn check_auth(&self) -> Result<()> {
        let url = self
            .base
            .join("v2/")
            .expect("a constant relative path joins");
        self.get(&url, None, Target::Ping).map(|_| ())
    }

    /// GETs a manifest by tag or digest, with every manifest type berth reads accepted.
    pub fn get_manifest(&self, repository: &str, reference: &str) -> Result<FetchedManifest> {
        let url = self.url(&format!("v2/{repository}/manifests/{reference}"))?;
        let resp = self.get(
            &url,
            Some(ACCEPT_MANIFESTS),
            Target::Manifest {
                repository,
                reference,
            },
        )?;
        let content_type = resp
            .header("content-type")
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
        let digest_header = resp
            .header("docker-content-digest")
            .and_then(|d| d.trim().parse().ok());
        let what = format!("manifest {reference} of {repository}");
        let bytes = self.read_limited(resp, &what)?;
        Ok(FetchedManifest {
            bytes,
            content_type,
            digest_header,
        })
    }

    /// GETs a blob; the response body streams it.
    pub fn get_blob(&self, repository: &str, digest: &Digest) -> Result<ureq::Response> {
        let url = self.url(&format!("v2/{repository}/blobs/{digest}"))?;
        self.get(&url, None, Target::Blob { repository, digest })
    }

    /// GETs a small blob (a config) into memory, refusing more than [`MAX_METADATA_BYTES`].
    pub fn get_small_blob(&self, repository: &str, digest: &Digest) -> Result<Vec<u8>> {
        let resp = self.get_blob(repository, digest)?;
        self.read_limited(resp, &format!("blob {digest}"))
    }

    fn url(&self, path: &str) -> Result<url::Url> {
        self.base
            .join(path)
            .map_err(|e| RegistryError::Unreachable {
                registry: self.registry.clone(),
                url: format!("{}{path}", self.base),
                reason: e.to_string(),
                hint: String::new(),
            })
    }

    fn read_limited(&self, resp: ureq::Response, what: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(MAX_METADATA_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| self.read_error(what, source))?;
        if bytes.len() as u64 > MAX_METADATA_BYTES {
            return Err(RegistryError::TooLarge {
                what: what.to_string(),
                registry: self.registry.clone(),
                limit: MAX_METADATA_BYTES,
            });
        }
        Ok(bytes)
    }

    /// An error while reading a response body.
    pub(crate) fn read_error(&self, what: &str, source: io::Error) -> RegistryError {
        if matches!(
            source.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            return RegistryError::Timeout {
                registry: self.registry.clone(),
                what: format!("sending {what}"),
            };
        }
        RegistryError::Transfer {
            what: what.to_string(),
            registry: self.registry.clone(),
            error: source,
        }
    }

    fn current_authorization(&self) -> Option<String> {
        self.authorization
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A GET that answers one authentication challenge and follows redirects. The
    /// `Authorization` header goes only to the registry's own scheme, host and port: storage
    /// backends get a redirect URL that carries its own signature, and must not see the token.
    pub fn get(
        &self,
        url: &url::Url,
        accept: Option<&str>,
        target: Target<'_>,
    ) -> Result<ureq::Response> {
        // The ping told how to authenticate: get a token before the first request, which saves
        // the round trip of a 401 (with basic credentials the header is already set).
        if let (Some(c @ Challenge::Bearer { .. }), None) =
            (&self.ping_challenge, self.current_authorization())
        {
            self.authenticate(c, target)?;
        }
        let mut url = url.clone();
        let mut same_origin = true;
        let mut reauthenticated = false;
        for _ in 0..MAX_REDIRECTS + 2 {
            let mut req = self.agent.get(url.as_str());
            if let Some(a) = accept {
                req = req.set("Accept", a);
            }
            if same_origin {
                if let Some(h) = self.current_authorization() {
                    req = req.set("Authorization", &h);
                }
            }
            match req.call() {
                Ok(resp) if (300..400).contains(&resp.status()) => {
                    let location = resp.header("location").unwrap_or_default().to_string();
                    let next = url
                        .join(&location)
                        .map_err(|e| RegistryError::BadRedirect {
                            from: url.to_string(),
                            location: location.clone(),
                            reason: e.to_string(),
                        })?;
                    if location.is_empty() || !matches!(next.scheme(), "http" | "https") {
                        return Err(RegistryError::BadRedirect {
                            from: url.to_string(),
                            location,
                            reason: "it is not an http(s) URL".into(),
                        });
                    }
                    same_origin = same_origin && next.origin() == self.base.origin();
                    tracing::debug!("{url} redirects to {next}");
                    url = next;
                }
                Ok(resp) => return Ok(resp),
                Err(ureq::Error::Status(401, resp)) if same_origin && !reauthenticated => {
                    let headers = resp.all("www-authenticate");
                    let challenge = auth::pick_challenge(&headers).map_err(|reason| {
                        RegistryError::Challenge {
                            registry: self.registry.clone(),
                            challenge: headers.join(", "),
                            reason,
                        }
                    })?;
                    self.authenticate(&challenge, target)?;
                    reauthenticated = true;
                }
                Err(ureq::Error::Status(status, resp)) => {
                    return Err(self.status_error(status, resp, &url, target))
                }
                Err(ureq::Error::Transport(t)) => {
                    let insecure = self.options.insecure.is_insecure(&self.registry);
                    return Err(transport_error(&self.registry, url.as_str(), &t, insecure));
                }
            }
        }
        Err(RegistryError::BadRedirect {
            from: url.to_string(),
            location: String::new(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// Answers a challenge: sets the `Authorization` header for the following requests.
    fn authenticate(&self, challenge: &Challenge, target: Target<'_>) -> Result<()> {
        let header = match challenge {
            Challenge::Basic => match &self.options.credential {
                Some(c) => auth::basic_header(c),
                None => {
                    return Err(RegistryError::AuthFailed {
                        registry: self.registry.clone(),
                        reason: "the registry requires a login".into(),
                    })
                }
            },
            Challenge::Bearer {
                realm,
                service,
                scopes,
            } => {
                let mut scopes = scopes.clone();
                if let Some(s) = target.scope().filter(|s| !scopes.contains(s)) {
                    scopes.push(s);
                }
                let token = auth::fetch_token(
                    &self.agent,
                    &self.registry,
                    realm,
                    service.as_deref(),
                    &scopes,
                    self.options.credential.as_ref(),
                    &self.options.insecure,
                )?;
                format!("Bearer {token}")
            }
        };
        *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(header);
        Ok(())
    }

    /// Explains an error status in the terms of what was asked for.
    fn status_error(
        &self,
        status: u16,
        resp: ureq::Response,
        url: &url::Url,
        target: Target<'_>,
    ) -> RegistryError {
        let body = ErrorBody::read(resp);
        let code = body.errors.first().map(|e| e.code.as_str()).unwrap_or("");
        let registry = self.registry.clone();
        match (status, code, target) {
            (401, ..) => RegistryError::AuthFailed {
                registry,
                reason: match (&self.options.credential, target) {
                    (Some(_), _) => "the registry rejected the stored user name or password".into(),
                    (None, Target::Ping) => "the registry requires a login".into(),
                    (None, _) => {
                        "the repository does not exist, or pulling it requires a login".into()
                    }
                },
            },
            (403, ..) => RegistryError::AuthFailed {
                registry,
                reason: format!("access denied{}", body.message_suffix()),
            },
            (429, ..) => RegistryError::TooManyRequests { registry },
            (
                404,
                "NAME_UNKNOWN",
                Target::Manifest { repository, .. } | Target::Blob { repository, .. },
            ) => RegistryError::RepositoryUnknown {
                repository: repository.to_string(),
                registry,
            },
            (
                404,
                _,
                Target::Manifest {
                    repository,
                    reference,
                },
            ) => RegistryError::ManifestUnknown {
                what: match reference.parse::<Digest>() {
                    Ok(_) => format!("manifest {reference}"),
                    Err(_) => format!("tag {reference:?}"),
                },
                repository: repository.to_string(),
                registry,
            },
            (404, _, Target::Blob { repository, digest }) => RegistryError::ManifestUnknown {
                what: format!("blob {digest} (named by the image's manifest)"),
                repository: repository.to_string(),
                registry,
            },
            _ => RegistryError::Status {
                registry,
                url: url.to_string(),
                status,
                message: body.message_suffix(),
            },
        }
    }
}

/// The distribution spec's error document: `{"errors": [{"code": …, "message": …}]}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Debug, Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl ErrorBody {
    fn read(resp: ureq::Response) -> ErrorBody {
        let mut data = Vec::new();
        let _ = resp.into_reader().take(64 << 10).read_to_end(&mut data);
        serde_json::from_slice(&data).unwrap_or_default()
    }

    fn message_suffix(&self) -> String {
        match self.errors.first() {
            Some(e) if !e.message.is_empty() => format!(": {}", e.message.to_lowercase()),
            Some(e) if !e.code.is_empty() => format!(": {}", e.code.to_lowercase()),
            _ => String::new(),
        }
    }
}

/// Explains a failure to connect or exchange a request. `insecure`: plain HTTP was allowed, so
/// the advice to mark the registry insecure does not apply.
pub(crate) fn transport_error(
    registry: &str,
    url: &str,
    t: &ureq::Transport,
    insecure: bool,
) -> RegistryError {
    let io_kind = {
        let mut source = t.source();
        let mut kind = None;
        while let Some(s) = source {
            if let Some(e) = s.downcast_ref::<io::Error>() {
                kind = Some(e.kind());
                break;
            }
            source = s.source();
        }
        kind
    };
    let text = t.to_string();
    let lower = text.to_lowercase();
    if matches!(
        io_kind,
        Some(io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
    ) || lower.contains("timed out")
    {
        return RegistryError::Timeout {
            registry: registry.to_string(),
            what: format!("answering {url}"),
        };
    }
    let tls = [
        "tls",
        "certificate",
        "handshake",
        "corrupt message",
        "invalidcontenttype",
        "peer misbehaved",
    ];
    if url.starts_with("https:") && !insecure && tls.iter().any(|w| lower.contains(w)) {
        return RegistryError::Tls {
            registry: registry.to_string(),
            reason: text,
        };
    }
    let reason = match (t.kind(), io_kind) {
        (_, Some(io::ErrorKind::ConnectionRefused)) => "connection refused".to_string(),
        (ureq::ErrorKind::Dns, _) => "the host name does not resolve".to_string(),
        (_, Some(io::ErrorKind::ConnectionReset)) => "the connection was reset".to_string(),
        _ => text,
    };
    let hint = if insecure {
        String::new()
    } else {
        format!(", or whether it serves plain HTTP (then pass --insecure-registry {registry})")
    };
    RegistryError::Unreachable {
        registry: registry.to_string(),
        url: url.to_string(),
        reason,
        hint,
    }
}
