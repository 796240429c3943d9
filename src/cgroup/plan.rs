//! What [`Resources`] means in cgroup files, on v1 and on v2: a list of [`Write`]s, computed
//! without touching anything (so it is unit-tested), then checked and written by
//! [`super::Cgroup::apply`].
//!
//! The v2 column is where cgroups-rs goes wrong (see docs/design.md): berth converts shares
//! to `cpu.weight` with runc's current mapping, writes swap-only to `memory.swap.max`
//! (docker's `--memory-swap` is memory + swap), puts the reservation in `memory.low`, and
//! picks `io.bfq.weight` (BFQ's 1–1000 scale, docker's number as is) or `io.weight` (iocost,
//! runc's blkio conversion) by which file the kernel offers.

use super::limits::Resources;
use super::units::{blkio_to_io_weight, shares_to_weight};
use super::Version;

/// A controller, by its v1 hierarchy and v2 names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Controller {
    Cpu,
    Cpuset,
    Memory,
    Pids,
    Io,
}

impl Controller {
    pub fn name(self, version: Version) -> &'static str {
        match (self, version) {
            (Controller::Cpu, _) => "cpu",
            (Controller::Cpuset, _) => "cpuset",
            (Controller::Memory, _) => "memory",
            (Controller::Pids, _) => "pids",
            (Controller::Io, Version::V1) => "blkio",
            (Controller::Io, Version::V2) => "io",
        }
    }
}

/// What to do when no file of a write exists (or its controller is not there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfMissing {
    /// Fail, with this advice.
    Error(&'static str),
    /// Leave it out silently (best-effort parts of a priority class, docker's derived swap).
    Skip,
    /// Leave it out with this warning (docker's behaviour for flags v2 has no file for).
    Warn(&'static str),
}

impl IfMissing {
    /// [`IfMissing::Error`] with `advice` when the user asked for the setting, else
    /// [`IfMissing::Skip`].
    fn error_or_skip(required: bool, advice: &'static str) -> IfMissing {
        if required {
            IfMissing::Error(advice)
        } else {
            IfMissing::Skip
        }
    }
}

/// One setting: the first of `choices` whose file exists in the controller's directory is
/// written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub controller: Controller,
    pub choices: Vec<(&'static str, String)>,
    /// The flag that asked for it, for messages.
    pub flag: &'static str,
    pub if_missing: IfMissing,
}

fn w(
    controller: Controller,
    flag: &'static str,
    file: &'static str,
    value: impl ToString,
) -> Write {
    Write {
        controller,
        choices: vec![(file, value.to_string())],
        flag,
        if_missing: IfMissing::Error(""),
    }
}

const NO_SWAP_ACCOUNTING: &str =
    "the kernel does not account swap (boot it with swapaccount=1, or CONFIG_MEMCG_SWAP) or leave out --memory-swap";
const NO_BLKIO_WEIGHT: &str =
    "the kernel has no proportional IO scheduler for cgroups (BFQ: `modprobe bfq`; or iocost on v2); leave out the weight";

/// The writes for `r` on `version`, in the order they must happen.
pub fn plan(r: &Resources, version: Version) -> Vec<Write> {
    match version {
        Version::V1 => plan_v1(r),
        Version::V2 => plan_v2(r),
    }
}

fn shares_flag(r: &Resources) -> &'static str {
    if r.cpu_shares.is_some() {
        "--cpu-shares"
    } else {
        "--priority"
    }
}

fn cpu_common(r: &Resources, out: &mut Vec<Write>, version: Version) {
    use Controller::*;
    if let Some(s) = r.effective_cpu_shares() {
        out.push(match version {
            Version::V1 => w(Cpu, shares_flag(r), "cpu.shares", s),
            Version::V2 => w(Cpu, shares_flag(r), "cpu.weight", shares_to_weight(s)),
        });
    }
    if let Some(p) = r.priority {
        let mut idle = w(
            Cpu,
            "--priority",
            "cpu.idle",
            u8::from(p.settings().cpu_idle),
        );
        idle.if_missing = IfMissing::Skip; // Linux 5.15+
        out.push(idle);
    }
    if let Some(c) = &r.cpuset_cpus {
        out.push(w(Cpuset, "--cpuset-cpus", "cpuset.cpus", c));
    }
    if let Some(m) = &r.cpuset_mems {
        out.push(w(Cpuset, "--cpuset-mems", "cpuset.mems", m));
    }
}

fn pids(r: &Resources, out: &mut Vec<Write>) {
    if let Some(p) = r.pids_limit {
        let v = if p < 0 {
            "max".to_string()
        } else {
            p.to_string()
        };
        out.push(w(Controller::Pids, "--pids-limit", "pids.max", v));
    }
}

/// The IO weight: (flag, value on docker's/BFQ's 10–1000 scale, value for `io.weight`, strict).
fn io_weight(r: &Resources) -> Option<(&'static str, u16, u64, bool)> {
    if let Some(wt) = r.blkio_weight {
        return Some(("--blkio-weight", wt, blkio_to_io_weight(wt), true));
    }
    let wt = r.priority?.settings().io_weight;
    Some(("--priority", wt, u64::from(wt), false))
}

