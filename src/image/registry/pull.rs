//! `berth pull`: resolve a reference to one platform's manifest and config, download the layers
//! the store lacks (a few at a time, each response streamed straight into the unpacker), and
//! commit the image.
//!
//! Every byte is verified: a manifest pulled by digest must hash to it (and one picked from an
//! index to its descriptor), the config to the manifest's config digest, and each layer to its
//! blob digest and diff id (the store checks those while unpacking and keeps nothing that fails).

use super::client::{Client, ClientOptions, FetchedManifest};
use super::credentials::CredentialStore;
use super::progress::PullObserver;
use super::{RegistryError, Result};
use crate::image::digest::Digest;
use crate::image::manifest::{self, ConfigSummary, Descriptor, Manifest, ManifestKind, Platform};
use crate::image::reference::Reference;
use crate::image::store::{ImageRecord, Ingest, LayerRef, Store};
use std::collections::{BTreeSet, VecDeque};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Attempts per layer when the network fails mid-download.
const LAYER_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Platform to take from an index (the host's when `None`).
    pub platform: Option<Platform>,
    /// How to reach the registry (the credential, if any, comes from the credential store).
    pub client: ClientOptions,
    /// Layers downloaded at once.
    pub concurrency: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            client: ClientOptions::default(),
            concurrency: 3,
        }
    }
}

/// A reference resolved to one image: what the registry serves for it, verified.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Digest of what the reference names: the index for a multi-platform image.
    pub digest: Digest,
    /// The chosen platform's manifest, its digest and its exact bytes.
    pub manifest_digest: Digest,
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
    pub config_bytes: Vec<u8>,
    pub config: ConfigSummary,
}

impl Resolved {
    /// The image id (the config digest).
    pub fn id(&self) -> &Digest {
        &self.manifest.config.digest
    }
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub reference: Reference,
    pub id: Digest,
    /// What the reference resolved to (docker's `Digest:` line).
    pub digest: Digest,
    /// Blob digests of the layers downloaded, and of those already in the store.
    pub downloaded: Vec<Digest>,
    pub existing: Vec<Digest>,
    /// The image was already there under this name and nothing was downloaded.
    pub up_to_date: bool,
}

/// Resolves `reference` to the manifest for `platform` and its config, verifying both.
pub fn resolve(client: &Client, reference: &Reference, platform: &Platform) -> Result<Resolved> {
    let repo = &reference.repository;
    let wanted = match (&reference.digest, &reference.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => crate::image::reference::DEFAULT_TAG.to_string(),
    };
    let top = client.get_manifest(repo, &wanted)?;
    let digest = verify_top(&top, reference)?;
    let (mut desc_digest, mut fetched) = (digest.clone(), top);
    for _ in 0..4 {
        match manifest::parse(fetched.content_type.as_deref(), &fetched.bytes)? {
            ManifestKind::Manifest(m) => {
                let (config_bytes, config) = fetch_config(client, reference, &m)?;
                return Ok(Resolved {
                    digest,
                    manifest_digest: desc_digest,
                    manifest_bytes: fetched.bytes,
                    manifest: m,
                    config_bytes,
                    config,
                });
            }
            ManifestKind::Index(index) => {
                let desc = manifest::select_platform(&index, platform)?.clone();
                fetched = client.get_manifest(repo, &desc.digest.to_string())?;
                verify_blob(&format!("manifest {}", desc.digest), &desc, &fetched.bytes)?;
                if fetched.content_type.is_none() && !desc.media_type.is_empty() {
                    fetched.content_type = Some(desc.media_type.clone());
                }
                desc_digest = desc.digest;
            }
        }
    }
    Err(RegistryError::TooDeep(reference.to_string()))
}

/// The digest of the top-level manifest, checked against the reference's digest and against the
/// registry's `Docker-Content-Digest` header.
fn verify_top(top: &FetchedManifest, reference: &Reference) -> Result<Digest> {
    let actual = Digest::of(&top.bytes);
    let what = format!("the manifest for {reference}");
    for expected in [reference.digest.as_ref(), top.digest_header.as_ref()]
        .into_iter()
        .flatten()
    {
        if *expected != actual {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: expected.clone(),
                actual,
            });
        }
    }
    Ok(actual)
}

fn verify_blob(what: &str, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
    let actual = Digest::of(bytes);
    if actual != desc.digest {
        return Err(RegistryError::DigestMismatch {
            what: what.to_string(),
            expected: desc.digest.clone(),
            actual,
        });
    }
    if bytes.len() as u64 != desc.size {
        return Err(RegistryError::SizeMismatch {
            what: what.to_string(),
            expected: desc.size,
            actual: bytes.len() as u64,
        });
    }
    Ok(())
}

