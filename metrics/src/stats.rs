//! `berth stats`: docker stats' columns, computed as docker computes them (docker/cli
//! `cli/command/container/stats_helpers.go`, moby `daemon/stats_unix.go`), from the same
//! readers — so the CLI works without berthd.

use std::path::Path;

use crate::cgroup::{read_cgroup, CgroupPaths, CgroupStats, ReadOutcome};
use crate::parse::{self, Interface};
use crate::reader::FileReader;

/// One reading of a container, with the host CPU time taken at the same moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Container CPU time, ns (`cpuacct.usage` / `usage_usec`×1000).
    pub cpu_ns: u64,
    /// Host CPU time, ns: the first 7 fields of `/proc/stat`'s `cpu` line ×1e9/USER_HZ
    /// (moby's `getSystemCPUUsage`).
    pub system_ns: u64,
    pub online_cpus: u64,
    /// usage − inactive_file (docker ≥ 19.03, the same as the working set).
    pub mem_used: u64,
    /// The cgroup limit, or the host's memory when unlimited (what docker shows).
    pub mem_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: u64,
}

/// docker stats' row.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Row {
    /// 100 = one full CPU; `None` until two samples give both deltas > 0.
    pub cpu_percent: Option<f64>,
    pub mem_used: u64,
    pub mem_limit: u64,
    pub mem_percent: f64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: u64,
}

/// Reads one [`Sample`]; `None` when the cgroup is gone. `machine_memory` is
/// `MachineInfo::memory_bytes`; `scratch` and `ifaces` are reused buffers.
#[allow(clippy::too_many_arguments)]
pub fn sample(
    r: &mut FileReader,
    paths: &CgroupPaths,
    pid: Option<i32>,
    proc_root: &Path,
    clk_tck: u64,
    online_cpus: u64,
    machine_memory: u64,
    scratch: &mut CgroupStats,
    ifaces: &mut Vec<Interface>,
) -> Option<Sample> {
    if read_cgroup(r, paths, clk_tck, scratch) == ReadOutcome::Gone {
        return None;
    }
    let s = &*scratch;
    ifaces.clear();
    if let Some(pid) = pid {
        if let Some(b) = r.read_proc(proc_root, pid, "net/dev") {
            parse::net_dev(b, ifaces);
        }
    }
    let limit = match s.spec_memory_limit {
        Some(l) if l > 0 && (machine_memory == 0 || l < machine_memory) => l,
        _ => machine_memory,
    };
    Some(Sample {
        cpu_ns: s.cpu_usage_ns.unwrap_or(0),
        system_ns: system_cpu_ns(r, proc_root, clk_tck).unwrap_or(0),
        online_cpus,
        mem_used: s.memory_working_set.unwrap_or(0),
        mem_limit: limit,
        net_rx: ifaces.iter().map(|i| i.rx_bytes).sum(),
        net_tx: ifaces.iter().map(|i| i.tx_bytes).sum(),
        blk_read: s.io.iter().map(|d| d.read_bytes).sum(),
        blk_write: s.io.iter().map(|d| d.write_bytes).sum(),
        pids: s.pids_current.or(s.threads).unwrap_or(0),
    })
}

/// Host CPU time in ns from `/proc/stat` (user nice system idle iowait irq softirq).
pub fn system_cpu_ns(r: &mut FileReader, proc_root: &Path, clk_tck: u64) -> Option<u64> {
    let b = r.read(proc_root, "stat")?;
    let line = parse::lines(b).find(|l| l.starts_with(b"cpu "))?;
    let ticks: u64 = line[4..]
        .split(|&c| c == b' ')
        .filter(|f| !f.is_empty())
        .take(7)
        .filter_map(parse::u64_of)
        .sum();
    Some(ticks.saturating_mul(1_000_000_000) / clk_tck.max(1))
}

