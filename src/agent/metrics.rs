//! berthd's Prometheus endpoint (`/metrics`, `/healthz` on `--metrics-addr`, a TCP listener of
//! its own) and its watch loop, which keeps the limits that were asked for and records OOM
//! kills as they happen.
//!
//! Both work from [`Containers`]: the running containers of berthd's `--root`/`--run-root`,
//! rescanned cheaply on every scrape and round (a `read_dir` of `<run-root>/containers`, and a
//! container's `state.json` and record are read again only when the state file's mtime
//! changed). A scrape hands them to the `berth-metrics` [`Collector`] (cAdvisor's families,
//! see metrics/METRICS.md) on a blocking thread, under a mutex, then appends berthd's own
//! families (networks, reconcile, restores, OOM kills seen, scrape duration).

use super::Agent;
use crate::cgroup::Cgroup;
use crate::container::events;
use crate::container::state::{self, ContainerRecord, Paths, Status};
use berth_metrics::expose::{Family, Kind, Value};
use berth_metrics::{CgroupPaths, Collector, CollectorOptions, ContainerInfo};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;

/// Where `/metrics` is served unless configured otherwise (loopback only).
pub const DEFAULT_ADDR: &str = "127.0.0.1:9480";

static RECONCILE_RUNS: AtomicU64 = AtomicU64::new(0);
static RECONCILE_ERRORS: AtomicU64 = AtomicU64::new(0);
static LIMIT_RESTORES: AtomicU64 = AtomicU64::new(0);
static OOM_EVENTS: AtomicU64 = AtomicU64::new(0);

/// Counts one reconcile (for `berth_reconcile_runs_total` / `_errors_total`).
pub(crate) fn count_reconcile(ok: bool) {
    RECONCILE_RUNS.fetch_add(1, Ordering::Relaxed);
    if !ok {
        RECONCILE_ERRORS.fetch_add(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One running container, as the scrape and the watch loop need it.
struct Running {
    /// pid and its start time: a restart of the container is another `Running`.
    key: (i32, u64),
    record: ContainerRecord,
    record_mtime: Option<SystemTime>,
    info: ContainerInfo,
    cgroup: Option<Cgroup>,
    /// OOM kills already reported.
    oom_seen: u64,
    /// Limit files seen wrong once, with the value seen (restored when seen wrong twice:
    /// `berth update` writes the files before the record).
    suspect: HashMap<PathBuf, String>,
    /// Files whose value the kernel shows differently from what berth writes (not compared).
    unfixable: HashSet<PathBuf>,
}

struct Tracked {
    state_mtime: Option<SystemTime>,
    running: Option<Running>,
}

/// The running containers of one run root, refreshed incrementally.
pub struct Containers {
    paths: Paths,
    tracked: HashMap<String, Tracked>,
    infos: Vec<ContainerInfo>,
    changed: bool,
    /// Containers found by the first scan were running before berthd: their earlier OOM
    /// kills are not news.
    initial: bool,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Containers {
    pub fn new(paths: Paths) -> Containers {
        Containers {
            paths,
            tracked: HashMap::new(),
            infos: Vec::new(),
            changed: true,
            initial: true,
        }
    }

    /// Rescans the run root (see the module docs).
    pub fn refresh(&mut self) {
        let dir = self.paths.run_root.join("containers");
        let mut seen: HashSet<String> = HashSet::with_capacity(self.tracked.len());
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(id) = name.to_str() else { continue };
                if !crate::container::id::is_full_id(id) {
                    continue;
                }
                seen.insert(id.to_string());
                let m = mtime(&self.paths.state(id));
                if let Some(t) = self.tracked.get(id) {
                    if m.is_some() && t.state_mtime == m {
                        continue;
                    }
                }
                let prev = self.tracked.remove(id).and_then(|t| t.running);
                let running = self.load(id, prev);
                self.tracked.insert(
                    id.to_string(),
                    Tracked {
                        state_mtime: m,
                        running,
                    },
                );
                self.changed = true;
            }
        }
        let before = self.tracked.len();
        self.tracked.retain(|id, _| seen.contains(id));
        if self.tracked.len() != before {
            self.changed = true;
        }
        if self.changed {
            let mut infos: Vec<&Running> = self
                .tracked
                .values()
                .filter_map(|t| t.running.as_ref())
                .collect();
            infos.sort_by(|a, b| a.info.name.cmp(&b.info.name));
            self.infos = infos.into_iter().map(|r| r.info.clone()).collect();
            self.changed = false;
        }
        self.initial = false;
    }

    fn load(&self, id: &str, prev: Option<Running>) -> Option<Running> {
        let st = state::read_state(&self.paths, id).ok()??;
        if st.status != Status::Running
            || st.pid <= 0
            || !state::process_alive(st.monitor_pid, st.monitor_start)
        {
            return None;
        }
        let key = (st.pid, st.pid_start);
        if let Some(p) = prev.filter(|p| p.key == key) {
            return Some(p);
        }
        let record_path = self.paths.record(id);
        let record_mtime = mtime(&record_path);
        let record = state::read_record(&self.paths, id).ok()??;
        let parent = st
            .cgroup_parent
            .clone()
            .unwrap_or_else(|| crate::options::DEFAULT_CGROUP_PARENT.to_string());
        let rel = format!("/{}/{id}", parent.trim_matches('/'));
        let rel = rel.replace("//", "/");
        let paths = match CgroupPaths::detect(&rel) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(container = id, error = %e, "no cgroup paths; no metrics");
                return None;
            }
        };
        let start_time = st
            .started_at
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp_nanos_opt().unwrap_or(0) as f64 / 1e9)
            .unwrap_or(0.0);
        let res = &record.config.resources;
        let info = ContainerInfo {
            id: id.to_string(),
            name: record.name.clone(),
            image: record.config.image.clone(),
            labels: record
                .config
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            cgroup: paths,
            pid: Some(st.pid),
            start_time,
            pids_limit: res.pids_limit.filter(|&l| l > 0).map(|l| l as u64),
            priority: res.priority.map(|p| p.as_str().to_string()),
        };
        let cgroup = Cgroup::for_container(&parent, id).ok();
        let oom_seen = if self.initial {
            cgroup.as_ref().and_then(Cgroup::oom_kills).unwrap_or(0)
        } else {
            0
        };
        Some(Running {
            key,
            record,
            record_mtime,
            info,
            cgroup,
            oom_seen,
            suspect: HashMap::new(),
            unfixable: HashSet::new(),
        })
    }

    /// The running containers, as the collector takes them.
    pub fn infos(&self) -> &[ContainerInfo] {
        &self.infos
    }

    /// One round of the watch loop: OOM kills of running containers become `oom` events (and
    /// `berth_oom_events_total`); with `enforce`, limit files that differ from the record
    /// (twice in a row) are written back (`berth_limit_restores_total`).
    pub fn watch(&mut self, enforce: bool) {
        self.refresh();
        let paths = self.paths.clone();
        for (id, t) in self.tracked.iter_mut() {
            let Some(r) = t.running.as_mut() else {
                continue;
            };
            let Some(cg) = r.cgroup.clone() else { continue };
            if let Some(n) = cg.oom_kills() {
                if n > r.oom_seen {
                    let delta = n - r.oom_seen;
                    r.oom_seen = n;
                    OOM_EVENTS.fetch_add(delta, Ordering::Relaxed);
                    tracing::warn!(container = %id, name = %r.record.name, kills = delta, "OOM kill in the container");
                    events::emit(&paths, "oom", &r.record, &[]);
                }
            }
            if enforce {
                enforce_limits(&paths, id, r, &cg);
            }
        }
    }
}