fn fetch_config(
    client: &Client,
    reference: &Reference,
    m: &Manifest,
) -> Result<(Vec<u8>, ConfigSummary)> {
    let media = m.config.media_type.as_str();
    if !matches!(media, manifest::OCI_CONFIG | manifest::DOCKER_CONFIG | "") {
        return Err(RegistryError::NotAnImage {
            reference: reference.to_string(),
            media_type: media.to_string(),
        });
    }
    let bytes = client.get_small_blob(&reference.repository, &m.config.digest)?;
    verify_blob(&format!("config {}", m.config.digest), &m.config, &bytes)?;
    let config = ConfigSummary::parse(&bytes)?;
    if config.rootfs.diff_ids.len() != m.layers.len() {
        return Err(manifest::ManifestError::LayerCountMismatch {
            layers: m.layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        }
        .into());
    }
    if !config.os.is_empty() && config.os != "linux" {
        return Err(RegistryError::WrongOs {
            os: config.os,
            architecture: config.architecture,
        });
    }
    Ok((bytes, config))
}

/// Pulls `reference` into `store`, authenticating with the credential stored for its registry.
pub fn pull(
    store: &Store,
    credentials: &CredentialStore,
    reference: &Reference,
    opts: &PullOptions,
    observer: &dyn PullObserver,
) -> Result<Pulled> {
    let result = pull_inner(store, credentials, reference, opts, observer);
    observer.finished();
    result
}

