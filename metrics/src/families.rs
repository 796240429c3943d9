//! The families: names, types and HELP as cAdvisor has them (`container_*`, `machine_*`),
//! berth's own (`berth_*`) and the agent's process metrics (`process_*`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cgroup::{CgroupStats, PSI_RESOURCES};
use crate::collector::{push_base_labels, push_container_label, ContainerInfo, Slot};
use crate::expose::{Family, Kind, Value};
use crate::host::{self, DeviceNames, MachineInfo};
use crate::parse::{self, Interface, Limit, Pressure};

pub(crate) struct Ctx<'a> {
    pub(crate) infos: &'a [ContainerInfo],
    pub(crate) slots: &'a [Slot],
    pub(crate) labels: &'a str,
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

pub(crate) fn write_machine(out: &mut String, m: MachineInfo) {
    gauge(
        out,
        "machine_cpu_cores",
        "Number of logical CPU cores.",
        Value::U(m.cpu_cores),
    );
    if m.memory_bytes > 0 {
        gauge(
            out,
            "machine_memory_bytes",
            "Amount of memory installed on the machine.",
            Value::U(m.memory_bytes),
        );
    }
}

pub(crate) fn write_cpu(out: &mut String, x: &Ctx) {
    use Kind::Counter;
    let ns = |v: Option<u64>| v.map(Value::Nanos);
    x.each(
        out,
        "container_cpu_usage_seconds_total",
        Counter,
        "Cumulative cpu time consumed in seconds.",
        &[("cpu", "total")],
        |s, _| ns(s.cpu_usage_ns),
    );
    x.each(
        out,
        "container_cpu_user_seconds_total",
        Counter,
        "Cumulative user cpu time consumed in seconds.",
        &[],
        |s, _| ns(s.cpu_user_ns),
    );
    x.each(
        out,
        "container_cpu_system_seconds_total",
        Counter,
        "Cumulative system cpu time consumed in seconds.",
        &[],
        |s, _| ns(s.cpu_system_ns),
    );
    // cAdvisor emits the CFS counters only for a container with a quota.
    let q = |s: &CgroupStats, v: Option<u64>| s.spec_cpu_quota_us.and(v);
    x.each(
        out,
        "container_cpu_cfs_periods_total",
        Counter,
        "Number of elapsed enforcement period intervals.",
        &[],
        |s, _| q(s, s.cfs_periods).map(Value::U),
    );
    x.each(
        out,
        "container_cpu_cfs_throttled_periods_total",
        Counter,
        "Number of throttled period intervals.",
        &[],
        |s, _| q(s, s.cfs_throttled_periods).map(Value::U),
    );
    x.each(
        out,
        "container_cpu_cfs_throttled_seconds_total",
        Counter,
        "Total time duration the container has been throttled.",
        &[],
        |s, _| ns(q(s, s.cfs_throttled_ns)),
    );
}

pub(crate) fn write_memory(out: &mut String, x: &Ctx) {
    use Kind::{Counter, Gauge};
    let b = |v: Option<u64>| v.map(Value::U);
    x.each(
        out,
        "container_memory_usage_bytes",
        Gauge,
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        &[],
        |s, _| b(s.memory_usage),
    );
    x.each(
        out,
        "container_memory_max_usage_bytes",
        Gauge,
        "Maximum memory usage recorded in bytes",
        &[],
        |s, _| b(s.memory_max_usage),
    );
    x.each(
        out,
        "container_memory_working_set_bytes",
        Gauge,
        "Current working set in bytes.",
        &[],
        |s, _| b(s.memory_working_set),
    );
    x.each(
        out,
        "container_memory_rss",
        Gauge,
        "Size of RSS in bytes.",
        &[],
        |s, _| b(s.memory_rss),
    );
    x.each(
        out,
        "container_memory_cache",
        Gauge,
        "Number of bytes of page cache memory.",
        &[],
        |s, _| b(s.memory_cache),
    );
    x.each(
        out,
        "container_memory_swap",
        Gauge,
        "Container swap usage in bytes.",
        &[],
        |s, _| b(s.memory_swap),
    );
    x.each(
        out,
        "container_memory_mapped_file",
        Gauge,
        "Size of memory mapped files in bytes.",
        &[],
        |s, _| b(s.memory_mapped_file),
    );
    x.each(
        out,
        "container_memory_failcnt",
        Counter,
        "Number of memory usage hits limits",
        &[],
        |s, _| b(s.memory_failcnt),
    );
    x.each(
        out,
        "container_oom_events_total",
        Counter,
        "Count of out of memory events observed for the container",
        &[],
        |s, _| b(s.oom_kills),
    );
}

