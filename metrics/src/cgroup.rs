//! Where a container's cgroup lives, and the statistics read from it (cgroup v1 and v2).

use std::io;
use std::path::{Path, PathBuf};

use crate::parse::{self, BlkioKind, IoDevice, Limit, Pressure};
use crate::reader::FileReader;

/// A container's cgroup: its name (the path from the hierarchy root, as `/berth/<id>`) and the
/// directories to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupPaths {
    /// The cgroup path relative to the hierarchy root, with a leading `/`. It becomes the `id`
    /// label, as cAdvisor's `id` is the cgroup path (`/docker/<id>`).
    pub name: String,
    pub dirs: CgroupDirs,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupDirs {
    /// One directory per v1 hierarchy; `None` for a controller that is not mounted. When
    /// `cpu` and `cpuacct` are co-mounted both point at the same directory.
    V1 {
        cpu: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
        memory: Option<PathBuf>,
        blkio: Option<PathBuf>,
        pids: Option<PathBuf>,
    },
    /// The one v2 directory.
    V2 { dir: PathBuf },
}

/// The v1 controllers the readers use.
const V1_CONTROLLERS: [&str; 5] = ["cpu", "cpuacct", "memory", "blkio", "pids"];

impl CgroupPaths {
    /// v2: `<mount>/<rel>`.
    pub fn v2(mount: &Path, rel: &str) -> CgroupPaths {
        let rel = rel.trim_start_matches('/');
        CgroupPaths {
            name: format!("/{rel}"),
            dirs: CgroupDirs::V2 {
                dir: mount.join(rel),
            },
        }
    }

    /// v1 with the conventional layout `<root>/<controller>/<rel>` (`/sys/fs/cgroup/cpu/…`;
    /// systemd's `cpu,cpuacct` co-mount is reachable under both names through its symlinks).
    pub fn v1(root: &Path, rel: &str) -> CgroupPaths {
        let rel = rel.trim_start_matches('/');
        let at = |c: &str| Some(root.join(c).join(rel));
        CgroupPaths {
            name: format!("/{rel}"),
            dirs: CgroupDirs::V1 {
                cpu: at("cpu"),
                cpuacct: at("cpuacct"),
                memory: at("memory"),
                blkio: at("blkio"),
                pids: at("pids"),
            },
        }
    }

    /// Finds the hierarchies from `/proc/self/mountinfo` and places `rel` in each.
    pub fn detect(rel: &str) -> io::Result<CgroupPaths> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")?;
        CgroupPaths::from_mountinfo(&text, rel).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no cgroup hierarchy is mounted: mount cgroup2 on /sys/fs/cgroup (or the v1 \
                 cpu, cpuacct, memory, blkio and pids hierarchies)",
            )
        })
    }

    /// [`CgroupPaths::detect`] over a given mountinfo text. v2 when a cgroup2 file system is
    /// mounted at `/sys/fs/cgroup` (pure v2); otherwise the v1 hierarchies by their super
    /// options. A hybrid host's cgroup2 mount (`/sys/fs/cgroup/unified`) is ignored.
    pub fn from_mountinfo(text: &str, rel: &str) -> Option<CgroupPaths> {
        let rel = rel.trim_start_matches('/');
        let mut v1: [Option<PathBuf>; 5] = Default::default();
        for line in text.lines() {
            // id parent maj:min root mountpoint opts [optional…] - fstype source superopts
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let Some(point) = left.split(' ').nth(4) else {
                continue;
            };
            let mut r = right.split(' ');
            let (fstype, superopts) = (r.next().unwrap_or(""), r.nth(1).unwrap_or(""));
            if fstype == "cgroup2" && point == "/sys/fs/cgroup" {
                return Some(CgroupPaths::v2(Path::new(point), rel));
            }
            if fstype != "cgroup" {
                continue;
            }
            for (i, c) in V1_CONTROLLERS.iter().enumerate() {
                if superopts.split(',').any(|o| o == *c) && v1[i].is_none() {
                    v1[i] = Some(Path::new(point).join(rel));
                }
            }
        }
        if v1.iter().all(Option::is_none) {
            return None;
        }
        let [cpu, cpuacct, memory, blkio, pids] = v1;
        Some(CgroupPaths {
            name: format!("/{rel}"),
            dirs: CgroupDirs::V1 {
                cpu,
                cpuacct,
                memory,
                blkio,
                pids,
            },
        })
    }

    pub fn is_v2(&self) -> bool {
        matches!(self.dirs, CgroupDirs::V2 { .. })
    }
}

