//! The exposition: families, HELP/TYPE, labels, escaping, no timestamps, vanished containers,
//! and `promtool check metrics` when promtool is installed.

#[path = "../../tests/common/cadvisor_families.rs"]
mod cadvisor_families;
#[path = "../../tests/common/promtool.rs"]
mod promtool;

use std::collections::HashSet;

use berth_metrics::{
    fixture, CgroupPaths, Collector, CollectorOptions, ContainerInfo, LabelPolicy,
};

struct Setup {
    _tmp: tempfile::TempDir,
    containers: Vec<ContainerInfo>,
    opts: CollectorOptions,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let (proc_root, sys_root) = (tmp.path().join("proc"), tmp.path().join("sys"));
    fixture::write_host(&proc_root, &sys_root).unwrap();
    fixture::write_net_dev(&proc_root, 4242, 0).unwrap();
    let v2 = fixture::write_v2(&tmp.path().join("v2"), "/berth/aaa", 0).unwrap();
    let v1 = fixture::write_v1(&tmp.path().join("v1"), "/berth/bbb", 0).unwrap();
    let gone = CgroupPaths::v2(&tmp.path().join("v2"), "/berth/gone");
    let info = |id: &str, name: &str, cgroup: CgroupPaths| ContainerInfo {
        id: id.repeat(64 / id.len()),
        name: name.into(),
        image: "busybox:latest".into(),
        labels: vec![],
        cgroup,
        pid: None,
        start_time: 1_700_000_100.5,
        pids_limit: None,
        priority: None,
    };
    let mut web = info("a", "web", v2);
    web.image = "nginx:1.27".into();
    web.labels = vec![
        ("com.example.team".into(), "blue \"x\" \\ y\nz".into()),
        (
            "com-example-team".into(),
            "duplicate after sanitising: dropped".into(),
        ),
        ("tier".into(), "front".into()),
    ];
    web.priority = Some("high".into());
    let mut db = info("b", "db", v1);
    db.pid = Some(4242);
    let stopped = info("c", "stopped", gone);
    let opts = CollectorOptions {
        proc_root,
        sys_root,
        container_labels: LabelPolicy::All,
        host_pressure: true,
        self_metrics: false,
        ..CollectorOptions::default()
    };
    Setup {
        _tmp: tmp,
        containers: vec![web, db, stopped],
        opts,
    }
}

const WEB: &str = r#"id="/berth/aaa",name="web",image="nginx:1.27",container_label_com_example_team="blue \"x\" \\ y\nz",container_label_tier="front""#;
const DB: &str = r#"id="/berth/bbb",name="db",image="busybox:latest""#;

/// Checks the text format's structure and returns the family names in order.
fn check_structure(text: &str) -> Vec<String> {
    let mut families = Vec::new();
    let mut seen = HashSet::new();
    let mut current: Option<String> = None;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(rest.len() > name.len() + 1, "empty help: {line}");
            let ty = lines.next().unwrap();
            assert!(
                ty == format!("# TYPE {name} counter") || ty == format!("# TYPE {name} gauge"),
                "{ty}"
            );
            assert!(seen.insert(name.clone()), "family {name} twice");
            if name.ends_with("_total") {
                assert!(
                    ty.ends_with("counter") || name.contains("_usage_total"),
                    "{name}: _total must be a counter"
                );
            }
            families.push(name.clone());
            current = Some(name);
            assert!(
                lines.peek().is_some_and(|l| !l.starts_with('#')),
                "family {} has no samples",
                families.last().unwrap()
            );
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {line}");
        let fam = current.as_deref().expect("sample before any HELP");
        // name[{labels}] value — and nothing else (no timestamp).
        let (series, value) = match line.rfind('}') {
            Some(close) => (&line[..=close], line[close + 1..].trim_start()),
            None => line.split_once(' ').unwrap(),
        };
        let name = series.split('{').next().unwrap();
        assert_eq!(name, fam, "sample outside its family: {line}");
        assert!(
            !value.contains(' '),
            "timestamp or junk after the value: {line}"
        );
        assert!(
            value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
            "{line}"
        );
    }
    families
}

