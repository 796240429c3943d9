//! berth: a Linux container runtime and node agent.
//!
//! The library holds everything the thin binaries in `src/bin/` call: the global options
//! ([`options`]), the content-addressed image store with load/import/pull and safe layer
//! unpacking ([`image`]), overlay roots assembled from shared image layers ([`rootfs`]), and
//! the runtime: containers and their lifecycle ([`container`]), namespaces, mounts and the
//! init process chain ([`isolate`]), per-container cgroups ([`cgroup`]), and pseudo-terminals ([`tty`]).

pub mod agent;
pub mod api;
pub mod cgroup;
pub mod container;
pub mod fsutil;
pub mod image;
pub mod isolate;
pub mod options;
pub mod rootfs;
pub mod tty;
