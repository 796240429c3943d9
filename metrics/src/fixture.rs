//! Fixture cgroup trees (v1 and v2) and procfs/sysfs pieces with known numbers, for tests
//! and the scrape benchmark. Files have the kernel's exact formats; `seed` shifts the counters
//! so that containers differ.

use std::fs;
use std::io;
use std::path::Path;

use crate::cgroup::CgroupPaths;

fn put(dir: &Path, name: &str, text: &str) -> io::Result<()> {
    fs::write(dir.join(name), text)
}

const PSI_CPU: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=123456\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7890\n";
const PSI_MEM: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=2000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n";
const PSI_IO: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=42\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";

/// A v2 cgroup directory `<mount>/<rel>`. With seed 0: usage 1.5 s (user 1 s, system 0.5 s),
/// quota 50000/100000, weight 100, memory.current 100 MiB, inactive_file 20 MiB, anon 50 MiB,
/// file 40 MiB, file_mapped 4 MiB, swap 1 MiB, peak 200 MiB, memory.max 256 MiB, memory.low
/// 64 MiB, swap.max max, events high 3 max 5 oom 2 oom_kill 1, io 8:0 and 253:0, pids 5/100,
/// 3 processes, PSI on all three resources.
pub fn write_v2(mount: &Path, rel: &str, seed: u64) -> io::Result<CgroupPaths> {
    let paths = CgroupPaths::v2(mount, rel);
    let crate::cgroup::CgroupDirs::V2 { dir } = &paths.dirs else {
        unreachable!()
    };
    fs::create_dir_all(dir)?;
    put(dir, "cgroup.procs", "1\n17\n23\n")?;
    put(dir, "cgroup.threads", "1\n17\n23\n24\n25\n")?;
    put(
        dir,
        "cpu.stat",
        &format!(
            "usage_usec {}\nuser_usec 1000000\nsystem_usec 500000\ncore_sched.force_idle_usec 0\n\
             nr_periods 100\nnr_throttled 7\nthrottled_usec 250000\nnr_bursts 0\nburst_usec 0\n",
            1_500_000 + seed
        ),
    )?;
    put(dir, "cpu.max", "50000 100000\n")?;
    put(dir, "cpu.weight", "100\n")?;
    put(dir, "memory.current", "104857600\n")?;
    put(dir, "memory.peak", "209715200\n")?;
    put(
        dir,
        "memory.stat",
        "anon 52428800\nfile 41943040\nkernel 3145728\nkernel_stack 65536\npagetables 131072\n\
         sec_pagetables 0\npercpu 1024\nsock 0\nvmalloc 0\nshmem 0\nzswap 0\nzswapped 0\n\
         file_mapped 4194304\nfile_dirty 4096\nfile_writeback 0\nswapcached 0\nanon_thp 0\n\
         file_thp 0\nshmem_thp 0\ninactive_anon 52428800\nactive_anon 0\ninactive_file 20971520\n\
         active_file 20971520\nunevictable 0\nslab_reclaimable 1048576\nslab_unreclaimable 524288\n\
         slab 1572864\nworkingset_refault_anon 0\nworkingset_refault_file 12\nworkingset_activate_anon 0\n\
         workingset_activate_file 3\nworkingset_restore_anon 0\nworkingset_restore_file 0\n\
         workingset_nodereclaim 0\npgscan 100\npgsteal 90\npgscan_kswapd 0\npgscan_direct 100\n\
         pgsteal_kswapd 0\npgsteal_direct 90\npgfault 12345\npgmajfault 6\npgrefill 0\n\
         pgactivate 10\npgdeactivate 0\npglazyfree 0\npglazyfreed 0\nthp_fault_alloc 0\n\
         thp_collapse_alloc 0\n",
    )?;
    put(dir, "memory.swap.current", "1048576\n")?;
    put(
        dir,
        "memory.events",
        "low 0\nhigh 3\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n",
    )?;
    put(dir, "memory.max", "268435456\n")?;
    put(dir, "memory.low", "67108864\n")?;
    put(dir, "memory.swap.max", "max\n")?;
    put(
        dir,
        "io.stat",
        &format!(
            "8:0 rbytes={} wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n\
             253:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n",
            4096 + seed
        ),
    )?;
    put(dir, "pids.current", "5\n")?;
    put(dir, "pids.max", "100\n")?;
    put(dir, "cpu.pressure", PSI_CPU)?;
    put(dir, "memory.pressure", PSI_MEM)?;
    put(dir, "io.pressure", PSI_IO)?;
    Ok(paths)
}

