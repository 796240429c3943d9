//! The scrape: read every container's cgroup and interfaces, then write all families.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cgroup::{read_cgroup_usage, CgroupPaths, CgroupStats, ReadOutcome, PSI_RESOURCES};
use crate::expose::{escape_label_value, sanitize_label_name, Family, Kind, Value};
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
struct Slot {
    present: bool,
    /// The cgroup whose spec figures `stats` holds, and when they were read.
    spec_of: String,
    spec_at: Option<Instant>,
    labels: Range<usize>,
    stats: CgroupStats,
    net: Vec<Interface>,
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
        let ctx = Ctx { infos: containers, slots: &self.slots[..containers.len()], labels: &self.labels };
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
            let p = host::process_stats(&mut self.readers[0], &self.opts.proc_root, self.clk_tck, self.boot_time);
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
        let threads = if n >= 64 { self.opts.read_threads.clamp(1, 16) } else { 1 };
        while self.readers.len() < threads {
            self.readers.push(FileReader::new());
        }
        let (clk, proc_root, max_age) = (self.clk_tck, self.opts.proc_root.as_path(), self.opts.spec_max_age);
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
            && slot.spec_at.is_some_and(|t| now.saturating_duration_since(t) < max_age);
        slot.present = read_cgroup_usage(r, &c.cgroup, clk, &mut slot.stats, !fresh) == ReadOutcome::Read;
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

fn push_base_labels(out: &mut String, c: &ContainerInfo) {
    out.push_str("id=\"");
    escape_label_value(out, &c.cgroup.name);
    out.push_str("\",name=\"");
    escape_label_value(out, &c.name);
    out.push_str("\",image=\"");
    escape_label_value(out, &c.image);
    out.push('"');
}

/// Appends `,container_label_<k>="v"` unless a previous label sanitised to the same name.
fn push_container_label(out: &mut String, seen: &mut String, k: &str, v: &str) {
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

struct Ctx<'a> {
    infos: &'a [ContainerInfo],
    slots: &'a [Slot],
    labels: &'a str,
}

impl Ctx<'_> {
    fn live(&self) -> impl Iterator<Item = (&ContainerInfo, &Slot, &str)> {
        self.infos
            .iter()
            .zip(self.slots)
            .filter(|(_, s)| s.present)
            .map(|(c, s)| (c, s, &self.labels[s.labels.clone()]))
    }

    /// One sample per live container.
    fn each(
        &self,
        out: &mut String,
        name: &'static str,
        kind: Kind,
        help: &str,
        extra: &[(&str, &str)],
        value: impl Fn(&CgroupStats, &ContainerInfo) -> Option<Value>,
    ) {
        let mut f = Family::begin(out, name, kind, help);
        for (c, s, labels) in self.live() {
            if let Some(v) = value(&s.stats, c) {
                f.sample(labels, extra, v);
            }
        }
        f.end();
    }
}

fn gauge(out: &mut String, name: &'static str, help: &str, v: Value) {
    let mut f = Family::begin(out, name, Kind::Gauge, help);
    f.sample("", &[], v);
    f.end();
}

fn write_machine(out: &mut String, m: MachineInfo) {
    gauge(out, "machine_cpu_cores", "Number of logical CPU cores.", Value::U(m.cpu_cores));
    if m.memory_bytes > 0 {
        gauge(out, "machine_memory_bytes", "Amount of memory installed on the machine.", Value::U(m.memory_bytes));
    }
}

