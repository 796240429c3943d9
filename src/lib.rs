//! berth: a Linux container runtime and node agent.
//!
//! The library holds everything the thin binaries in `src/bin/` call: the global options
//! ([`options`]), the content-addressed image store with load/import/pull and safe layer
//! unpacking ([`image`]), and overlay roots assembled from shared image layers ([`rootfs`]).

pub mod fsutil;
pub mod image;
pub mod options;
pub mod rootfs;
