//! berthd's Prometheus endpoint, watch loop and the `stats`/`events` commands on the real
//! kernel (root). Each berthd test starts its own berthd on the test's berth roots, with a
//! default network on a unique bridge `brt24<k>` / `10.231.24<k>.0/24`, nftables table
//! `berth_t24<k>`, no DNS, and `/metrics` on a free loopback port. Drop kills berthd by pid and
//! deletes the bridge and the table.

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
#[path = "common/promtool.rs"]
mod promtool;

use container_env::Env;
use metrics_berthd::MetricsBerthd;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

/// Sample lines of `family` (exact name) whose labels contain `needle`.
fn samples<'a>(text: &'a str, family: &str, needle: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
                && l.contains(needle)
        })
        .collect()
}

fn value(line: &str) -> f64 {
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn id_of(env: &Env, name: &str) -> String {
    env.inspect(name)["Id"].as_str().unwrap().to_string()
}

#[test]
fn metrics_endpoint_shows_running_containers_and_forgets_removed_ones() {
    need_root!();
    let env = Env::new();
    let d = MetricsBerthd::start(241, &env.root(), &env.run_root());
    for name in ["m1", "m2"] {
        env.ok(&[
            "run", "-d", "--name", name, "--memory", "64m", "--cpus", "0.5", "--label", "team=a",
            "busybox", "sleep", "300",
        ]);
    }
    let (id1, id2) = (id_of(&env, "m1"), id_of(&env, "m2"));
    let text = d.metrics();
    for id in [&id1, &id2] {
        let sel = format!("id=\"{}/{id}\"", env.cgroup_parent);
        let lim = samples(&text, "container_spec_memory_limit_bytes", &sel);
        assert_eq!(lim.len(), 1, "{text}");
        assert!(lim[0].contains("image=\"busybox\""), "{}", lim[0]);
        assert!(lim[0].contains("container_label_team=\"a\""), "{}", lim[0]);
        assert!(lim[0].contains("name=\"m"), "{}", lim[0]);
        assert_eq!(value(lim[0]), 67108864.0);
        let q = samples(&text, "container_spec_cpu_quota", &sel);
        assert_eq!(q.len(), 1, "{text}");
        assert_eq!(value(q[0]), 50000.0);
        assert_eq!(
            samples(&text, "container_cpu_usage_seconds_total", &sel).len(),
            1
        );
        assert!(!samples(&text, "container_memory_working_set_bytes", &sel).is_empty());
        assert!(value(samples(&text, "container_threads", &sel)[0]) >= 1.0);
        assert_eq!(
            samples(
                &text,
                "berth_container_info",
                &format!("container_id=\"{id}\"")
            )
            .len(),
            1
        );
    }
    assert_eq!(
        value(samples(&text, "berth_network_endpoints", "network=\"berth\"")[0]),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(samples(&text, "berth_network_addresses", "network=\"berth\"")[0]),
        253.0
    );
    assert_eq!(
        value(samples(&text, "berth_network_free_addresses", "network=\"berth\"")[0]),
        251.0
    );
    assert!(value(samples(&text, "berth_reconcile_runs_total", "")[0]) >= 1.0);
    assert_eq!(samples(&text, "berth_reconcile_errors_total", "").len(), 1);
    assert!(text.contains("machine_cpu_cores "));
    promtool::check_metrics(&text);

    env.ok(&["rm", "-f", "m2"]);
    let text = d.metrics();
    assert!(!text.contains(&id2), "removed container still exported");
    assert!(text.contains(&id1));
    assert_eq!(
        value(samples(&text, "berth_network_endpoints", "network=\"berth\"")[0]),
        1.0
    );
    assert!(
        samples(&text, "berth_agent_scrape_duration_seconds", "").len() == 1,
        "{text}"
    );
    let (status, body) = d.get("/healthz").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(d.get("/nope").unwrap().0, 404);
    env.ok(&["rm", "-f", "m1"]);
    assert!(!d.metrics().contains(&id1));
}

/// The memory limit file of a container, on v1 or v2.
fn memory_limit_file(env: &Env, id: &str) -> PathBuf {
    let rel = format!("{}/{id}", env.cgroup_parent.trim_start_matches('/'));
    let v1 = Path::new("/sys/fs/cgroup/memory").join(&rel);
    if v1.is_dir() {
        v1.join("memory.limit_in_bytes")
    } else {
        Path::new("/sys/fs/cgroup").join(rel).join("memory.max")
    }
}

#[test]
fn berthd_restores_a_limit_changed_behind_its_back_and_reports_oom_kills() {
    need_root!();
    let env = Env::new();
    let d = MetricsBerthd::start(242, &env.root(), &env.run_root());
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "keep",
        "--memory",
        "64m",
        "busybox",
        "sleep",
        "300",
    ]);
    let id = id_of(&env, "keep");
    let file = memory_limit_file(&env, &id);
    let read = || std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(read(), "67108864");
    std::fs::write(&file, "134217728").unwrap();
    assert_eq!(read(), "134217728");
    let deadline = Instant::now() + Duration::from_secs(10);
    while read() != "67108864" {
        assert!(Instant::now() < deadline, "not restored: {}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = d.metrics();
    assert!(value(samples(&text, "berth_limit_restores_total", "")[0]) >= 1.0);
    // `berth update` is not undone.
    env.ok(&["update", "--memory", "96m", "keep"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(read(), "100663296", "{}", d.log());

    // An OOM kill in a container that keeps running: berthd sees it while it runs.
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "hog",
        "-m",
        "32m",
        "busybox",
        "sh",
        "-c",
        "(x=$(head -c 64m /dev/zero | tr '\\0' a)); sleep 30",
    ]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = d.metrics();
        if value(samples(&text, "berth_oom_events_total", "")[0]) >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no OOM seen: {}", d.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let ev = env.ok(&["events", "--format", "json", "--until", "0s"]);
    let hog = id_of(&env, "hog");
    assert!(
        ev.lines()
            .any(|l| l.contains("\"Action\":\"oom\"") && l.contains(&hog)),
        "{ev}"
    );
    env.ok(&["rm", "-f", "keep", "hog"]);
}

#[test]
fn stats_no_stream_json_shows_limit_and_pids() {
    need_root!();
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "st",
        "--memory",
        "64m",
        "busybox",
        "sleep",
        "300",
    ]);
    let out = env.ok(&["stats", "--no-stream", "--format", "json"]);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{out}");
    let r = &rows[0];
    assert_eq!(r["Name"], "st");
    assert!(
        r["MemUsage"].as_str().unwrap().ends_with("/ 64MiB"),
        "{out}"
    );
    assert!(r["PIDs"].as_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert!(r["CPUPerc"].as_str().unwrap().ends_with('%'), "{out}");
    // The table, and by name.
    let table = env.ok(&["stats", "--no-stream", "st"]);
    assert!(table.starts_with("CONTAINER ID"), "{table}");
    assert!(table.contains("64MiB"), "{table}");
    env.ok(&["rm", "-f", "st"]);
}

#[test]
fn events_show_lifecycle_exit_codes_and_oom() {
    need_root!();
    let env = Env::new();
    let r = env.berth(&[
        "run",
        "--network",
        "none",
        "--name",
        "three",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(r.code, 3);
    let r = env.berth(&[
        "run",
        "--network",
        "none",
        "--name",
        "hog",
        "-m",
        "32m",
        "busybox",
        "sh",
        "-c",
        "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(r.code, 137, "{}", r.stderr);
    let (three, hog) = (id_of(&env, "three"), id_of(&env, "hog"));
    env.ok(&["rm", "three"]);
    let out = env.ok(&[
        "events", "--format", "json", "--since", "1h", "--until", "0s",
    ]);
    let evs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |id: &str, action: &str, code: Option<&str>| {
        evs.iter().any(|e| {
            e["id"] == id
                && e["Action"] == action
                && code.is_none_or(|c| e["Actor"]["Attributes"]["exitCode"] == c)
        })
    };
    assert!(has(&three, "create", None), "{out}");
    assert!(has(&three, "start", None), "{out}");
    assert!(has(&three, "die", Some("3")), "{out}");
    assert!(has(&three, "destroy", None), "{out}");
    assert!(has(&hog, "oom", None), "{out}");
    assert!(has(&hog, "die", Some("137")), "{out}");
    // oom comes before die
    let pos = |a: &str| {
        evs.iter()
            .position(|e| e["id"] == hog.as_str() && e["Action"] == a)
    };
    assert!(pos("oom") < pos("die"));
    // plain format, and `--since` in the future shows nothing
    let plain = env.ok(&["events", "--until", "0s"]);
    assert!(
        plain.contains(&format!("container die {three} (exitCode=3")),
        "{plain}"
    );
    let none = env.ok(&["events", "--since", "4000000000", "--until", "0s"]);
    assert_eq!(none, "");
    // follows: a new event shows up in a running `berth events`, and nothing from before
    let mut follow = env
        .command(&["events", "--format", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    env.ok(&["rm", "hog"]);
    let mut stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let hog2 = hog.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        let mut all = String::new();
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.push_str(&String::from_utf8_lossy(&buf[..n]));
            if all
                .lines()
                .any(|l| l.contains("\"Action\":\"destroy\"") && l.contains(&hog2))
            {
                let _ = tx.send(all.clone());
                break;
            }
        }
    });
    let got = rx.recv_timeout(Duration::from_secs(10));
    let _ = follow.kill();
    let _ = follow.wait();
    let got = got.expect("berth events did not follow");
    // Without --since or --until, as docker: only what happened after it started.
    assert!(
        !got.contains(&three),
        "history of an earlier container: {got}"
    );
}
