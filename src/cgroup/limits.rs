//! Resource limits: docker's flags (`--cpus`, `-m`, `--pids-limit`, …) parsed and validated
//! into [`Resources`], the part of a container's config that `inspect` shows under
//! `HostConfig` and `berth update` changes. Everything is checked here, before anything is
//! created or written: units, ranges, conflicts, CPUs and memory nodes that exist, device
//! paths that are block devices.

use super::priority::Priority;
use super::units::{parse_cpus, parse_list, parse_size, show_size};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// The smallest memory limit docker accepts (and the kernel can run a container in).
pub const MIN_MEMORY: i64 = 6 << 20;
/// `cpu.cfs_period_us` berth uses with `--cpus` (docker's).
pub const DEFAULT_CPU_PERIOD: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("invalid {flag} {value:?}: {why}")]
    Invalid {
        flag: &'static str,
        value: String,
        why: String,
    },
    #[error("conflicting options: {0}")]
    Conflict(String),
    #[error("give one or more resource flags to update (e.g. --memory 256m, --cpus 1.5)")]
    NothingToUpdate,
}

fn invalid(flag: &'static str, value: &str, why: impl Into<String>) -> LimitError {
    LimitError::Invalid {
        flag,
        value: value.to_string(),
        why: why.into(),
    }
}

/// A block device with a weight (`--blkio-weight-device /dev/sda:200`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WeightDevice {
    pub path: String,
    pub major: u64,
    pub minor: u64,
    pub weight: u16,
}

/// A block device with a rate (`--device-read-bps /dev/sda:1mb`, `--device-write-iops …:100`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ThrottleDevice {
    pub path: String,
    pub major: u64,
    pub minor: u64,
    pub rate: u64,
}

/// The resource settings of a container, in docker's units and meanings (bytes, µs, shares,
/// `MemorySwap` = memory + swap, -1 = unlimited). Serialized with docker's `HostConfig`
/// names. `None` means "not asked": the kernel's default stays.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Resources {
    pub nano_cpus: Option<u64>,
    pub cpu_period: Option<u64>,
    /// -1: unlimited.
    pub cpu_quota: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
    /// Memory plus swap; -1: unlimited swap.
    pub memory_swap: Option<i64>,
    pub memory_swappiness: Option<u8>,
    pub oom_score_adj: Option<i32>,
    pub oom_kill_disable: Option<bool>,
    /// -1: unlimited.
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub blkio_weight_device: Vec<WeightDevice>,
    pub blkio_device_read_bps: Vec<ThrottleDevice>,
    pub blkio_device_write_bps: Vec<ThrottleDevice>,
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Vec<ThrottleDevice>,
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Vec<ThrottleDevice>,
    /// berth's `--priority` class.
    pub priority: Option<Priority>,
}

/// The resource flags as given on the command line (strings, parsed by [`ResourceFlags::parse`]
/// so that a bad value is a runtime error with exit code 125, as docker's).
#[derive(Clone, Debug, Default)]
pub struct ResourceFlags {
    pub cpus: Option<String>,
    pub cpu_period: Option<String>,
    pub cpu_quota: Option<String>,
    pub cpu_shares: Option<String>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub memory_swappiness: Option<String>,
    pub oom_score_adj: Option<String>,
    pub oom_kill_disable: bool,
    pub pids_limit: Option<String>,
    pub blkio_weight: Option<String>,
    pub blkio_weight_device: Vec<String>,
    pub device_read_bps: Vec<String>,
    pub device_write_bps: Vec<String>,
    pub device_read_iops: Vec<String>,
    pub device_write_iops: Vec<String>,
    pub priority: Option<String>,
}

/// What the host has, for validation: online CPUs and memory nodes.
#[derive(Clone, Debug)]
pub struct Host {
    pub cpus: BTreeSet<u32>,
    pub mems: BTreeSet<u32>,
}

impl Host {
    pub fn detect() -> Host {
        let read = |p: &str| {
            fs::read_to_string(p)
                .ok()
                .and_then(|s| parse_list(s.trim()))
        };
        let cpus = read("/sys/devices/system/cpu/online").unwrap_or_else(|| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
            (0..n).collect()
        });
        let mems = read("/sys/devices/system/node/online").unwrap_or_else(|| [0].into());
        Host { cpus, mems }
    }
}