fn plan_v1(r: &Resources) -> Vec<Write> {
    use Controller::*;
    let mut out = Vec::new();
    if let Some((quota, period)) = r.cfs() {
        let flag = if r.nano_cpus.is_some() {
            "--cpus"
        } else {
            "--cpu-quota"
        };
        out.push(w(Cpu, flag, "cpu.cfs_period_us", period));
        out.push(w(Cpu, flag, "cpu.cfs_quota_us", quota));
    }
    cpu_common(r, &mut out, Version::V1);
    if let Some(m) = r.memory {
        out.push(w(Memory, "--memory", "memory.limit_in_bytes", m));
    }
    if let Some((s, explicit)) = r.effective_memory_swap() {
        let mut sw = w(Memory, "--memory-swap", "memory.memsw.limit_in_bytes", s);
        sw.if_missing = IfMissing::error_or_skip(explicit, NO_SWAP_ACCOUNTING);
        out.push(sw);
    }
    let soft = match (r.memory_reservation, r.priority) {
        (Some(b), _) => Some(("--memory-reservation", b)),
        (None, Some(p)) if p.settings().reclaim_first => Some(("--priority", 0)),
        (None, Some(_)) => r.effective_memory_low().map(|b| ("--priority", b)),
        (None, None) => None,
    };
    if let Some((flag, b)) = soft {
        out.push(w(Memory, flag, "memory.soft_limit_in_bytes", b));
    }
    if let Some(s) = r.memory_swappiness {
        out.push(w(Memory, "--memory-swappiness", "memory.swappiness", s));
    }
    if let Some(d) = r.oom_kill_disable {
        out.push(w(
            Memory,
            "--oom-kill-disable",
            "memory.oom_control",
            u8::from(d),
        ));
    }
    pids(r, &mut out);
    if let Some((flag, wt, _, strict)) = io_weight(r) {
        out.push(Write {
            controller: Io,
            choices: vec![
                ("blkio.bfq.weight", wt.to_string()),
                ("blkio.weight", wt.to_string()),
            ],
            flag,
            if_missing: IfMissing::error_or_skip(strict, NO_BLKIO_WEIGHT),
        });
    }
    for d in &r.blkio_weight_device {
        let v = format!("{}:{} {}", d.major, d.minor, d.weight);
        out.push(Write {
            controller: Io,
            choices: vec![
                ("blkio.bfq.weight_device", v.clone()),
                ("blkio.weight_device", v),
            ],
            flag: "--blkio-weight-device",
            if_missing: IfMissing::Error(NO_BLKIO_WEIGHT),
        });
    }
    let throttles = [
        (
            "--device-read-bps",
            "blkio.throttle.read_bps_device",
            &r.blkio_device_read_bps,
        ),
        (
            "--device-write-bps",
            "blkio.throttle.write_bps_device",
            &r.blkio_device_write_bps,
        ),
        (
            "--device-read-iops",
            "blkio.throttle.read_iops_device",
            &r.blkio_device_read_iops,
        ),
        (
            "--device-write-iops",
            "blkio.throttle.write_iops_device",
            &r.blkio_device_write_iops,
        ),
    ];
    for (flag, file, devs) in throttles {
        for d in devs {
            out.push(w(
                Io,
                flag,
                file,
                format!("{}:{} {}", d.major, d.minor, d.rate),
            ));
        }
    }
    out
}

