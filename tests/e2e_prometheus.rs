//! Issue 6, end to end: a real Prometheus (Debian's `prometheus` package) on loopback scrapes a
//! real berthd whose containers hold most of their memory limit, get OOM-killed and are
//! CPU-throttled, with the rules of `deploy/prometheus/alerts.yml` loaded unchanged (only
//! ports and intervals are the test's, see `common/prometheus.rs`). Through Prometheus' HTTP
//! API the test asserts that
//!
//! - BerthContainerMemoryNearLimit, BerthContainerOOMKilled and BerthContainerCPUThrottled
//!   reach `firing` for the troubled containers (the rules' `for:` of 5 and 15 minutes are
//!   kept, so the test takes about 17 minutes);
//! - the healthy containers (generous limits, and none at all) raise no alert, pending or
//!   firing, at any point;
//! - every query of every panel, annotation and template variable of every dashboard in
//!   `deploy/grafana/dashboards` returns data, except for the few listed in [`ALLOWED_EMPTY`]
//!   with the reason (families this host cannot have).
//!
//! Root only (skipped otherwise), and skipped with a message when prometheus is not
//! installed. berthd runs on the test's berth roots with a default network on bridge `brt246`
//! / `10.231.246.0/24`, nftables table `berth_t246`, no DNS, `/metrics` on a free loopback
//! port; containers run under the test's own cgroup parent. Drop removes the containers, stops
//! Prometheus and berthd by pid, and deletes the bridge and the table. On failure the alerts
//! and the relevant query results are printed.

#[path = "common/berthd.rs"]
mod berthd;
#[path = "common/container_env.rs"]
mod container_env;
#[path = "common/forwarding.rs"]
mod forwarding;
#[path = "common/layout.rs"]
mod layout;
#[path = "common/metrics_berthd.rs"]
mod metrics_berthd;
#[path = "common/prometheus.rs"]
mod prometheus;

use container_env::Env;
use metrics_berthd::MetricsBerthd;
use prometheus::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// Bridge `brt246`, subnet `10.231.246.0/24`, table `berth_t246`.
const NET: u32 = 246;
/// Scrape and evaluation interval given to Prometheus (deploy/: 15s).
const INTERVAL: &str = "5s";
/// What Grafana's `$__rate_interval` would be at that interval (4 × scrape interval).
const RATE_INTERVAL: &str = "20s";

/// Holds ~60 MiB of its 64 MiB limit: a file in /dev/shm (tmpfs, charged to the container's
/// memory cgroup as shmem, which is not inactive file cache, so it counts in the working set).
const MEMHOG: &str = "memhog";
/// Stays running while a subshell of it gets OOM-killed every few seconds.
const OOMER: &str = "oomer";
/// A busy loop under `--cpus 0.1`.
const SPINNER: &str = "spinner";
/// Healthy: generous limits of every kind (and some disk IO, for the disk panels).
const CALM: &str = "calm";
/// Healthy: no limits at all.
const FREE: &str = "free";
const HEALTHY: &[&str] = &[CALM, FREE];
const ALL: &[&str] = &[MEMHOG, OOMER, SPINNER, CALM, FREE];

/// Dashboard queries allowed to return nothing here, each with the reason: (dashboard file,
/// panel title, refId, why). Applied on cgroup v1 hosts only; on a v2 host every query must
/// have data.
const ALLOWED_EMPTY: &[(&str, &str, &str, &str)] = &[
    (
        "berth-container.json",
        "Pressure stall",
        "A",
        "per-container PSI (cpu/memory/io.pressure) exists on cgroup v2 only",
    ),
    (
        "berth-container.json",
        "Pressure stall",
        "B",
        "per-container PSI (cpu/memory/io.pressure) exists on cgroup v2 only",
    ),
    (
        "berth-host.json",
        "Container pressure stall (PSI full, cgroup v2)",
        "A",
        "per-container PSI (cpu/memory/io.pressure) exists on cgroup v2 only",
    ),
    (
        "berth-container.json",
        "Memory limit hits and events",
        "B",
        "berth_container_memory_events_total is the v2 memory.events file; v1 has \
         memory.failcnt (query A of the same panel)",
    ),
    (
        "berth-container.json",
        "CPU shares / weight",
        "B",
        "berth_container_spec_cpu_weight is the v2 cpu.weight file; v1 has cpu.shares \
         (query A of the same panel)",
    ),
];

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn cgroup_v1() -> bool {
    !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Removes the test's containers (first of all, while berthd still runs to detach them).
struct Containers<'a>(&'a Env);

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        let mut args = vec!["rm", "-f"];
        args.extend_from_slice(ALL);
        let r = self.0.berth(&args);
        if r.code != 0 {
            eprintln!("berth rm -f: {}{}", r.stdout, r.stderr);
        }
    }
}

