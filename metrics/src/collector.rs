//! The scrape: read every container's cgroup and interfaces, then write all families.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroup::{read_cgroup_usage, CgroupPaths, CgroupStats, ReadOutcome};
use crate::expose::{escape_label_value, sanitize_label_name};
use crate::families::*;
use crate::host::{self, DeviceNames, MachineInfo};
use crate::parse::{self, Interface, Limit, Pressure};
use crate::reader::FileReader;

/// What the agent knows about a running container. A stopped container is simply left out of
/// the list given to [`Collector::scrape`]: its series disappear from the next exposition.
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    /// The container id (64 hex); exported as `container_id` on `berth_container_info`.
    pub id: String,
    pub name: String,
    pub image: String,
    /// `--label` key/value pairs; exported as `container_label_<sanitised key>`.
    pub labels: Vec<(String, String)>,
    /// Where its cgroup is; `cgroup.name` (`/berth/<id>`) is the `id` label, as cAdvisor's.
    pub cgroup: CgroupPaths,
    /// A process inside the container's network namespace (its init), for
    /// `/proc/<pid>/net/dev`. `None`: no network families.
    pub pid: Option<i32>,
    /// Seconds since the epoch.
    pub start_time: f64,
    /// The pids limit berth configured; used when `pids.max` cannot be read.
    pub pids_limit: Option<u64>,
    /// The `--priority` class (`high`, `normal`, `low`, `idle`), if one was given.
    pub priority: Option<String>,
}

/// Which `--label`s become `container_label_*` labels on every container series.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LabelPolicy {
    /// Every label (cAdvisor's default `--store_container_labels=true`).
    #[default]
    All,
    /// Only these keys (as given, before sanitising): cAdvisor's `--whitelisted_container_labels`.
    Allow(Vec<String>),
    /// None on the `container_*` series; they stay on `berth_container_info` (join on `id`).
    InfoOnly,
}

#[derive(Clone, Debug)]
pub struct CollectorOptions {
    /// procfs mount (`/proc`): `<pid>/net/dev`, `pressure/*`, `meminfo`, `self/*`.
    pub proc_root: PathBuf,
    /// sysfs mount (`/sys`): `dev/block/M:m/uevent`, `devices/system/cpu/online`.
    pub sys_root: PathBuf,
    pub container_labels: LabelPolicy,
    /// Host-wide PSI (`berth_host_pressure_*`) from `<proc>/pressure`.
    pub host_pressure: bool,
    /// The agent's own `process_*` families and `berth_metrics_*` self metrics.
    pub self_metrics: bool,
    /// How long the spec files (limits) of a container are trusted before being read again;
    /// `ZERO` reads them on every scrape. Default 10 s (cAdvisor refreshes its spec only at
    /// housekeeping). Usage figures are always read at scrape time.
    pub spec_max_age: Duration,
    /// Threads that read cgroup files in parallel (64 containers and more). Default: the
    /// available CPUs, at most 4.
    pub read_threads: usize,
}