fn int<T: std::str::FromStr>(flag: &'static str, v: &str) -> Result<T, LimitError> {
    v.trim()
        .parse()
        .map_err(|_| invalid(flag, v, "not an integer"))
}

fn size(flag: &'static str, v: &str) -> Result<i64, LimitError> {
    parse_size(v).ok_or_else(|| {
        invalid(
            flag,
            v,
            "use a positive number with an optional unit b, k, m or g (e.g. 512m)",
        )
    })
}

/// Resolves a device path to its major:minor; it must be a block device.
fn block_device(flag: &'static str, spec: &str, path: &str) -> Result<(u64, u64), LimitError> {
    let meta = fs::metadata(path).map_err(|e| invalid(flag, spec, format!("{path}: {e}")))?;
    if !meta.file_type().is_block_device() {
        return Err(invalid(flag, spec, format!("{path} is not a block device")));
    }
    let dev = meta.rdev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    Ok((major, minor))
}

fn split_device<'a>(flag: &'static str, spec: &'a str) -> Result<(&'a str, &'a str), LimitError> {
    match spec.rsplit_once(':') {
        Some((p, v)) if p.starts_with('/') && !v.is_empty() => Ok((p, v)),
        _ => Err(invalid(
            flag,
            spec,
            "use DEVICE-PATH:VALUE, e.g. /dev/sda:100",
        )),
    }
}

fn throttle(
    flag: &'static str,
    specs: &[String],
    bytes: bool,
) -> Result<Vec<ThrottleDevice>, LimitError> {
    let mut out: Vec<ThrottleDevice> = Vec::new();
    for spec in specs {
        let (path, v) = split_device(flag, spec)?;
        let rate = if bytes {
            parse_size(v).ok_or_else(|| {
                invalid(
                    flag,
                    spec,
                    "the rate must be a number with an optional unit kb, mb or gb",
                )
            })? as u64
        } else {
            v.parse::<u64>().map_err(|_| {
                invalid(
                    flag,
                    spec,
                    "the rate must be a positive integer (IO per second)",
                )
            })?
        };
        let (major, minor) = block_device(flag, spec, path)?;
        out.retain(|d| (d.major, d.minor) != (major, minor));
        out.push(ThrottleDevice {
            path: path.to_string(),
            major,
            minor,
            rate,
        });
    }
    Ok(out)
}

fn cpuset(
    flag: &'static str,
    v: &str,
    have: &BTreeSet<u32>,
    what: &str,
) -> Result<String, LimitError> {
    let set = parse_list(v).ok_or_else(|| {
        invalid(
            flag,
            v,
            format!("use a list of {what} numbers and ranges, e.g. 0-2,4"),
        )
    })?;
    let missing: Vec<String> = set.difference(have).map(u32::to_string).collect();
    if !missing.is_empty() {
        return Err(invalid(
            flag,
            v,
            format!(
                "{what} {} do not exist here (available: {})",
                missing.join(","),
                show_list(have)
            ),
        ));
    }
    Ok(v.to_string())
}

