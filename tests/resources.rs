//! Resource limits on the real kernel (run as root): every flag read back from the cgroup
//! files, enforcement (OOM kill, fork bomb, CPU quota, priority classes under contention),
//! `berth update`, bad input, and the same limits on a pure cgroup v2 host in a qemu VM
//! (scripts/vm/run-in-v2-vm.sh; skipped with BERTH_SKIP_VM_TESTS=1).
//!
//! The file read-backs and CPU measurements here are for the v1 host these tests run on
//! (`/sys/fs/cgroup/<controller>/…`); on a v2 host they are skipped and the VM test carries
//! the v2 checks. CPU figures are behaviour checks with wide ranges, not timing goals; the
//! tests that measure CPU run one at a time (a lock), so they do not compete with each other.

#[path = "common/container_env.rs"]
mod container_env;
#[path = "common/layout.rs"]
mod layout;
#[path = "common/v2vm.rs"]
mod v2vm;

use container_env::Env;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Serializes the tests that measure CPU time or load the CPUs.
static CPU: Mutex<()> = Mutex::new(());

fn cpu_lock() -> std::sync::MutexGuard<'static, ()> {
    CPU.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether this host runs cgroup v1 (the read-backs below use v1 paths).
fn v1_host() -> bool {
    let v1 = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists();
    if !v1 {
        eprintln!("not a cgroup v1 host: skipped here, the v2 VM test covers v2");
    }
    v1
}

fn id_of(env: &Env, name: &str) -> String {
    env.inspect(name)["Id"]
        .as_str()
        .expect("container id")
        .to_string()
}

fn cg_dir(env: &Env, controller: &str, id: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(env.cgroup_parent.trim_start_matches('/'))
        .join(id)
}

