//! Per-container cgroups on cgroup v1 and v2.
//!
//! A container's cgroup is `<cgroup-parent>/<id>`, an absolute path from the root of every
//! hierarchy berth manages:
//!
//! - **v2** (`/sys/fs/cgroup` is a cgroup2 mount): one directory,
//!   `/sys/fs/cgroup/<parent>/<id>`.
//! - **v1** (`/sys/fs/cgroup` is a tmpfs holding one mount per hierarchy): the same relative
//!   directory in every mounted v1 hierarchy (`cpu`, `memory`, `pids`, `name=systemd`, …). The
//!   cgroup2 mount a hybrid host keeps at `/sys/fs/cgroup/unified` (on this kind of host it
//!   holds only controllers no v1 hierarchy has, e.g. hugetlb) is left alone.
//!
//! The runtime creates the cgroup and puts the container's first process into it **before**
//! that process runs anything of the user's, so every later fork is accounted from the start.
//! Only directories berth created are removed: the leaf `<id>` is removed with the container,
//! the parent chain stays (like docker's `/docker`).
//!
//! **Limits** ([`limits`], [`plan`], [`priority`], [`units`]) are written into the leaf after
//! it is created and before the container's first process is spawned, so the first fork is
//! already bounded. berth writes the cgroup files itself rather than through cgroups-rs:
//! the crate gets v2 wrong in exactly the places that matter here (raw shares into
//! `cpu.weight`, docker's memory+swap and even swappiness into `memory.swap.max`,
//! `io.bfq.weight` only, errors swallowed by `apply()`), and the files are few, documented
//! kernel ABI and exact to check. On v2 the controllers a limit needs are enabled in every
//! ancestor's `cgroup.subtree_control` (the leaf has no children and gets none); a controller
//! that cannot be had is an error naming it and what to do, and a container that asks for no
//! limits never needs one.

mod apply;
pub mod limits;
pub mod plan;
pub mod priority;
pub mod units;

pub use apply::{set_oom_score_adj, Prepared};
pub use limits::{Host, LimitError, ResourceFlags, Resources};
pub use priority::Priority;

use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

/// The mount point of the cgroup filesystems.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// cgroup2's filesystem magic (`CGROUP2_SUPER_MAGIC`).
const CGROUP2_MAGIC: i64 = 0x6367_7270;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("invalid cgroup parent {0:?}: give an absolute path such as /berth, without `..`")]
    InvalidParent(String),
    #[error("no cgroup hierarchy is mounted under {CGROUP_ROOT}: mount cgroup2 there (or the v1 controllers)")]
    NoHierarchy,
    #[error("cannot {action} cgroup {}: {source}{hint}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
        hint: &'static str,
    },
    #[error("cgroup {} still has processes after killing them: find them with `cat {}/cgroup.procs`", .path.display(), .path.display())]
    StillPopulated { path: PathBuf },
    #[error("cannot apply {flag}: the {controller} cgroup controller is not available: {advice}")]
    ControllerMissing {
        controller: &'static str,
        flag: &'static str,
        advice: String,
    },
    #[error("cannot apply {flag}: {what}")]
    Unsupported { flag: &'static str, what: String },
    #[error("cannot apply {flag}: writing {value:?} to {}: {source}{hint}", .path.display())]
    Write {
        flag: &'static str,
        path: PathBuf,
        value: String,
        source: io::Error,
        hint: &'static str,
    },
}

impl CgroupError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> CgroupError {
        let hint = match source.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) => ": managing cgroups needs root",
            Some(libc::EROFS) => ": the cgroup filesystem is read-only here (inside a container?)",
            Some(libc::ENOSPC) => {
                ": the cpuset of the parent cgroup is empty; set cpuset.cpus and cpuset.mems there"
            }
            _ => "",
        };
        CgroupError::Io {
            action,
            path: path.to_path_buf(),
            source,
            hint,
        }
    }
}

pub type Result<T, E = CgroupError> = std::result::Result<T, E>;

/// Which cgroup version the host runs, as far as berth is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// One hierarchy berth manages: where it is mounted and, for v1, its mount options
/// (`cpu`, `name=systemd`, …), which a container's own cgroupfs mount repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount: PathBuf,
    pub options: String,
}

