//! The readers on the real kernel: a cgroup of our own with a busy shell in it.
//! Root only; creates `/berth-metrics-test-<pid>` in the cpu, cpuacct, memory and pids
//! hierarchies (v1) or the unified one (v2), and removes it in `Drop`. Nothing else is touched.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use berth_metrics::{
    read_cgroup, CgroupDirs, CgroupPaths, CgroupStats, Collector, CollectorOptions, ContainerInfo,
    FileReader, ReadOutcome,
};

struct TestCgroup {
    dirs: Vec<PathBuf>,
    child: Option<Child>,
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in self.dirs.iter().rev() {
            // The killed shell may take a moment to leave the cgroup.
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn busy_shell_in_own_cgroup() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: skipped");
        return;
    }
    let rel = format!("/berth-metrics-test-{}", std::process::id());
    let mut paths = CgroupPaths::detect(&rel).expect("cgroup hierarchies");
    if let CgroupDirs::V1 { blkio, .. } = &mut paths.dirs {
        *blkio = None; // the brief's controllers only: cpu, cpuacct, memory, pids
    }
    let dirs: Vec<PathBuf> = match &paths.dirs {
        CgroupDirs::V1 {
            cpu,
            cpuacct,
            memory,
            pids,
            ..
        } => {
            let mut v: Vec<PathBuf> = [cpu, cpuacct, memory, pids]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            v.dedup(); // co-mounted cpu,cpuacct
            v
        }
        CgroupDirs::V2 { dir } => vec![dir.clone()],
    };
    let mut guard = TestCgroup {
        dirs: Vec::new(),
        child: None,
    };
    for d in &dirs {
        assert!(!d.exists(), "{} exists already", d.display());
        std::fs::create_dir(d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
        guard.dirs.push(d.clone());
    }
    // The shell waits until it has been moved, then execs the busy loop, so that the new
    // image's memory is charged inside the cgroup.
    let child = Command::new("sh")
        .args([
            "-c",
            "sleep 0.1; exec sh -c 'i=0; while :; do i=$((i+1)); done'",
        ])
        .spawn()
        .unwrap();
    let pid = child.id();
    guard.child = Some(child);
    for d in &dirs {
        std::fs::write(d.join("cgroup.procs"), pid.to_string()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(600));

    let mut r = FileReader::new();
    let mut s = CgroupStats::default();
    assert_eq!(
        read_cgroup(&mut r, &paths, berth_metrics::host::clk_tck(), &mut s),
        ReadOutcome::Read
    );
    eprintln!("{s:#?}");
    assert!(s.cpu_usage_ns.unwrap() > 0, "cpu usage");
    assert!(s.cpu_user_ns.unwrap() + s.cpu_system_ns.unwrap() > 0);
    assert!(s.memory_usage.unwrap() > 0, "memory usage");
    assert!(s.memory_working_set.is_some() && s.memory_rss.is_some());
    assert!(s.processes.unwrap() >= 1, "processes");
    assert!(s.threads.unwrap() >= 1, "threads");
    assert!(s.spec_memory_limit.is_some() && s.spec_cpu_shares.is_some());
    assert_eq!(r.errors, 0);

    let info = ContainerInfo {
        id: "f".repeat(64),
        name: "busy".into(),
        image: "none".into(),
        labels: vec![],
        cgroup: paths.clone(),
        pid: Some(pid as i32),
        start_time: 0.0,
        pids_limit: None,
        priority: None,
    };
    let mut c = Collector::new(CollectorOptions::default());
    let text = c.scrape(std::slice::from_ref(&info)).to_string();
    let line = text
        .lines()
        .find(|l| l.starts_with("container_cpu_usage_seconds_total{"))
        .expect("cpu usage series");
    assert!(line.contains(&format!("id=\"{rel}\"")), "{line}");
    let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(v > 0.0, "{line}");
    // Net counters of the (host) namespace the shell lives in: lo is never exported.
    assert!(!text.contains("interface=\"lo\""));

    // Stopped: the cgroup goes away and the reader says so.
    drop(guard);
    assert!(dirs.iter().all(|d| !d.exists()), "cleaned up");
    assert_eq!(read_cgroup(&mut r, &paths, 100, &mut s), ReadOutcome::Gone);
}