/// A file of the container's cgroup in a v1 hierarchy, trimmed.
fn cg(env: &Env, controller: &str, id: &str, file: &str) -> String {
    let path = cg_dir(env, controller, id).join(file);
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// A block device of this machine: its /dev path and MAJ:MIN.
fn block_device() -> Option<(String, String)> {
    let mut names: Vec<String> = fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().find_map(|n| {
        let dev = fs::read_to_string(format!("/sys/block/{n}/dev")).ok()?;
        let path = format!("/dev/{n}");
        Path::new(&path)
            .exists()
            .then(|| (path, dev.trim().to_string()))
    })
}

/// CPU time used by the container's cgroup so far (v1 `cpuacct.usage`), in ns.
fn cpu_ns(env: &Env, id: &str) -> u64 {
    cg(env, "cpuacct", id, "cpuacct.usage")
        .parse()
        .expect("cpuacct.usage")
}

fn host_config(env: &Env, name: &str) -> Value {
    env.inspect(name)["HostConfig"].clone()
}

#[test]
fn every_flag_lands_in_the_v1_files_and_in_inspect() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let (dev, majmin) = block_device().expect("a block device");
    let args = [
        "run",
        "-d",
        "--name",
        "all",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        "-m",
        "64m",
        "--memory-reservation",
        "32m",
        "--memory-swappiness",
        "10",
        "--oom-kill-disable",
        "--oom-score-adj",
        "300",
        "--pids-limit",
        "50",
        "--blkio-weight",
        "300",
    ];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let with_memsw = Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    if with_memsw {
        args.extend(["--memory-swap".into(), "128m".into()]);
    }
    for (flag, rate) in [
        ("--device-read-bps", "1mb"),
        ("--device-write-bps", "2mb"),
        ("--device-read-iops", "100"),
        ("--device-write-iops", "50"),
    ] {
        args.extend([flag.to_string(), format!("{dev}:{rate}")]);
    }
    args.extend(["busybox", "sleep", "300"].map(String::from));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    env.ok(&argv);
    let pid = env.wait_running("all");
    let id = id_of(&env, "all");

    assert_eq!(cg(&env, "cpu", &id, "cpu.cfs_quota_us"), "50000");
    assert_eq!(cg(&env, "cpu", &id, "cpu.cfs_period_us"), "100000");
    assert_eq!(cg(&env, "cpu", &id, "cpu.shares"), "512");
    assert_eq!(cg(&env, "cpuset", &id, "cpuset.cpus"), "0");
    assert_eq!(cg(&env, "cpuset", &id, "cpuset.mems"), "0");
    assert_eq!(cg(&env, "memory", &id, "memory.limit_in_bytes"), "67108864");
    assert_eq!(
        cg(&env, "memory", &id, "memory.soft_limit_in_bytes"),
        "33554432"
    );
    if with_memsw {
        assert_eq!(
            cg(&env, "memory", &id, "memory.memsw.limit_in_bytes"),
            "134217728"
        );
    }
    assert_eq!(cg(&env, "memory", &id, "memory.swappiness"), "10");
    assert!(cg(&env, "memory", &id, "memory.oom_control").contains("oom_kill_disable 1"));
    assert_eq!(cg(&env, "pids", &id, "pids.max"), "50");
    let blkio = cg_dir(&env, "blkio", &id);
    let weight_file = ["blkio.bfq.weight", "blkio.weight"]
        .into_iter()
        .find(|f| blkio.join(f).exists());
    if let Some(f) = weight_file {
        let w = cg(&env, "blkio", &id, f);
        assert!(w == "300" || w == "default 300", "{f}: {w}");
    }
    for (file, v) in [
        ("blkio.throttle.read_bps_device", "1048576"),
        ("blkio.throttle.write_bps_device", "2097152"),
        ("blkio.throttle.read_iops_device", "100"),
        ("blkio.throttle.write_iops_device", "50"),
    ] {
        assert_eq!(
            cg(&env, "blkio", &id, file),
            format!("{majmin} {v}"),
            "{file}"
        );
    }
    let adj = fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).expect("oom_score_adj");
    assert_eq!(adj.trim(), "300");

    let h = host_config(&env, "all");
    assert_eq!(h["NanoCpus"], 500_000_000);
    assert_eq!(h["CpuShares"], 512);
    assert_eq!(h["CpusetCpus"], "0");
    assert_eq!(h["Memory"], 64 << 20);
    assert_eq!(h["MemoryReservation"], 32 << 20);
    // --memory-swap 128m, or docker's default of twice --memory: the same figure.
    assert_eq!(h["MemorySwap"], 128 << 20);
    assert_eq!(h["MemorySwappiness"], 10);
    assert_eq!(h["OomKillDisable"], true);
    assert_eq!(h["OomScoreAdj"], 300);
    assert_eq!(h["PidsLimit"], 50);
    assert_eq!(h["BlkioWeight"], 300);
    assert_eq!(h["BlkioDeviceReadBps"][0]["Path"], dev.as_str());
    assert_eq!(h["BlkioDeviceReadBps"][0]["Rate"], 1 << 20);
    assert_eq!(h["BlkioDeviceWriteIOps"][0]["Rate"], 50);
    env.ok(&["rm", "-f", "all"]);
    env.assert_nothing_left();
}