/// Seconds since the test started, for progress lines.
fn stamp(t0: Instant) -> String {
    let s = t0.elapsed().as_secs();
    format!("[{:02}:{:02}]", s / 60, s % 60)
}

/// The single value of an instant query (None without data).
fn scalar(prom: &Prometheus, expr: &str) -> Option<f64> {
    let r = prom.query(expr);
    let v = r.first()?;
    let s = v["value"][1].as_str().or(v[1].as_str())?;
    s.parse().ok()
}

/// Everything that explains an alert state: the active alerts and the numbers behind them.
fn dump(prom: &Prometheus, d: &MetricsBerthd) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "/api/v1/alerts:\n{:#}\n",
        Value::Array(prom.alerts())
    ));
    let sel = |n: &str| format!("{{job=\"berthd\", name=\"{n}\"}}");
    let mut exprs = Vec::new();
    for n in ALL {
        let s = sel(n);
        exprs.push(format!(
            "container_memory_working_set_bytes{s} / container_spec_memory_limit_bytes{s}"
        ));
        exprs.push(format!("container_memory_working_set_bytes{s}"));
        exprs.push(format!("container_memory_usage_bytes{s}"));
        exprs.push(format!("container_spec_memory_limit_bytes{s}"));
        exprs.push(format!("container_oom_events_total{s}"));
        exprs.push(format!("increase(container_oom_events_total{s}[5m])"));
        exprs.push(format!(
            "rate(container_cpu_cfs_throttled_periods_total{s}[5m]) / rate(container_cpu_cfs_periods_total{s}[5m])"
        ));
        exprs.push(format!("container_spec_cpu_quota{s}"));
    }
    for e in exprs {
        let r: Vec<String> = prom
            .query(&e)
            .iter()
            .map(|v| v["value"][1].to_string())
            .collect();
        out.push_str(&format!("{e} => {r:?}\n"));
    }
    for g in prom.api("/api/v1/rules", &[])["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        for r in g["rules"].as_array().cloned().unwrap_or_default() {
            out.push_str(&format!(
                "rule {} state={} health={} lastError={}\n",
                r["name"], r["state"], r["health"], r["lastError"]
            ));
        }
    }
    let log = d.log();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    out.push_str("berthd log (last lines):\n");
    for l in tail.iter().rev() {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&format!("prometheus log:\n{}\n", prom.log()));
    out
}

/// Panics if a healthy container has any alert (pending or firing).
fn check_healthy_quiet(prom: &Prometheus, d: &MetricsBerthd, t0: Instant) {
    let bad: Vec<Value> = prom
        .alerts()
        .into_iter()
        .filter(|a| {
            a["labels"]["name"]
                .as_str()
                .is_some_and(|n| HEALTHY.contains(&n))
        })
        .collect();
    if !bad.is_empty() {
        panic!(
            "{} a healthy container raised an alert: {:#}\n{}",
            stamp(t0),
            Value::Array(bad),
            dump(prom, d)
        );
    }
}