fn show_list(set: &BTreeSet<u32>) -> String {
    let v: Vec<u32> = set.iter().copied().collect();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

impl ResourceFlags {
    /// Whether any flag was given.
    pub fn is_empty(&self) -> bool {
        self.cpus.is_none()
            && self.cpu_period.is_none()
            && self.cpu_quota.is_none()
            && self.cpu_shares.is_none()
            && self.cpuset_cpus.is_none()
            && self.cpuset_mems.is_none()
            && self.memory.is_none()
            && self.memory_reservation.is_none()
            && self.memory_swap.is_none()
            && self.memory_swappiness.is_none()
            && self.oom_score_adj.is_none()
            && !self.oom_kill_disable
            && self.pids_limit.is_none()
            && self.blkio_weight.is_none()
            && self.blkio_weight_device.is_empty()
            && self.device_read_bps.is_empty()
            && self.device_write_bps.is_empty()
            && self.device_read_iops.is_empty()
            && self.device_write_iops.is_empty()
            && self.priority.is_none()
    }

    /// Parses and checks every flag on its own (ranges, units, devices, CPUs). Cross-flag rules
    /// are [`Resources::validate`]'s.
    pub fn parse(&self, host: &Host) -> Result<Resources, LimitError> {
        let mut r = Resources::default();
        let ncpu = host.cpus.len() as u64;
        if let Some(v) = &self.cpus {
            let nano = parse_cpus(v).ok_or_else(|| {
                invalid(
                    "--cpus",
                    v,
                    "use a positive decimal number of CPUs, e.g. 1.5",
                )
            })?;
            if nano != 0 && (nano < 10_000_000 || nano > ncpu * 1_000_000_000) {
                return Err(invalid(
                    "--cpus",
                    v,
                    format!("the range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"),
                ));
            }
            r.nano_cpus = (nano != 0).then_some(nano);
        }
        if let Some(v) = &self.cpu_period {
            let p: i64 = int("--cpu-period", v)?;
            if p != 0 && !(1000..=1_000_000).contains(&p) {
                return Err(invalid(
                    "--cpu-period",
                    v,
                    "the CFS period must be between 1000 (1 ms) and 1000000 (1 s) µs",
                ));
            }
            r.cpu_period = (p != 0).then_some(p as u64);
        }
        if let Some(v) = &self.cpu_quota {
            let q: i64 = int("--cpu-quota", v)?;
            if q < -1 || (q > 0 && q < 1000) {
                return Err(invalid(
                    "--cpu-quota",
                    v,
                    "the CFS quota must be at least 1000 µs (1 ms), or -1 for no limit",
                ));
            }
            r.cpu_quota = (q != 0).then_some(q);
        }
        if let Some(v) = &self.cpu_shares {
            let s: i64 = int("--cpu-shares", v)?;
            if s != 0 && !(2..=262_144).contains(&s) {
                return Err(invalid(
                    "--cpu-shares",
                    v,
                    "use a relative weight from 2 to 262144 (default 1024)",
                ));
            }
            r.cpu_shares = (s != 0).then_some(s as u64);
        }
        if let Some(v) = &self.cpuset_cpus {
            r.cpuset_cpus = Some(cpuset("--cpuset-cpus", v, &host.cpus, "CPUs")?);
        }
        if let Some(v) = &self.cpuset_mems {
            r.cpuset_mems = Some(cpuset("--cpuset-mems", v, &host.mems, "memory nodes")?);
        }
        let min_mem = |flag: &'static str, v: &str, b: i64| -> Result<Option<i64>, LimitError> {
            if b != 0 && b < MIN_MEMORY {
                return Err(invalid(
                    flag,
                    v,
                    format!("the minimum allowed is {}", show_size(MIN_MEMORY)),
                ));
            }
            Ok((b != 0).then_some(b))
        };
        if let Some(v) = &self.memory {
            r.memory = min_mem("--memory", v, size("--memory", v)?)?;
        }
        if let Some(v) = &self.memory_reservation {
            let b = size("--memory-reservation", v)?;
            r.memory_reservation = min_mem("--memory-reservation", v, b)?;
        }
        if let Some(v) = &self.memory_swap {
            r.memory_swap = if v.trim() == "-1" {
                Some(-1)
            } else {
                let b = size("--memory-swap", v)?;
                (b != 0).then_some(b)
            };
        }
        if let Some(v) = &self.memory_swappiness {
            let s: i64 = int("--memory-swappiness", v)?;
            if !(-1..=100).contains(&s) {
                return Err(invalid(
                    "--memory-swappiness",
                    v,
                    "use 0 to 100 (or -1 for the kernel's default)",
                ));
            }
            r.memory_swappiness = (s >= 0).then_some(s as u8);
        }
        if let Some(v) = &self.oom_score_adj {
            let s: i32 = int("--oom-score-adj", v)?;
            if !(-1000..=1000).contains(&s) {
                return Err(invalid("--oom-score-adj", v, "use -1000 to 1000"));
            }
            r.oom_score_adj = Some(s);
        }
        if self.oom_kill_disable {
            r.oom_kill_disable = Some(true);
        }
        if let Some(v) = &self.pids_limit {
            let p: i64 = int("--pids-limit", v)?;
            r.pids_limit = Some(if p <= 0 { -1 } else { p });
        }
        if let Some(v) = &self.blkio_weight {
            let w: i64 = int("--blkio-weight", v)?;
            if w != 0 && !(10..=1000).contains(&w) {
                return Err(invalid(
                    "--blkio-weight",
                    v,
                    "the range of blkio weight is from 10 to 1000",
                ));
            }
            r.blkio_weight = (w != 0).then_some(w as u16);
        }
        for spec in &self.blkio_weight_device {
            let flag = "--blkio-weight-device";
            let (path, v) = split_device(flag, spec)?;
            let w: u16 = v
                .parse()
                .ok()
                .filter(|w| (10..=1000).contains(w))
                .ok_or_else(|| invalid(flag, spec, "the weight must be from 10 to 1000"))?;
            let (major, minor) = block_device(flag, spec, path)?;
            r.blkio_weight_device
                .retain(|d| (d.major, d.minor) != (major, minor));
            r.blkio_weight_device.push(WeightDevice {
                path: path.to_string(),
                major,
                minor,
                weight: w,
            });
        }
        r.blkio_device_read_bps = throttle("--device-read-bps", &self.device_read_bps, true)?;
        r.blkio_device_write_bps = throttle("--device-write-bps", &self.device_write_bps, true)?;
        r.blkio_device_read_iops = throttle("--device-read-iops", &self.device_read_iops, false)?;
        r.blkio_device_write_iops =
            throttle("--device-write-iops", &self.device_write_iops, false)?;
        if let Some(v) = &self.priority {
            r.priority = Some(
                Priority::parse(v)
                    .ok_or_else(|| invalid("--priority", v, "use high, normal, low or idle"))?,
            );
        }
        Ok(r)
    }
}