/// The cgroup hierarchies mounted under [`CGROUP_ROOT`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub version: Version,
    pub hierarchies: Vec<Hierarchy>,
    /// On a hybrid v1 host: the cgroup2 mount that berth does not manage (`…/unified`).
    pub unified: Option<PathBuf>,
}

impl Layout {
    /// Reads the layout from this process's mount table.
    pub fn detect() -> Result<Layout> {
        let root = Path::new(CGROUP_ROOT);
        // SAFETY: statfs writes into the zeroed struct we own; the path is NUL-terminated.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        let c = c"/sys/fs/cgroup";
        // SAFETY: see above; `c` and `st` outlive the call.
        if unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0 && st.f_type as i64 == CGROUP2_MAGIC {
            return Ok(Layout {
                version: Version::V2,
                hierarchies: vec![Hierarchy {
                    mount: root.to_path_buf(),
                    options: String::new(),
                }],
                unified: None,
            });
        }
        let table = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| CgroupError::io("read the mount table for", root, e))?;
        let layout = parse_layout(&table);
        if layout.hierarchies.is_empty() {
            return Err(CgroupError::NoHierarchy);
        }
        Ok(layout)
    }
}

/// The v1 hierarchies (and a hybrid cgroup2 mount) listed in a mountinfo table.
fn parse_layout(table: &str) -> Layout {
    let mut hierarchies: Vec<Hierarchy> = Vec::new();
    let mut unified = None;
    for line in table.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(point) = left.split(' ').nth(4) else {
            continue;
        };
        let mut right = right.split(' ');
        let (Some(fstype), Some(_source), Some(opts)) = (right.next(), right.next(), right.next())
        else {
            continue;
        };
        let point = PathBuf::from(point);
        if point.parent() != Some(Path::new(CGROUP_ROOT)) {
            continue;
        }
        match fstype {
            "cgroup" => {
                let options: Vec<&str> = opts
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro"))
                    .collect();
                let options = options.join(",");
                if !hierarchies.iter().any(|h| h.options == options) {
                    hierarchies.push(Hierarchy {
                        mount: point,
                        options,
                    });
                }
            }
            "cgroup2" => unified = Some(point),
            _ => {}
        }
    }
    Layout {
        version: Version::V1,
        hierarchies,
        unified,
    }
}

/// Checks a `--cgroup-parent` and returns it relative to the hierarchy roots.
pub fn parse_parent(parent: &str) -> Result<PathBuf> {
    let segments: Vec<&str> = parent.split('/').filter(|s| !s.is_empty()).collect();
    let ok = parent.starts_with('/')
        && !parent.contains('\0')
        && !segments.iter().any(|s| *s == "." || *s == "..");
    if !ok {
        return Err(CgroupError::InvalidParent(parent.to_string()));
    }
    Ok(segments.iter().collect())
}

/// One container's cgroup: the same relative path in every managed hierarchy.
#[derive(Clone, Debug)]
pub struct Cgroup {
    version: Version,
    /// `<parent>/<id>`, relative.
    rel: PathBuf,
    /// `<mount>/<rel>` for every hierarchy.
    dirs: Vec<PathBuf>,
    /// The mount point of every hierarchy (same order as `dirs`).
    mounts: Vec<PathBuf>,
    /// The mount options (controllers) of every v1 hierarchy; empty on v2.
    options: Vec<String>,
}