#[test]
fn cfs_period_and_priority_classes_in_the_v1_files() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "low",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--priority",
        "low",
        "--pids-limit",
        "-1",
        "busybox",
        "sleep",
        "300",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "idle",
        "--priority",
        "idle",
        "busybox",
        "sleep",
        "300",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "high",
        "-m",
        "64m",
        "--priority",
        "high",
        "busybox",
        "sleep",
        "300",
    ]);
    let low_pid = env.wait_running("low");
    let idle_pid = env.wait_running("idle");
    env.wait_running("high");
    let (low, idle, high) = (id_of(&env, "low"), id_of(&env, "idle"), id_of(&env, "high"));

    assert_eq!(cg(&env, "cpu", &low, "cpu.cfs_period_us"), "50000");
    assert_eq!(cg(&env, "cpu", &low, "cpu.cfs_quota_us"), "25000");
    assert_eq!(cg(&env, "pids", &low, "pids.max"), "max");
    assert_eq!(cg(&env, "cpu", &low, "cpu.shares"), "256");
    assert_eq!(cg(&env, "memory", &low, "memory.soft_limit_in_bytes"), "0");
    // With cpu.idle set the kernel reports its idle weight (3) instead of the 2 written.
    let idle_shares: u64 = cg(&env, "cpu", &idle, "cpu.shares")
        .parse()
        .expect("shares");
    assert!(idle_shares <= 3, "idle cpu.shares {idle_shares}");
    if cg_dir(&env, "cpu", &idle).join("cpu.idle").exists() {
        assert_eq!(cg(&env, "cpu", &idle, "cpu.idle"), "1");
        assert_eq!(cg(&env, "cpu", &low, "cpu.idle"), "0");
    }
    assert_eq!(cg(&env, "cpu", &high, "cpu.shares"), "4096");
    assert_eq!(
        cg(&env, "memory", &high, "memory.soft_limit_in_bytes"),
        "67108864"
    );
    if cg_dir(&env, "blkio", &low)
        .join("blkio.bfq.weight")
        .exists()
    {
        assert_eq!(cg(&env, "blkio", &low, "blkio.bfq.weight"), "25");
        assert_eq!(cg(&env, "blkio", &high, "blkio.bfq.weight"), "1000");
    }
    let adj = |pid: i32| fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).expect("adj");
    assert_eq!(adj(low_pid).trim(), "500");
    assert_eq!(adj(idle_pid).trim(), "1000");
    assert_eq!(host_config(&env, "high")["Priority"], "high");
    env.ok(&["rm", "-f", "low", "idle", "high"]);
    env.assert_nothing_left();
}

#[test]
fn a_process_past_its_memory_limit_is_oom_killed_and_inspect_says_so() {
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "bystander",
        "-m",
        "32m",
        "busybox",
        "sleep",
        "300",
    ]);
    env.wait_running("bystander");
    let r = env.berth(&[
        "run",
        "--name",
        "hog",
        "-m",
        "32m",
        "busybox",
        "sh",
        "-c",
        "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(r.code, 137, "exit code: {}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("survived"));
    let st = &env.inspect("hog")["State"];
    assert_eq!(st["OOMKilled"], true, "{st}");
    assert_eq!(st["ExitCode"], 137);

    // The other container is untouched, and a container that merely exits is not OOMKilled.
    let by = &env.inspect("bystander")["State"];
    assert_eq!(by["Status"], "running");
    assert_eq!(by["OOMKilled"], false);
    let r = env.berth(&[
        "run", "--name", "fine", "-m", "32m", "busybox", "sh", "-c", "exit 3",
    ]);
    assert_eq!(r.code, 3);
    assert_eq!(env.inspect("fine")["State"]["OOMKilled"], false);
    env.ok(&["rm", "-f", "bystander", "hog", "fine"]);
    env.assert_nothing_left();
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit_and_stays_killable() {
    let _cpu = cpu_lock();
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "bomb",
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        // Every process forks two more and sleeps; a failed fork ends that shell.
        "sleep 300 & f() { f & f & sleep 300; }; (f) 2>/dev/null; wait",
    ]);
    env.wait_running("bomb");
    let id = id_of(&env, "bomb");
    std::thread::sleep(Duration::from_secs(2));
    let mut peak = 0;
    for _ in 0..20 {
        let procs = if v1_host() {
            fs::read_to_string(cg_dir(&env, "pids", &id).join("cgroup.procs"))
        } else {
            fs::read_to_string(
                Path::new("/sys/fs/cgroup")
                    .join(env.cgroup_parent.trim_start_matches('/'))
                    .join(&id)
                    .join("cgroup.procs"),
            )
        }
        .expect("cgroup.procs");
        peak = peak.max(procs.lines().count());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(peak <= 20, "{peak} processes in a container limited to 20");
    assert!(peak >= 5, "the bomb did not run ({peak} processes)");
    if v1_host() {
        let events = cg(&env, "pids", &id, "pids.events");
        let hits: u64 = events
            .strip_prefix("max ")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        assert!(hits > 0, "pids.events: {events}");
    }
    let started = Instant::now();
    env.ok(&["rm", "-f", "bomb"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    env.assert_nothing_left();
}

#[test]
fn half_a_cpu_is_half_a_cpu() {
    if !v1_host() {
        return;
    }
    let _cpu = cpu_lock();
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "spin",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    env.wait_running("spin");
    let id = id_of(&env, "spin");
    std::thread::sleep(Duration::from_millis(500));
    let (t0, u0) = (Instant::now(), cpu_ns(&env, &id));
    std::thread::sleep(Duration::from_secs(5));
    let (t1, u1) = (Instant::now(), cpu_ns(&env, &id));
    let cpus = (u1 - u0) as f64 / (t1 - t0).as_nanos() as f64;
    eprintln!("--cpus 0.5: {cpus:.3} CPUs over 5 s");
    assert!(
        (0.45..=0.55).contains(&cpus),
        "--cpus 0.5 used {cpus:.3} CPUs"
    );
    env.ok(&["rm", "-f", "spin"]);
}

#[test]
fn priority_high_beats_low_three_to_one_on_a_shared_cpu() {
    if !v1_host() {
        return;
    }
    let _cpu = cpu_lock();
    let env = Env::new();
    for (name, class) in [("hi", "high"), ("lo", "low")] {
        env.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--cpuset-cpus",
            "0",
            "--priority",
            class,
            "busybox",
            "sh",
            "-c",
            "while :; do :; done",
        ]);
        env.wait_running(name);
    }
    let (hi, lo) = (id_of(&env, "hi"), id_of(&env, "lo"));
    std::thread::sleep(Duration::from_millis(500));
    let (h0, l0) = (cpu_ns(&env, &hi), cpu_ns(&env, &lo));
    std::thread::sleep(Duration::from_secs(4));
    let (h1, l1) = (cpu_ns(&env, &hi), cpu_ns(&env, &lo));
    let (h, l) = ((h1 - h0) as f64, (l1 - l0).max(1) as f64);
    eprintln!(
        "priority high vs low on CPU 0: {:.2} s vs {:.2} s ({:.1}:1)",
        h / 1e9,
        l / 1e9,
        h / l
    );
    assert!(h / l >= 3.0, "high {h} ns vs low {l} ns: less than 3:1");
    assert!(h > 1e9, "the high container barely ran ({h} ns in 4 s)");
    env.ok(&["rm", "-f", "hi", "lo"]);
}