pub(crate) fn write_spec(out: &mut String, x: &Ctx) {
    use Kind::Gauge;
    let b = |v: Option<u64>| v.map(Value::U);
    x.each(
        out,
        "container_spec_memory_limit_bytes",
        Gauge,
        "Memory limit for the container.",
        &[],
        |s, _| b(s.spec_memory_limit),
    );
    x.each(
        out,
        "container_spec_memory_reservation_limit_bytes",
        Gauge,
        "Memory reservation limit for the container.",
        &[],
        |s, _| b(s.spec_memory_reservation),
    );
    x.each(
        out,
        "container_spec_memory_swap_limit_bytes",
        Gauge,
        "Memory swap limit for the container.",
        &[],
        |s, _| b(s.spec_memory_swap_limit),
    );
    x.each(
        out,
        "container_spec_cpu_quota",
        Gauge,
        "CPU quota of the container.",
        &[],
        |s, _| b(s.spec_cpu_quota_us),
    );
    x.each(
        out,
        "container_spec_cpu_period",
        Gauge,
        "CPU period of the container.",
        &[],
        |s, _| b(s.spec_cpu_period_us),
    );
    x.each(
        out,
        "container_spec_cpu_shares",
        Gauge,
        "CPU share of the container.",
        &[],
        |s, _| b(s.spec_cpu_shares),
    );
}