/// Everything read from one cgroup. `None` means "not available" (file absent, controller not
/// mounted), which the exposition turns into "no sample", never into a made-up 0.
/// Units are the kernel's: nanoseconds, microseconds, bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub cpu_usage_ns: Option<u64>,
    pub cpu_user_ns: Option<u64>,
    pub cpu_system_ns: Option<u64>,
    pub cfs_periods: Option<u64>,
    pub cfs_throttled_periods: Option<u64>,
    pub cfs_throttled_ns: Option<u64>,

    pub memory_usage: Option<u64>,
    pub memory_max_usage: Option<u64>,
    /// usage − inactive_file, clamped at 0 (cAdvisor's `setMemoryStats`).
    pub memory_working_set: Option<u64>,
    pub memory_rss: Option<u64>,
    pub memory_cache: Option<u64>,
    pub memory_swap: Option<u64>,
    pub memory_mapped_file: Option<u64>,
    pub memory_inactive_file: Option<u64>,
    /// v1 `memory.failcnt`; v2 `memory.events` `max` (the nearest equivalent: times usage was
    /// about to go over the limit).
    pub memory_failcnt: Option<u64>,
    /// OOM kills in this cgroup (v2 `memory.events oom_kill`, v1 `memory.oom_control oom_kill`).
    pub oom_kills: Option<u64>,
    /// v2 `memory.events` (hierarchical).
    pub memory_events: Option<MemoryEvents>,

    /// Limits as cAdvisor reports them: 0 = unlimited.
    pub spec_memory_limit: Option<u64>,
    pub spec_memory_reservation: Option<u64>,
    pub spec_memory_swap_limit: Option<u64>,
    /// CFS quota in µs; `None` when unlimited (cAdvisor omits the series then).
    pub spec_cpu_quota_us: Option<u64>,
    pub spec_cpu_period_us: Option<u64>,
    /// v1 `cpu.shares`; v2 `cpu.weight` converted back with cAdvisor's formula.
    pub spec_cpu_shares: Option<u64>,
    /// v2 raw `cpu.weight`.
    pub spec_cpu_weight: Option<u64>,

    pub io: Vec<IoDevice>,

    pub pids_current: Option<u64>,
    pub pids_max: Option<Limit>,
    pub processes: Option<u64>,
    pub threads: Option<u64>,

    /// v2 `cpu.pressure`, `memory.pressure`, `io.pressure`.
    pub pressure: [Option<Pressure>; 3],
}

/// v2 `memory.events`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryEvents {
    pub low: u64,
    pub high: u64,
    pub max: u64,
    pub oom: u64,
    pub oom_kill: u64,
    pub oom_group_kill: u64,
}

/// The PSI resources, in the order of [`CgroupStats::pressure`].
pub const PSI_RESOURCES: [&str; 3] = ["cpu", "memory", "io"];

impl CgroupStats {
    /// Clears the usage figures; the spec figures (limits) too unless `keep_spec`.
    fn reset(&mut self, keep_spec: bool) {
        let mut io = std::mem::take(&mut self.io);
        io.clear();
        let old = std::mem::take(self);
        *self = CgroupStats {
            io,
            ..CgroupStats::default()
        };
        if keep_spec {
            self.spec_memory_limit = old.spec_memory_limit;
            self.spec_memory_reservation = old.spec_memory_reservation;
            self.spec_memory_swap_limit = old.spec_memory_swap_limit;
            self.spec_cpu_quota_us = old.spec_cpu_quota_us;
            self.spec_cpu_period_us = old.spec_cpu_period_us;
            self.spec_cpu_shares = old.spec_cpu_shares;
            self.spec_cpu_weight = old.spec_cpu_weight;
            self.pids_max = old.pids_max;
        }
    }
}

/// Why a cgroup could not be read at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    Read,
    /// `cgroup.procs` is gone: the container stopped, its series must disappear.
    Gone,
}

/// Reads all statistics of `paths` into `stats` (reset first; its buffers are reused).
/// `clk_tck` is `sysconf(_SC_CLK_TCK)` (USER_HZ), the unit of v1 `cpuacct.stat`.
pub fn read_cgroup(
    r: &mut FileReader,
    paths: &CgroupPaths,
    clk_tck: u64,
    stats: &mut CgroupStats,
) -> ReadOutcome {
    read_cgroup_usage(r, paths, clk_tck, stats, true)
}

