//! Containers: ids and names ([`id`]), the resolved configuration ([`config`]), on-disk
//! records and runtime state ([`state`]), and the lifecycle — create, start (run in the
//! foreground, as the monitor), remove, list and inspect ([`lifecycle`], [`monitor`]).

pub mod config;
pub mod control;
pub mod detach;
pub mod events;
pub mod exec;
pub mod id;
pub mod lifecycle;
pub mod logs;
pub mod monitor;
pub mod network;
pub mod security;
pub mod state;
pub mod trash;
mod update;

pub use config::{ContainerConfig, CreateOptions, NetworkMode, NetworkRequest, NsMode};
pub use exec::ExecOptions;
pub use lifecycle::{ContainerInfo, Runtime};
pub use state::{ContainerRecord, RuntimeState, Status};

use crate::cgroup::CgroupError;
use crate::image::store::StoreError;
use crate::isolate::IsolateError;
use crate::rootfs::RootfsError;
use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("no such container: {0} (see `berth ps -a`)")]
    NoSuchContainer(String),
    #[error("container reference {0:?} matches more than one container id: give more digits or the name")]
    Ambiguous(String),
    #[error("the container name {name:?} is already in use by container {id}: remove it (`berth rm {name}`) or choose another name")]
    NameInUse { name: String, id: String },
    #[error("{0}")]
    InvalidName(String),
    #[error("container {0} is running: stop it first, or remove it with `berth rm -f`")]
    Running(String),
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    #[error("container {0} is busy: another berth process is starting or removing it; try again")]
    Busy(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error(
        "cannot share the {kind} namespace of container {name}: it is not running; start it first"
    )]
    ShareNotRunning { kind: &'static str, name: String },
    #[error("invalid signal {0:?}: use a name like TERM or SIGTERM, or a number like 15")]
    InvalidSignal(String),
    /// A detached start failed; the monitor reported why, with the exit code to return.
    #[error("{message}")]
    Start { code: i32, message: String },
    /// berthd refused or could not be reached (its message says why and what to do).
    #[error("{0}")]
    Network(String),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Isolate(#[from] IsolateError),
    #[error(transparent)]
    Tty(#[from] crate::tty::TtyError),
    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("container record {} is corrupt: {source}; remove the container with `berth rm -f`", .path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl ContainerError {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: io::Error) -> Self {
        ContainerError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The exit code `berth run`/`start` reports: 126/127 when the command could not be
    /// executed, 125 for every failure of berth itself.
    pub fn exit_code(&self) -> i32 {
        match self {
            ContainerError::Isolate(e) => e.exit_code(),
            ContainerError::Start { code, .. } => *code,
            _ => crate::isolate::EXIT_RUNTIME_ERROR,
        }
    }
}

pub type Result<T, E = ContainerError> = std::result::Result<T, E>;