/// Files whose content berth compares with what it wrote (single values and lists).
const ENFORCED: &[&str] = &[
    "memory.limit_in_bytes",
    "memory.memsw.limit_in_bytes",
    "memory.soft_limit_in_bytes",
    "memory.max",
    "memory.low",
    "memory.swap.max",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "cpu.max",
    "cpu.shares",
    "cpu.weight",
    "pids.max",
    "cpuset.cpus",
    "cpuset.mems",
    "blkio.weight",
    "blkio.bfq.weight",
    "io.bfq.weight",
];

fn enforce_limits(paths: &Paths, id: &str, r: &mut Running, cg: &Cgroup) {
    // `berth update` changed the record: that is what to keep now.
    let rm = mtime(&paths.record(id));
    if rm != r.record_mtime {
        if let Ok(Some(rec)) = state::read_record(paths, id) {
            r.record = rec;
            r.record_mtime = rm;
            r.suspect.clear();
            r.unfixable.clear();
        }
    }
    let prepared = match cg.prepare(&r.record.config.resources) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(container = id, error = %e, "cannot check the limits");
            return;
        }
    };
    for (path, want) in prepared.files() {
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
        if !ENFORCED.contains(&file) || r.unfixable.contains(path) {
            continue;
        }
        let Ok(have) = fs::read_to_string(path) else {
            continue;
        };
        let have = have.trim().to_string();
        if same_value(file, want, &have) {
            r.suspect.remove(path);
            continue;
        }
        if r.suspect.get(path) != Some(&have) {
            r.suspect.insert(path.to_path_buf(), have);
            continue;
        }
        r.suspect.remove(path);
        tracing::warn!(container = id, name = %r.record.name, file = %path.display(), want, have = %have, "a limit was changed behind berth's back; restoring it");
        if let Err(e) = fs::write(path, want) {
            tracing::warn!(container = id, file = %path.display(), error = %e, "cannot restore the limit");
            continue;
        }
        let now = fs::read_to_string(path).unwrap_or_default();
        if same_value(file, want, now.trim()) {
            LIMIT_RESTORES.fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::info!(container = id, file = %path.display(), want, have = %now.trim(), "the kernel shows this limit differently from what was written; not compared any more");
            r.unfixable.insert(path.to_path_buf());
        }
    }
}

