//! Scrape benchmark: N containers (10, 100, 1000) as fixture cgroup trees on tmpfs, v1 and v2.
//! Prints p50/p99 of a full scrape over 50 scrapes, the same for simply reading the same files
//! once (open + read, a reused buffer: the floor any exporter pays), their ratio, the output
//! size and this process's RSS.
//!
//!     cargo run --release -p berth-metrics --example scrape_bench [-- --real]
//!
//! `--real` (root, cgroup v1 or v2 host) also scrapes N empty *real* cgroups created under
//! `/berth-metrics-bench-<pid>` (removed at the end), so the kernel's cost of generating
//! memory.stat & co. is in the figure.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_metrics::{
    fixture, CgroupDirs, CgroupPaths, Collector, CollectorOptions, ContainerInfo, FileReader,
};

const SCRAPES: usize = 50;

fn main() {
    let real = std::env::args().any(|a| a == "--real");
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("tmpdir");
    let (proc_root, sys_root) = (base.path().join("proc"), base.path().join("sys"));
    fixture::write_host(&proc_root, &sys_root).expect("host fixture");
    println!(
        "scrape_bench: {SCRAPES} scrapes each; fixture trees on {}",
        base.path().display()
    );
    println!("p50/p99: default collector (read threads, limits cached 10 s); 1-thr: one thread, limits read every");
    println!("scrape; read-once: open+read every file the scrape reads, one thread (the floor); ratios vs read-once p50");
    println!(
        "{:<5} {:>5} {:>8} {:>8} {:>10} {:>10} {:>8} {:>8} {:>7} {:>8} {:>8}",
        "kind",
        "N",
        "p50 ms",
        "p99 ms",
        "1-thr p50",
        "once p50",
        "once p99",
        "1-thr/x",
        "dflt/x",
        "out KiB",
        "RSS MiB"
    );
    for version in ["v1", "v2"] {
        for n in [10usize, 100, 1000] {
            let root = base.path().join(format!("{version}-{n}"));
            let containers: Vec<ContainerInfo> = (0..n)
                .map(|i| {
                    let rel = format!("/berth/{i:064x}");
                    let paths = if version == "v1" {
                        fixture::write_v1(&root, &rel, i as u64)
                    } else {
                        fixture::write_v2(&root, &rel, i as u64)
                    }
                    .expect("cgroup fixture");
                    let pid = 100_000 + i as i32;
                    fixture::write_net_dev(&proc_root, pid, i as u64).expect("net fixture");
                    info(i, paths, Some(pid))
                })
                .collect();
            run(version, &containers, &proc_root, &sys_root);
        }
    }
    if real {
        real_cgroups(&proc_root, &sys_root);
    }
    println!(
        "peak RSS (VmHWM): {:.1} MiB",
        status_kib("VmHWM") as f64 / 1024.0
    );
}

fn info(i: usize, cgroup: CgroupPaths, pid: Option<i32>) -> ContainerInfo {
    ContainerInfo {
        id: format!("{i:064x}"),
        name: format!("c{i}"),
        image: "registry.example/app:1.0".into(),
        labels: vec![
            ("com.example.team".into(), "blue".into()),
            ("tier".into(), "web".into()),
        ],
        cgroup,
        pid,
        start_time: 1.7e9 + i as f64,
        pids_limit: None,
        priority: Some("normal".into()),
    }
}

fn run(kind: &str, containers: &[ContainerInfo], proc_root: &Path, sys_root: &Path) {
    let opts = CollectorOptions {
        proc_root: proc_root.to_path_buf(),
        sys_root: sys_root.to_path_buf(),
        ..CollectorOptions::default()
    };
    // The same work as reading every file once: one thread, limits read on every scrape.
    let same_work = CollectorOptions {
        read_threads: 1,
        spec_max_age: Duration::ZERO,
        ..opts.clone()
    };
    let (scrape, out_len) = time_scrapes(opts, containers);
    let (scrape1, _) = time_scrapes(same_work, containers);
    let files = files_of(containers, proc_root);
    let mut r = FileReader::new();
    let once: Vec<Duration> = (0..SCRAPES)
        .map(|_| {
            let t = Instant::now();
            let mut bytes = 0;
            for f in &files {
                bytes += r.read_path(f).map_or(0, <[u8]>::len);
            }
            std::hint::black_box(bytes);
            t.elapsed()
        })
        .collect();
    let (p50, p99) = percentiles(scrape);
    let (s50, _) = percentiles(scrape1);
    let (o50, o99) = percentiles(once);
    println!(
        "{:<5} {:>5} {:>8.2} {:>8.2} {:>10.2} {:>10.2} {:>8.2} {:>8.2} {:>7.2} {:>8} {:>8.1}",
        kind,
        containers.len(),
        ms(p50),
        ms(p99),
        ms(s50),
        ms(o50),
        ms(o99),
        s50.as_secs_f64() / o50.as_secs_f64(),
        p50.as_secs_f64() / o50.as_secs_f64(),
        out_len / 1024,
        status_kib("VmRSS") as f64 / 1024.0
    );
}