pub(crate) fn write_io(out: &mut String, x: &Ctx, devices: &DeviceNames) {
    type Get = fn(&parse::IoDevice) -> u64;
    let fams: [(&'static str, &str, Get); 4] = [
        (
            "container_fs_reads_bytes_total",
            "Cumulative count of bytes read",
            |d| d.read_bytes,
        ),
        (
            "container_fs_writes_bytes_total",
            "Cumulative count of bytes written",
            |d| d.write_bytes,
        ),
        (
            "container_fs_reads_total",
            "Cumulative count of reads completed",
            |d| d.reads,
        ),
        (
            "container_fs_writes_total",
            "Cumulative count of writes completed",
            |d| d.writes,
        ),
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

pub(crate) fn write_network(out: &mut String, x: &Ctx) {
    type Get = fn(&Interface) -> u64;
    let fams: [(&'static str, &str, Get); 8] = [
        (
            "container_network_receive_bytes_total",
            "Cumulative count of bytes received",
            |i| i.rx_bytes,
        ),
        (
            "container_network_receive_packets_total",
            "Cumulative count of packets received",
            |i| i.rx_packets,
        ),
        (
            "container_network_receive_packets_dropped_total",
            "Cumulative count of packets dropped while receiving",
            |i| i.rx_dropped,
        ),
        (
            "container_network_receive_errors_total",
            "Cumulative count of errors encountered while receiving",
            |i| i.rx_errors,
        ),
        (
            "container_network_transmit_bytes_total",
            "Cumulative count of bytes transmitted",
            |i| i.tx_bytes,
        ),
        (
            "container_network_transmit_packets_total",
            "Cumulative count of packets transmitted",
            |i| i.tx_packets,
        ),
        (
            "container_network_transmit_packets_dropped_total",
            "Cumulative count of packets dropped while transmitting",
            |i| i.tx_dropped,
        ),
        (
            "container_network_transmit_errors_total",
            "Cumulative count of errors encountered while transmitting",
            |i| i.tx_errors,
        ),
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

pub(crate) fn write_tasks(out: &mut String, x: &Ctx) {
    use Kind::Gauge;
    x.each(
        out,
        "container_processes",
        Gauge,
        "Number of processes running inside the container.",
        &[],
        |s, _| s.processes.map(Value::U),
    );
    x.each(
        out,
        "container_threads",
        Gauge,
        "Number of threads running inside the container",
        &[],
        |s, _| s.threads.map(Value::U),
    );
    x.each(
        out,
        "container_threads_max",
        Gauge,
        "Maximum number of threads allowed inside the container, infinity if value is zero",
        &[],
        |s, _| {
            s.pids_max.map(|l| {
                Value::U(match l {
                    Limit::Max => 0,
                    Limit::Value(v) => v,
                })
            })
        },
    );
}

pub(crate) fn write_pressure(out: &mut String, x: &Ctx) {
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

pub(crate) fn write_host_pressure(out: &mut String, psi: &[Option<Pressure>; 3]) {
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

pub(crate) fn write_times(out: &mut String, x: &Ctx) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    x.each(
        out,
        "container_start_time_seconds",
        Kind::Gauge,
        "Start time of the container since unix epoch in seconds.",
        &[],
        |_, c| Some(Value::F(c.start_time)),
    );
    x.each(
        out,
        "container_last_seen",
        Kind::Gauge,
        "Last time a container was seen by the exporter",
        &[],
        |_, _| Some(Value::U(now)),
    );
}

pub(crate) fn write_berth(out: &mut String, x: &Ctx) {
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
    let mut f = Family::begin(
        out,
        "berth_container_priority_info",
        Gauge,
        "The --priority class of the container; always 1.",
    );
    for (c, _, labels) in x.live() {
        if let Some(p) = &c.priority {
            f.sample(labels, &[("priority", p)], Value::U(1));
        }
    }
    f.end();
    x.each(
        out,
        "berth_container_pids_limit",
        Gauge,
        "Maximum number of tasks (pids.max); absent when unlimited.",
        &[],
        |s, _| match s.pids_max {
            Some(Limit::Value(v)) => Some(Value::U(v)),
            _ => None,
        },
    );
    x.each(out, "berth_container_oom_kills_total", Counter, "Processes of the container killed by the OOM killer (v2 memory.events oom_kill, v1 memory.oom_control oom_kill).", &[], |s, _| s.oom_kills.map(Value::U));
    let mut f = Family::begin(out, "berth_container_memory_events_total", Counter, "cgroup v2 memory.events counters (low, high, max, oom, oom_kill, oom_group_kill), hierarchical.");
    for (_, s, labels) in x.live() {
        let Some(e) = s.stats.memory_events else {
            continue;
        };
        for (ev, v) in [
            ("low", e.low),
            ("high", e.high),
            ("max", e.max),
            ("oom", e.oom),
            ("oom_kill", e.oom_kill),
            ("oom_group_kill", e.oom_group_kill),
        ] {
            f.sample(labels, &[("event", ev)], Value::U(v));
        }
    }
    f.end();
    x.each(
        out,
        "berth_container_spec_cpu_weight",
        Gauge,
        "cgroup v2 cpu.weight of the container (1-10000).",
        &[],
        |s, _| s.spec_cpu_weight.map(Value::U),
    );
}

pub(crate) fn write_self(
    out: &mut String,
    p: &host::ProcessStats,
    last: Option<Duration>,
    containers: usize,
    errors: u64,
) {
    if let Some(d) = last {
        gauge(
            out,
            "berth_metrics_last_scrape_duration_seconds",
            "Time the previous metrics scrape took.",
            Value::Nanos(d.as_nanos() as u64),
        );
    }
    gauge(
        out,
        "berth_metrics_containers",
        "Containers given to the last metrics scrape.",
        Value::U(containers as u64),
    );
    let mut f = Family::begin(
        out,
        "berth_metrics_read_errors_total",
        Kind::Counter,
        "Stat file reads that failed for a reason other than the file being absent.",
    );
    f.sample("", &[], Value::U(errors));
    f.end();
    let mut f = Family::begin(
        out,
        "process_cpu_seconds_total",
        Kind::Counter,
        "Total user and system CPU time spent in seconds.",
    );
    f.sample("", &[], Value::F(p.cpu_seconds));
    f.end();
    gauge(
        out,
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        Value::U(p.resident_bytes),
    );
    gauge(
        out,
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        Value::U(p.virtual_bytes),
    );
    gauge(
        out,
        "process_open_fds",
        "Number of open file descriptors.",
        Value::U(p.open_fds),
    );
    gauge(
        out,
        "process_max_fds",
        "Maximum number of open file descriptors.",
        Value::U(p.max_fds),
    );
    gauge(
        out,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        Value::F(p.start_time_seconds),
    );
}