fn write_cpu(out: &mut String, x: &Ctx) {
    use Kind::Counter;
    let ns = |v: Option<u64>| v.map(Value::Nanos);
    x.each(out, "container_cpu_usage_seconds_total", Counter, "Cumulative cpu time consumed in seconds.", &[("cpu", "total")], |s, _| ns(s.cpu_usage_ns));
    x.each(out, "container_cpu_user_seconds_total", Counter, "Cumulative user cpu time consumed in seconds.", &[], |s, _| ns(s.cpu_user_ns));
    x.each(out, "container_cpu_system_seconds_total", Counter, "Cumulative system cpu time consumed in seconds.", &[], |s, _| ns(s.cpu_system_ns));
    // cAdvisor emits the CFS counters only for a container with a quota.
    let q = |s: &CgroupStats, v: Option<u64>| s.spec_cpu_quota_us.and(v);
    x.each(out, "container_cpu_cfs_periods_total", Counter, "Number of elapsed enforcement period intervals.", &[], |s, _| q(s, s.cfs_periods).map(Value::U));
    x.each(out, "container_cpu_cfs_throttled_periods_total", Counter, "Number of throttled period intervals.", &[], |s, _| q(s, s.cfs_throttled_periods).map(Value::U));
    x.each(out, "container_cpu_cfs_throttled_seconds_total", Counter, "Total time duration the container has been throttled.", &[], |s, _| ns(q(s, s.cfs_throttled_ns)));
}

fn write_memory(out: &mut String, x: &Ctx) {
    use Kind::{Counter, Gauge};
    let b = |v: Option<u64>| v.map(Value::U);
    x.each(out, "container_memory_usage_bytes", Gauge, "Current memory usage in bytes, including all memory regardless of when it was accessed", &[], |s, _| b(s.memory_usage));
    x.each(out, "container_memory_max_usage_bytes", Gauge, "Maximum memory usage recorded in bytes", &[], |s, _| b(s.memory_max_usage));
    x.each(out, "container_memory_working_set_bytes", Gauge, "Current working set in bytes.", &[], |s, _| b(s.memory_working_set));
    x.each(out, "container_memory_rss", Gauge, "Size of RSS in bytes.", &[], |s, _| b(s.memory_rss));
    x.each(out, "container_memory_cache", Gauge, "Number of bytes of page cache memory.", &[], |s, _| b(s.memory_cache));
    x.each(out, "container_memory_swap", Gauge, "Container swap usage in bytes.", &[], |s, _| b(s.memory_swap));
    x.each(out, "container_memory_mapped_file", Gauge, "Size of memory mapped files in bytes.", &[], |s, _| b(s.memory_mapped_file));
    x.each(out, "container_memory_failcnt", Counter, "Number of memory usage hits limits", &[], |s, _| b(s.memory_failcnt));
    x.each(out, "container_oom_events_total", Counter, "Count of out of memory events observed for the container", &[], |s, _| b(s.oom_kills));
}

fn write_spec(out: &mut String, x: &Ctx) {
    use Kind::Gauge;
    let b = |v: Option<u64>| v.map(Value::U);
    x.each(out, "container_spec_memory_limit_bytes", Gauge, "Memory limit for the container.", &[], |s, _| b(s.spec_memory_limit));
    x.each(out, "container_spec_memory_reservation_limit_bytes", Gauge, "Memory reservation limit for the container.", &[], |s, _| b(s.spec_memory_reservation));
    x.each(out, "container_spec_memory_swap_limit_bytes", Gauge, "Memory swap limit for the container.", &[], |s, _| b(s.spec_memory_swap_limit));
    x.each(out, "container_spec_cpu_quota", Gauge, "CPU quota of the container.", &[], |s, _| b(s.spec_cpu_quota_us));
    x.each(out, "container_spec_cpu_period", Gauge, "CPU period of the container.", &[], |s, _| b(s.spec_cpu_period_us));
    x.each(out, "container_spec_cpu_shares", Gauge, "CPU share of the container.", &[], |s, _| b(s.spec_cpu_shares));
}