#[test]
fn update_changes_a_running_container_and_refuses_the_rest() {
    let env = Env::new();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "u",
        "-m",
        "32m",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "300",
    ]);
    env.ok(&["create", "--name", "stopped", "busybox", "true"]);
    let pid = env.wait_running("u");
    let id = id_of(&env, "u");

    let out = env.ok(&[
        "update",
        "--cpus",
        "1",
        "-m",
        "64m",
        "--pids-limit",
        "30",
        "--priority",
        "low",
        "u",
    ]);
    assert_eq!(out.trim(), "u");
    let h = host_config(&env, "u");
    assert_eq!(h["NanoCpus"], 1_000_000_000);
    assert_eq!(h["Memory"], 64 << 20);
    assert_eq!(h["PidsLimit"], 30);
    assert_eq!(h["Priority"], "low");
    let adj = fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).expect("adj");
    assert_eq!(adj.trim(), "500");
    if v1_host() {
        assert_eq!(cg(&env, "cpu", &id, "cpu.cfs_quota_us"), "100000");
        assert_eq!(cg(&env, "memory", &id, "memory.limit_in_bytes"), "67108864");
        assert_eq!(cg(&env, "pids", &id, "pids.max"), "30");
        assert_eq!(cg(&env, "cpu", &id, "cpu.shares"), "256");
    }

    // Stopped, unknown, or one of several: 125, a clear message, and nothing changed anywhere.
    let r = env.berth(&["update", "--pids-limit", "40", "stopped"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("not running"), "{}", r.stderr);
    let r = env.berth(&["update", "--pids-limit", "40", "u", "stopped"]);
    assert_eq!(r.code, 125);
    let r = env.berth(&["update", "--pids-limit", "40", "u", "nosuch"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("no such container"), "{}", r.stderr);
    let r = env.berth(&["update", "--pids-limit", "40", "-m", "1m", "u"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("--memory"), "{}", r.stderr);
    let r = env.berth(&["update", "u"]);
    assert_eq!(r.code, 125, "update without flags");
    assert_eq!(host_config(&env, "u")["PidsLimit"], 30);
    if v1_host() {
        assert_eq!(cg(&env, "pids", &id, "pids.max"), "30");
    }
    env.ok(&["rm", "-f", "u", "stopped"]);
    env.assert_nothing_left();
}

#[test]
fn bad_resource_flags_are_refused_with_nothing_created() {
    let env = Env::new();
    let ncpu = fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| {
            s.trim()
                .rsplit(['-', ','])
                .next()
                .and_then(|n| n.parse::<u32>().ok())
        })
        .map_or(64, |n| n + 1);
    let too_many = (ncpu + 1).to_string();
    let missing_cpu = (ncpu + 7).to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--cpus", "-1"], "--cpus"),
        (vec!["--cpus", &too_many], "--cpus"),
        (vec!["--cpus", "0.001"], "--cpus"),
        (vec!["--cpu-period", "100"], "--cpu-period"),
        (vec!["--cpu-quota", "10"], "--cpu-quota"),
        (vec!["--cpu-shares", "-2"], "--cpu-shares"),
        (vec!["-m", "4m"], "minimum"),
        (vec!["-m", "-5m"], "--memory"),
        (vec!["-m", "lots"], "--memory"),
        (vec!["--memory-reservation", "1m"], "--memory-reservation"),
        (vec!["-m", "32m", "--memory-swap", "16m"], "--memory-swap"),
        (vec!["--memory-swap", "64m"], "--memory-swap"),
        (
            vec!["-m", "32m", "--memory-reservation", "64m"],
            "reservation",
        ),
        (vec!["--memory-swappiness", "200"], "--memory-swappiness"),
        (vec!["--oom-score-adj", "2000"], "--oom-score-adj"),
        (vec!["--cpus", "1", "--cpu-quota", "50000"], "conflicting"),
        (vec!["--cpuset-cpus", "0-"], "--cpuset-cpus"),
        (vec!["--cpuset-cpus", "a"], "--cpuset-cpus"),
        (vec!["--cpuset-cpus", &missing_cpu], "do not exist"),
        (vec!["--cpuset-mems", "63"], "--cpuset-mems"),
        (vec!["--priority", "urgent"], "--priority"),
        (vec!["--blkio-weight", "5"], "--blkio-weight"),
        (
            vec!["--blkio-weight-device", "/dev/null:100"],
            "not a block device",
        ),
        (
            vec!["--device-read-bps", "/dev/null:1mb"],
            "not a block device",
        ),
        (
            vec!["--device-write-iops", "/nonexistent:10"],
            "--device-write-iops",
        ),
        (vec!["--device-read-bps", "sda"], "--device-read-bps"),
    ];
    for (flags, needle) in &cases {
        for cmd in ["create", "run"] {
            let mut args = vec![cmd, "--rm"];
            if cmd == "create" {
                args.pop();
            }
            args.extend(flags);
            args.extend(["busybox", "true"]);
            let r = env.berth(&args);
            assert_eq!(r.code, 125, "berth {args:?}: {}{}", r.stdout, r.stderr);
            assert!(
                r.stderr.contains(needle),
                "berth {args:?}: the message does not mention {needle:?}: {}",
                r.stderr
            );
        }
    }
    assert_eq!(env.ok(&["ps", "-a", "-q"]).trim(), "");
    env.assert_nothing_left();
}

