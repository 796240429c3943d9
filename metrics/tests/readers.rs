//! The cgroup readers against fixture trees with known numbers (v1 and v2).

use berth_metrics::{
    fixture, read_cgroup, CgroupStats, FileReader, IoDevice, Limit, MemoryEvents, Pressure,
    ReadOutcome,
};

#[test]
fn v2_reads_every_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = fixture::write_v2(tmp.path(), "/berth/abc", 0).unwrap();
    assert_eq!(paths.name, "/berth/abc");
    let mut r = FileReader::new();
    let mut s = CgroupStats::default();
    assert_eq!(read_cgroup(&mut r, &paths, 100, &mut s), ReadOutcome::Read);
    let mib = 1024 * 1024;
    let want = CgroupStats {
        cpu_usage_ns: Some(1_500_000_000),
        cpu_user_ns: Some(1_000_000_000),
        cpu_system_ns: Some(500_000_000),
        cfs_periods: Some(100),
        cfs_throttled_periods: Some(7),
        cfs_throttled_ns: Some(250_000_000),
        memory_usage: Some(100 * mib),
        memory_max_usage: Some(200 * mib),
        memory_working_set: Some(80 * mib),
        memory_rss: Some(50 * mib),
        memory_cache: Some(40 * mib),
        memory_swap: Some(mib),
        memory_mapped_file: Some(4 * mib),
        memory_inactive_file: Some(20 * mib),
        memory_failcnt: Some(5),
        oom_kills: Some(1),
        memory_events: Some(MemoryEvents {
            low: 0,
            high: 3,
            max: 5,
            oom: 2,
            oom_kill: 1,
            oom_group_kill: 0,
        }),
        spec_memory_limit: Some(256 * mib),
        spec_memory_reservation: Some(64 * mib),
        spec_memory_swap_limit: Some(0),
        spec_cpu_quota_us: Some(50_000),
        spec_cpu_period_us: Some(100_000),
        spec_cpu_shares: Some(2597),
        spec_cpu_weight: Some(100),
        io: vec![
            IoDevice {
                major: 8,
                minor: 0,
                read_bytes: 4096,
                write_bytes: 8192,
                reads: 1,
                writes: 2,
            },
            IoDevice {
                major: 253,
                minor: 0,
                read_bytes: 100,
                write_bytes: 200,
                reads: 3,
                writes: 4,
            },
        ],
        pids_current: Some(5),
        pids_max: Some(Limit::Value(100)),
        processes: Some(3),
        threads: Some(5),
        pressure: [
            Some(Pressure {
                some_us: Some(123_456),
                full_us: Some(7890),
            }),
            Some(Pressure {
                some_us: Some(2_000_000),
                full_us: Some(1_000_000),
            }),
            Some(Pressure {
                some_us: Some(42),
                full_us: Some(0),
            }),
        ],
    };
    assert_eq!(s, want);

    // Unlimited values, missing optional files, threads without the pids controller.
    let dir = tmp.path().join("berth/abc");
    std::fs::write(dir.join("cpu.max"), "max 100000\n").unwrap();
    std::fs::write(dir.join("memory.max"), "max\n").unwrap();
    for f in [
        "memory.peak",
        "pids.current",
        "pids.max",
        "cpu.pressure",
        "memory.swap.current",
    ] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    read_cgroup(&mut r, &paths, 100, &mut s);
    assert_eq!(s.spec_cpu_quota_us, None);
    assert_eq!(s.spec_cpu_period_us, Some(100_000));
    assert_eq!(s.spec_memory_limit, Some(0));
    assert_eq!(s.memory_max_usage, None);
    assert_eq!(s.memory_swap, None);
    assert_eq!(s.threads, Some(5), "counted from cgroup.threads");
    assert_eq!(s.pids_max, None);
    assert_eq!(s.pressure[0], None);
    assert_eq!(s.io.len(), 2, "io buffer reused, not appended to");
    assert_eq!(r.errors, 0);
}

#[test]
fn v1_reads_every_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = fixture::write_v1(tmp.path(), "/berth/xyz", 0).unwrap();
    let mut r = FileReader::new();
    let mut s = CgroupStats::default();
    assert_eq!(read_cgroup(&mut r, &paths, 100, &mut s), ReadOutcome::Read);
    let mib = 1024 * 1024;
    let want = CgroupStats {
        cpu_usage_ns: Some(2_500_000_000),
        cpu_user_ns: Some(1_500_000_000),
        cpu_system_ns: Some(500_000_000),
        cfs_periods: Some(10),
        cfs_throttled_periods: Some(2),
        cfs_throttled_ns: Some(300_000_000),
        memory_usage: Some(50 * mib),
        memory_max_usage: Some(60 * mib),
        memory_working_set: Some(40 * mib),
        memory_rss: Some(30 * mib),
        memory_cache: Some(15 * mib),
        memory_swap: Some(0),
        memory_mapped_file: Some(2 * mib),
        memory_inactive_file: Some(10 * mib),
        memory_failcnt: Some(4),
        oom_kills: Some(2),
        memory_events: None,
        spec_memory_limit: Some(0),
        spec_memory_reservation: Some(32 * mib),
        spec_memory_swap_limit: None,
        spec_cpu_quota_us: None,
        spec_cpu_period_us: Some(100_000),
        spec_cpu_shares: Some(512),
        spec_cpu_weight: None,
        io: vec![IoDevice {
            major: 8,
            minor: 16,
            read_bytes: 1024,
            write_bytes: 2048,
            reads: 1,
            writes: 2,
        }],
        pids_current: Some(2),
        pids_max: Some(Limit::Max),
        processes: Some(2),
        threads: Some(2),
        pressure: [None; 3],
    };
    assert_eq!(s, want);

    // USER_HZ other than 100; the non-recursive blkio fallback; threads from tasks.
    let blk = tmp.path().join("blkio/berth/xyz");
    std::fs::rename(
        blk.join("blkio.throttle.io_service_bytes_recursive"),
        blk.join("blkio.throttle.io_service_bytes"),
    )
    .unwrap();
    std::fs::remove_file(tmp.path().join("pids/berth/xyz/pids.current")).unwrap();
    std::fs::write(tmp.path().join("cpu/berth/xyz/cpu.cfs_quota_us"), "50000\n").unwrap();
    read_cgroup(&mut r, &paths, 250, &mut s);
    assert_eq!(s.cpu_user_ns, Some(600_000_000));
    assert_eq!(s.io[0].read_bytes, 1024);
    assert_eq!(s.threads, Some(3), "counted from tasks");
    assert_eq!(s.spec_cpu_quota_us, Some(50_000));
}

#[test]
fn a_vanished_cgroup_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let v2 = fixture::write_v2(tmp.path(), "/berth/a", 0).unwrap();
    let v1 = fixture::write_v1(&tmp.path().join("v1"), "/berth/b", 0).unwrap();
    std::fs::remove_dir_all(tmp.path().join("berth/a")).unwrap();
    std::fs::remove_dir_all(tmp.path().join("v1/cpu/berth/b")).unwrap();
    let mut r = FileReader::new();
    let mut s = CgroupStats::default();
    assert_eq!(read_cgroup(&mut r, &v2, 100, &mut s), ReadOutcome::Gone);
    assert_eq!(read_cgroup(&mut r, &v1, 100, &mut s), ReadOutcome::Gone);
    assert_eq!(r.errors, 0);
}
