//! Global options shared by every berth binary (`berth`, and later `berthd` and `netctl`).
//!
//! Each option has an environment twin so that scripts and tests can point a whole session at
//! temporary locations: tests always set `BERTH_ROOT`, `BERTH_RUN_ROOT` and a unique
//! `BERTH_CGROUP_PARENT`.

use clap::Args;
use std::path::PathBuf;

pub const DEFAULT_ROOT: &str = "/var/lib/berth";
pub const DEFAULT_RUN_ROOT: &str = "/run/berth";
pub const DEFAULT_CGROUP_PARENT: &str = "/berth";

#[derive(Debug, Clone, Args)]
pub struct GlobalOptions {
    /// Persistent root: images, layers, containers' writable layers, network definitions.
    #[arg(long, global = true, env = "BERTH_ROOT", default_value = DEFAULT_ROOT, value_name = "DIR")]
    pub root: PathBuf,

    /// Runtime root (tmpfs): state files, netns bind mounts, sockets, IP leases.
    #[arg(long, global = true, env = "BERTH_RUN_ROOT", default_value = DEFAULT_RUN_ROOT, value_name = "DIR")]
    pub run_root: PathBuf,

    /// Absolute cgroup path under which every container's cgroup is created.
    #[arg(long, global = true, env = "BERTH_CGROUP_PARENT", default_value = DEFAULT_CGROUP_PARENT, value_name = "PATH")]
    pub cgroup_parent: String,

    /// Log level: error, warn, info, debug or trace (or a tracing filter directive).
    #[arg(
        long,
        global = true,
        env = "BERTH_LOG_LEVEL",
        default_value = "warn",
        value_name = "LEVEL"
    )]
    pub log_level: String,
}

impl GlobalOptions {
    /// Sets up logging to stderr at the chosen level.
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}