impl Default for CollectorOptions {
    fn default() -> Self {
        CollectorOptions {
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            container_labels: LabelPolicy::All,
            host_pressure: true,
            self_metrics: true,
            spec_max_age: Duration::from_secs(10),
            read_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) present: bool,
    /// The cgroup whose spec figures `stats` holds, and when they were read.
    spec_of: String,
    spec_at: Option<Instant>,
    pub(crate) labels: Range<usize>,
    pub(crate) stats: CgroupStats,
    pub(crate) net: Vec<Interface>,
}

/// Reads and exposes. Keep one for the life of the agent: every buffer (file data, paths,
/// per-container stats, the label strings, the output) is reused from scrape to scrape, so a
/// steady-state scrape allocates nothing per sample.
///
/// Not `Sync`: serve scrapes from one task at a time (berthd: a mutex around it, and call
/// [`Collector::scrape`] inside `spawn_blocking`, since it does blocking file reads).
#[derive(Debug)]
pub struct Collector {
    opts: CollectorOptions,
    /// One per read thread; `readers[0]` also serves the scrape's own thread.
    readers: Vec<FileReader>,
    devices: DeviceNames,
    clk_tck: u64,
    boot_time: u64,
    machine: MachineInfo,
    slots: Vec<Slot>,
    labels: String,
    keys: String,
    host_psi: [Option<Pressure>; 3],
    out: String,
    last_duration: Option<Duration>,
    scraped: usize,
}

impl Collector {
    pub fn new(opts: CollectorOptions) -> Collector {
        let mut reader = FileReader::new();
        let machine = MachineInfo::read(&mut reader, &opts.sys_root, &opts.proc_root);
        let boot_time = host::boot_time(&mut reader, &opts.proc_root);
        Collector {
            devices: DeviceNames::new(&opts.sys_root),
            clk_tck: host::clk_tck(),
            boot_time,
            machine,
            readers: vec![reader],
            opts,
            slots: Vec::new(),
            labels: String::new(),
            keys: String::new(),
            host_psi: [None; 3],
            out: String::with_capacity(64 * 1024),
            last_duration: None,
            scraped: 0,
        }
    }

    pub fn machine(&self) -> MachineInfo {
        self.machine
    }

    /// Duration of the previous scrape.
    pub fn last_duration(&self) -> Option<Duration> {
        self.last_duration
    }

    /// What the last scrape read for `containers[i]` (`None` if it was gone). For `berth stats`.
    pub fn stats(&self, i: usize) -> Option<(&CgroupStats, &[Interface])> {
        let s = self.slots.get(i).filter(|_| i < self.scraped)?;
        s.present.then_some((&s.stats, s.net.as_slice()))
    }

    /// Reads everything and returns the exposition (valid until the next call).
    pub fn scrape(&mut self, containers: &[ContainerInfo]) -> &str {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        self.write(containers, &mut out);
        self.out = out;
        &self.out
    }

    /// Reads everything and appends the exposition to `out`.
    pub fn write(&mut self, containers: &[ContainerInfo], out: &mut String) {
        let t0 = Instant::now();
        self.read_all(containers);
        self.build_labels(containers);
        let ctx = Ctx {
            infos: containers,
            slots: &self.slots[..containers.len()],
            labels: &self.labels,
        };
        write_machine(out, self.machine);
        write_cpu(out, &ctx);
        write_memory(out, &ctx);
        write_spec(out, &ctx);
        write_io(out, &ctx, &self.devices);
        write_network(out, &ctx);
        write_tasks(out, &ctx);
        write_pressure(out, &ctx);
        write_times(out, &ctx);
        write_berth(out, &ctx);
        if self.opts.host_pressure {
            write_host_pressure(out, &self.host_psi);
        }
        if self.opts.self_metrics {
            let p = host::process_stats(
                &mut self.readers[0],
                &self.opts.proc_root,
                self.clk_tck,
                self.boot_time,
            );
            let errors = self.readers.iter().map(|r| r.errors).sum();
            write_self(out, &p, self.last_duration, containers.len(), errors);
        }
        self.last_duration = Some(t0.elapsed());
    }

