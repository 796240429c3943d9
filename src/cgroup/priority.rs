//! `--priority high|normal|low|idle`: one word for CPU weight, IO weight, OOM score and memory
//! protection together. The table (also in docs/resources.md):
//!
//! | class  | cpu.shares (v1) | cpu.weight (v2) | cpu.idle | IO weight | oom_score_adj | memory protection |
//! |--------|-----------------|-----------------|----------|-----------|---------------|-------------------|
//! | high   | 4096            | 303             | 0        | 1000      | -500          | reservation, else the memory limit |
//! | normal | 1024            | 100             | 0        | 100       | 0             | reservation only (docker's default) |
//! | low    | 256             | 35              | 0        | 25        | 500           | none; v1 soft limit 0 (reclaimed first) |
//! | idle   | 2               | 1               | 1        | 10        | 1000          | none; v1 soft limit 0 (reclaimed first) |
//!
//! IO weight goes to `blkio.bfq.weight` (v1, BFQ) / `io.bfq.weight` (v2, BFQ), or `blkio.weight`
//! (v1, CFQ kernels) / `io.weight` (v2, iocost) as the kernel offers; it is best effort: no
//! file or no IO controller means no IO weight, never an error. Explicit flags (`--cpu-shares`,
//! `--blkio-weight`, `--oom-score-adj`, `--memory-reservation`) win over the class.

use serde::{Deserialize, Serialize};

/// A priority class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    Normal,
    Low,
    Idle,
}

/// What a class sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassSettings {
    /// v1 `cpu.shares`; v2 `cpu.weight` is its runc conversion.
    pub cpu_shares: u64,
    /// `cpu.idle` (Linux 5.15+, both hierarchies), written when the file exists.
    pub cpu_idle: bool,
    /// IO weight on the 1–1000 scale of BFQ (default 100); `io.weight` takes the same number.
    pub io_weight: u16,
    pub oom_score_adj: i32,
    /// Protect the container's memory up to its limit (v2 `memory.low`, v1 soft limit) when no
    /// `--memory-reservation` is given.
    pub protect_memory: bool,
    /// v1: a soft limit of 0, so global reclaim takes from this container first.
    pub reclaim_first: bool,
}

impl Priority {
    pub fn parse(s: &str) -> Option<Priority> {
        match s {
            "high" => Some(Priority::High),
            "normal" => Some(Priority::Normal),
            "low" => Some(Priority::Low),
            "idle" => Some(Priority::Idle),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
            Priority::Idle => "idle",
        }
    }

    pub fn settings(self) -> ClassSettings {
        let (cpu_shares, cpu_idle, io_weight, oom_score_adj) = match self {
            Priority::High => (4096, false, 1000, -500),
            Priority::Normal => (1024, false, 100, 0),
            Priority::Low => (256, false, 25, 500),
            Priority::Idle => (2, true, 10, 1000),
        };
        ClassSettings {
            cpu_shares,
            cpu_idle,
            io_weight,
            oom_score_adj,
            protect_memory: self == Priority::High,
            reclaim_first: matches!(self, Priority::Low | Priority::Idle),
        }
    }
}
