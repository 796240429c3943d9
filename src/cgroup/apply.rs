//! Writing [`Resources`] into a container's cgroup, enabling v2 controllers down the parent
//! chain, and reading back what the kernel did (OOM kills).

use super::plan::{self, Controller, IfMissing, Write};
use super::{Cgroup, CgroupError, Resources, Result, Version};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

impl Cgroup {
    /// The directory holding `controller`'s files: v1 its hierarchy's, v2 the one directory.
    fn controller_dir(&self, controller: Controller) -> Option<&PathBuf> {
        match self.version {
            Version::V2 => self.dirs.first(),
            Version::V1 => {
                let name = controller.name(Version::V1);
                let i = self
                    .options
                    .iter()
                    .position(|o| o.split(',').any(|x| x == name))?;
                self.dirs.get(i)
            }
        }
    }

    /// Writes `r` into the (existing) cgroup. Every controller and file is checked before the
    /// first write, so a missing one fails with nothing applied. Nothing asked, nothing needed.
    pub fn apply(&self, r: &Resources) -> Result<()> {
        self.prepare(r)?.write()
    }

    /// The checking half of [`Cgroup::apply`]: enables what v2 needs, finds every file, and
    /// returns the writes to make. `berth update` prepares every container before writing any.
    pub fn prepare(&self, r: &Resources) -> Result<Prepared> {
        let writes = plan::plan(r, self.version);
        if writes.is_empty() {
            return Ok(Prepared { todo: Vec::new() });
        }
        if self.version == Version::V2 {
            self.enable_controllers(&writes)?;
        }
        let mut todo: Vec<(PathBuf, String, &'static str)> = Vec::new();
        for w in &writes {
            let strict = matches!(w.if_missing, IfMissing::Error(_));
            let Some(dir) = self.controller_dir(w.controller) else {
                if strict {
                    let name = w.controller.name(self.version);
                    return Err(CgroupError::ControllerMissing {
                        controller: name,
                        flag: w.flag,
                        advice: format!(
                            "no cgroup v1 hierarchy with `{name}` is mounted under {}: mount one \
                             (`mkdir -p {root}/{name} && mount -t cgroup -o {name} cgroup {root}/{name}`), \
                             or leave out {}",
                            super::CGROUP_ROOT,
                            w.flag,
                            root = super::CGROUP_ROOT,
                        ),
                    });
                }
                continue;
            };
            match w.choices.iter().find(|(f, _)| dir.join(f).exists()) {
                Some((f, v)) => {
                    check_bfq_device(w.flag, &dir.join(f), v)?;
                    todo.push((dir.join(f), v.clone(), w.flag));
                }
                None => match w.if_missing {
                    IfMissing::Error(advice) => {
                        let file = w.choices.first().map_or("", |c| c.0);
                        let advice = if advice.is_empty() {
                            "this kernel does not support it; leave the flag out"
                        } else {
                            advice
                        };
                        return Err(CgroupError::Unsupported {
                            flag: w.flag,
                            what: format!("{} does not exist: {advice}", dir.join(file).display()),
                        });
                    }
                    IfMissing::Skip => {}
                    IfMissing::Warn(msg) => tracing::warn!("{msg}"),
                },
            }
        }
        Ok(Prepared { todo })
    }
}

/// Checked writes, ready to go ([`Cgroup::prepare`]).
#[derive(Debug)]
pub struct Prepared {
    todo: Vec<(PathBuf, String, &'static str)>,
}

impl Prepared {
    /// The files and values the writes will make, in order (berthd compares them with what
    /// the cgroup holds to notice a limit changed behind its back).
    pub fn files(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.todo.iter().map(|(p, v, _)| (p.as_path(), v.as_str()))
    }