#[test]
fn a_device_weight_needs_bfq_and_says_so() {
    if !v1_host() {
        return;
    }
    let env = Env::new();
    let Some((dev, majmin)) = block_device() else {
        return;
    };
    let sched =
        fs::read_to_string(format!("/sys/dev/block/{majmin}/queue/scheduler")).unwrap_or_default();
    let r = env.berth(&[
        "run",
        "--rm",
        "--blkio-weight-device",
        &format!("{dev}:200"),
        "busybox",
        "true",
    ]);
    if sched.contains("[bfq]") {
        assert_eq!(r.code, 0, "{}", r.stderr);
    } else {
        assert_eq!(r.code, 125, "{}", r.stderr);
        assert!(r.stderr.contains("BFQ"), "{}", r.stderr);
    }
    env.assert_nothing_left();
}

/// The v2 guest: limits read back from the v2 files, runc's shares→weight, swap-only
/// `memory.swap.max`, controllers enabled down the parent chain, OOM → 137 + OOMKilled,
/// update, priority, and a container with no limits.
const GUEST_SCRIPT: &str = r#"
export BERTH_ROOT=/var/lib/berth BERTH_RUN_ROOT=/run/berth BERTH_CGROUP_PARENT=/berth-res/v2
berth=/extra/berth
cg=/sys/fs/cgroup
fails=0
ok() { echo "OK $1"; }
fail() { echo "FAIL $1: $2" | tr '\n' ' '; echo; fails=$((fails + 1)); }
expect() { # expect CHECK FILE VALUE
    got=$(cat "$2" 2>&1)
    if [ "$got" = "$3" ]; then ok "$1"; else fail "$1" "$2: got '$got', want '$3'"; fi
}
# Start from a root that delegates nothing: berth enables what it needs.
for c in cpuset cpu io memory pids; do echo "-$c" > $cg/cgroup.subtree_control 2>/dev/null; done
echo "INFO root subtree_control: '$(cat $cg/cgroup.subtree_control)'"
$berth image load -i /extra/busybox-layout >/dev/null 2>&1 || fail image-load "cannot load"