/// [`read_cgroup`], reading the spec files (limits: `cpu.max`, `memory.max`, `pids.max`, …)
/// only when `spec` is true and keeping the spec figures already in `stats` otherwise.
/// Limits change only with `berth update` (or behind berthd's back, which its reconcile loop
/// repairs); skipping them saves a third of the files a scrape opens.
pub fn read_cgroup_usage(
    r: &mut FileReader,
    paths: &CgroupPaths,
    clk_tck: u64,
    stats: &mut CgroupStats,
    spec: bool,
) -> ReadOutcome {
    stats.reset(!spec);
    match &paths.dirs {
        CgroupDirs::V2 { dir } => read_v2(r, dir, stats, spec),
        CgroupDirs::V1 {
            cpu,
            cpuacct,
            memory,
            blkio,
            pids,
        } => read_v1(
            r,
            V1Dirs {
                cpu: cpu.as_deref(),
                cpuacct: cpuacct.as_deref(),
                memory: memory.as_deref(),
                blkio: blkio.as_deref(),
                pids: pids.as_deref(),
            },
            clk_tck.max(1),
            stats,
            spec,
        ),
    }
}

struct V1Dirs<'a> {
    cpu: Option<&'a Path>,
    cpuacct: Option<&'a Path>,
    memory: Option<&'a Path>,
    blkio: Option<&'a Path>,
    pids: Option<&'a Path>,
}

fn read_v1(
    r: &mut FileReader,
    d: V1Dirs<'_>,
    clk_tck: u64,
    s: &mut CgroupStats,
    spec: bool,
) -> ReadOutcome {
    // Processes from the cpu hierarchy (cAdvisor counts cgroup.procs there); its absence in
    // the first mounted hierarchy means the cgroup is gone.
    let Some(first) = d.cpu.or(d.memory).or(d.cpuacct).or(d.pids).or(d.blkio) else {
        return ReadOutcome::Gone;
    };
    match r.read_or_missing(first, "cgroup.procs") {
        Ok(b) => s.processes = Some(parse::count_lines(b)),
        Err(true) => return ReadOutcome::Gone,
        Err(false) => {}
    }

    if let Some(dir) = d.cpuacct {
        s.cpu_usage_ns = r.read(dir, "cpuacct.usage").and_then(parse::u64_of);
        if let Some(b) = r.read(dir, "cpuacct.stat") {
            // USER_HZ ticks → ns
            let tick_ns = 1_000_000_000 / clk_tck;
            parse::flat_keyed(b, |k, v| match k {
                b"user" => s.cpu_user_ns = Some(v.saturating_mul(tick_ns)),
                b"system" => s.cpu_system_ns = Some(v.saturating_mul(tick_ns)),
                _ => {}
            });
        }
    }
    if let Some(dir) = d.cpu {
        if let Some(b) = r.read(dir, "cpu.stat") {
            parse::flat_keyed(b, |k, v| match k {
                b"nr_periods" => s.cfs_periods = Some(v),
                b"nr_throttled" => s.cfs_throttled_periods = Some(v),
                b"throttled_time" => s.cfs_throttled_ns = Some(v),
                _ => {}
            });
        }
        if spec {
            s.spec_cpu_quota_us = r
                .read(dir, "cpu.cfs_quota_us")
                .and_then(parse::i64_of)
                .and_then(|q| u64::try_from(q).ok());
            s.spec_cpu_period_us = r.read(dir, "cpu.cfs_period_us").and_then(parse::u64_of);
            s.spec_cpu_shares = r.read(dir, "cpu.shares").and_then(parse::u64_of);
        }
    }
    if let Some(dir) = d.memory {
        s.memory_usage = r.read(dir, "memory.usage_in_bytes").and_then(parse::u64_of);
        s.memory_max_usage = r
            .read(dir, "memory.max_usage_in_bytes")
            .and_then(parse::u64_of);
        s.memory_failcnt = r.read(dir, "memory.failcnt").and_then(parse::u64_of);
        if let Some(b) = r.read(dir, "memory.stat") {
            // total_* are hierarchical (what cAdvisor reads with use_hierarchy=1, the only
            // mode of modern kernels); the local keys are the fallback.
            let (mut rss, mut cache, mut swap, mut mapped, mut inactive) =
                ([None; 2], [None; 2], [None; 2], [None; 2], [None; 2]);
            parse::flat_keyed(b, |k, v| match k {
                b"total_rss" => rss[0] = Some(v),
                b"rss" => rss[1] = Some(v),
                b"total_cache" => cache[0] = Some(v),
                b"cache" => cache[1] = Some(v),
                b"total_swap" => swap[0] = Some(v),
                b"swap" => swap[1] = Some(v),
                b"total_mapped_file" => mapped[0] = Some(v),
                b"mapped_file" => mapped[1] = Some(v),
                b"total_inactive_file" => inactive[0] = Some(v),
                b"inactive_file" => inactive[1] = Some(v),
                _ => {}
            });
            s.memory_rss = rss[0].or(rss[1]);
            s.memory_cache = cache[0].or(cache[1]);
            s.memory_swap = swap[0].or(swap[1]);
            s.memory_mapped_file = mapped[0].or(mapped[1]);
            s.memory_inactive_file = inactive[0].or(inactive[1]);
        }
        if let Some(b) = r.read(dir, "memory.oom_control") {
            parse::flat_keyed(b, |k, v| {
                if k == b"oom_kill" {
                    s.oom_kills = Some(v);
                }
            });
        }
        if spec {
            let mut bytes = |f| {
                r.read(dir, f)
                    .and_then(parse::u64_of)
                    .map(|v| Limit::Value(v).memory_bytes())
            };
            s.spec_memory_limit = bytes("memory.limit_in_bytes");
            s.spec_memory_reservation = bytes("memory.soft_limit_in_bytes");
            // mem+swap on v1 (absent without swap accounting).
            s.spec_memory_swap_limit = bytes("memory.memsw.limit_in_bytes");
        }
    }
    if let Some(dir) = d.blkio {
        for (rec, flat, kind) in [
            (
                "blkio.throttle.io_service_bytes_recursive",
                "blkio.throttle.io_service_bytes",
                BlkioKind::Bytes,
            ),
            (
                "blkio.throttle.io_serviced_recursive",
                "blkio.throttle.io_serviced",
                BlkioKind::Ops,
            ),
        ] {
            let b = match r.read_or_missing(dir, rec) {
                Ok(b) => Some(b),
                Err(_) => r.read(dir, flat),
            };
            if let Some(b) = b {
                parse::blkio_v1(b, kind, &mut s.io);
            }
        }
    }
    if let Some(dir) = d.pids {
        s.pids_current = r.read(dir, "pids.current").and_then(parse::u64_of);
        if spec {
            s.pids_max = r.read(dir, "pids.max").and_then(parse::limit_of);
        }
    }
    // Threads: cAdvisor reads pids.current (hierarchical); without the pids controller, count
    // this cgroup's tasks.
    s.threads = s
        .pids_current
        .or_else(|| r.read(first, "tasks").map(parse::count_lines));
    finish_memory(s);
    ReadOutcome::Read
}

