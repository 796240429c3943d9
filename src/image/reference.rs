//! Docker-style image references.
//!
//! `ubuntu:14.04` is short for `docker.io/library/ubuntu:14.04`; `localhost:5000/app@sha256:…`
//! names a registry, a repository and a digest. Parsing follows the grammar of docker's
//! `distribution/reference` so that every name a docker user types means the same thing here.

use super::digest::Digest;
use std::fmt;
use std::str::FromStr;

pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
/// docker's limit on the length of a full repository name.
const NAME_TOTAL_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// A parsed, normalized image reference.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path inside the registry (`library/ubuntu`).
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid reference {input:?}: {reason}")]
pub struct InvalidReference {
    pub input: String,
    pub reason: String,
}

fn invalid(input: &str, reason: impl Into<String>) -> InvalidReference {
    InvalidReference {
        input: input.to_string(),
        reason: reason.into(),
    }
}

impl Reference {
    /// Parses a reference the way `docker pull` does, filling in the default registry,
    /// `library/` for official images and the `latest` tag.
    pub fn parse(input: &str) -> Result<Self, InvalidReference> {
        if input.is_empty() {
            return Err(invalid(input, "the image name is empty"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                let digest = d.parse::<Digest>().map_err(|_| {
                    invalid(
                        input,
                        "the digest must be sha256:<64 lower-case hex digits>",
                    )
                })?;
                (r, Some(digest))
            }
            None => (input, None),
        };
        // A tag is what follows the last ':' after the last '/', so `host:5000/app` has none.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                validate_tag(input, tag)?;
                (&rest[..last_slash + i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(invalid(input, "the image name is empty"));
        }
        let (registry, path) = split_registry(name);
        if let Some(reg) = &registry {
            validate_registry(input, reg)?;
        }
        validate_path(input, path)?;
        let registry = registry.unwrap_or_else(|| DEFAULT_REGISTRY.to_string());
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if registry.len() + 1 + repository.len() > NAME_TOTAL_MAX {
            return Err(invalid(
                input,
                format!("the repository name is longer than {NAME_TOTAL_MAX} characters"),
            ));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`, e.g. `docker.io/library/ubuntu`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form docker prints: `ubuntu`, `someone/app`, `127.0.0.1:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        }
    }

    /// `name:tag` in full form, the key under which a tag is stored.
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{}", self.name(), t))
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

/// Splits `host[:port]/path` into registry and path. The first component is a registry when it
/// has a `.` or a `:`, is `localhost`, or has upper-case letters (never valid in a path).
fn split_registry(name: &str) -> (Option<String>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first.to_string()), rest)
        }
        _ => (None, name),
    }
}

fn validate_tag(input: &str, tag: &str) -> Result<(), InvalidReference> {
    if tag.is_empty() {
        return Err(invalid(input, "the tag after ':' is empty"));
    }
    if tag.len() > TAG_MAX {
        return Err(invalid(
            input,
            format!("the tag is longer than {TAG_MAX} characters"),
        ));
    }
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(invalid(
            input,
            "a tag may hold only letters, digits, '_', '.' and '-', and must not start with '.' or '-'",
        ));
    }
    Ok(())
}

fn validate_registry(input: &str, reg: &str) -> Result<(), InvalidReference> {
    let (host, port) = match reg.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (reg, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(invalid(
            input,
            format!("{reg:?} is not a valid registry host[:port]"),
        ))
    }
}

fn validate_path(input: &str, path: &str) -> Result<(), InvalidReference> {
    for component in path.split('/') {
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(input, "repository names must be lower-case"));
        }
        if !valid_component(component) {
            return Err(invalid(
                input,
                format!(
                    "{component:?} is not a valid name component: use lower-case letters and digits, \
                     separated by '.', '_', '__' or '-'"
                ),
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

impl FromStr for Reference {
    type Err = InvalidReference;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn short_names_resolve_like_docker() {
        assert_eq!(
            p("ubuntu:14.04").to_string(),
            "docker.io/library/ubuntu:14.04"
        );
        assert_eq!(p("ubuntu").to_string(), "docker.io/library/ubuntu:latest");
        assert_eq!(p("someone/app").to_string(), "docker.io/someone/app:latest");
        assert_eq!(p("ubuntu").familiar_name(), "ubuntu");
    }

    #[test]
    fn registries_with_ports_and_digests() {
        let r = p("127.0.0.1:5000/team/app:v1");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "team/app", Some("v1"))
        );
        assert_eq!(r.familiar_name(), "127.0.0.1:5000/team/app");
        let r = p("localhost/app");
        assert_eq!(r.registry, "localhost");
        let d = Digest::of(b"x");
        let r = p(&format!("busybox@{d}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.digest, Some(d));
        let r = p("host:5000/app");
        assert_eq!(r.tag.as_deref(), Some("latest"));
    }

    #[test]
    fn rejects_what_docker_rejects() {
        for bad in [
            "UPPER:case",
            "app:",
            "",
            ":tag",
            "a//b",
            "-app",
            "app-",
            "app:.bad",
            "app@sha256:zz",
            "a..b",
        ] {
            let e = Reference::parse(bad).expect_err(bad);
            assert!(e.to_string().starts_with("invalid reference"), "{e}");
        }
        assert!(Reference::parse("UPPER:case")
            .unwrap_err()
            .reason
            .contains("lower-case"));
        let long = "a".repeat(200);
        assert!(Reference::parse(&format!("{long}/{long}"))
            .unwrap_err()
            .reason
            .contains("longer than"));
        assert!(Reference::parse(&format!("app:{}", "t".repeat(129))).is_err());
    }
}
