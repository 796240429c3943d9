//! Protocol tests against a scripted server: the cases a well-behaved registry never produces
//! (wrong digests, endless blobs, cut connections, stalls) and the token and redirect rules.
//! The integration tests in `tests/pull.rs` cover real registries.

use super::testserver::{Request, Response, TestServer};
use super::*;
use crate::image::manifest::{ManifestError, Platform, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
use crate::image::reference::Reference;
use crate::image::store::Store;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An image served by [`serve_image`]: manifest bytes and every blob by digest.
struct Fixture {
    manifest: Vec<u8>,
    manifest_digest: Digest,
    config_digest: Digest,
    layer_digest: Digest,
    blobs: HashMap<String, Vec<u8>>,
}

fn layer_tar_gz(content: &[u8]) -> (Vec<u8>, Digest) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(content.len() as u64);
    h.set_mtime(1_600_000_000);
    b.append_data(&mut h, "file", content).unwrap();
    let tar = b.into_inner().unwrap();
    let diff_id = Digest::of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

fn fixture(content: &[u8]) -> Fixture {
    fixture_with(content, |_| {})
}

/// A one-layer image; `edit` may change the manifest document before it is serialized.
fn fixture_with(content: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Fixture {
    let (layer, diff_id) = layer_tar_gz(content);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    }))
    .unwrap();
    let (layer_digest, config_digest) = (Digest::of(&layer), Digest::of(&config));
    let mut doc = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": layer.len() }],
    });
    edit(&mut doc);
    let manifest = serde_json::to_vec(&doc).unwrap();
    let mut blobs = HashMap::new();
    blobs.insert(layer_digest.to_string(), layer);
    blobs.insert(config_digest.to_string(), config);
    Fixture {
        manifest_digest: Digest::of(&manifest),
        manifest,
        config_digest,
        layer_digest,
        blobs,
    }
}

