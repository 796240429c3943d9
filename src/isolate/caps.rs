//! Capability names (docker's spelling, `CAP_` optional) and `--cap-add`/`--cap-drop`.

/// Capability names by number (linux/capability.h).
pub const NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The number of a capability: `NET_ADMIN`, `CAP_NET_ADMIN`, `net_admin`.
pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
}

/// Every capability this kernel knows (`/proc/sys/kernel/cap_last_cap`), else every one
/// berth knows.
pub fn all() -> u64 {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(NAMES.len() as u32 - 1)
        .min(63);
    u64::MAX >> (63 - last)
}

/// The capabilities berth itself holds (its permitted set): a container cannot get more.
pub fn own() -> u64 {
    rustix::thread::capabilities(None)
        .map(|c| c.permitted.bits())
        .unwrap_or(0)
}

/// Normalizes a `--cap-add`/`--cap-drop` value: `ALL` or a known name without `CAP_`.
pub fn normalize(name: &str) -> Result<String, String> {
    if name.eq_ignore_ascii_case("ALL") {
        return Ok("ALL".into());
    }
    match number(name) {
        Some(n) => Ok(NAMES[n as usize].to_string()),
        None => Err(format!(
            "unknown capability {name:?}: use a name like NET_ADMIN or CAP_NET_ADMIN, or ALL \
             (see capabilities(7))"
        )),
    }
}

/// docker's rules (moby `TweakCapabilities`): `--cap-add ALL` gives every capability but the
/// dropped ones; `--cap-drop ALL` gives only the added ones; otherwise the default set minus
/// the dropped plus the added (an add wins over a drop). Names are [`normalize`]d.
pub fn resolve(default: u64, add: &[String], drop: &[String]) -> u64 {
    let mask = |names: &[String]| {
        names
            .iter()
            .filter_map(|n| number(n))
            .fold(0u64, |m, n| m | (1 << n))
    };
    let has_all = |names: &[String]| names.iter().any(|n| n == "ALL");
    if has_all(add) {
        all() & !mask(drop)
    } else if has_all(drop) {
        mask(add)
    } else {
        (default & !mask(drop)) | mask(add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rules() {
        assert_eq!(number("CAP_NET_ADMIN"), Some(12));
        assert_eq!(number("net_admin"), Some(12));
        assert_eq!(number("NOPE"), None);
        assert!(normalize("NOPE").is_err());
        assert_eq!(normalize("cap_sys_admin").unwrap(), "SYS_ADMIN");
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(resolve(0b11, &s(&[]), &s(&["ALL"])), 0);
        assert_eq!(resolve(0b11, &s(&["NET_ADMIN"]), &s(&["ALL"])), 1 << 12);
        assert_eq!(resolve(0b11, &s(&[]), &s(&["CHOWN"])), 0b10);
        assert_eq!(resolve(0b11, &s(&["ALL"]), &s(&["CHOWN"])) & 1, 0);
    }
}