out=$($berth run --rm busybox echo plain 2>&1); rc=$?
if [ $rc = 0 ] && [ "$out" = plain ]; then ok no-limits-no-controllers; else fail no-limits-no-controllers "rc=$rc $out"; fi

id=$($berth run -d --name lim --memory 32m --pids-limit 20 --cpus 0.5 --cpu-shares 512 --memory-reservation 16m busybox sleep 300 2>&1); rc=$?
dir=$cg/berth-res/v2/$id
if [ $rc = 0 ] && [ -d "$dir" ]; then ok run-limited; else fail run-limited "rc=$rc $id"; fi
expect memory.max $dir/memory.max 33554432
expect pids.max $dir/pids.max 20
expect cpu.max $dir/cpu.max "50000 100000"
expect cpu.weight $dir/cpu.weight 59
expect memory.low $dir/memory.low 16777216
if [ -e $dir/memory.swap.max ]; then expect memory.swap.max $dir/memory.swap.max 33554432; else echo "SKIP memory.swap.max: no swap accounting"; fi
chain_ok=1
for d in $cg $cg/berth-res; do
    for c in cpu memory pids; do
        case " $(cat $d/cgroup.subtree_control) " in *" $c "*) ;; *) chain_ok=0; echo "INFO $d lacks $c" ;; esac
    done
done
if [ $chain_ok = 1 ]; then ok subtree-control-chain; else fail subtree-control-chain "controllers not enabled down the chain"; fi
# Besides what limits need, berth enables memory, pids, cpu and io (best effort) so that metrics
# exist for every container; it never enables cpuset, which no limit here asked for.
case " $(cat $cg/berth-res/v2/cgroup.subtree_control) " in *" cpuset "*) fail only-needed "cpuset enabled without a cpuset limit" ;; *) ok only-needed ;; esac
$berth inspect lim | grep -q '"CpuShares": 512' && ok inspect-limits || fail inspect-limits "$($berth inspect lim | grep -E 'CpuShares|Memory')"

out=$($berth update --memory 64m --memory-swap 96m --cpu-shares 1024 --priority high lim 2>&1); rc=$?
if [ $rc = 0 ]; then ok update; else fail update "rc=$rc $out"; fi
expect update-memory.max $dir/memory.max 67108864
expect update-cpu.weight $dir/cpu.weight 100
if [ -e $dir/memory.swap.max ]; then expect update-swap-only $dir/memory.swap.max 33554432; fi
$berth rm -f lim >/dev/null 2>&1

