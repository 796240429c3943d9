//! Which network namespace a request means: a berth container (by name, id or id prefix,
//! through the runtime's container store), a namespace file, or a process.

use super::error::{AgentError, Result};
use crate::api::Target;
use crate::container::id::{self, Resolved};
use crate::container::state::{self, Paths};
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Identity of a namespace: device and inode of its nsfs file. A path reused for another
/// namespace (`ip netns del x; ip netns add x`) has another identity.
pub type NsIdent = (u64, u64);

/// The identity of the network namespace at `path`, if it is one.
pub fn ns_ident(path: &Path) -> Option<NsIdent> {
    let st = nix::sys::statfs::statfs(path).ok()?;
    if st.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        return None;
    }
    let md = std::fs::metadata(path).ok()?;
    Some((md.dev(), md.ino()))
}

/// A resolved target.
#[derive(Debug, Clone)]
pub struct ResolvedTarget {
    /// Berth container id, `ns-<hash>` or `pid-<pid>-<start>`.
    pub id: String,
    /// DNS name.
    pub name: String,
    pub netns: PathBuf,
    pub ident: Option<NsIdent>,
}

fn one_of(t: &Target) -> Result<()> {
    let n = usize::from(t.container.is_some())
        + usize::from(t.netns.is_some())
        + usize::from(t.pid.is_some());
    if n != 1 {
        return Err(AgentError::BadRequest(
            "name exactly one of: a container, --netns PATH or --pid PID".into(),
        ));
    }
    Ok(())
}

fn netns_id(path: &str) -> String {
    let h = Sha256::digest(path.as_bytes());
    format!("ns-{}", &hex::encode(h)[..16])
}

fn check_netns_path(p: &str) -> Result<PathBuf> {
    let path = PathBuf::from(p);
    if !path.is_absolute() || path.components().any(|c| c.as_os_str() == "..") {
        return Err(AgentError::BadRequest(format!(
            "netns path {p:?} must be absolute, without '..'"
        )));
    }
    Ok(path)
}

/// Resolves `t`. With `need_ns`, the namespace must exist (attach); without, a target whose
/// namespace is gone still resolves to its id where possible (detach, inspect).
pub fn resolve(paths: &Paths, t: &Target, need_ns: bool) -> Result<ResolvedTarget> {
    one_of(t)?;
    let r = if let Some(q) = &t.container {
        let records = state::list_records(paths)
            .map_err(|e| AgentError::Internal(format!("reading the container store: {e}")))?;
        let pairs: Vec<(String, String)> = records
            .iter()
            .map(|r| (r.id.clone(), r.name.clone()))
            .collect();
        let (cid, name) = match id::resolve(&pairs, q) {
            Resolved::Found(found) => {
                let name = pairs
                    .iter()
                    .find(|(i, _)| i == found)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_default();
                (found.to_string(), name)
            }
            Resolved::Ambiguous => {
                return Err(AgentError::BadRequest(format!(
                    "container reference {q:?} matches more than one container id: give more digits or the name"
                )))
            }
            // a removed container can still be detached by its full id
            Resolved::NotFound if !need_ns && id::is_full_id(q) => (q.clone(), id::short(q).into()),
            Resolved::NotFound => {
                return Err(AgentError::NoContainer(format!(
                    "no such container: {q} (see `berth ps -a`; for a namespace berth did not make use --netns PATH or --pid PID)"
                )))
            }
        };
        let netns = paths.netns(&cid);
        let ident = ns_ident(&netns);
        if need_ns && ident.is_none() {
            return Err(AgentError::Netns(format!(
                "container {name} has no network namespace at {} (is it running? start it first)",
                netns.display()
            )));
        }
        ResolvedTarget {
            id: cid,
            name,
            netns,
            ident,
        }
    } else if let Some(p) = &t.netns {
        let netns = check_netns_path(p)?;
        let ident = ns_ident(&netns);
        if need_ns && ident.is_none() {
            return Err(AgentError::Netns(format!(
                "{p} is not a network namespace (does it exist? `ip netns add NAME` makes /run/netns/NAME)"
            )));
        }
        let name = netns
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "netns".into());
        ResolvedTarget {
            id: netns_id(p),
            name,
            netns,
            ident,
        }
    } else {
        let pid = t.pid.unwrap_or(0);
        if pid <= 0 {
            return Err(AgentError::BadRequest(format!("invalid pid {pid}")));
        }
        let start = state::process_start_time(pid)
            .ok_or_else(|| AgentError::NoContainer(format!("no such process: {pid}")))?;
        let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let ident = ns_ident(&netns);
        if need_ns && ident.is_none() {
            return Err(AgentError::Netns(format!(
                "cannot open the network namespace of process {pid}"
            )));
        }
        ResolvedTarget {
            id: format!("pid-{pid}-{start}"),
            name: format!("pid-{pid}"),
            netns,
            ident,
        }
    };
    if need_ns && r.ident.is_some() && r.ident == ns_ident(Path::new("/proc/self/ns/net")) {
        return Err(AgentError::Forbidden(format!(
            "{} is the host's network namespace (berthd's own); berth wires only container namespaces",
            r.netns.display()
        )));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(d.path(), d.path());
        let e = resolve(&paths, &Target::default(), true).unwrap_err();
        assert!(e.to_string().contains("exactly one"));
        let t = Target {
            container: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve(&paths, &t, true).unwrap_err().code(),
            "container_not_found"
        );
        let t = Target {
            netns: Some("relative/x".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve(&paths, &t, true).unwrap_err().code(),
            "invalid_argument"
        );
        let t = Target {
            netns: Some("/proc/self/ns/net".into()),
            ..Default::default()
        };
        assert_eq!(resolve(&paths, &t, true).unwrap_err().code(), "forbidden");
        let t = Target {
            netns: Some("/nonexistent/ns".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve(&paths, &t, true).unwrap_err().code(),
            "netns_unavailable"
        );
        let r = resolve(&paths, &t, false).unwrap();
        assert!(r.id.starts_with("ns-") && r.name == "ns" && r.ident.is_none());
    }
}
