//! berth-metrics: the figures `berthd` exports.
//!
//! Readers of cgroup v1 and v2 statistics (cpu, memory, io, pids, PSI, memory events) and of
//! per-interface network counters inside container namespaces, and a hand-written Prometheus
//! text exposition under cAdvisor's `container_*` names (so existing dashboards and alert rules
//! work unchanged) plus berth's own `berth_*` families. Files are read at scrape time, samples
//! carry no timestamps, and a steady-state scrape allocates nothing per sample: one
//! [`Collector`] keeps every buffer from scrape to scrape.
//!
//! ```no_run
//! use berth_metrics::{CgroupPaths, Collector, CollectorOptions, ContainerInfo};
//! let mut collector = Collector::new(CollectorOptions::default());
//! let containers = vec![ContainerInfo {
//!     id: "4f1c…".into(),
//!     name: "web".into(),
//!     image: "nginx:1.27".into(),
//!     labels: vec![("com.example.team".into(), "blue".into())],
//!     cgroup: CgroupPaths::detect("/berth/4f1c…").unwrap(),
//!     pid: Some(4242),
//!     start_time: 1.7e9,
//!     pids_limit: None,
//!     priority: Some("high".into()),
//! }];
//! let text: &str = collector.scrape(&containers); // serve with berth_metrics::CONTENT_TYPE
//! # let _ = text;
//! ```
//!
//! The family table (type, labels, meaning, v1 and v2 source) is `docs/metrics.md`.
//!
//! * [`collector`]: the scrape (read every container, write every family).
//! * [`cgroup`], [`parse`], [`reader`], [`host`]: the readers, usable on their own.
//! * [`stats`]: docker stats' arithmetic for `berth stats` (no berthd needed).
//! * [`expose`]: the text-format writer; berthd appends its own families (networks, reconcile
//!   errors) to the same buffer with [`expose::Family`].
//! * [`fixture`]: v1/v2 fixture trees for tests and the benchmark.

pub mod cgroup;
pub mod collector;
pub mod expose;
mod families;
pub mod fixture;
pub mod host;
pub mod parse;
pub mod reader;
pub mod stats;

pub use cgroup::{
    read_cgroup, read_cgroup_usage, weight_to_shares, CgroupDirs, CgroupPaths, CgroupStats,
    MemoryEvents, ReadOutcome,
};
pub use collector::{Collector, CollectorOptions, ContainerInfo, LabelPolicy};
pub use expose::CONTENT_TYPE;
pub use host::MachineInfo;
pub use parse::{Interface, IoDevice, Limit, Pressure};
pub use reader::FileReader;