/// docker's arithmetic: CPU % = Δcontainer / Δsystem × online CPUs × 100 (only when both
/// deltas are positive), MEM % = used / limit × 100.
pub fn row(prev: Option<&Sample>, cur: &Sample) -> Row {
    let cpu_percent = prev.and_then(|p| {
        let dc = cur.cpu_ns.checked_sub(p.cpu_ns)?;
        let ds = cur.system_ns.checked_sub(p.system_ns)?;
        (dc > 0 && ds > 0).then(|| dc as f64 / ds as f64 * cur.online_cpus as f64 * 100.0)
    });
    Row {
        cpu_percent,
        mem_used: cur.mem_used,
        mem_limit: cur.mem_limit,
        mem_percent: if cur.mem_limit > 0 {
            cur.mem_used as f64 / cur.mem_limit as f64 * 100.0
        } else {
            0.0
        },
        net_rx: cur.net_rx,
        net_tx: cur.net_tx,
        blk_read: cur.blk_read,
        blk_write: cur.blk_write,
        pids: cur.pids,
    }
}

/// docker's `units.BytesSize` (binary, for MEM USAGE / LIMIT): `1.5MiB`.
pub fn binary_size(v: u64) -> String {
    human(
        v as f64,
        1024.0,
        &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"],
        4,
    )
}

/// docker's `units.HumanSizeWithPrecision(v, 3)` (decimal, for NET I/O and BLOCK I/O): `1.23kB`.
pub fn decimal_size(v: u64) -> String {
    human(
        v as f64,
        1000.0,
        &["B", "kB", "MB", "GB", "TB", "PB", "EB"],
        3,
    )
}

fn human(mut v: f64, base: f64, units: &[&str], precision: usize) -> String {
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    // Go's %.*g: `precision` significant digits, trailing zeros dropped.
    let digits = if v >= 1.0 {
        v.log10().floor() as usize + 1
    } else {
        1
    };
    let decimals = precision.saturating_sub(digits);
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_arithmetic() {
        let a = Sample {
            cpu_ns: 1_000_000_000,
            system_ns: 10_000_000_000,
            online_cpus: 2,
            mem_limit: 200,
            mem_used: 50,
            ..Sample::default()
        };
        let b = Sample {
            cpu_ns: 1_500_000_000,
            system_ns: 12_000_000_000,
            ..a
        };
        let r = row(Some(&a), &b);
        assert_eq!(r.cpu_percent, Some(50.0)); // 0.5 s of 2 s host time ×2 CPUs = half a CPU
        assert_eq!(r.mem_percent, 25.0);
        assert_eq!(row(None, &b).cpu_percent, None);
        assert_eq!(row(Some(&b), &b).cpu_percent, None);
    }

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(binary_size(1_572_864), "1.5MiB");
        assert_eq!(binary_size(8_241_393_664), "7.675GiB");
        assert_eq!(binary_size(0), "0B");
        assert_eq!(decimal_size(1234), "1.23kB");
        assert_eq!(decimal_size(0), "0B");
        assert_eq!(decimal_size(999), "999B");
        assert_eq!(decimal_size(12_345_678), "12.3MB");
    }

    #[test]
    fn sample_from_fixtures() {
        let tmp = tempfile::tempdir().unwrap();
        let proc_root = tmp.path().join("proc");
        crate::fixture::write_host(&proc_root, &tmp.path().join("sys")).unwrap();
        crate::fixture::write_net_dev(&proc_root, 7, 0).unwrap();
        let paths = crate::fixture::write_v2(&tmp.path().join("cg"), "/berth/x", 0).unwrap();
        let mut r = FileReader::new();
        let (mut scratch, mut ifaces) = (CgroupStats::default(), Vec::new());
        let s = sample(
            &mut r,
            &paths,
            Some(7),
            &proc_root,
            100,
            4,
            1 << 40,
            &mut scratch,
            &mut ifaces,
        )
        .unwrap();
        assert_eq!(s.cpu_ns, 1_500_000_000);
        assert_eq!(s.system_ns, 10 * 10_000_000); // "cpu  1 2 3 4" = 10 ticks
        assert_eq!(s.mem_used, 80 << 20);
        assert_eq!(s.mem_limit, 256 << 20);
        assert_eq!(
            (s.net_rx, s.net_tx, s.blk_read, s.blk_write, s.pids),
            (1000, 2000, 4196, 8392, 5)
        );
    }
}