#[test]
fn golden_lines() {
    let s = setup();
    let mut c = Collector::new(s.opts.clone());
    let text = c.scrape(&s.containers).to_string();
    let families = check_structure(&text);

    for want in [
        "# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.\n# TYPE container_cpu_usage_seconds_total counter\n".to_string(),
        "# TYPE container_memory_working_set_bytes gauge\n".to_string(),
        "# TYPE container_memory_failcnt counter\n".to_string(),
        "machine_cpu_cores 4\n".to_string(),
        "machine_memory_bytes 8241393664\n".to_string(),
        format!("container_cpu_usage_seconds_total{{{WEB},cpu=\"total\"}} 1.5\n"),
        format!("container_cpu_usage_seconds_total{{{DB},cpu=\"total\"}} 2.5\n"),
        format!("container_cpu_user_seconds_total{{{DB}}} 1.5\n"),
        format!("container_cpu_system_seconds_total{{{WEB}}} 0.5\n"),
        format!("container_cpu_cfs_periods_total{{{WEB}}} 100\n"),
        format!("container_cpu_cfs_throttled_periods_total{{{WEB}}} 7\n"),
        format!("container_cpu_cfs_throttled_seconds_total{{{WEB}}} 0.25\n"),
        format!("container_memory_usage_bytes{{{WEB}}} 104857600\n"),
        format!("container_memory_working_set_bytes{{{WEB}}} 83886080\n"),
        format!("container_memory_working_set_bytes{{{DB}}} 41943040\n"),
        format!("container_memory_max_usage_bytes{{{WEB}}} 209715200\n"),
        format!("container_memory_rss{{{DB}}} 31457280\n"),
        format!("container_memory_cache{{{WEB}}} 41943040\n"),
        format!("container_memory_swap{{{WEB}}} 1048576\n"),
        format!("container_memory_mapped_file{{{DB}}} 2097152\n"),
        format!("container_memory_failcnt{{{DB}}} 4\n"),
        format!("container_oom_events_total{{{WEB}}} 1\n"),
        format!("container_oom_events_total{{{DB}}} 2\n"),
        format!("container_spec_memory_limit_bytes{{{WEB}}} 268435456\n"),
        format!("container_spec_memory_limit_bytes{{{DB}}} 0\n"),
        format!("container_spec_memory_reservation_limit_bytes{{{DB}}} 33554432\n"),
        format!("container_spec_memory_swap_limit_bytes{{{WEB}}} 0\n"),
        format!("container_spec_cpu_quota{{{WEB}}} 50000\n"),
        format!("container_spec_cpu_period{{{DB}}} 100000\n"),
        format!("container_spec_cpu_shares{{{WEB}}} 2597\n"),
        format!("container_spec_cpu_shares{{{DB}}} 512\n"),
        format!("container_fs_reads_bytes_total{{{WEB},device=\"/dev/sda\"}} 4096\n"),
        format!("container_fs_writes_bytes_total{{{WEB},device=\"/dev/dm-0\"}} 200\n"),
        format!("container_fs_reads_total{{{DB},device=\"/dev/sdb\"}} 1\n"),
        format!("container_fs_writes_total{{{DB},device=\"/dev/sdb\"}} 2\n"),
        format!("container_network_receive_bytes_total{{{DB},interface=\"eth0\"}} 1000\n"),
        format!("container_network_receive_packets_total{{{DB},interface=\"eth0\"}} 10\n"),
        format!("container_network_receive_errors_total{{{DB},interface=\"eth0\"}} 1\n"),
        format!("container_network_receive_packets_dropped_total{{{DB},interface=\"eth0\"}} 2\n"),
        format!("container_network_transmit_bytes_total{{{DB},interface=\"eth0\"}} 2000\n"),
        format!("container_network_transmit_packets_total{{{DB},interface=\"eth0\"}} 20\n"),
        format!("container_network_transmit_errors_total{{{DB},interface=\"eth0\"}} 3\n"),
        format!("container_network_transmit_packets_dropped_total{{{DB},interface=\"eth0\"}} 4\n"),
        format!("container_processes{{{WEB}}} 3\n"),
        format!("container_threads{{{WEB}}} 5\n"),
        format!("container_threads_max{{{WEB}}} 100\n"),
        format!("container_threads_max{{{DB}}} 0\n"),
        format!("container_pressure_cpu_waiting_seconds_total{{{WEB}}} 0.123456\n"),
        format!("container_pressure_memory_stalled_seconds_total{{{WEB}}} 1\n"),
        format!("container_start_time_seconds{{{WEB}}} 1700000100.5\n"),
        format!("berth_container_info{{{WEB},container_id=\"{}\"}} 1\n", "a".repeat(64)),
        format!("berth_container_priority_info{{{WEB},priority=\"high\"}} 1\n"),
        format!("berth_container_pids_limit{{{WEB}}} 100\n"),
        format!("berth_container_oom_kills_total{{{DB}}} 2\n"),
        format!("berth_container_memory_events_total{{{WEB},event=\"oom_kill\"}} 1\n"),
        format!("berth_container_memory_events_total{{{WEB},event=\"high\"}} 3\n"),
        format!("berth_container_spec_cpu_weight{{{WEB}}} 100\n"),
        format!("berth_container_pressure_some_seconds_total{{{WEB},resource=\"memory\"}} 2\n"),
        format!("berth_container_pressure_full_seconds_total{{{WEB},resource=\"cpu\"}} 0.00789\n"),
        "berth_host_pressure_some_seconds_total{resource=\"io\"} 0.000042\n".to_string(),
        "berth_host_pressure_full_seconds_total{resource=\"cpu\"} 0.00789\n".to_string(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in\n{text}");
    }
    // cAdvisor's rules: no CFS counters and no quota without a quota; no v2-only families for v1.
    for absent in [
        format!("container_cpu_cfs_periods_total{{{DB}}}"),
        format!("container_spec_cpu_quota{{{DB}}}"),
        format!("container_memory_max_usage_bytes{{{WEB}}} 0"),
        format!("berth_container_pids_limit{{{DB}}}"),
        format!("container_pressure_cpu_waiting_seconds_total{{{DB}}}"),
        format!("berth_container_priority_info{{{DB}"),
        "interface=\"lo\"".to_string(),
        "name=\"stopped\"".to_string(),
        "duplicate after sanitising".to_string(),
    ] {
        assert!(!text.contains(&absent), "unexpected {absent:?}");
    }
    // Every family the issue names is there.
    for f in cadvisor_families::ISSUE5_FAMILIES {
        assert!(families.iter().any(|x| x == f), "family {f} missing");
    }

    // The next scrape is the same (buffers reused, nothing appended twice) but for last_seen.
    let strip = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with("container_last_seen"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let again = c.scrape(&s.containers).to_string();
    assert_eq!(strip(&again), strip(&text));

    // A container that stops is left out of the list: its series disappear.
    let fewer = c.scrape(&s.containers[1..]).to_string();
    assert!(!fewer.contains("name=\"web\""));
    assert!(fewer.contains("name=\"db\""));
    assert!(c.stats(0).is_some() && c.stats(1).is_none() && c.stats(5).is_none());
}

#[test]
fn label_policies() {
    let mut s = setup();
    s.opts.container_labels = LabelPolicy::InfoOnly;
    let text = Collector::new(s.opts.clone())
        .scrape(&s.containers)
        .to_string();
    check_structure(&text);
    let series_with_labels: Vec<_> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("container_label_"))
        .collect();
    assert_eq!(
        series_with_labels.len(),
        1,
        "only berth_container_info: {series_with_labels:?}"
    );
    assert!(series_with_labels[0].starts_with("berth_container_info{"));
    assert!(series_with_labels[0].contains("container_label_tier=\"front\""));

    s.opts.container_labels = LabelPolicy::Allow(vec!["tier".into()]);
    let text = Collector::new(s.opts.clone())
        .scrape(&s.containers)
        .to_string();
    assert!(text.contains(
        "container_memory_rss{id=\"/berth/aaa\",name=\"web\",image=\"nginx:1.27\",container_label_tier=\"front\"} 52428800\n"
    ));
}

#[test]
fn self_metrics_and_empty_list() {
    let s = setup();
    let mut opts = s.opts.clone();
    opts.self_metrics = true;
    opts.proc_root = "/proc".into();
    let mut c = Collector::new(opts);
    let text = c.scrape(&[]).to_string();
    let families = check_structure(&text);
    for f in [
        "machine_cpu_cores",
        "process_resident_memory_bytes",
        "process_open_fds",
        "berth_metrics_containers",
    ] {
        assert!(families.iter().any(|x| x == f), "{f} missing in\n{text}");
    }
    assert!(
        !text.contains("container_cpu"),
        "no containers, no container families"
    );
    let text = c.scrape(&s.containers).to_string();
    assert!(text.contains("berth_metrics_last_scrape_duration_seconds "));
    assert!(text.contains("berth_metrics_containers 3\n"));
}

#[test]
fn promtool_check_metrics() {
    let mut s = setup();
    s.opts.self_metrics = true;
    s.opts.proc_root = std::path::PathBuf::from("/proc");
    // host PSI and machine figures come from the real /proc now; the fixture net/dev is gone.
    let text = Collector::new(s.opts.clone())
        .scrape(&s.containers)
        .to_string();
    promtool::check_metrics(&text);
}

#[test]
fn spec_files_are_cached_for_spec_max_age() {
    let mut s = setup();
    let web_dir = s.containers[0].cgroup.dirs.clone();
    let berth_metrics::CgroupDirs::V2 { dir } = web_dir else {
        panic!("v2 fixture")
    };
    let line = format!("container_spec_memory_limit_bytes{{{WEB}}} ");
    let value = |t: &str| {
        t.lines()
            .find(|l| l.starts_with(&line))
            .map(|l| l[line.len()..].to_string())
    };

    s.opts.spec_max_age = std::time::Duration::from_secs(3600);
    let mut cached = Collector::new(s.opts.clone());
    s.opts.spec_max_age = std::time::Duration::ZERO;
    let mut fresh = Collector::new(s.opts.clone());
    assert_eq!(
        value(cached.scrape(&s.containers)).as_deref(),
        Some("268435456")
    );
    assert_eq!(
        value(fresh.scrape(&s.containers)).as_deref(),
        Some("268435456")
    );
    std::fs::write(dir.join("memory.max"), "536870912\n").unwrap();
    std::fs::write(dir.join("memory.current"), "1\n").unwrap();
    let t = cached.scrape(&s.containers).to_string();
    assert_eq!(value(&t).as_deref(), Some("268435456"), "limit cached");
    assert!(
        t.contains(&format!("container_memory_usage_bytes{{{WEB}}} 1\n")),
        "usage always read"
    );
    assert_eq!(
        value(fresh.scrape(&s.containers)).as_deref(),
        Some("536870912")
    );
    // Another container in the same slot reads its own spec.
    let swapped = vec![s.containers[1].clone(), s.containers[0].clone()];
    let t = cached.scrape(&swapped).to_string();
    assert_eq!(
        value(&t).as_deref(),
        Some("536870912"),
        "slot changed hands: spec re-read"
    );
    assert!(t.contains(&format!("container_spec_cpu_shares{{{DB}}} 512\n")));
}