fn read_v2(r: &mut FileReader, dir: &Path, s: &mut CgroupStats, spec: bool) -> ReadOutcome {
    match r.read_or_missing(dir, "cgroup.procs") {
        Ok(b) => s.processes = Some(parse::count_lines(b)),
        Err(true) => return ReadOutcome::Gone,
        Err(false) => {}
    }
    if let Some(b) = r.read(dir, "cpu.stat") {
        parse::flat_keyed(b, |k, v| match k {
            b"usage_usec" => s.cpu_usage_ns = Some(v.saturating_mul(1000)),
            b"user_usec" => s.cpu_user_ns = Some(v.saturating_mul(1000)),
            b"system_usec" => s.cpu_system_ns = Some(v.saturating_mul(1000)),
            b"nr_periods" => s.cfs_periods = Some(v),
            b"nr_throttled" => s.cfs_throttled_periods = Some(v),
            b"throttled_usec" => s.cfs_throttled_ns = Some(v.saturating_mul(1000)),
            _ => {}
        });
    }
    if spec {
        read_v2_spec(r, dir, s);
    }

    s.memory_usage = r.read(dir, "memory.current").and_then(parse::u64_of);
    s.memory_max_usage = r.read(dir, "memory.peak").and_then(parse::u64_of);
    if let Some(b) = r.read(dir, "memory.stat") {
        parse::flat_keyed(b, |k, v| match k {
            b"anon" => s.memory_rss = Some(v),
            b"file" => s.memory_cache = Some(v),
            b"file_mapped" => s.memory_mapped_file = Some(v),
            b"inactive_file" => s.memory_inactive_file = Some(v),
            _ => {}
        });
    }
    s.memory_swap = r.read(dir, "memory.swap.current").and_then(parse::u64_of);
    if let Some(b) = r.read(dir, "memory.events") {
        let mut e = MemoryEvents::default();
        parse::flat_keyed(b, |k, v| match k {
            b"low" => e.low = v,
            b"high" => e.high = v,
            b"max" => e.max = v,
            b"oom" => e.oom = v,
            b"oom_kill" => e.oom_kill = v,
            b"oom_group_kill" => e.oom_group_kill = v,
            _ => {}
        });
        s.memory_events = Some(e);
        s.oom_kills = Some(e.oom_kill);
        s.memory_failcnt = Some(e.max);
    }

    if let Some(b) = r.read(dir, "io.stat") {
        parse::io_stat(b, &mut s.io);
    }
    s.pids_current = r.read(dir, "pids.current").and_then(parse::u64_of);
    s.threads = s
        .pids_current
        .or_else(|| r.read(dir, "cgroup.threads").map(parse::count_lines));
    for (i, file) in ["cpu.pressure", "memory.pressure", "io.pressure"]
        .into_iter()
        .enumerate()
    {
        s.pressure[i] = r.read(dir, file).map(parse::pressure);
    }
    finish_memory(s);
    ReadOutcome::Read
}

