//! `berth image import ROOTFS.tar NAME[:TAG]`: a filesystem tarball becomes a one-layer image,
//! as `docker import` does. The tar may be plain, gzip or zstd; `-` reads standard input.

use super::digest::Digest;
use super::manifest::{self, Platform};
use super::reference::Reference;
use super::store::{ImageRecord, LayerRef, Result, Store};
use serde_json::json;
use std::io::Read;

/// Imports `input` as a new image tagged `name` (untagged when `None`). `changes` are docker's
/// `--change` Dockerfile instructions limited to CMD, ENTRYPOINT, ENV, WORKDIR and USER, already
/// parsed into config keys by the caller.
pub fn import<R: Read>(
    store: &Store,
    input: R,
    name: Option<&Reference>,
    config_extra: serde_json::Value,
) -> Result<ImageRecord> {
    let ingest = store.begin_ingest()?;
    let (_layer, outcome) = ingest.add_layer_unverified(input)?;
    let platform = Platform::host();
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created,
        "config": config_extra,
        "rootfs": { "type": "layers", "diff_ids": [outcome.diff_id.to_string()] },
        "history": [ { "created": created, "created_by": "berth image import", "comment": "Imported from tarball" } ],
    });
    let config_bytes = serde_json::to_vec(&config).expect("a json! value always serializes");
    let config_digest = Digest::of(&config_bytes);
    // A manifest describing the layer as it came in, so the image can be saved or pushed as is.
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": { "mediaType": manifest::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len() },
        "layers": [ { "mediaType": manifest::OCI_LAYER_TAR, "digest": outcome.blob_digest.to_string(), "size": outcome.blob_size } ],
    });
    let manifest_bytes = serde_json::to_vec(&manifest).expect("a json! value always serializes");
    let record = ImageRecord {
        id: config_digest,
        manifest: Some(Digest::of(&manifest_bytes)),
        repo_digests: Vec::new(),
        layers: vec![LayerRef {
            diff_id: outcome.diff_id,
            blob: Some(outcome.blob_digest),
            media_type: manifest::OCI_LAYER_TAR.into(),
        }],
        architecture: platform.architecture,
        os: platform.os,
        created: Some(created),
        added: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let tags: Vec<Reference> = name.cloned().into_iter().collect();
    ingest.commit_image(record, &config_bytes, Some(&manifest_bytes), &tags)
}