impl Cgroup {
    /// The cgroup `<parent>/<name>` in every hierarchy of `layout`. Touches nothing.
    pub fn new(layout: &Layout, parent: &str, name: &str) -> Result<Cgroup> {
        let parent = parse_parent(parent)?;
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(CgroupError::InvalidParent(format!(
                "{}/{name}",
                parent.display()
            )));
        }
        let rel = parent.join(name);
        let dirs = layout
            .hierarchies
            .iter()
            .map(|h| h.mount.join(&rel))
            .collect();
        Ok(Cgroup {
            version: layout.version,
            rel,
            dirs,
            mounts: layout.hierarchies.iter().map(|h| h.mount.clone()).collect(),
            options: layout
                .hierarchies
                .iter()
                .map(|h| h.options.clone())
                .collect(),
        })
    }

    /// Detects the layout and names the container's cgroup.
    pub fn for_container(parent: &str, id: &str) -> Result<Cgroup> {
        Cgroup::new(&Layout::detect()?, parent, id)
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The path inside each hierarchy, e.g. `berth/<id>`.
    pub fn rel(&self) -> &Path {
        &self.rel
    }

    /// The directories of this cgroup, one per hierarchy.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether the cgroup directory exists in any hierarchy.
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|d| d.is_dir())
    }

    /// Creates the cgroup (and missing parents) in every hierarchy. A leaf that already exists
    /// is reused: returns whether one did (a leftover of a crashed run, whose processes the
    /// caller clears). On error, leaves made by this call are removed again.
    pub fn create(&self) -> Result<bool> {
        let mut made = Vec::new();
        let mut reused = false;
        for (dir, options) in self.dirs.iter().zip(&self.options) {
            let cpuset = self.version == Version::V1 && has_controller(options, "cpuset");
            match create_chain(dir, cpuset) {
                Ok(true) => made.push(dir.clone()),
                Ok(false) => reused = true,
                Err(e) => {
                    for d in made.iter().rev() {
                        let _ = fs::remove_dir(d);
                    }
                    return Err(e);
                }
            }
        }
        Ok(reused)
    }

    /// On v2, the cgroup's directory opened for `clone3(CLONE_INTO_CGROUP)`, which creates a
    /// process right in it (the cheapest way in: no move at all). `None` on v1, where that
    /// does not exist, or if the directory cannot be opened (the caller moves the process).
    pub fn clone_target(&self) -> Option<OwnedFd> {
        match (self.version, self.dirs.as_slice()) {
            (Version::V2, [dir]) => rustix::fs::open(
                dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok(),
            _ => None,
        }
    }

    /// Files through which a process moves *itself* into this cgroup: v1 `tasks`, written "0".
    /// The kernel skips its global threadgroup lock (and the RCU grace period of taking it,
    /// ~10 ms) when a task migrates only itself, so the container's first process joins this way
    /// instead of being moved by the parent. Empty on v2, which has no such file: the process
    /// is created in the cgroup ([`Cgroup::clone_target`]), or else moved by the parent with
    /// [`Cgroup::add_pid`].
    pub fn self_join_files(&self) -> Vec<PathBuf> {
        match self.version() {
            Version::V1 => self.dirs.iter().map(|d| d.join("tasks")).collect(),
            _ => Vec::new(),
        }
    }

    /// Files through which a process moves itself (writing "0") into this cgroup in every
    /// hierarchy, on v1 and v2 alike: v1 `tasks` (see [`Cgroup::self_join_files`]), v2
    /// `cgroup.procs`. Used by `berth exec`, whose process has no parent inside the runtime
    /// to move it.
    pub fn join_files(&self) -> Vec<PathBuf> {
        match self.version() {
            Version::V1 => self.self_join_files(),
            Version::V2 => self.dirs.iter().map(|d| d.join("cgroup.procs")).collect(),
        }
    }

    /// Moves process `pid` (and, on v1, nothing else of its thread group's siblings) into the
    /// cgroup in every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            fs::write(&procs, pid.to_string())
                .map_err(|e| CgroupError::io("add a process to", dir, e))?;
        }
        Ok(())
    }

    /// The processes in the cgroup (from the first hierarchy that has the directory).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut all = Vec::new();
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            match fs::read_to_string(&procs) {
                Ok(text) => {
                    for p in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        if !all.contains(&p) {
                            all.push(p);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(CgroupError::io("list the processes of", dir, e)),
            }
        }
        Ok(all)
    }

    /// SIGKILLs every process in the cgroup and waits until it is empty: `cgroup.kill` on v2
    /// (Linux 5.14+), else rounds of reading `cgroup.procs` and killing what it lists. Only
    /// this container's cgroup is read, so only its processes are signalled.
    pub fn kill_all(&self) -> Result<()> {
        if self.version == Version::V2 {
            if let Some(dir) = self.dirs.first() {
                match fs::write(dir.join("cgroup.kill"), "1") {
                    Ok(()) => return self.wait_empty(),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(CgroupError::io("kill the processes of", dir, e)),
                }
            }
        }
        for _ in 0..200 {
            let pids = self.pids()?;
            if pids.is_empty() {
                return Ok(());
            }
            for pid in pids {
                if pid > 0 {
                    // SAFETY: kill(2) with a positive pid read from our own cgroup; no memory.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            sleep(Duration::from_millis(5));
        }
        Err(CgroupError::StillPopulated {
            path: self.dirs.first().cloned().unwrap_or_default(),
        })
    }

    fn wait_empty(&self) -> Result<()> {
        for _ in 0..400 {
            if self.pids()?.is_empty() {
                return Ok(());
            }
            sleep(Duration::from_millis(5));
        }
        Err(CgroupError::StillPopulated {
            path: self.dirs.first().cloned().unwrap_or_default(),
        })
    }

    /// Removes the container's leaf directory in every hierarchy (missing is fine). A cgroup
    /// whose last process was just reaped can stay busy for a moment, so EBUSY is retried.
    /// Keeps going past errors and returns the first.
    pub fn remove(&self) -> Result<()> {
        let mut first = None;
        for dir in &self.dirs {
            if let Err(e) = remove_leaf(dir) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

fn remove_leaf(dir: &Path) -> Result<()> {
    for _ in 0..200 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(CgroupError::io("remove", dir, e)),
        }
    }
    Err(CgroupError::StillPopulated {
        path: dir.to_path_buf(),
    })
}

/// Whether a v1 hierarchy's mount options name `controller`.
fn has_controller(options: &str, controller: &str) -> bool {
    options.split(',').any(|o| o == controller)
}

/// `mkdir -p` of a cgroup directory; returns whether `dir` itself was made (false: it
/// existed). mkdir comes first, without looking: the parents almost always exist, and each
/// look is a syscall per hierarchy. In a v1 cpuset hierarchy (`cpuset`) a new cgroup starts
/// with empty `cpuset.cpus`/`cpuset.mems` and refuses processes (ENOSPC), so each level made
/// here inherits its parent's values, as runc does. Not on v2: there an empty `cpuset.cpus`
/// means "the parent's", and the root cgroup has no `cpuset.cpus` file to copy from.
fn create_chain(dir: &Path, cpuset: bool) -> Result<bool> {
    let made = match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match dir.parent() {
            Some(parent) => {
                create_chain(parent, cpuset)?;
                fs::create_dir(dir)
            }
            None => Err(e),
        },
        made => made,
    };
    match made {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(CgroupError::io("create", dir, e)),
    }
    if cpuset {
        inherit_cpuset(dir)?;
    }
    Ok(true)
}

/// Copies the parent's `cpuset.cpus` and `cpuset.mems` into the new, empty cgroup `dir`
/// (removed again on failure).
fn inherit_cpuset(dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(file);
        let Ok(current) = fs::read_to_string(&own) else {
            continue;
        };
        if !current.trim().is_empty() {
            continue;
        }
        let Some(parent) = dir.parent() else { continue };
        let inherited = fs::read_to_string(parent.join(file))
            .map_err(|e| CgroupError::io("read the cpuset of", parent, e))?;
        if let Err(e) = fs::write(&own, inherited.trim()) {
            let _ = fs::remove_dir(dir);
            return Err(CgroupError::io("set the cpuset of", dir, e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 1 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
27 25 0:24 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
28 25 0:25 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
29 25 0:26 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
30 1 0:27 / /mnt/elsewhere rw - cgroup cgroup rw,pids
";

    #[test]
    fn parses_v1_hierarchies_and_skips_unified() {
        let l = parse_layout(HYBRID);
        assert_eq!(l.version, Version::V1);
        let names: Vec<_> = l.hierarchies.iter().map(|h| h.options.as_str()).collect();
        assert_eq!(names, ["cpu", "memory", "name=systemd"]);
        assert_eq!(l.unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn parent_must_be_absolute_and_plain() {
        assert_eq!(parse_parent("/berth").unwrap(), PathBuf::from("berth"));
        assert_eq!(parse_parent("/a/b").unwrap(), PathBuf::from("a/b"));
        for bad in ["berth", "/a/../b", "/a/./b", ""] {
            assert!(parse_parent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_the_leaf_in_every_hierarchy() {
        let l = parse_layout(HYBRID);
        let cg = Cgroup::new(&l, "/berth", "abc").unwrap();
        assert_eq!(
            cg.dirs()[1],
            PathBuf::from("/sys/fs/cgroup/memory/berth/abc")
        );
        assert!(Cgroup::new(&l, "/berth", "../x").is_err());
    }
}