/// A v1 cgroup `<root>/{cpu,cpuacct,memory,blkio,pids}/<rel>`. With seed 0: cpuacct.usage
/// 2.5 s, user 150 ticks, system 50 ticks, no quota (`-1`), period 100000, shares 512,
/// periods 10 throttled 2 (0.3 s), usage 50 MiB, max 60 MiB, failcnt 4, total_inactive_file
/// 10 MiB, total_rss 30 MiB, total_cache 15 MiB, total_swap 0, total_mapped_file 2 MiB,
/// oom_kill 2, limit unlimited, soft limit 32 MiB, io on 8:16, pids 2/max, 2 processes.
pub fn write_v1(root: &Path, rel: &str, seed: u64) -> io::Result<CgroupPaths> {
    let paths = CgroupPaths::v1(root, rel);
    let crate::cgroup::CgroupDirs::V1 {
        cpu,
        cpuacct,
        memory,
        blkio,
        pids,
    } = &paths.dirs
    else {
        unreachable!()
    };
    let dirs = [cpu, cpuacct, memory, blkio, pids];
    for d in dirs.iter().copied().flatten() {
        fs::create_dir_all(d)?;
        put(d, "cgroup.procs", "1\n9\n")?;
        put(d, "tasks", "1\n9\n10\n")?;
    }
    let cpu = cpu.as_deref().unwrap_or(root);
    put(
        cpu,
        "cpu.stat",
        "nr_periods 10\nnr_throttled 2\nthrottled_time 300000000\nnr_bursts 0\nburst_time 0\n",
    )?;
    put(cpu, "cpu.cfs_quota_us", "-1\n")?;
    put(cpu, "cpu.cfs_period_us", "100000\n")?;
    put(cpu, "cpu.shares", "512\n")?;
    let acct = cpuacct.as_deref().unwrap_or(root);
    put(
        acct,
        "cpuacct.usage",
        &format!("{}\n", 2_500_000_000u64 + seed),
    )?;
    put(acct, "cpuacct.stat", "user 150\nsystem 50\n")?;
    let mem = memory.as_deref().unwrap_or(root);
    put(mem, "memory.usage_in_bytes", "52428800\n")?;
    put(mem, "memory.max_usage_in_bytes", "62914560\n")?;
    put(mem, "memory.failcnt", "4\n")?;
    put(
        mem,
        "memory.stat",
        "cache 15728640\nrss 31457280\nrss_huge 0\nshmem 0\nmapped_file 2097152\ndirty 0\nwriteback 0\n\
         swap 0\npgpgin 1000\npgpgout 500\npgfault 2000\npgmajfault 1\ninactive_anon 31457280\n\
         active_anon 0\ninactive_file 10485760\nactive_file 5242880\nunevictable 0\n\
         hierarchical_memory_limit 9223372036854771712\nhierarchical_memsw_limit 9223372036854771712\n\
         total_cache 15728640\ntotal_rss 31457280\ntotal_rss_huge 0\ntotal_shmem 0\n\
         total_mapped_file 2097152\ntotal_dirty 0\ntotal_writeback 0\ntotal_swap 0\n\
         total_pgpgin 1000\ntotal_pgpgout 500\ntotal_pgfault 2000\ntotal_pgmajfault 1\n\
         total_inactive_anon 31457280\ntotal_active_anon 0\ntotal_inactive_file 10485760\n\
         total_active_file 5242880\ntotal_unevictable 0\n",
    )?;
    put(
        mem,
        "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    )?;
    put(mem, "memory.limit_in_bytes", "9223372036854771712\n")?;
    put(mem, "memory.soft_limit_in_bytes", "33554432\n")?;
    let blk = blkio.as_deref().unwrap_or(root);
    put(
        blk,
        "blkio.throttle.io_service_bytes_recursive",
        &format!(
            "8:16 Read {}\n8:16 Write 2048\n8:16 Sync 0\n8:16 Async 3072\n8:16 Discard 0\n8:16 Total 3072\nTotal 3072\n",
            1024 + seed
        ),
    )?;
    put(
        blk,
        "blkio.throttle.io_serviced_recursive",
        "8:16 Read 1\n8:16 Write 2\n8:16 Sync 0\n8:16 Async 3\n8:16 Discard 0\n8:16 Total 3\nTotal 3\n",
    )?;
    let pid = pids.as_deref().unwrap_or(root);
    put(pid, "pids.current", "2\n")?;
    put(pid, "pids.max", "max\n")?;
    Ok(paths)
}

/// `<proc>/<pid>/net/dev` with `lo` and `eth0` (seed 0: eth0 rx 1000 B / 10 packets / 1 error
/// / 2 dropped, tx 2000 B / 20 / 3 / 4).
pub fn write_net_dev(proc_root: &Path, pid: i32, seed: u64) -> io::Result<()> {
    let dir = proc_root.join(pid.to_string()).join("net");
    fs::create_dir_all(&dir)?;
    put(
        &dir,
        "dev",
        &format!(
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
             eth0: {}      10    1    2    0     0          0         0     2000      20    3    4    0     0       0          0\n",
            1000 + seed
        ),
    )
}

/// The host files the collector reads: `<proc>/meminfo`, `<proc>/stat` (btime),
/// `<proc>/pressure/*`, `<sys>/devices/system/cpu/online` (4 CPUs), and uevents naming
/// 8:0 `sda`, 8:16 `sdb`, 253:0 `dm-0`.
pub fn write_host(proc_root: &Path, sys_root: &Path) -> io::Result<()> {
    fs::create_dir_all(proc_root.join("pressure"))?;
    put(
        proc_root,
        "meminfo",
        "MemTotal:        8048236 kB\nMemFree:         1000000 kB\n",
    )?;
    put(proc_root, "stat", "cpu  1 2 3 4\nbtime 1700000000\n")?;
    put(&proc_root.join("pressure"), "cpu", PSI_CPU)?;
    put(&proc_root.join("pressure"), "memory", PSI_MEM)?;
    put(&proc_root.join("pressure"), "io", PSI_IO)?;
    let cpu = sys_root.join("devices/system/cpu");
    fs::create_dir_all(&cpu)?;
    put(&cpu, "online", "0-3\n")?;
    for (dev, name) in [("8:0", "sda"), ("8:16", "sdb"), ("253:0", "dm-0")] {
        let d = sys_root.join("dev/block").join(dev);
        fs::create_dir_all(&d)?;
        put(
            &d,
            "uevent",
            &format!("MAJOR=8\nMINOR=0\nDEVNAME={name}\nDEVTYPE=disk\n"),
        )?;
    }
    Ok(())
}