fn plan_v2(r: &Resources) -> Vec<Write> {
    use Controller::*;
    let mut out = Vec::new();
    if let Some((quota, period)) = r.cfs() {
        let flag = if r.nano_cpus.is_some() {
            "--cpus"
        } else {
            "--cpu-quota"
        };
        let q = if quota < 0 {
            "max".to_string()
        } else {
            quota.to_string()
        };
        out.push(w(Cpu, flag, "cpu.max", format!("{q} {period}")));
    }
    cpu_common(r, &mut out, Version::V2);
    if let Some(m) = r.memory {
        out.push(w(Memory, "--memory", "memory.max", m));
    }
    if let Some((s, explicit)) = r.effective_memory_swap() {
        // docker's value is memory + swap; memory.swap.max is swap alone.
        let v = match (s, r.memory) {
            (-1, _) => "max".to_string(),
            (s, Some(m)) => (s - m).max(0).to_string(),
            (s, None) => s.to_string(),
        };
        let mut sw = w(Memory, "--memory-swap", "memory.swap.max", v);
        sw.if_missing = IfMissing::error_or_skip(explicit, NO_SWAP_ACCOUNTING);
        out.push(sw);
    }
    if let Some(low) = r.effective_memory_low() {
        let flag = if r.memory_reservation.is_some() {
            "--memory-reservation"
        } else {
            "--priority"
        };
        out.push(w(Memory, flag, "memory.low", low.max(0)));
    }
    if r.memory_swappiness.is_some() {
        out.push(Write {
            controller: Memory,
            choices: Vec::new(),
            flag: "--memory-swappiness",
            if_missing: IfMissing::Warn(
                "cgroup v2 has no per-cgroup swappiness: --memory-swappiness is ignored",
            ),
        });
    }
    if r.oom_kill_disable == Some(true) {
        out.push(Write {
            controller: Memory,
            choices: Vec::new(),
            flag: "--oom-kill-disable",
            if_missing: IfMissing::Warn(
                "cgroup v2 cannot disable the OOM killer: --oom-kill-disable is ignored",
            ),
        });
    }
    pids(r, &mut out);
    if let Some((flag, wt, io, strict)) = io_weight(r) {
        out.push(Write {
            controller: Io,
            choices: vec![
                ("io.bfq.weight", wt.to_string()),
                ("io.weight", format!("default {io}")),
            ],
            flag,
            if_missing: IfMissing::error_or_skip(strict, NO_BLKIO_WEIGHT),
        });
    }
    for d in &r.blkio_weight_device {
        let dev = format!("{}:{}", d.major, d.minor);
        out.push(Write {
            controller: Io,
            choices: vec![
                ("io.bfq.weight", format!("{dev} {}", d.weight)),
                (
                    "io.weight",
                    format!("{dev} {}", blkio_to_io_weight(d.weight)),
                ),
            ],
            flag: "--blkio-weight-device",
            if_missing: IfMissing::Error(NO_BLKIO_WEIGHT),
        });
    }
    // io.max: one line per device with every key asked for it.
    let mut devices: Vec<(u64, u64)> = Vec::new();
    let lists = [
        ("rbps", &r.blkio_device_read_bps),
        ("wbps", &r.blkio_device_write_bps),
        ("riops", &r.blkio_device_read_iops),
        ("wiops", &r.blkio_device_write_iops),
    ];
    for (_, list) in lists {
        for d in list.iter() {
            if !devices.contains(&(d.major, d.minor)) {
                devices.push((d.major, d.minor));
            }
        }
    }
    for (major, minor) in devices {
        let mut line = format!("{major}:{minor}");
        for (key, list) in lists {
            if let Some(d) = list.iter().find(|d| (d.major, d.minor) == (major, minor)) {
                let v = if d.rate == 0 {
                    "max".to_string()
                } else {
                    d.rate.to_string()
                };
                line.push_str(&format!(" {key}={v}"));
            }
        }
        out.push(w(
            Io,
            "--device-read-bps/--device-write-bps/--device-read-iops/--device-write-iops",
            "io.max",
            line,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::priority::Priority;

    fn files(ws: &[Write]) -> Vec<(&'static str, String)> {
        ws.iter().map(|w| w.choices[0].clone()).collect()
    }

    #[test]
    fn v2_is_right_where_cgroups_rs_is_not() {
        let r = Resources {
            nano_cpus: Some(500_000_000),
            cpu_shares: Some(512),
            memory: Some(32 << 20),
            memory_swap: Some(96 << 20),
            memory_reservation: Some(16 << 20),
            pids_limit: Some(20),
            blkio_weight: Some(500),
            ..Default::default()
        };
        let ws = plan(&r, Version::V2);
        let f = files(&ws);
        assert!(f.contains(&("cpu.max", "50000 100000".into())));
        assert!(f.contains(&("cpu.weight", "59".into())));
        assert!(f.contains(&("memory.max", (32u64 << 20).to_string())));
        assert!(f.contains(&("memory.swap.max", (64u64 << 20).to_string())));
        assert!(f.contains(&("memory.low", (16u64 << 20).to_string())));
        assert!(f.contains(&("pids.max", "20".into())));
        let io = ws.iter().find(|w| w.controller == Controller::Io).unwrap();
        assert_eq!(io.choices[0], ("io.bfq.weight", "500".into()));
        assert_eq!(io.choices[1], ("io.weight", "default 4950".into()));
    }

    #[test]
    fn v1_files_and_priority() {
        let r = Resources {
            cpu_quota: Some(20_000),
            memory: Some(64 << 20),
            pids_limit: Some(-1),
            priority: Some(Priority::Low),
            ..Default::default()
        };
        let f = files(&plan(&r, Version::V1));
        assert!(f.contains(&("cpu.cfs_quota_us", "20000".into())));
        assert!(f.contains(&("cpu.cfs_period_us", "100000".into())));
        assert!(f.contains(&("cpu.shares", "256".into())));
        assert!(f.contains(&("memory.limit_in_bytes", (64u64 << 20).to_string())));
        assert!(f.contains(&("memory.memsw.limit_in_bytes", (128u64 << 20).to_string())));
        assert!(f.contains(&("memory.soft_limit_in_bytes", "0".into())));
        assert!(f.contains(&("pids.max", "max".into())));
        assert!(plan(&Resources::default(), Version::V1).is_empty());
        assert!(plan(&Resources::default(), Version::V2).is_empty());
    }
}