/// Answers `/v2/`, the manifest under tag `v1` and by digest, and the blobs of `app`.
fn serve_image(f: &Fixture, req: &Request) -> Response {
    let path = req.path.as_str();
    if path == "/v2/" {
        return Response::new(200);
    }
    if path == "/v2/app/manifests/v1" || path == format!("/v2/app/manifests/{}", f.manifest_digest)
    {
        return Response::new(200)
            .header("Content-Type", OCI_MANIFEST)
            .body(f.manifest.clone());
    }
    if let Some(d) = path.strip_prefix("/v2/app/blobs/") {
        if let Some(b) = f.blobs.get(d) {
            return Response::new(200).body(b.clone());
        }
    }
    Response::new(404)
        .body(r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#)
}

fn client(server: &TestServer, credential: Option<Credential>) -> Client {
    Client::connect(
        &server.host(),
        ClientOptions {
            credential,
            ..ClientOptions::default()
        },
    )
    .unwrap()
}

fn reference(server: &TestServer, rest: &str) -> Reference {
    Reference::parse(&format!("{}/{rest}", server.host())).unwrap()
}

fn host_platform() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

#[test]
fn bearer_token_flow_uses_scope_service_and_access_token() {
    let f = fixture(b"hello");
    let server = TestServer::start(move |req, host| {
        let authorized = req.header("authorization") == Some("Bearer T0K");
        if req.path.starts_with("/token") {
            return Response::new(200).body(r#"{"access_token":"T0K","expires_in":60}"#);
        }
        if !authorized {
            let challenge = format!(r#"Bearer realm="http://{host}/token",service="fake""#);
            return Response::new(401).header("WWW-Authenticate", &challenge);
        }
        serve_image(&f, req)
    });
    let c = client(&server, None);
    assert!(matches!(
        c.ping_challenge(),
        Some(auth::Challenge::Bearer { .. })
    ));
    let r = resolve(&c, &reference(&server, "app:v1"), &host_platform()).unwrap();
    assert_eq!(r.manifest.layers.len(), 1);
    let token_requests: Vec<Request> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/token"))
        .collect();
    assert_eq!(token_requests.len(), 1, "one token serves the whole pull");
    assert_eq!(
        token_requests[0].path,
        "/token?service=fake&scope=repository%3Aapp%3Apull"
    );
    assert_eq!(
        token_requests[0].header("authorization"),
        None,
        "anonymous: no credentials sent"
    );
}

#[test]
fn token_server_gets_basic_credentials_and_a_refusing_registry_means_auth_failed() {
    let server = TestServer::start(move |req, host| {
        if req.path.starts_with("/token") {
            // user:pw
            return match req.header("authorization") {
                Some("Basic dXNlcjpwdw==") => Response::new(200).body(r#"{"token":"T"}"#),
                _ => Response::new(401),
            };
        }
        Response::new(401).header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="http://{host}/token",service="fake""#),
        )
    });
    let good = Credential {
        username: "user".into(),
        password: "pw".into(),
    };
    let e = resolve(
        &client(&server, Some(good)),
        &reference(&server, "app:v1"),
        &host_platform(),
    )
    .unwrap_err();
    match &e {
        RegistryError::AuthFailed { reason, .. } => assert!(reason.contains("rejected"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string()
            .contains(&format!("run `berth login {}`", server.host())),
        "{e}"
    );
    let bad = Credential {
        username: "user".into(),
        password: "nope".into(),
    };
    let e = resolve(
        &client(&server, Some(bad)),
        &reference(&server, "app:v1"),
        &host_platform(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, RegistryError::AuthFailed { reason, .. } if reason.contains("token server rejected")),
        "{e}"
    );
}

#[test]
fn redirects_keep_credentials_on_the_registry_and_drop_them_elsewhere() {
    let storage = TestServer::start(|_, _| Response::new(200).body("blob"));
    let storage_host = storage.host();
    let digest = Digest::of(b"blob");
    let d = digest.to_string();
    let server = TestServer::start(move |req, _| {
        if req.path == "/v2/" {
            return Response::new(401).header("WWW-Authenticate", r#"Basic realm="x""#);
        }
        if req.header("authorization").is_none() {
            return Response::new(401).header("WWW-Authenticate", r#"Basic realm="x""#);
        }
        if req.path == format!("/v2/app/blobs/{d}") {
            return Response::new(307).header("Location", &format!("/v2/app/blobs/{d}/here"));
        }
        Response::new(302).header(
            "Location",
            &format!("http://{storage_host}/bucket/blob?sig=abc"),
        )
    });
    let c = client(
        &server,
        Some(Credential {
            username: "u".into(),
            password: "p".into(),
        }),
    );
    let mut body = String::new();
    c.get_blob("app", &digest)
        .unwrap()
        .into_reader()
        .read_to_string(&mut body)
        .unwrap();
    assert_eq!(body, "blob");
    let same_host = server.requests();
    assert!(
        same_host
            .iter()
            .filter(|r| r.path != "/v2/")
            .all(|r| r.header("authorization").is_some()),
        "{same_host:?}"
    );
    let elsewhere = storage.requests();
    assert_eq!(elsewhere.len(), 1);
    assert_eq!(elsewhere[0].path, "/bucket/blob?sig=abc");
    assert_eq!(
        elsewhere[0].header("authorization"),
        None,
        "credentials leaked to {}",
        storage.host()
    );
}

#[test]
fn manifests_and_configs_must_hash_to_their_digests() {
    let f = fixture(b"x");
    let served_digest = f.manifest_digest.clone();
    // Pulled by a digest the bytes do not have.
    let other = Digest::of(b"other");
    let manifest = f.manifest.clone();
    let other_path = format!("/v2/app/manifests/{other}");
    let server = TestServer::start(move |req, _| {
        if req.path == other_path {
            return Response::new(200)
                .header("Content-Type", OCI_MANIFEST)
                .body(manifest.clone());
        }
        Response::new(200)
    });
    let e = resolve(
        &client(&server, None),
        &reference(&server, &format!("app@{other}")),
        &host_platform(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, RegistryError::DigestMismatch { expected, actual, .. } if *expected == other && *actual == served_digest),
        "{e}"
    );
    assert!(e.to_string().contains("nothing was stored"), "{e}");

    // A tag whose Docker-Content-Digest header disagrees with the bytes.
    let manifest = f.manifest.clone();
    let server = TestServer::start(move |_, _| {
        Response::new(200)
            .header("Docker-Content-Digest", &other.to_string())
            .body(manifest.clone())
    });
    let e = resolve(
        &client(&server, None),
        &reference(&server, "app:v1"),
        &host_platform(),
    )
    .unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");

    // A config that is not what the manifest names.
    let mut f = fixture(b"y");
    let config_digest = f.config_digest.to_string();
    f.blobs
        .insert(config_digest, br#"{"rootfs":{"diff_ids":[]}}"#.to_vec());
    let server = TestServer::start(move |req, _| serve_image(&f, req));
    let e = resolve(
        &client(&server, None),
        &reference(&server, "app:v1"),
        &host_platform(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, RegistryError::DigestMismatch { what, .. } if what.starts_with("config")),
        "{e}"
    );
}

#[test]
fn index_entries_must_match_their_descriptor() {
    let f = fixture(b"z");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": crate::image::manifest::OCI_INDEX,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": Digest::of(b"not it"), "size": 6,
                        "platform": { "os": "linux", "architecture": "amd64" } }],
    }))
    .unwrap();
    let manifest = f.manifest.clone();
    let server = TestServer::start(move |req, _| {
        if req.path == "/v2/app/manifests/v1" {
            Response::new(200)
                .header("Content-Type", crate::image::manifest::OCI_INDEX)
                .body(index.clone())
        } else {
            Response::new(200)
                .header("Content-Type", OCI_MANIFEST)
                .body(manifest.clone())
        }
    });
    let e = resolve(
        &client(&server, None),
        &reference(&server, "app:v1"),
        &host_platform(),
    )
    .unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
}

#[test]
fn unknown_media_types_are_refused() {
    let f = fixture_with(b"m", |m| {
        m["mediaType"] = "application/vnd.example.thing+json".into()
    });
    let server = TestServer::start(move |req, _| serve_image(&f, req));
    let e = resolve(
        &client(&server, None),
        &reference(&server, "app:v1"),
        &host_platform(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::Manifest(ManifestError::UnknownMediaType(_))
        ),
        "{e}"
    );

    let f = fixture_with(b"m", |m| {
        m["layers"][0]["mediaType"] = "application/vnd.example.blob".into()
    });
    let server = TestServer::start(move |req, _| serve_image(&f, req));
    let e = resolve(
        &client(&server, None),
        &reference(&server, "app:v1"),
        &host_platform(),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            RegistryError::Manifest(ManifestError::UnknownLayerType(_))
        ),
        "{e}"
    );
}

#[test]
fn a_stalled_registry_times_out() {
    let server = TestServer::start(|req, _| {
        let mut r = Response::new(200);
        if req.path != "/v2/" {
            r.delay = Some(Duration::from_secs(3));
        }
        r
    });
    let opts = ClientOptions {
        read_timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    };
    let c = Client::connect(&server.host(), opts).unwrap();
    let e = c.get_manifest("app", "v1").unwrap_err();
    assert!(matches!(e, RegistryError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[test]
fn error_bodies_map_to_clear_errors() {
    let server = TestServer::start(|req, _| {
        match req.path.as_str() {
        "/v2/" => Response::new(200),
        "/v2/gone/manifests/v1" => Response::new(404).body(r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#),
        "/v2/app/manifests/v1" => Response::new(429),
        _ => Response::new(500).body(r#"{"errors":[{"code":"UNKNOWN","message":"Disk Full"}]}"#),
    }
    });
    let c = client(&server, None);
    let e = c.get_manifest("gone", "v1").unwrap_err();
    assert!(matches!(e, RegistryError::RepositoryUnknown { .. }), "{e}");
    assert!(matches!(
        c.get_manifest("app", "v1").unwrap_err(),
        RegistryError::TooManyRequests { .. }
    ));
    let e = c.get_manifest("other", "v1").unwrap_err().to_string();
    assert!(e.contains("HTTP 500: disk full"), "{e}");
}

#[test]
fn unreachable_registries_name_the_host() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = Client::connect(&format!("127.0.0.1:{port}"), ClientOptions::default())
        .err()
        .unwrap();
    let text = e.to_string();
    assert!(
        text.contains(&format!("cannot reach registry 127.0.0.1:{port}"))
            && text.contains("connection refused"),
        "{text}"
    );
    // Loopback is insecure by default, so no advice to mark it so.
    assert!(!text.contains("--insecure-registry"), "{text}");
}

/// Pulls through the store, with blob answers scripted per attempt.
fn pull_with(
    f: Fixture,
    layer_answer: impl Fn(usize, &[u8]) -> Response + Send + Sync + 'static,
) -> (Result<Pulled>, Store, tempfile::TempDir, Vec<String>) {
    let attempts = AtomicUsize::new(0);
    let layer_path = format!("/v2/app/blobs/{}", f.layer_digest);
    let server = TestServer::start(move |req, _| {
        if req.path == layer_path {
            let n = attempts.fetch_add(1, Ordering::SeqCst);
            return layer_answer(n, &f.blobs[&f.layer_digest.to_string()]);
        }
        serve_image(&f, req)
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let creds = CredentialStore::new(dir.path());
    let events = Arc::new(Mutex::new(Vec::new()));
    struct Obs(Arc<Mutex<Vec<String>>>);
    impl PullObserver for Obs {
        fn layer_retrying(&self, _: &Digest, e: &RegistryError) {
            self.0.lock().unwrap().push(format!("retry: {e}"));
        }
    }
    let result = pull(
        &store,
        &creds,
        &reference(&server, "app:v1"),
        &PullOptions::default(),
        &Obs(events.clone()),
    );
    let events = events.lock().unwrap().clone();
    (result, store, dir, events)
}

#[test]
fn a_cut_download_is_retried() {
    let (result, store, _dir, events) = pull_with(fixture(&vec![7u8; 200_000]), |n, blob| {
        let mut r = Response::new(200).body(blob.to_vec());
        if n == 0 {
            r.truncate = Some(blob.len() / 2);
        }
        r
    });
    let pulled = result.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(store.images().unwrap().len(), 1);
    assert_eq!(pulled.downloaded.len(), 1);
}

#[test]
fn wrong_or_overlong_layers_store_nothing() {
    // Content that does not hash to the descriptor's digest.
    let (result, store, _dir, _) = pull_with(fixture(b"a"), |_, _| {
        Response::new(200).body(layer_tar_gz(b"b").0)
    });
    let e = result.unwrap_err();
    assert!(
        e.to_string().contains("failed verification")
            || matches!(e, RegistryError::SizeMismatch { .. }),
        "{e}"
    );
    assert_eq!(store.images().unwrap().len(), 0);
    assert_eq!(
        std::fs::read_dir(store.layers_dir()).unwrap().count(),
        1,
        "only layers/l remains"
    );

    // More bytes than the descriptor says: stopped at the limit, never retried.
    let (result, store, _dir, events) = pull_with(fixture(b"a"), |_, blob| {
        let mut long = blob.to_vec();
        long.extend_from_slice(&[0u8; 4096]);
        Response::new(200).body(long)
    });
    assert!(
        matches!(result, Err(RegistryError::BlobTooLong { .. })),
        "{result:?}"
    );
    assert!(events.is_empty());
    assert_eq!(store.images().unwrap().len(), 0);
}

#[test]
fn a_missing_blob_is_named() {
    let (result, store, _dir, _) = pull_with(fixture(b"a"), |_, _| {
        Response::new(404)
            .body(r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#)
    });
    let e = result.unwrap_err();
    assert!(
        matches!(e, RegistryError::ManifestUnknown { .. })
            && e.to_string().contains("blob sha256:"),
        "{e}"
    );
    assert_eq!(store.images().unwrap().len(), 0);
}
