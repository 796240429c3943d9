//! berth-metrics: the figures `berthd` exports.
//!
//! This crate will own the readers of cgroup v1 and v2 statistics (cpu, memory, io, pids, PSI,
//! memory events) and of per-interface network counters inside container namespaces, and the
//! Prometheus collectors that expose them under cAdvisor's `container_*` names (so existing
//! dashboards and alert rules work unchanged) plus berth's own `berth_*` families. Files are read
//! at scrape time, samples carry no timestamps, and the scrape loop allocates nothing per sample.
//! It is filled in by the resources-and-metrics issue; today it only marks the seam.