fn pull_inner(
    store: &Store,
    credentials: &CredentialStore,
    reference: &Reference,
    opts: &PullOptions,
    observer: &dyn PullObserver,
) -> Result<Pulled> {
    let credential = credentials.get(&reference.registry)?;
    let client = Client::connect(
        &reference.registry,
        ClientOptions {
            credential,
            ..opts.client.clone()
        },
    )?;
    observer.pulling(reference);
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let resolved = resolve(&client, reference, &platform)?;
    let id = resolved.id().clone();

    // From here until the commit, garbage collection must not take our unrecorded layers; and
    // if the pull fails, the layers it added are removed again (a kill -9 leaves them for the
    // next pull to reuse).
    let ingest = store.begin_ingest()?;
    let tags: Vec<Reference> = if reference.digest.is_none() {
        vec![reference.clone()]
    } else {
        Vec::new()
    };
    let known_before = store.image(&id).is_ok()
        && tags.iter().all(|t| {
            t.tagged()
                .and_then(|k| store.resolve(&k).ok())
                .is_some_and(|r| r.id == id)
        });

    let mut jobs = VecDeque::new();
    let mut existing = Vec::new();
    let mut seen = BTreeSet::new();
    let mut layers = Vec::new();
    for (layer, diff_id) in resolved
        .manifest
        .layers
        .iter()
        .zip(&resolved.config.rootfs.diff_ids)
    {
        layers.push(LayerRef {
            diff_id: diff_id.clone(),
            blob: Some(layer.digest.clone()),
            media_type: layer.media_type.clone(),
        });
        if !seen.insert(diff_id.clone()) {
            continue;
        }
        if store.has_layer(diff_id) {
            observer.layer_exists(&layer.digest);
            existing.push(layer.digest.clone());
        } else {
            observer.layer_queued(&layer.digest, layer.size);
            jobs.push_back((layer.clone(), diff_id.clone()));
        }
    }
    let downloaded: Vec<Digest> = jobs.iter().map(|(l, _)| l.digest.clone()).collect();
    download_layers(
        &client,
        &ingest,
        &reference.repository,
        jobs,
        opts.concurrency.max(1),
        observer,
    )?;

    let record = ImageRecord {
        id: id.clone(),
        manifest: Some(resolved.manifest_digest.clone()),
        repo_digests: vec![format!("{}@{}", reference.name(), resolved.digest)],
        layers,
        architecture: resolved.config.architecture.clone(),
        os: resolved.config.os.clone(),
        created: resolved.config.created.clone(),
        added: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    ingest.commit_image(
        record,
        &resolved.config_bytes,
        Some(&resolved.manifest_bytes),
        &tags,
    )?;
    Ok(Pulled {
        reference: reference.clone(),
        id,
        digest: resolved.digest,
        up_to_date: known_before && downloaded.is_empty(),
        downloaded,
        existing,
    })
}

type Job = (Descriptor, Digest);

/// Downloads `jobs` on up to `concurrency` threads. The first failure stops the others (their
/// partial layers are discarded by the store, and finished ones by the ingest when it drops)
/// and is the one reported.
fn download_layers(
    client: &Client,
    ingest: &Ingest,
    repository: &str,
    jobs: VecDeque<Job>,
    concurrency: usize,
    observer: &dyn PullObserver,
) -> Result<()> {
    let threads = concurrency.min(jobs.len());
    let queue = Mutex::new(jobs);
    let abort = AtomicBool::new(false);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                if abort.load(Ordering::SeqCst) {
                    return;
                }
                let Some((layer, diff_id)) =
                    queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
                else {
                    return;
                };
                match download_layer(
                    client, ingest, repository, &layer, &diff_id, &abort, observer,
                ) {
                    Ok(()) => observer.layer_done(&layer.digest),
                    Err(e) => {
                        observer.layer_failed(&layer.digest);
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        // Layers stopped because another failed report that one, not themselves.
                        if slot.is_none() && !abort.load(Ordering::SeqCst) {
                            *slot = Some(e);
                        }
                        abort.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn download_layer(
    client: &Client,
    ingest: &Ingest,
    repository: &str,
    layer: &Descriptor,
    diff_id: &Digest,
    abort: &AtomicBool,
    observer: &dyn PullObserver,
) -> Result<()> {
    let what = format!("layer {}", layer.digest);
    let mut attempt = 1;
    loop {
        observer.layer_started(&layer.digest, layer.size);
        let result = client.get_blob(repository, &layer.digest).and_then(|resp| {
            let mut reader = LayerReader {
                inner: resp.into_reader(),
                blob: &layer.digest,
                limit: layer.size,
                count: 0,
                abort,
                observer,
                failure: None,
            };
            let added = ingest.add_layer(&mut reader, diff_id, Some((&layer.digest, layer.size)));
            match (added, reader.failure.take()) {
                (Ok(_), _) => Ok(()),
                (Err(_), Some(ReadFailure::Network(e))) => Err(client.read_error(&what, e)),
                (Err(_), Some(ReadFailure::TooLong)) => Err(RegistryError::BlobTooLong {
                    what: what.clone(),
                    expected: layer.size,
                }),
                (Err(_), Some(ReadFailure::Aborted)) => Err(RegistryError::Transfer {
                    what: what.clone(),
                    registry: client.registry().to_string(),
                    error: io::Error::other("stopped because another layer failed"),
                }),
                (Err(error), None) => Err(RegistryError::Layer {
                    blob: layer.digest.clone(),
                    error,
                }),
            }
        });
        match result {
            Err(e)
                if attempt < LAYER_ATTEMPTS && retriable(&e) && !abort.load(Ordering::SeqCst) =>
            {
                tracing::warn!("{what}: {e}; retrying");
                observer.layer_retrying(&layer.digest, &e);
                std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Failures that another attempt may not meet: the network's, not the content's.
fn retriable(e: &RegistryError) -> bool {
    match e {
        RegistryError::Unreachable { .. }
        | RegistryError::Timeout { .. }
        | RegistryError::Transfer { .. } => true,
        RegistryError::Status { status, .. } => *status >= 500,
        _ => false,
    }
}

enum ReadFailure {
    Network(io::Error),
    TooLong,
    Aborted,
}

/// The response body as the unpacker reads it: counts bytes for progress, stops at the
/// descriptor's size (a registry cannot stream an endless blob into the store), stops when another
/// layer failed, and remembers why it failed so the error can name the network, not the tar.
struct LayerReader<'a, R> {
    inner: R,
    blob: &'a Digest,
    limit: u64,
    count: u64,
    abort: &'a AtomicBool,
    observer: &'a dyn PullObserver,
    failure: Option<ReadFailure>,
}

impl<R: Read> Read for LayerReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.abort.load(Ordering::Relaxed) {
            self.failure = Some(ReadFailure::Aborted);
            // Not `Interrupted`: readers retry that kind, and this must end the unpacking.
            return Err(io::Error::other("pull aborted"));
        }
        // One byte past the limit is enough to know the blob is too long.
        let room = (self.limit + 1).saturating_sub(self.count);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if want == 0 {
            self.failure = Some(ReadFailure::TooLong);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the blob is longer than its descriptor says",
            ));
        }
        match self.inner.read(&mut buf[..want]) {
            Ok(n) => {
                self.count += n as u64;
                if self.count > self.limit {
                    self.failure = Some(ReadFailure::TooLong);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the blob is longer than its descriptor says",
                    ));
                }
                self.observer.layer_progress(self.blob, self.count);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.failure = Some(ReadFailure::Network(e));
                Err(copy)
            }
        }
    }
}