fn write_io(out: &mut String, x: &Ctx, devices: &DeviceNames) {
    type Get = fn(&parse::IoDevice) -> u64;
    let fams: [(&'static str, &str, Get); 4] = [
        ("container_fs_reads_bytes_total", "Cumulative count of bytes read", |d| d.read_bytes),
        ("container_fs_writes_bytes_total", "Cumulative count of bytes written", |d| d.write_bytes),
        ("container_fs_reads_total", "Cumulative count of reads completed", |d| d.reads),
        ("container_fs_writes_total", "Cumulative count of writes completed", |d| d.writes),
    ];
    for (name, help, get) in fams {
        let mut f = Family::begin(out, name, Kind::Counter, help);
        for (_, s, labels) in x.live() {
            for d in &s.stats.io {
                let dev = devices.cached(d.major, d.minor).unwrap_or("");
                f.sample(labels, &[("device", dev)], Value::U(get(d)));
            }
        }
        f.end();
    }
}

fn write_network(out: &mut String, x: &Ctx) {
    type Get = fn(&Interface) -> u64;
    let fams: [(&'static str, &str, Get); 8] = [
        ("container_network_receive_bytes_total", "Cumulative count of bytes received", |i| i.rx_bytes),
        ("container_network_receive_packets_total", "Cumulative count of packets received", |i| i.rx_packets),
        ("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", |i| i.rx_dropped),
        ("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", |i| i.rx_errors),
        ("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", |i| i.tx_bytes),
        ("container_network_transmit_packets_total", "Cumulative count of packets transmitted", |i| i.tx_packets),
        ("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", |i| i.tx_dropped),
        ("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", |i| i.tx_errors),
    ];
    for (name, help, get) in fams {
        let mut f = Family::begin(out, name, Kind::Counter, help);
        for (_, s, labels) in x.live() {
            for i in &s.net {
                f.sample(labels, &[("interface", i.name())], Value::U(get(i)));
            }
        }
        f.end();
    }
}

fn write_tasks(out: &mut String, x: &Ctx) {
    use Kind::Gauge;
    x.each(out, "container_processes", Gauge, "Number of processes running inside the container.", &[], |s, _| s.processes.map(Value::U));
    x.each(out, "container_threads", Gauge, "Number of threads running inside the container", &[], |s, _| s.threads.map(Value::U));
    x.each(out, "container_threads_max", Gauge, "Maximum number of threads allowed inside the container, infinity if value is zero", &[], |s, _| {
        s.pids_max.map(|l| Value::U(match l {
            Limit::Max => 0,
            Limit::Value(v) => v,
        }))
    });
}

fn write_pressure(out: &mut String, x: &Ctx) {
    // cAdvisor's names (v2 only): waiting = some, stalled = full.
    const NAMES: [[(&str, &str); 2]; 3] = [
        [
            ("container_pressure_cpu_waiting_seconds_total", "Total time duration tasks in the container have waited due to CPU pressure."),
            ("container_pressure_cpu_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to CPU pressure."),
        ],
        [
            ("container_pressure_memory_waiting_seconds_total", "Total time duration tasks in the container have waited due to memory pressure."),
            ("container_pressure_memory_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to memory pressure."),
        ],
        [
            ("container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have waited due to IO pressure."),
            ("container_pressure_io_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to IO pressure."),
        ],
    ];
    for (r, names) in NAMES.iter().enumerate() {
        for (full, (name, help)) in names.iter().enumerate() {
            x.each(out, name, Kind::Counter, help, &[], |s, _| {
                let p = s.pressure[r]?;
                (if full == 1 { p.full_us } else { p.some_us }).map(Value::Micros)
            });
        }
    }
    for (full, name, help) in [
        (false, "berth_container_pressure_some_seconds_total", "Time at least one task of the container stalled on the resource (PSI some total, cgroup v2)."),
        (true, "berth_container_pressure_full_seconds_total", "Time all non-idle tasks of the container stalled on the resource at once (PSI full total, cgroup v2)."),
    ] {
        let mut f = Family::begin(out, name, Kind::Counter, help);
        for (_, s, labels) in x.live() {
            for (r, res) in PSI_RESOURCES.iter().enumerate() {
                let Some(p) = s.stats.pressure[r] else { continue };
                if let Some(us) = if full { p.full_us } else { p.some_us } {
                    f.sample(labels, &[("resource", res)], Value::Micros(us));
                }
            }
        }
        f.end();
    }
}

fn write_host_pressure(out: &mut String, psi: &[Option<Pressure>; 3]) {
    for (full, name, help) in [
        (false, "berth_host_pressure_some_seconds_total", "Time at least one task on the host stalled on the resource (/proc/pressure some total)."),
        (true, "berth_host_pressure_full_seconds_total", "Time all non-idle tasks on the host stalled on the resource at once (/proc/pressure full total)."),
    ] {
        let mut f = Family::begin(out, name, Kind::Counter, help);
        for (r, res) in PSI_RESOURCES.iter().enumerate() {
            let Some(p) = psi[r] else { continue };
            if let Some(us) = if full { p.full_us } else { p.some_us } {
                f.sample("", &[("resource", res)], Value::Micros(us));
            }
        }
        f.end();
    }
}

fn write_times(out: &mut String, x: &Ctx) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    x.each(out, "container_start_time_seconds", Kind::Gauge, "Start time of the container since unix epoch in seconds.", &[], |_, c| Some(Value::F(c.start_time)));
    x.each(out, "container_last_seen", Kind::Gauge, "Last time a container was seen by the exporter", &[], |_, _| Some(Value::U(now)));
}

fn write_berth(out: &mut String, x: &Ctx) {
    use Kind::{Counter, Gauge};
    let mut f = Family::begin(out, "berth_container_info", Gauge, "Metadata of a running berth container; always 1. Carries every --label as container_label_*.");
    let (mut all, mut seen) = (String::new(), String::new());
    for (c, _, _) in x.live() {
        // Every label whatever the policy: the info metric is where they always are.
        all.clear();
        seen.clear();
        push_base_labels(&mut all, c);
        for (k, v) in &c.labels {
            push_container_label(&mut all, &mut seen, k, v);
        }
        f.sample(&all, &[("container_id", &c.id)], Value::U(1));
    }
    f.end();
    let mut f = Family::begin(out, "berth_container_priority_info", Gauge, "The --priority class of the container; always 1.");
    for (c, _, labels) in x.live() {
        if let Some(p) = &c.priority {
            f.sample(labels, &[("priority", p)], Value::U(1));
        }
    }
    f.end();
    x.each(out, "berth_container_pids_limit", Gauge, "Maximum number of tasks (pids.max); absent when unlimited.", &[], |s, _| match s.pids_max {
        Some(Limit::Value(v)) => Some(Value::U(v)),
        _ => None,
    });
    x.each(out, "berth_container_oom_kills_total", Counter, "Processes of the container killed by the OOM killer (v2 memory.events oom_kill, v1 memory.oom_control oom_kill).", &[], |s, _| s.oom_kills.map(Value::U));
    let mut f = Family::begin(out, "berth_container_memory_events_total", Counter, "cgroup v2 memory.events counters (low, high, max, oom, oom_kill, oom_group_kill), hierarchical.");
    for (_, s, labels) in x.live() {
        let Some(e) = s.stats.memory_events else { continue };
        for (ev, v) in [("low", e.low), ("high", e.high), ("max", e.max), ("oom", e.oom), ("oom_kill", e.oom_kill), ("oom_group_kill", e.oom_group_kill)] {
            f.sample(labels, &[("event", ev)], Value::U(v));
        }
    }
    f.end();
    x.each(out, "berth_container_spec_cpu_weight", Gauge, "cgroup v2 cpu.weight of the container (1-10000).", &[], |s, _| s.spec_cpu_weight.map(Value::U));
}

fn write_self(out: &mut String, p: &host::ProcessStats, last: Option<Duration>, containers: usize, errors: u64) {
    if let Some(d) = last {
        gauge(out, "berth_metrics_last_scrape_duration_seconds", "Time the previous metrics scrape took.", Value::Nanos(d.as_nanos() as u64));
    }
    gauge(out, "berth_metrics_containers", "Containers given to the last metrics scrape.", Value::U(containers as u64));
    let mut f = Family::begin(out, "berth_metrics_read_errors_total", Kind::Counter, "Stat file reads that failed for a reason other than the file being absent.");
    f.sample("", &[], Value::U(errors));
    f.end();
    let mut f = Family::begin(out, "process_cpu_seconds_total", Kind::Counter, "Total user and system CPU time spent in seconds.");
    f.sample("", &[], Value::F(p.cpu_seconds));
    f.end();
    gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.", Value::U(p.resident_bytes));
    gauge(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", Value::U(p.virtual_bytes));
    gauge(out, "process_open_fds", "Number of open file descriptors.", Value::U(p.open_fds));
    gauge(out, "process_max_fds", "Maximum number of open file descriptors.", Value::U(p.max_fds));
    gauge(out, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.", Value::F(p.start_time_seconds));
}