    /// Makes the writes, in order.
    pub fn write(self) -> Result<()> {
        let todo = self.todo;
        let mut done = vec![false; todo.len()];
        for i in 0..todo.len() {
            if done[i] {
                continue;
            }
            let (path, value, flag) = &todo[i];
            match fs::write(path, value) {
                Ok(()) => {}
                // v1 refuses a memory limit above the memory+swap limit: raise that first.
                Err(e)
                    if e.raw_os_error() == Some(libc::EINVAL)
                        && path.ends_with("memory.limit_in_bytes") =>
                {
                    let memsw = (i + 1..todo.len())
                        .find(|&j| todo[j].0.ends_with("memory.memsw.limit_in_bytes"));
                    let Some(j) = memsw else {
                        return Err(write_error(flag, path, value, e));
                    };
                    let (p2, v2, f2) = &todo[j];
                    fs::write(p2, v2).map_err(|e| write_error(f2, p2, v2, e))?;
                    done[j] = true;
                    fs::write(path, value).map_err(|e| write_error(flag, path, value, e))?;
                }
                Err(e) => return Err(write_error(flag, path, value, e)),
            }
            done[i] = true;
        }
        Ok(())
    }
}

impl Cgroup {
    /// v2: makes the controllers `writes` need available in the leaf, by enabling them in
    /// `cgroup.subtree_control` of every ancestor from the mount point down (only those not
    /// enabled yet). A needed controller that cannot be had is an error saying where and why;
    /// best-effort ones are left out quietly (their files then do not exist and are skipped).
    fn enable_controllers(&self, writes: &[Write]) -> Result<()> {
        let Some(mount) = self.mounts.first() else {
            return Ok(());
        };
        // controller → (strict, flag)
        let mut need: BTreeMap<Controller, (bool, &'static str)> = BTreeMap::new();
        for w in writes {
            if w.choices.is_empty() {
                continue;
            }
            let strict = matches!(w.if_missing, IfMissing::Error(_));
            let e = need.entry(w.controller).or_insert((strict, w.flag));
            if strict && !e.0 {
                *e = (true, w.flag);
            }
        }
        let mut chain = vec![mount.clone()];
        let parts: Vec<_> = self.rel.components().collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            let next = chain[chain.len() - 1].join(part);
            chain.push(next);
        }
        for (controller, (strict, flag)) in need {
            let name = controller.name(Version::V2);
            for (level, dir) in chain.iter().enumerate() {
                let avail = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
                if !avail.split_whitespace().any(|c| c == name) {
                    if !strict {
                        break;
                    }
                    let advice = if level == 0 {
                        format!(
                            "the kernel has no {name} controller on cgroup v2 ({}/cgroup.controllers: {:?}); \
                             it may be bound to a v1 hierarchy (boot with cgroup_no_v1=all), or leave out {flag}",
                            dir.display(),
                            avail.trim()
                        )
                    } else {
                        let parent = dir.parent().unwrap_or(dir);
                        format!(
                            "it is not delegated to {} (its cgroup.controllers: {:?}): enable it in the parent \
                             (`echo +{name} > {}/cgroup.subtree_control`), or under systemd give the unit \
                             Delegate=yes; or leave out {flag}",
                            dir.display(),
                            avail.trim(),
                            parent.display()
                        )
                    };
                    return Err(CgroupError::ControllerMissing {
                        controller: name,
                        flag,
                        advice,
                    });
                }
                let control = dir.join("cgroup.subtree_control");
                let enabled = fs::read_to_string(&control).unwrap_or_default();
                if enabled.split_whitespace().any(|c| c == name) {
                    continue;
                }
                let value = format!("+{name}");
                if let Err(e) = fs::write(&control, &value) {
                    if !strict {
                        break;
                    }
                    return Err(write_error(flag, &control, &value, e));
                }
            }
        }
        Ok(())
    }

    /// v2: enables `memory pids cpu io` down the parent chain (those the kernel offers and
    /// that are not enabled yet), so that a container without limits still has the files its
    /// metrics come from. Best effort: a failure is logged and the rest goes on. No-op on v1.
    pub fn enable_stat_controllers(&self) {
        if self.version != Version::V2 {
            return;
        }
        let Some(mount) = self.mounts.first() else {
            return;
        };
        let mut chain = vec![mount.clone()];
        let parts: Vec<_> = self.rel.components().collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            let next = chain[chain.len() - 1].join(part);
            chain.push(next);
        }
        // An ancestor (other than the root) that holds processes of its own cannot take domain
        // controllers, and enabling the threaded ones (cpu, pids) there would make it a thread
        // root under which no container could be placed at all: leave such a chain alone.
        if let Some(busy) = chain.iter().skip(1).find(|dir| has_processes(dir)) {
            tracing::info!(cgroup = %busy.display(), "cgroup holds processes of its own; container metrics without limits are left out");
            return;
        }
        for name in ["memory", "pids", "cpu", "io"] {
            for dir in &chain {
                let avail = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
                if !avail.split_whitespace().any(|c| c == name) {
                    tracing::debug!(controller = name, dir = %dir.display(), "controller not available; its metrics are left out");
                    break;
                }
                let control = dir.join("cgroup.subtree_control");
                let enabled = fs::read_to_string(&control).unwrap_or_default();
                if enabled.split_whitespace().any(|c| c == name) {
                    continue;
                }
                if let Err(e) = fs::write(&control, format!("+{name}")) {
                    tracing::info!(controller = name, file = %control.display(), error = %e, "cannot enable the controller; its metrics are left out");
                    break;
                }
            }
        }
    }