/// Whether the file content `have` means the value `want` that berth writes.
fn same_value(file: &str, want: &str, have: &str) -> bool {
    if want == have {
        return true;
    }
    if file == "cpu.max" {
        let (w, h): (Vec<&str>, Vec<&str>) = (
            want.split_whitespace().collect(),
            have.split_whitespace().collect(),
        );
        return w.len() == h.len() && w.iter().zip(&h).all(|(a, b)| same_value("", a, b));
    }
    if file.starts_with("cpuset.") {
        return cpu_list(want).is_some() && cpu_list(want) == cpu_list(have);
    }
    let unlimited =
        |v: &str| v == "max" || v == "-1" || v.parse::<u64>().is_ok_and(|n| n >= 1 << 62);
    if unlimited(want) && unlimited(have) {
        return true;
    }
    match (want.parse::<u64>(), have.parse::<u64>()) {
        // v1 memory files hold whole pages
        (Ok(w), Ok(h)) if file.starts_with("memory.") => w / 4096 == h / 4096,
        (Ok(w), Ok(h)) => w == h,
        _ => false,
    }
}

fn cpu_list(s: &str) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().ok()?);
            }
        }
    }
    Some(out)
}

/// One network's figures for a scrape.
pub struct NetFigures {
    pub name: String,
    pub endpoints: u64,
    pub addresses: u64,
    pub free: u64,
    /// Its endpoints as (container id, name on the network, interface in the container,
    /// addresses), for `berth_network_endpoint_info`.
    pub members: Vec<(String, String, String, String)>,
}

/// The scrape side: the containers, the collector and its output buffer.
pub struct Metrics {
    containers: Mutex<Containers>,
    collector: Mutex<(Collector, String)>,
    last_duration: Mutex<Option<Duration>>,
}

impl Metrics {
    pub fn new(paths: Paths) -> Metrics {
        Metrics {
            containers: Mutex::new(Containers::new(paths)),
            collector: Mutex::new((Collector::new(CollectorOptions::default()), String::new())),
            last_duration: Mutex::new(None),
        }
    }

    /// The whole exposition (blocking: run it on a blocking thread).
    pub fn scrape(&self, nets: &[NetFigures]) -> String {
        let started = Instant::now();
        let mut c = lock(&self.containers);
        c.refresh();
        let mut g = lock(&self.collector);
        let (collector, out) = &mut *g;
        out.clear();
        collector.write(c.infos(), out);
        // container id -> the `name` label the container families carry
        let names: HashMap<&str, &str> = c
            .infos()
            .iter()
            .map(|i| (i.id.as_str(), i.name.as_str()))
            .collect();
        let mut f = Family::begin(
            out,
            "berth_network_endpoints",
            Kind::Gauge,
            "Endpoints (attached container interfaces) of the network.",
        );
        for n in nets {
            f.sample("", &[("network", &n.name)], Value::U(n.endpoints));
        }
        f.end();
        let mut f = Family::begin(
            out,
            "berth_network_addresses",
            Kind::Gauge,
            "Addresses the network can hand out.",
        );
        for n in nets {
            f.sample("", &[("network", &n.name)], Value::U(n.addresses));
        }
        f.end();
        let mut f = Family::begin(
            out,
            "berth_network_free_addresses",
            Kind::Gauge,
            "Addresses of the network not leased.",
        );
        for n in nets {
            f.sample("", &[("network", &n.name)], Value::U(n.free));
        }
        f.end();
        // One series per endpoint, labelled as the container_network_* families (`name` is
        // the container name, `interface` its interface inside the container), so dashboards
        // join them `on (instance, name, interface)` to put traffic on networks.
        let mut f = Family::begin(
            out,
            "berth_network_endpoint_info",
            Kind::Gauge,
            "1 for each endpoint: which container interface is on which network, with its addresses.",
        );
        for n in nets {
            for (id, ep_name, interface, address) in &n.members {
                // the container's name, as container_network_* label it (an endpoint can be
                // attached under another DNS name); the endpoint's name for foreign namespaces
                let name = names.get(id.as_str()).copied().unwrap_or(ep_name);
                f.sample(
                    "",
                    &[
                        ("network", &n.name),
                        ("name", name),
                        ("interface", interface),
                        ("address", address),
                    ],
                    Value::U(1),
                );
            }
        }
        f.end();
        drop(names);
        drop(c);
        let counters: [(&'static str, &str, &AtomicU64); 4] = [
            (
                "berth_reconcile_runs_total",
                "Network reconciles run (at start, on request, on the timer).",
                &RECONCILE_RUNS,
            ),
            (
                "berth_reconcile_errors_total",
                "Network reconciles that failed.",
                &RECONCILE_ERRORS,
            ),
            (
                "berth_limit_restores_total",
                "Container limit files found changed behind berth's back and written back.",
                &LIMIT_RESTORES,
            ),
            (
                "berth_oom_events_total",
                "OOM kills berthd saw in running containers (each also an `oom` event).",
                &OOM_EVENTS,
            ),
        ];
        for (name, help, v) in counters {
            let mut f = Family::begin(out, name, Kind::Counter, help);
            f.sample("", &[], Value::U(v.load(Ordering::Relaxed)));
            f.end();
        }
        let mut last = lock(&self.last_duration);
        if let Some(d) = *last {
            let mut f = Family::begin(
                out,
                "berth_agent_scrape_duration_seconds",
                Kind::Gauge,
                "Duration of berthd's previous whole scrape (container listing included).",
            );
            f.sample("", &[], Value::Nanos(d.as_nanos() as u64));
            f.end();
        }
        *last = Some(started.elapsed());
        out.clone()
    }

    /// One round of the watch loop (blocking).
    pub fn watch(&self, enforce: bool) {
        lock(&self.containers).watch(enforce);
    }
}

impl Agent {
    /// The watch loop's interval in seconds (0: off) and whether it restores limits, as
    /// configured now.
    pub fn watch_settings(&self) -> (u64, bool) {
        let c = self.config();
        (c.watch_interval_secs, c.enforce_limits)
    }