fn time_scrapes(opts: CollectorOptions, containers: &[ContainerInfo]) -> (Vec<Duration>, usize) {
    let mut c = Collector::new(opts);
    let mut out_len = 0;
    let times = (0..SCRAPES + 2)
        .map(|_| {
            let t = Instant::now();
            out_len = c.scrape(containers).len();
            t.elapsed()
        })
        .skip(2) // warm-up: buffers grown, device names cached
        .collect();
    (times, out_len)
}

/// Every file in the containers' cgroup directories, and their net/dev.
fn files_of(containers: &[ContainerInfo], proc_root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for c in containers {
        let dirs: Vec<&PathBuf> = match &c.cgroup.dirs {
            CgroupDirs::V1 {
                cpu,
                cpuacct,
                memory,
                blkio,
                pids,
            } => {
                let mut v: Vec<&PathBuf> = [cpu, cpuacct, memory, blkio, pids]
                    .into_iter()
                    .flatten()
                    .collect();
                v.dedup();
                v
            }
            CgroupDirs::V2 { dir } => vec![dir],
        };
        for d in dirs {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                // what the scrape reads (and no more): stat files, not control knobs
                if READ.iter().any(|r| *r == name) {
                    files.push(e.path());
                }
            }
        }
        if let Some(pid) = c.pid {
            files.push(proc_root.join(pid.to_string()).join("net/dev"));
        }
    }
    files
}

const READ: &[&str] = &[
    "cgroup.procs",
    "cpu.stat",
    "cpu.max",
    "cpu.weight",
    "memory.current",
    "memory.peak",
    "memory.stat",
    "memory.swap.current",
    "memory.events",
    "memory.max",
    "memory.low",
    "memory.swap.max",
    "io.stat",
    "pids.current",
    "pids.max",
    "cpu.pressure",
    "memory.pressure",
    "io.pressure",
    "cpuacct.usage",
    "cpuacct.stat",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "cpu.shares",
    "memory.usage_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.failcnt",
    "memory.oom_control",
    "memory.limit_in_bytes",
    "memory.soft_limit_in_bytes",
    "memory.memsw.limit_in_bytes",
    "blkio.throttle.io_service_bytes_recursive",
    "blkio.throttle.io_serviced_recursive",
];

fn real_cgroups(proc_root: &Path, sys_root: &Path) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("--real: not root, skipped");
        return;
    }
    let parent = format!("/berth-metrics-bench-{}", std::process::id());
    struct Cleanup(Vec<PathBuf>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for d in self.0.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
    let mut made = Cleanup(Vec::new());
    let mut containers = Vec::new();
    for n in [10usize, 100, 1000] {
        while containers.len() < n {
            let i = containers.len();
            let rel = format!("{parent}/{i:064x}");
            let Ok(paths) = CgroupPaths::detect(&rel) else {
                println!("--real: no cgroup hierarchy");
                return;
            };
            let dirs: Vec<PathBuf> = match &paths.dirs {
                CgroupDirs::V1 {
                    cpu,
                    cpuacct,
                    memory,
                    blkio,
                    pids,
                } => {
                    let mut v: Vec<PathBuf> = [cpu, cpuacct, memory, blkio, pids]
                        .into_iter()
                        .flatten()
                        .cloned()
                        .collect();
                    v.dedup();
                    v
                }
                CgroupDirs::V2 { dir } => vec![dir.clone()],
            };
            for d in dirs {
                if let Some(p) = d.parent() {
                    if !p.exists() && std::fs::create_dir(p).is_ok() {
                        made.0.push(p.to_path_buf());
                    }
                }
                if let Err(e) = std::fs::create_dir(&d) {
                    println!("--real: create {}: {e}", d.display());
                    return;
                }
                made.0.push(d);
            }
            // No process inside: the network families are left out (pid None).
            containers.push(info(i, paths, None));
        }
        run("real", &containers, Path::new("/proc"), Path::new("/sys"));
    }
    let _ = (proc_root, sys_root);
}

fn percentiles(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    let p = |q: f64| d[((d.len() as f64 - 1.0) * q).round() as usize];
    (p(0.50), p(0.99))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| {
                    l.strip_prefix(key)?
                        .strip_prefix(':')
                        .map(|v| v.trim().trim_end_matches(" kB").parse().ok())
                })
                .flatten()
        })
        .unwrap_or(0)
}