    fn read_all(&mut self, containers: &[ContainerInfo]) {
        let n = containers.len();
        if self.slots.len() < n {
            self.slots.resize_with(n, Slot::default);
        }
        self.scraped = n;
        // cgroupfs reads are syscall-bound and independent: spread them over a few threads,
        // each with its own reader, when there are enough containers to pay for the spawn.
        let threads = if n >= 64 {
            self.opts.read_threads.clamp(1, 16)
        } else {
            1
        };
        while self.readers.len() < threads {
            self.readers.push(FileReader::new());
        }
        let (clk, proc_root, max_age) = (
            self.clk_tck,
            self.opts.proc_root.as_path(),
            self.opts.spec_max_age,
        );
        let now = Instant::now();
        let chunk = n.div_ceil(threads).max(1);
        let mut work = containers
            .chunks(chunk)
            .zip(self.slots[..n].chunks_mut(chunk))
            .zip(self.readers.iter_mut());
        let first = work.next();
        std::thread::scope(|scope| {
            for ((cs, slots), r) in work {
                scope.spawn(move || read_chunk(r, cs, slots, clk, proc_root, now, max_age));
            }
            if let Some(((cs, slots), r)) = first {
                read_chunk(r, cs, slots, clk, proc_root, now, max_age);
            }
        });
        let r = &mut self.readers[0];
        for slot in &self.slots[..n] {
            for d in &slot.stats.io {
                self.devices.name(r, d.major, d.minor);
            }
        }
        if self.opts.host_pressure {
            host::host_pressure(r, proc_root, &mut self.host_psi);
        }
    }

    /// One escaped `id="…",name="…",image="…"[,container_label_k="v"…]` string per container,
    /// all in one reused buffer.
    fn build_labels(&mut self, containers: &[ContainerInfo]) {
        self.labels.clear();
        let out = &mut self.labels;
        for (c, slot) in containers.iter().zip(self.slots.iter_mut()) {
            let start = out.len();
            push_base_labels(out, c);
            self.keys.clear();
            for (k, v) in &c.labels {
                let wanted = match &self.opts.container_labels {
                    LabelPolicy::All => true,
                    LabelPolicy::Allow(keys) => keys.iter().any(|a| a == k),
                    LabelPolicy::InfoOnly => false,
                };
                if wanted {
                    push_container_label(out, &mut self.keys, k, v);
                }
            }
            slot.labels = start..out.len();
        }
    }
}

/// Appends `id="…",name="…",image="…"`.
fn read_chunk(
    r: &mut FileReader,
    containers: &[ContainerInfo],
    slots: &mut [Slot],
    clk: u64,
    proc_root: &Path,
    now: Instant,
    max_age: Duration,
) {
    for (c, slot) in containers.iter().zip(slots.iter_mut()) {
        let fresh = slot.spec_of == c.cgroup.name
            && slot
                .spec_at
                .is_some_and(|t| now.saturating_duration_since(t) < max_age);
        slot.present =
            read_cgroup_usage(r, &c.cgroup, clk, &mut slot.stats, !fresh) == ReadOutcome::Read;
        if !fresh {
            slot.spec_of.clear();
            slot.spec_of.push_str(&c.cgroup.name);
            slot.spec_at = slot.present.then_some(now);
        }
        slot.net.clear();
        if !slot.present {
            continue;
        }
        if slot.stats.pids_max.is_none() {
            slot.stats.pids_max = c.pids_limit.map(Limit::Value);
        }
        if let Some(pid) = c.pid {
            if let Some(b) = r.read_proc(proc_root, pid, "net/dev") {
                parse::net_dev(b, &mut slot.net);
            }
        }
    }
}

pub(crate) fn push_base_labels(out: &mut String, c: &ContainerInfo) {
    out.push_str("id=\"");
    escape_label_value(out, &c.cgroup.name);
    out.push_str("\",name=\"");
    escape_label_value(out, &c.name);
    out.push_str("\",image=\"");
    escape_label_value(out, &c.image);
    out.push('"');
}

/// Appends `,container_label_<k>="v"` unless a previous label sanitised to the same name.
pub(crate) fn push_container_label(out: &mut String, seen: &mut String, k: &str, v: &str) {
    let mark = seen.len();
    seen.push('\n');
    sanitize_label_name(seen, k);
    let key = &seen[mark + 1..];
    if seen[..mark].split('\n').any(|s| s == key) {
        seen.truncate(mark);
        return;
    }
    out.push_str(",container_label_");
    out.push_str(key);
    out.push_str("=\"");
    escape_label_value(out, v);
    out.push('"');
}