    /// Per-network figures for a scrape.
    pub(crate) fn net_figures(&self) -> Vec<NetFigures> {
        self.all_nets()
            .into_iter()
            .map(|n| {
                let (cap, used) = n
                    .ipam()
                    .usage()
                    .into_iter()
                    .fold((0u128, 0u128), |(c, u), (_, cc, uu)| (c + cc, u + uu));
                let mut records = self.records_of(&n.def.name);
                records.sort_by(|a, b| a.owner.cmp(&b.owner));
                let members = records
                    .iter()
                    .map(|r| {
                        // addresses without their prefix length, IPv4 first (as leased)
                        let addrs: Vec<&str> =
                            r.ep.addresses
                                .iter()
                                .map(|a| a.split('/').next().unwrap_or(a))
                                .collect();
                        (
                            r.ep.container_id.clone(),
                            r.ep.name.clone(),
                            r.ep.ifname.clone(),
                            addrs.join(","),
                        )
                    })
                    .collect();
                NetFigures {
                    endpoints: records.len() as u64,
                    members,
                    name: n.def.name.clone(),
                    addresses: cap.min(u64::MAX as u128) as u64,
                    free: cap.saturating_sub(used).min(u64::MAX as u128) as u64,
                }
            })
            .collect()
    }
}

type Body = Full<Bytes>;

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn handle(
    agent: Arc<Agent>,
    metrics: Arc<Metrics>,
    req: Request<Incoming>,
) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "use GET\n",
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let nets = agent.net_figures();
            match tokio::task::spawn_blocking(move || metrics.scrape(&nets)).await {
                Ok(body) => text(StatusCode::OK, berth_metrics::CONTENT_TYPE, body),
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain; charset=utf-8",
                    format!("scrape failed: {e}\n"),
                ),
            }
        }
        "/healthz" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics or /healthz\n",
        ),
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` resolves.
pub async fn serve(
    agent: Arc<Agent>,
    metrics: Arc<Metrics>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    super::server::serve_connections(
        listener,
        move |req| handle(agent.clone(), metrics.clone(), req),
        shutdown,
        "metrics ",
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_as_the_kernel_shows_them() {
        assert!(same_value("memory.limit_in_bytes", "67108864", "67108864"));
        assert!(same_value("memory.limit_in_bytes", "67108865", "67108864"));
        assert!(!same_value("memory.limit_in_bytes", "67108864", "33554432"));
        assert!(same_value("memory.max", "max", "max"));
        assert!(same_value(
            "memory.limit_in_bytes",
            "-1",
            "9223372036854771712"
        ));
        assert!(same_value("cpu.max", "50000 100000", "50000 100000"));
        assert!(!same_value("cpu.max", "50000 100000", "max 100000"));
        assert!(same_value("cpuset.cpus", "0,1", "0-1"));
        assert!(!same_value("cpuset.cpus", "0", "0-1"));
        assert!(!same_value("pids.max", "100", "max"));
    }
}