    /// How many processes of this cgroup the OOM killer killed (v2 `memory.events`, v1
    /// `memory.oom_control`, both `oom_kill N`); `None` when there is no memory controller or
    /// the kernel does not count.
    pub fn oom_kills(&self) -> Option<u64> {
        let (dir, file) = match self.version {
            Version::V2 => (self.dirs.first()?, "memory.events"),
            Version::V1 => (
                self.controller_dir(Controller::Memory)?,
                "memory.oom_control",
            ),
        };
        let text = fs::read_to_string(dir.join(file)).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// A per-device BFQ weight (`MAJ:MIN W` into `*.bfq.weight*`) only works on a device whose
/// scheduler is BFQ; the kernel says EOPNOTSUPP, berth says which device and what to do.
fn check_bfq_device(flag: &'static str, path: &Path, value: &str) -> Result<()> {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let Some((dev, _)) = value.split_once(' ') else {
        return Ok(());
    };
    if !file.contains("bfq") || !dev.contains(':') {
        return Ok(());
    }
    let sched_path = PathBuf::from(format!("/sys/dev/block/{dev}/queue/scheduler"));
    let sched = fs::read_to_string(&sched_path).unwrap_or_default();
    if sched.contains("[bfq]") {
        return Ok(());
    }
    Err(CgroupError::Unsupported {
        flag,
        what: format!(
            "block device {dev} does not use the BFQ IO scheduler ({}: {}), which per-device \
             weights need: `echo bfq > {}`, or leave out the device weight",
            sched_path.display(),
            sched.trim(),
            sched_path.display()
        ),
    })
}

/// Sets a process's `oom_score_adj` (inherited by its children).
pub fn set_oom_score_adj(pid: i32, value: i32) -> Result<()> {
    let path = PathBuf::from(format!("/proc/{pid}/oom_score_adj"));
    let v = value.to_string();
    fs::write(&path, &v).map_err(|source| {
        let hint = match source.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => {
                ": lowering oom_score_adj needs CAP_SYS_RESOURCE, which berth does not have here"
            }
            _ => "",
        };
        CgroupError::Write {
            flag: "--oom-score-adj",
            path: path.clone(),
            value: v.clone(),
            source,
            hint,
        }
    })
}

fn write_error(flag: &'static str, path: &Path, value: &str, source: io::Error) -> CgroupError {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let hint = match (source.raw_os_error(), file) {
        (Some(libc::EINVAL), "cpuset.cpus" | "cpuset.mems") => {
            ": the CPUs/nodes must be within those of the parent cgroup"
        }
        (Some(libc::EINVAL | libc::EBUSY), f) if f.starts_with("memory.") => {
            ": the container may already use more than that, or the value conflicts with its other memory limits"
        }
        (Some(libc::EBUSY), "cgroup.subtree_control") => {
            ": that cgroup has processes of its own (cgroup v2 allows controllers only above leaves): \
             move them into a child cgroup, or choose another --cgroup-parent"
        }
        (Some(libc::EACCES | libc::EPERM), _) => ": managing cgroups needs root",
        (Some(libc::ENOENT), _) => ": the container's cgroup is gone (did it exit?)",
        (Some(libc::EINVAL), _) => ": the kernel refused the value",
        _ => "",
    };
    CgroupError::Write {
        flag,
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
        hint,
    }
}

/// Whether a cgroup directory lists any process of its own.
fn has_processes(dir: &std::path::Path) -> bool {
    fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
}