fn read_v2_spec(r: &mut FileReader, dir: &Path, s: &mut CgroupStats) {
    if let Some(b) = r.read(dir, "cpu.max") {
        // "max 100000" or "50000 100000"
        if let Some((q, p)) = parse::key_value(b.trim_ascii()) {
            s.spec_cpu_quota_us = match parse::limit_of(q) {
                Some(Limit::Value(v)) => Some(v),
                _ => None,
            };
            s.spec_cpu_period_us = parse::u64_of(p);
        }
    }
    if let Some(w) = r.read(dir, "cpu.weight").and_then(parse::u64_of) {
        s.spec_cpu_weight = Some(w);
        s.spec_cpu_shares = Some(weight_to_shares(w));
    }
    let mut bytes = |f| {
        r.read(dir, f)
            .and_then(parse::limit_of)
            .map(Limit::memory_bytes)
    };
    s.spec_memory_limit = bytes("memory.max");
    // berth (like runc and cgroups-rs) writes a reservation to memory.low; cAdvisor reads
    // memory.min, which berth leaves alone.
    s.spec_memory_reservation = bytes("memory.low");
    s.spec_memory_swap_limit = bytes("memory.swap.max");
    s.pids_max = r.read(dir, "pids.max").and_then(parse::limit_of);
}

fn finish_memory(s: &mut CgroupStats) {
    s.memory_working_set = s
        .memory_usage
        .map(|u| u.saturating_sub(s.memory_inactive_file.unwrap_or(0)));
}

/// cAdvisor's `convertCPUWeightToCPULimit`: shares = 2 + ((weight − 1) × 262142) / 9999.
/// (The inverse of the linear shares→weight mapping of runc ≤1.2 and cgroups-rs; runc ≥1.3
/// maps quadratically in log2, so a v2 round trip of a docker `--cpu-shares` is not exact —
/// the raw weight is exported too, as `berth_container_spec_cpu_weight`.)
pub fn weight_to_shares(weight: u64) -> u64 {
    2 + (weight.saturating_sub(1) * 262_142) / 9_999
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_conversion() {
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
        assert_eq!(weight_to_shares(39), 998);
        assert_eq!(weight_to_shares(100), 2597);
    }

    #[test]
    fn mountinfo_v1_hybrid_and_v2() {
        let hybrid = "\
30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n\
34 30 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
35 30 0:31 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        let p = CgroupPaths::from_mountinfo(hybrid, "/berth/abc").unwrap();
        assert_eq!(p.name, "/berth/abc");
        let CgroupDirs::V1 {
            cpu,
            cpuacct,
            memory,
            blkio,
            pids,
        } = p.dirs
        else {
            panic!("v1")
        };
        assert_eq!(
            cpu.unwrap(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/berth/abc")
        );
        assert_eq!(
            cpuacct.unwrap(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct/berth/abc")
        );
        assert_eq!(
            memory.unwrap(),
            Path::new("/sys/fs/cgroup/memory/berth/abc")
        );
        assert_eq!(pids.unwrap(), Path::new("/sys/fs/cgroup/pids/berth/abc"));
        assert!(blkio.is_none());
        let v2 = "30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let p = CgroupPaths::from_mountinfo(v2, "berth/abc").unwrap();
        assert_eq!(
            p,
            CgroupPaths::v2(Path::new("/sys/fs/cgroup"), "/berth/abc")
        );
        assert!(CgroupPaths::from_mountinfo("", "x").is_none());
    }
}
