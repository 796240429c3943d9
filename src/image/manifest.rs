//! Manifests, indexes and descriptors as registries and layouts serve them, in both the OCI and
//! the docker schema2 dialects, and the choice of one platform from an index.

use super::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The `Accept` header value that asks a registry for any manifest kind berth understands.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest or config berth reads into memory; real ones are a few kilobytes.
pub const MAX_METADATA_BYTES: u64 = 4 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlatformSpec {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image index (OCI) or manifest list (docker).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest (OCI or docker schema2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What a manifest-ish document turned out to be.
pub enum ManifestKind {
    Index(Index),
    Manifest(Manifest),
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("unknown manifest media type {0:?}: berth reads OCI and docker schema2 manifests and indexes")]
    UnknownMediaType(String),
    #[error("malformed {what}: {source}")]
    Malformed {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("unsupported manifest schema version {0}: only schema 2 images can be used (re-push the image with a current docker or skopeo)")]
    SchemaVersion(u32),
    #[error("unknown layer media type {0:?}: berth reads tar, tar+gzip and tar+zstd layers")]
    UnknownLayerType(String),
    #[error(
        "the image has no {wanted} variant; it offers {available}: choose one with --platform"
    )]
    NoPlatform { wanted: Platform, available: String },
    #[error("the image's layer list and its config's diff_ids differ in length ({layers} layers, {diff_ids} diff_ids): the image is corrupt")]
    LayerCountMismatch { layers: usize, diff_ids: usize },
}

/// Parses a manifest or an index. `declared` is the media type from the HTTP response or the
/// parent descriptor, if any; the document's own `mediaType` field wins when present.
pub fn parse(declared: Option<&str>, bytes: &[u8]) -> Result<ManifestKind, ManifestError> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "schemaVersion", default)]
        schema_version: u32,
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Malformed {
            what: "manifest",
            source,
        })?;
    if probe.schema_version != 2 {
        return Err(ManifestError::SchemaVersion(probe.schema_version));
    }
    let media = probe
        .media_type
        .as_deref()
        .or(declared.filter(|m| !m.is_empty()));
    let is_index = match media {
        Some(OCI_INDEX) | Some(DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST) | Some(DOCKER_MANIFEST) => false,
        // An OCI document may omit mediaType; its shape tells.
        None | Some("application/json") => probe.manifests.is_some() && probe.layers.is_none(),
        Some(other) => return Err(ManifestError::UnknownMediaType(other.to_string())),
    };
    if is_index {
        serde_json::from_slice(bytes)
            .map(ManifestKind::Index)
            .map_err(|source| ManifestError::Malformed {
                what: "image index",
                source,
            })
    } else {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|source| ManifestError::Malformed {
                what: "image manifest",
                source,
            })?;
        for layer in &m.layers {
            check_layer_media_type(&layer.media_type)?;
        }
        Ok(ManifestKind::Manifest(m))
    }
}

/// Accepts the layer media types whose content is a (possibly compressed) tar.
pub fn check_layer_media_type(media: &str) -> Result<(), ManifestError> {
    let known = matches!(
        media,
        OCI_LAYER_TAR | OCI_LAYER_GZIP | OCI_LAYER_ZSTD | DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN
    ) || media.starts_with("application/vnd.oci.image.layer.nondistributable.v1.tar");
    if known {
        Ok(())
    } else {
        Err(ManifestError::UnknownLayerType(media.to_string()))
    }
}

/// An `os/arch[/variant]` platform, as `--platform` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this machine (berth supports linux only).
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(variant.to_string()),
                })
            }
            _ => Err(format!(
                "invalid platform {s:?}: use os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
            )),
        }
    }

    fn matches(&self, p: &PlatformSpec) -> bool {
        p.os == self.os
            && p.architecture == self.architecture
            && (self.variant.is_none() || p.variant == self.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the manifest for `wanted` from an index. Entries without a platform (attestations,
/// single-platform layouts) are taken only when nothing carries a platform.
pub fn select_platform<'a>(
    index: &'a Index,
    wanted: &Platform,
) -> Result<&'a Descriptor, ManifestError> {
    let manifests = index
        .manifests
        .iter()
        .filter(|d| matches!(d.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST | ""));
    let with_platform: Vec<&Descriptor> =
        manifests.clone().filter(|d| d.platform.is_some()).collect();
    if with_platform.is_empty() {
        if let Some(d) = manifests.clone().next() {
            return Ok(d);
        }
    }
    if let Some(d) = with_platform
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| wanted.matches(p)))
    {
        return Ok(d);
    }
    let available = with_platform
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{}", p.os, p.architecture, v),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Err(ManifestError::NoPlatform {
        wanted: wanted.clone(),
        available: if available.is_empty() {
            "no platforms".into()
        } else {
            available
        },
    })
}

/// The few fields of an image config that the store needs (the whole document is kept as a
/// blob; the runtime reads it with `oci_spec`).
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigSummary {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub created: Option<String>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl ConfigSummary {
    /// An image's config lists one diff id per layer of its manifest; anything else is corrupt.
    pub fn check_layer_count(&self, layers: usize) -> Result<(), ManifestError> {
        if self.rootfs.diff_ids.len() == layers {
            Ok(())
        } else {
            Err(ManifestError::LayerCountMismatch {
                layers,
                diff_ids: self.rootfs.diff_ids.len(),
            })
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<ConfigSummary, ManifestError> {
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Malformed {
            what: "image config",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(platform: Option<(&str, &str)>) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::of(format!("{platform:?}").as_bytes()),
            size: 1,
            platform: platform.map(|(os, arch)| PlatformSpec {
                os: os.into(),
                architecture: arch.into(),
                variant: None,
            }),
            annotations: Default::default(),
            urls: vec![],
        }
    }

    #[test]
    fn picks_the_wanted_platform_or_names_the_choices() {
        let index = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: vec![
                desc(Some(("linux", "arm64"))),
                desc(Some(("linux", "amd64"))),
            ],
            annotations: Default::default(),
        };
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            select_platform(&index, &amd).unwrap().digest,
            index.manifests[1].digest
        );
        let err = select_platform(&index, &Platform::parse("linux/s390x").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linux/s390x") && err.contains("linux/arm64, linux/amd64"),
            "{err}"
        );
    }

    #[test]
    fn rejects_unknown_media_types_and_schema1() {
        let doc = br#"{"schemaVersion":2,"mediaType":"application/x-nope","layers":[]}"#;
        assert!(matches!(
            parse(None, doc),
            Err(ManifestError::UnknownMediaType(_))
        ));
        let doc = br#"{"schemaVersion":1,"name":"x"}"#;
        assert!(matches!(
            parse(None, doc),
            Err(ManifestError::SchemaVersion(1))
        ));
        assert!(check_layer_media_type("application/x-tar-but-not").is_err());
        assert!(check_layer_media_type(DOCKER_LAYER_GZIP).is_ok());
    }
}