out=$($berth run --name hog --memory 32m busybox sh -c 'x=$(head -c 64m /dev/zero | tr "\0" a); echo survived' 2>&1); rc=$?
if [ $rc = 137 ]; then ok oom-exit-137; else fail oom-exit-137 "rc=$rc $out"; fi
if $berth inspect hog | grep -q '"OOMKilled": true'; then ok oom-inspect; else fail oom-inspect "$($berth inspect hog | grep -E 'OOMKilled|ExitCode')"; fi
$berth rm -f hog >/dev/null 2>&1

id=$($berth run -d --name pri --priority idle busybox sleep 300 2>&1)
# With cpu.idle set the kernel reports cpu.weight 0 (6.1) where berth wrote 1.
w=$(cat $cg/berth-res/v2/$id/cpu.weight)
if [ -e $cg/berth-res/v2/$id/cpu.idle ]; then
    if [ "$(cat $cg/berth-res/v2/$id/cpu.idle)" = 1 ] && [ "$w" -le 1 ]; then ok priority-idle-weight; else fail priority-idle-weight "cpu.idle $(cat $cg/berth-res/v2/$id/cpu.idle), cpu.weight $w"; fi
else
    expect priority-idle-weight $cg/berth-res/v2/$id/cpu.weight 1
fi
$berth rm -f pri >/dev/null 2>&1

out=$($berth run --rm --memory-swappiness 10 --memory 32m busybox true 2>&1); rc=$?
case "$out" in *swappiness*) [ $rc = 0 ] && ok swappiness-warns || fail swappiness-warns "rc=$rc $out" ;; *) fail swappiness-warns "rc=$rc, no warning: $out" ;; esac
# A parent with processes of its own cannot delegate controllers (v2's no-internal-process
# rule): limits fail with a message naming the controller; no limits still run.
mkdir -p $cg/busy
sleep 300 &
sp=$!
echo $sp > $cg/busy/cgroup.procs || echo "INFO cannot move $sp into $cg/busy"
out=$(BERTH_CGROUP_PARENT=/busy/sub $berth run --rm --memory 32m busybox true 2>&1); rc=$?
echo "INFO undelegated: rc=$rc $out"
case "$out" in *memory*subtree_control*) [ $rc = 125 ] && ok undelegated-error || fail undelegated-error "rc=$rc $out" ;; *) fail undelegated-error "rc=$rc $out" ;; esac
out=$(BERTH_CGROUP_PARENT=/busy/sub $berth run --rm busybox echo fine 2>&1); rc=$?
if [ $rc = 0 ] && [ "$out" = fine ]; then ok undelegated-no-limits; else fail undelegated-no-limits "rc=$rc $out"; fi
kill $sp
exit $fails
"#;

const V2_CHECKS: &[&str] = &[
    "no-limits-no-controllers",
    "run-limited",
    "memory.max",
    "pids.max",
    "cpu.max",
    "cpu.weight",
    "memory.low",
    "subtree-control-chain",
    "only-needed",
    "inspect-limits",
    "update",
    "update-memory.max",
    "update-cpu.weight",
    "oom-exit-137",
    "oom-inspect",
    "priority-idle-weight",
    "swappiness-warns",
    "undelegated-error",
    "undelegated-no-limits",
];

#[test]
fn limits_on_a_pure_cgroup_v2_host() {
    let Some(run) = v2vm::run_guest("resv2", GUEST_SCRIPT) else {
        return;
    };
    let (stdout, transcript) = (&run.stdout, &run.transcript);
    let missing: Vec<&&str> = V2_CHECKS
        .iter()
        .filter(|c| !stdout.lines().any(|l| l == format!("OK {c}")))
        .collect();
    assert!(
        missing.is_empty(),
        "v2 checks not OK: {missing:?}\n{transcript}"
    );
    assert!(run.status.success(), "guest script failed\n{transcript}");
}