/// Waits until `alert` for container `name` is firing, checking on every poll that the healthy
/// containers stay quiet and printing progress every minute.
fn wait_firing(
    prom: &Prometheus,
    d: &MetricsBerthd,
    t0: Instant,
    alert: &str,
    name: &str,
    deadline: Instant,
) {
    let mut last_print = Instant::now() - Duration::from_secs(60);
    loop {
        check_healthy_quiet(prom, d, t0);
        let states = prom.alert_states(alert, &[("name", name)]);
        if states.contains(&AlertState::Firing) {
            eprintln!("{} {alert} {{name={name}}} is firing", stamp(t0));
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{} {alert} {{name={name}}} did not fire in time (states now: {states:?})\n{}",
                stamp(t0),
                dump(prom, d)
            );
        }
        if last_print.elapsed() >= Duration::from_secs(60) {
            last_print = Instant::now();
            let since = prom
                .alerts()
                .into_iter()
                .find(|a| a["labels"]["alertname"] == alert && a["labels"]["name"] == name)
                .map(|a| {
                    format!(
                        "{} since {}, value {}",
                        a["state"], a["activeAt"], a["value"]
                    )
                })
                .unwrap_or_else(|| "inactive".into());
            eprintln!(
                "{} waiting for {alert} {{name={name}}}: {since}; {} s left",
                stamp(t0),
                deadline.saturating_duration_since(Instant::now()).as_secs()
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Polls `expr` until `ok(value)` or the timeout; returns the last value.
fn wait_value(
    prom: &Prometheus,
    d: &MetricsBerthd,
    t0: Instant,
    what: &str,
    expr: &str,
    timeout: Duration,
    ok: impl Fn(f64) -> bool,
) -> f64 {
    let end = Instant::now() + timeout;
    loop {
        let v = scalar(prom, expr);
        if let Some(v) = v.filter(|&v| ok(v)) {
            eprintln!("{} {what}: {expr} = {v}", stamp(t0));
            return v;
        }
        if Instant::now() > end {
            panic!(
                "{} {what}: `{expr}` is {v:?} after {timeout:?}\n{}",
                stamp(t0),
                dump(prom, d)
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Whether `q` is the allow-list entry (dashboard, panel title, refId). `DashQuery::what` is
/// `panel <title as a serde_json Value, Debug> <refId as JSON>`.
fn is_entry(q: &DashQuery, (dash, title, ref_id, _): &(&str, &str, &str, &str)) -> bool {
    q.dashboard == *dash && q.what == format!("panel {:?} \"{ref_id}\"", Value::from(*title))
}

fn allowed_empty(q: &DashQuery) -> Option<&'static str> {
    if !cgroup_v1() {
        return None;
    }
    ALLOWED_EMPTY
        .iter()
        .find(|e| is_entry(q, e))
        .map(|(_, _, _, why)| *why)
}

/// Every dashboard query with the variables set as a user would: this berthd, the default
/// network, and for `$container` each of the test's containers in turn (a query passes when
/// some container gives it data: the OOM annotation needs the OOM-killed one, the pids panels
/// one with a pids limit). Returns the queries without data, allow-list not applied.
fn empty_dashboard_queries(prom: &Prometheus, instance: &str) -> Vec<(DashQuery, String)> {
    let mut empty = Vec::new();
    for q in dashboard_queries() {
        let candidates: Vec<&str> = if q.expr.contains("$container") {
            ALL.to_vec()
        } else {
            vec![CALM]
        };
        let mut last = String::new();
        let has_data = candidates.iter().any(|c| {
            let vars = [
                ("instance", instance),
                ("container", c),
                ("network", "berth"),
            ];
            last = q.substituted(&vars, RATE_INTERVAL, "5m");
            !prom.query(&last).is_empty()
        });
        if !has_data {
            empty.push((q, last));
        }
    }
    empty
}

#[test]
fn prometheus_fires_the_memory_oom_and_throttling_alerts_on_a_live_berthd() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    if which("prometheus").is_none() {
        eprintln!("SKIPPED: prometheus is not installed (scripts/install-deps.sh installs it)");
        return;
    }
    let t0 = Instant::now();
    let env = Env::new();
    let d = MetricsBerthd::start(NET, &env.root(), &env.run_root());
    let target = format!("127.0.0.1:{}", d.port);
    let mut opts = PromOptions::berthd(&[&target]);
    opts.interval = INTERVAL.into();
    let prom = Prometheus::start(&opts).unwrap_or_else(|e| panic!("{e}"));
    // Declared last, dropped first: containers go before Prometheus and berthd stop.
    let _containers = Containers(&env);

    // The rules are deploy/prometheus/alerts.yml itself.
    let groups = prom.api("/api/v1/rules", &[])["groups"]
        .as_array()
        .cloned()
        .unwrap();
    assert!(!groups.is_empty());
    assert!(
        groups.iter().all(|g| g["file"]
            .as_str()
            .unwrap()
            .ends_with("deploy/prometheus/alerts.yml")),
        "{groups:#?}"
    );

    let runs: [(&str, &[&str]); 5] = [
        (
            MEMHOG,
            &[
                "--memory",
                "64m",
                "busybox",
                "sh",
                "-c",
                "head -c 60m /dev/zero > /dev/shm/fill; sleep 3600",
            ],
        ),
        (
            OOMER,
            &[
                "--memory",
                "32m",
                "busybox",
                "sh",
                "-c",
                // the subshell and its pipeline volunteer as the OOM victims (raising one's own
                // oom_score_adj needs no privilege), so the container's shell, its pid 1,
                // survives: in a first run it was the victim after ~6 minutes and the container
                // (and its series) went away
                "while true; do (echo 1000 > /proc/self/oom_score_adj; \
                 x=$(head -c 64m /dev/zero | tr '\\0' a)); sleep 5; done",
            ],
        ),
        (
            SPINNER,
            &[
                "--cpus",
                "0.1",
                "busybox",
                "sh",
                "-c",
                "while :; do :; done",
            ],
        ),
        (
            CALM,
            &[
                "--memory",
                "512m",
                "--memory-reservation",
                "256m",
                "--cpus",
                "1",
                "--pids-limit",
                "1000",
                "--priority",
                "normal",
                "busybox",
                "sh",
                "-c",
                // some disk IO for the disk panels (written through to the device)
                "dd if=/dev/zero of=/tmp/io bs=64k count=32 conv=fsync 2>/dev/null; \
                 sync; cat /tmp/io > /dev/null; sleep 3600",
            ],
        ),
        (FREE, &["busybox", "sleep", "3600"]),
    ];
    let mut started = Vec::new();
    for (name, args) in runs {
        let mut a = vec!["run", "-d", "--name", name];
        a.extend_from_slice(args);
        env.ok(&a);
        started.push((name, Instant::now()));
        eprintln!("{} started {name}: berth {}", stamp(t0), a.join(" "));
    }
    let started_at = |n: &str| started.iter().find(|(s, _)| *s == n).unwrap().1;

    prom.wait_for_up("berthd", 1, Duration::from_secs(30));
    eprintln!("{} prometheus scrapes berthd at {target}", stamp(t0));

    // The scenario is what it should be, seen through Prometheus.
    let sel = |n: &str| format!("{{job=\"berthd\", name=\"{n}\"}}");
    let ratio = wait_value(
        &prom,
        &d,
        t0,
        "memhog holds ≥ 90% of its limit",
        &format!(
            "container_memory_working_set_bytes{s} / container_spec_memory_limit_bytes{s}",
            s = sel(MEMHOG)
        ),
        Duration::from_secs(60),
        |v| v >= 0.90,
    );
    assert!(ratio < 1.0, "memhog above its limit: {ratio}");
    let first = wait_value(
        &prom,
        &d,
        t0,
        "oomer had a kill",
        &format!("container_oom_events_total{}", sel(OOMER)),
        Duration::from_secs(60),
        |v| v >= 1.0,
    );
    wait_value(
        &prom,
        &d,
        t0,
        "oomer's kills keep counting",
        &format!("container_oom_events_total{}", sel(OOMER)),
        Duration::from_secs(60),
        |v| v > first,
    );
    wait_value(
        &prom,
        &d,
        t0,
        "spinner throttled in > 25% of periods",
        &format!(
            "rate(container_cpu_cfs_throttled_periods_total{s}[1m]) / rate(container_cpu_cfs_periods_total{s}[1m])",
            s = sel(SPINNER)
        ),
        Duration::from_secs(60),
        |v| v > 0.25,
    );
    check_healthy_quiet(&prom, &d, t0);

    // Every dashboard query has data (rate windows need a few scrapes: retry for a while).
    let mut tries = 0;
    let empty = loop {
        let empty = empty_dashboard_queries(&prom, &target);
        let unexplained = empty
            .iter()
            .filter(|(q, _)| allowed_empty(q).is_none())
            .count();
        tries += 1;
        if unexplained == 0 || tries >= 6 {
            break empty;
        }
        std::thread::sleep(Duration::from_secs(10));
    };
    let mut unexplained = Vec::new();
    for (q, e) in &empty {
        match allowed_empty(q) {
            Some(why) => eprintln!(
                "{} allowed without data: {} {} ({why})",
                stamp(t0),
                q.dashboard,
                q.what
            ),
            None => unexplained.push(format!("{} {}: {e}", q.dashboard, q.what)),
        }
    }
    if !unexplained.is_empty() {
        panic!(
            "dashboard queries without data:\n{}\n{}\nberthd /metrics:\n{}",
            unexplained.join("\n"),
            dump(&prom, &d),
            d.get("/metrics").map(|(_, body)| body).unwrap_or_default()
        );
    }
    // An allow-list entry that has data now (or names no query) is stale.
    if cgroup_v1() {
        for e in ALLOWED_EMPTY {
            assert!(
                empty.iter().any(|(q, _)| is_entry(q, e)),
                "ALLOWED_EMPTY lists {e:?}, which has data or names no dashboard query"
            );
        }
    }
    eprintln!(
        "{} every dashboard query has data ({} allowed empty)",
        stamp(t0),
        empty.len()
    );

    // The alerts, with the rules' own `for:` (plus slack for rate windows and evaluation).
    let slack = Duration::from_secs(180);
    wait_firing(
        &prom,
        &d,
        t0,
        "BerthContainerOOMKilled",
        OOMER,
        started_at(OOMER) + slack,
    );
    wait_firing(
        &prom,
        &d,
        t0,
        "BerthContainerMemoryNearLimit",
        MEMHOG,
        started_at(MEMHOG) + Duration::from_secs(5 * 60) + slack,
    );
    wait_firing(
        &prom,
        &d,
        t0,
        "BerthContainerCPUThrottled",
        SPINNER,
        started_at(SPINNER) + Duration::from_secs(15 * 60) + slack,
    );
    // All three at once, for the right containers only, and nothing for the healthy ones.
    check_healthy_quiet(&prom, &d, t0);
    let alerts = prom.alerts();
    for (alert, name) in [
        ("BerthContainerOOMKilled", OOMER),
        ("BerthContainerMemoryNearLimit", MEMHOG),
        ("BerthContainerCPUThrottled", SPINNER),
    ] {
        let firing: Vec<&Value> = alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == alert && a["state"] == "firing")
            .collect();
        assert!(
            !firing.is_empty() && firing.iter().all(|a| a["labels"]["name"] == name),
            "{alert}: firing for {firing:#?}, expected {name} only\nberth ps -a:\n{}\n{}",
            env.berth(&["ps", "-a"]).stdout,
            dump(&prom, &d)
        );
    }
    for a in &alerts {
        eprintln!(
            "{} alert {} {{name={}}} {}",
            stamp(t0),
            a["labels"]["alertname"],
            a["labels"]["name"],
            a["state"]
        );
    }
    eprintln!(
        "{} prometheus end-to-end on berthd: {:.0} s",
        stamp(t0),
        t0.elapsed().as_secs_f64()
    );
}