impl Resources {
    /// Whether nothing is asked (the container runs with the kernel's defaults).
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }

    /// Cross-flag rules, as docker's daemon checks them.
    pub fn validate(&self) -> Result<(), LimitError> {
        if self.nano_cpus.is_some() && self.cpu_period.is_some() {
            return Err(LimitError::Conflict(
                "--cpus and --cpu-period cannot both be set".into(),
            ));
        }
        if self.nano_cpus.is_some() && self.cpu_quota.is_some() {
            return Err(LimitError::Conflict(
                "--cpus and --cpu-quota cannot both be set".into(),
            ));
        }
        if let (Some(m), Some(r)) = (self.memory, self.memory_reservation) {
            if r > m {
                return Err(LimitError::Conflict(format!(
                    "the memory limit ({}) cannot be less than the memory reservation ({}): raise --memory or lower --memory-reservation",
                    show_size(m),
                    show_size(r)
                )));
            }
        }
        match (self.memory, self.memory_swap) {
            (None, Some(s)) if s != -1 => {
                return Err(LimitError::Conflict(
                    "--memory-swap needs --memory: set the memory limit too".into(),
                ))
            }
            (Some(m), Some(s)) if s != -1 && s < m => {
                return Err(LimitError::Conflict(format!(
                    "--memory-swap ({}) is memory plus swap and must be at least --memory ({}); use -1 for unlimited swap",
                    show_size(s),
                    show_size(m)
                )))
            }
            _ => {}
        }
        Ok(())
    }

    /// The memory+swap limit that applies: `--memory-swap`, else twice `--memory` (docker's
    /// default), else none. The bool says whether it was asked for explicitly.
    pub fn effective_memory_swap(&self) -> Option<(i64, bool)> {
        match (self.memory_swap, self.memory) {
            (Some(s), _) => Some((s, true)),
            (None, Some(m)) => Some((m.saturating_mul(2), false)),
            _ => None,
        }
    }

    /// The oom_score_adj to give the container's processes: `--oom-score-adj`, else the
    /// priority class's.
    pub fn effective_oom_score_adj(&self) -> Option<i32> {
        self.oom_score_adj
            .or_else(|| self.priority.map(|p| p.settings().oom_score_adj))
    }

    /// The cpu shares that apply: `--cpu-shares`, else the priority class's.
    pub fn effective_cpu_shares(&self) -> Option<u64> {
        self.cpu_shares
            .or_else(|| self.priority.map(|p| p.settings().cpu_shares))
    }

    /// The CFS (quota, period) in µs: from `--cpus` with docker's 100 ms period, or from
    /// `--cpu-quota`/`--cpu-period` (quota -1: unlimited).
    pub fn cfs(&self) -> Option<(i64, u64)> {
        if let Some(nano) = self.nano_cpus {
            let quota = (u128::from(nano) * u128::from(DEFAULT_CPU_PERIOD) / 1_000_000_000) as i64;
            return Some((quota, DEFAULT_CPU_PERIOD));
        }
        if self.cpu_quota.is_none() && self.cpu_period.is_none() {
            return None;
        }
        Some((
            self.cpu_quota.unwrap_or(-1),
            self.cpu_period.unwrap_or(DEFAULT_CPU_PERIOD),
        ))
    }

    /// The memory protection (v2 `memory.low`, v1 soft limit) in bytes: the reservation, else
    /// what the priority class says (`Some(-1)`: remove any protection/soft limit).
    pub fn effective_memory_low(&self) -> Option<i64> {
        if self.memory_reservation.is_some() {
            return self.memory_reservation;
        }
        let p = self.priority?.settings();
        if p.protect_memory {
            Some(self.memory.unwrap_or(-1))
        } else {
            Some(-1)
        }
    }

    /// The fields `inspect` shows in `HostConfig`, as docker shows them: unset numbers are 0,
    /// unset lists empty, `PidsLimit`/`MemorySwappiness`/`OomKillDisable` null, and
    /// `MemorySwap` the effective memory+swap limit (twice `Memory` by default).
    pub fn inspect(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            for key in [
                "NanoCpus",
                "CpuPeriod",
                "CpuQuota",
                "CpuShares",
                "Memory",
                "MemoryReservation",
                "BlkioWeight",
                "OomScoreAdj",
            ] {
                if map.get(key).is_some_and(|x| x.is_null()) {
                    map.insert(key.into(), 0.into());
                }
            }
            for key in ["CpusetCpus", "CpusetMems"] {
                if map.get(key).is_some_and(|x| x.is_null()) {
                    map.insert(key.into(), "".into());
                }
            }
            let swap = self.effective_memory_swap().map_or(0, |(s, _)| s);
            map.insert("MemorySwap".into(), swap.into());
        }
        v
    }

    /// `berth update`: `change` (parsed flags) over `self`. `--cpus` replaces a quota/period and
    /// the other way round; device lists replace entries of the same device.
    pub fn merge(&self, change: &Resources) -> Resources {
        let mut r = self.clone();
        macro_rules! over {
            ($($f:ident),*) => { $( if change.$f.is_some() { r.$f = change.$f.clone(); } )* };
        }
        over!(
            cpu_period,
            cpu_quota,
            cpu_shares,
            cpuset_cpus,
            cpuset_mems,
            memory,
            memory_reservation,
            memory_swap,
            memory_swappiness,
            oom_score_adj,
            oom_kill_disable,
            pids_limit,
            blkio_weight,
            priority
        );
        if change.nano_cpus.is_some() {
            r.nano_cpus = change.nano_cpus;
            r.cpu_period = None;
            r.cpu_quota = None;
        } else if change.cpu_period.is_some() || change.cpu_quota.is_some() {
            r.nano_cpus = None;
        }
        fn devs<T: Clone>(old: &mut Vec<T>, new: &[T], key: impl Fn(&T) -> (u64, u64)) {
            for d in new {
                old.retain(|o| key(o) != key(d));
                old.push(d.clone());
            }
        }
        devs(
            &mut r.blkio_weight_device,
            &change.blkio_weight_device,
            |d| (d.major, d.minor),
        );
        let k = |d: &ThrottleDevice| (d.major, d.minor);
        devs(
            &mut r.blkio_device_read_bps,
            &change.blkio_device_read_bps,
            k,
        );
        devs(
            &mut r.blkio_device_write_bps,
            &change.blkio_device_write_bps,
            k,
        );
        devs(
            &mut r.blkio_device_read_iops,
            &change.blkio_device_read_iops,
            k,
        );
        devs(
            &mut r.blkio_device_write_iops,
            &change.blkio_device_write_iops,
            k,
        );
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            cpus: [0, 1].into(),
            mems: [0].into(),
        }
    }

    fn flags(f: impl FnOnce(&mut ResourceFlags)) -> Result<Resources, LimitError> {
        let mut rf = ResourceFlags::default();
        f(&mut rf);
        let r = rf.parse(&host())?;
        r.validate()?;
        Ok(r)
    }

    #[test]
    fn parses_docker_units() {
        let r = flags(|f| {
            f.cpus = Some("0.5".into());
            f.memory = Some("32m".into());
            f.memory_swap = Some("64m".into());
            f.pids_limit = Some("20".into());
            f.cpuset_cpus = Some("0-1".into());
            f.priority = Some("high".into());
        })
        .unwrap();
        assert_eq!(r.cfs(), Some((50_000, 100_000)));
        assert_eq!(r.memory, Some(32 << 20));
        assert_eq!(r.effective_memory_swap(), Some((64 << 20, true)));
        assert_eq!(r.pids_limit, Some(20));
        assert_eq!(r.effective_cpu_shares(), Some(4096));
        assert_eq!(r.effective_oom_score_adj(), Some(-500));
        assert_eq!(r.effective_memory_low(), Some(32 << 20));
        let r = flags(|f| f.memory = Some("100m".into())).unwrap();
        assert_eq!(r.effective_memory_swap(), Some((200 << 20, false)));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["Memory"], 100 << 20);
        assert!(j.get("BlkioDeviceReadIOps").is_some());
    }

    type Setter = Box<dyn Fn(&mut ResourceFlags)>;

    #[test]
    fn refuses_bad_input() {
        let bad: Vec<Setter> = vec![
            Box::new(|f| f.cpus = Some("-1".into())),
            Box::new(|f| f.cpus = Some("3".into())),
            Box::new(|f| f.cpus = Some("0.001".into())),
            Box::new(|f| f.cpu_period = Some("500".into())),
            Box::new(|f| f.cpu_quota = Some("999".into())),
            Box::new(|f| f.cpu_shares = Some("-5".into())),
            Box::new(|f| f.memory = Some("4m".into())),
            Box::new(|f| f.memory = Some("-1".into())),
            Box::new(|f| f.memory = Some("lots".into())),
            Box::new(|f| f.cpuset_cpus = Some("0-".into())),
            Box::new(|f| f.cpuset_cpus = Some("7".into())),
            Box::new(|f| f.cpuset_mems = Some("3".into())),
            Box::new(|f| f.priority = Some("urgent".into())),
            Box::new(|f| f.blkio_weight = Some("5".into())),
            Box::new(|f| f.device_read_bps = vec!["/dev/null:1mb".into()]),
            Box::new(|f| f.device_read_bps = vec!["/nonexistent:1mb".into()]),
            Box::new(|f| f.memory_swappiness = Some("101".into())),
            Box::new(|f| f.oom_score_adj = Some("1001".into())),
            Box::new(|f| {
                f.cpus = Some("1".into());
                f.cpu_quota = Some("5000".into());
            }),
            Box::new(|f| {
                f.memory = Some("32m".into());
                f.memory_swap = Some("16m".into());
            }),
            Box::new(|f| f.memory_swap = Some("64m".into())),
            Box::new(|f| {
                f.memory = Some("32m".into());
                f.memory_reservation = Some("64m".into());
            }),
        ];
        for (i, b) in bad.iter().enumerate() {
            assert!(flags(|f| b(f)).is_err(), "case {i} accepted");
        }
    }

    #[test]
    fn update_merges() {
        let old = flags(|f| {
            f.cpu_quota = Some("50000".into());
            f.memory = Some("32m".into());
        })
        .unwrap();
        let change = flags(|f| f.cpus = Some("1".into())).unwrap();
        let m = old.merge(&change);
        assert_eq!(m.cpu_quota, None);
        assert_eq!(m.cfs(), Some((100_000, 100_000)));
        assert_eq!(m.memory, Some(32 << 20));
    }
}
