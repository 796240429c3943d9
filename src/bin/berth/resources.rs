//! The resource flags of `run`/`create` (docker's names and units) and `berth update`.

use anyhow::Result;
use berth::cgroup::ResourceFlags;
use berth::options::GlobalOptions;
use clap::Args;
use std::io::{self, Write};

// Values are parsed by the library (not by clap), so that a bad one is a runtime error with
// exit code 125, as with docker. (A plain comment: see `ContainerFlags`.)
#[derive(Args, Clone, Default)]
pub struct ResourceArgs {
    /// Number of CPUs (decimal, e.g. 1.5): a CFS quota over a 100 ms period.
    #[arg(long, value_name = "DECIMAL", allow_hyphen_values = true)]
    cpus: Option<String>,
    /// CFS period in µs (1000-1000000).
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    cpu_period: Option<String>,
    /// CFS quota in µs per period (at least 1000; -1: unlimited).
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    cpu_quota: Option<String>,
    /// Relative CPU weight (2-262144, default 1024; cpu.weight via runc's mapping on v2).
    #[arg(short = 'c', long, value_name = "SHARES", allow_hyphen_values = true)]
    cpu_shares: Option<String>,
    /// CPUs the container may run on (0-3, 0,1).
    #[arg(long, value_name = "LIST")]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use (0-3, 0,1).
    #[arg(long, value_name = "LIST")]
    cpuset_mems: Option<String>,
    /// Memory limit (b, k, m, g; at least 6m).
    #[arg(short = 'm', long, value_name = "BYTES", allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit / protection (v1 soft limit, v2 memory.low).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap; default twice --memory).
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Swappiness 0-100 (v1 only; -1: the kernel's default).
    #[arg(long, value_name = "0-100", allow_hyphen_values = true)]
    memory_swappiness: Option<String>,
    /// OOM score adjustment of the container's processes (-1000 to 1000).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    oom_score_adj: Option<String>,
    /// Disable the OOM killer for the container (v1 only).
    #[arg(long)]
    oom_kill_disable: bool,
    /// Maximum number of processes (-1: unlimited).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pids_limit: Option<String>,
    /// Block IO weight (10-1000).
    #[arg(long, value_name = "WEIGHT", allow_hyphen_values = true)]
    blkio_weight: Option<String>,
    /// Block IO weight of one device (DEVICE:WEIGHT).
    #[arg(long, value_name = "DEV:WEIGHT")]
    blkio_weight_device: Vec<String>,
    /// Read rate limit of a device (DEVICE:RATE, RATE with kb, mb, gb).
    #[arg(long, value_name = "DEV:RATE")]
    device_read_bps: Vec<String>,
    /// Write rate limit of a device (DEVICE:RATE, RATE with kb, mb, gb).
    #[arg(long, value_name = "DEV:RATE")]
    device_write_bps: Vec<String>,
    /// Read IO/s limit of a device (DEVICE:N).
    #[arg(long, value_name = "DEV:N")]
    device_read_iops: Vec<String>,
    /// Write IO/s limit of a device (DEVICE:N).
    #[arg(long, value_name = "DEV:N")]
    device_write_iops: Vec<String>,
    /// Priority class: high, normal, low or idle (CPU weight, IO weight, OOM score and memory
    /// protection together; see docs/resources.md).
    #[arg(long, value_name = "CLASS")]
    priority: Option<String>,
}

impl ResourceArgs {
    pub fn flags(&self) -> ResourceFlags {
        ResourceFlags {
            cpus: self.cpus.clone(),
            cpu_period: self.cpu_period.clone(),
            cpu_quota: self.cpu_quota.clone(),
            cpu_shares: self.cpu_shares.clone(),
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            memory: self.memory.clone(),
            memory_reservation: self.memory_reservation.clone(),
            memory_swap: self.memory_swap.clone(),
            memory_swappiness: self.memory_swappiness.clone(),
            oom_score_adj: self.oom_score_adj.clone(),
            oom_kill_disable: self.oom_kill_disable,
            pids_limit: self.pids_limit.clone(),
            blkio_weight: self.blkio_weight.clone(),
            blkio_weight_device: self.blkio_weight_device.clone(),
            device_read_bps: self.device_read_bps.clone(),
            device_write_bps: self.device_write_bps.clone(),
            device_read_iops: self.device_read_iops.clone(),
            device_write_iops: self.device_write_iops.clone(),
            priority: self.priority.clone(),
        }
    }
}

#[derive(Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    resources: ResourceArgs,
    /// Running containers (ids, unique id prefixes, or names).
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `berth update [FLAGS] CONTAINER...`: every container is checked (it exists, it runs, the
/// merged limits are valid and the kernel has what they need) before any is changed. Prints
/// each container as given; exit 0, or 125 on error (as `create`).
pub fn update(g: &GlobalOptions, a: &UpdateArgs) -> Result<i32> {
    let runtime = match berth::container::Runtime::from_options(g) {
        Ok(r) => r,
        Err(e) => return Ok(crate::containers::fail(e)),
    };
    match runtime.update(&a.containers, &a.resources.flags()) {
        Ok(()) => {
            let mut out = io::stdout().lock();
            for c in &a.containers {
                writeln!(out, "{c}")?;
            }
            Ok(0)
        }
        Err(e) => Ok(crate::containers::fail(e)),
    }
}
