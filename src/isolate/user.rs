//! The container's user and capabilities.
//!
//! Users are looked up in the container's own /etc/passwd and /etc/group (read after the
//! pivot, so they are the image's files), the way runc's `GetExecUser` does: a numeric uid
//! need not exist (gid 0, home `/`), a name must.
//!
//! Capabilities end as docker's default set for root, and empty (except the bounding set) for
//! any other user: the bounding set is reduced first (it needs CAP_SETPCAP), the ambient set
//! cleared, then the ids switched, then effective/permitted set and inheritable emptied
//! (CVE-2022-29162 / CVE-2022-27650: a non-empty inheritable set leaked into exec'd programs).

use crate::container::config::{IdOrName, UserSpec};
use rustix::thread::{CapabilityFlags, CapabilitySets};
use std::fs;
use std::io;

/// docker's default capabilities: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID,
/// SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP.
pub const DOCKER_DEFAULT_CAPS: u64 = 0x0000_0000_a804_25fb;

/// Who the process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn read_optional(path: &str) -> Result<String, String> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("cannot read {path}: {e}")),
    }
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 || line.starts_with('#') {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || line.starts_with('#') {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect(),
            })
        })
        .collect()
}

/// Resolves `spec` (`""` = root) against the container's /etc/passwd and /etc/group.
pub fn resolve(spec: &str) -> Result<ExecUser, String> {
    let spec = if spec.is_empty() {
        UserSpec {
            user: IdOrName::Id(0),
            group: None,
        }
    } else {
        UserSpec::parse(spec).map_err(|e| e.to_string())?
    };
    let passwd = parse_passwd(&read_optional("/etc/passwd")?);
    let groups = parse_group(&read_optional("/etc/group")?);
    resolve_in(&spec, &passwd, &groups)
}

fn resolve_in(
    spec: &UserSpec,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<ExecUser, String> {
    let (uid, entry) = match &spec.user {
        IdOrName::Id(uid) => (*uid, passwd.iter().find(|p| p.uid == *uid)),
        IdOrName::Name(name) => {
            let p = passwd.iter().find(|p| &p.name == name).ok_or_else(|| {
                format!(
                    "unable to find user {name}: no matching entries in the container's /etc/passwd"
                )
            })?;
            (p.uid, Some(p))
        }
    };
    let gid = match &spec.group {
        Some(IdOrName::Id(gid)) => *gid,
        Some(IdOrName::Name(name)) => groups
            .iter()
            .find(|g| &g.name == name)
            .map(|g| g.gid)
            .ok_or_else(|| {
                format!("unable to find group {name}: no matching entries in the container's /etc/group")
            })?,
        None => entry.map_or(0, |p| p.gid),
    };
    let mut extra = Vec::new();
    if let (Some(p), None) = (entry, &spec.group) {
        for g in groups.iter().filter(|g| g.members.contains(&p.name)) {
            if g.gid != gid && !extra.contains(&g.gid) {
                extra.push(g.gid);
            }
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        groups: extra,
        home: entry.map_or_else(|| "/".to_string(), |p| p.home.clone()),
    })
}

/// Drops every capability outside `keep` from the bounding set and clears the ambient set.
/// Must run while the process still has CAP_SETPCAP.
pub fn limit_bounding_and_ambient(keep: u64) -> Result<(), String> {
    for cap in 0..64u32 {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl(PR_CAPBSET_DROP, cap) takes integers only.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                break; // past the kernel's last capability
            }
            return Err(format!(
                "cannot drop capability {cap} from the bounding set: {e}"
            ));
        }
    }
    rustix::thread::clear_ambient_capability_set()
        .map_err(|e| format!("cannot clear the ambient capabilities: {e}"))
}

/// Switches to `user` (supplementary groups, gid, uid) and sets the final capabilities:
/// `caps` effective and permitted for root, nothing for others; inheritable always empty.
pub fn switch_user(user: &ExecUser, caps: u64) -> Result<(), String> {
    // (uid_t)-1 / (gid_t)-1 mean "leave unchanged" to the set*id calls: never pass them.
    let invalid = |what: &str, id: u32| format!("invalid {what} {id}: (uid_t)-1 is reserved");
    if user.uid == u32::MAX {
        return Err(invalid("uid", user.uid));
    }
    if let Some(g) = std::iter::once(&user.gid)
        .chain(&user.groups)
        .find(|g| **g == u32::MAX)
    {
        return Err(invalid("gid", *g));
    }
    // SAFETY: from_raw requires an id other than -1, checked above.
    let gid_of = |g: u32| unsafe { rustix::process::Gid::from_raw(g) };
    let groups: Vec<rustix::process::Gid> = user.groups.iter().map(|g| gid_of(*g)).collect();
    rustix::thread::set_thread_groups(&groups)
        .map_err(|e| format!("cannot set the supplementary groups {:?}: {e}", user.groups))?;
    let gid = gid_of(user.gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .map_err(|e| format!("cannot switch to gid {}: {e}", user.gid))?;
    // SAFETY: from_raw requires a uid other than -1, checked above.
    let uid = unsafe { rustix::process::Uid::from_raw(user.uid) };
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .map_err(|e| format!("cannot switch to uid {}: {e}", user.uid))?;
    let set = if user.uid == 0 { caps } else { 0 };
    let flags = CapabilityFlags::from_bits_retain(set);
    let sets = CapabilitySets {
        effective: flags,
        permitted: flags,
        inheritable: CapabilityFlags::empty(),
    };
    rustix::thread::set_capabilities(None, sets)
        .map_err(|e| format!("cannot set the capabilities: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:w:/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwww-data:x:33:\nadm:x:4:www-data,other\n";

    fn r(spec: &str) -> Result<ExecUser, String> {
        let spec = UserSpec::parse(spec).unwrap();
        resolve_in(&spec, &parse_passwd(PASSWD), &parse_group(GROUP))
    }

    #[test]
    fn resolves_names_and_numbers() {
        assert_eq!(
            r("www-data").unwrap(),
            ExecUser {
                uid: 33,
                gid: 33,
                groups: vec![4],
                home: "/var/www".into()
            }
        );
        assert_eq!(
            r("1234").unwrap(),
            ExecUser {
                uid: 1234,
                gid: 0,
                groups: vec![],
                home: "/".into()
            }
        );
        assert_eq!(r("0:adm").unwrap().gid, 4);
        assert_eq!(
            r("33:7").unwrap(),
            ExecUser {
                uid: 33,
                gid: 7,
                groups: vec![],
                home: "/var/www".into()
            }
        );
        assert!(r("nobody")
            .unwrap_err()
            .contains("unable to find user nobody"));
        assert!(r("0:nogroup")
            .unwrap_err()
            .contains("unable to find group nogroup"));
    }
}
