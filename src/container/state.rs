//! On-disk state of containers.
//!
//! ```text
//! <root>/containers/<id>/config.json     the persistent record (ContainerRecord), written last
//!                        image-id        the image id, so that `rmi` knows the image is in use
//!                        hostname hosts resolv.conf   bind-mounted into the container's /etc
//!                        fs/             the writable layer (crate::rootfs)
//!                        <id>-json.log   the container's output, one JSON object a line
//! <run-root>/containers/<id>/state.json  runtime state (RuntimeState): pid, status, exit code
//!                            lock        flock held by the process that runs the container
//! <run-root>/netns/<id>                  bind mount of the container's network namespace
//! ```
//!
//! Every JSON file is replaced atomically (`fsutil::write_json_atomic`), so a reader never sees
//! a torn one. The runtime state lives on the tmpfs run root: containers do not survive a
//! reboot, and after one a container reads as `created` again.

use super::config::ContainerConfig;
use super::ContainerError;
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where a container's files are.
#[derive(Clone, Debug)]
pub struct Paths {
    pub root: PathBuf,
    pub run_root: PathBuf,
}

impl Paths {
    pub fn new(root: &Path, run_root: &Path) -> Paths {
        Paths {
            root: root.to_path_buf(),
            run_root: run_root.to_path_buf(),
        }
    }
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }
    pub fn record(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("config.json")
    }
    pub fn image_id(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("image-id")
    }
    pub fn etc_file(&self, id: &str, name: &str) -> PathBuf {
        self.container_dir(id).join(name)
    }
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.run_root.join("containers").join(id)
    }
    pub fn state(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("state.json")
    }
    /// The container's output as JSON lines (docker's json-file format).
    pub fn log(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }
    pub fn lock(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("lock")
    }
    pub fn netns_dir(&self) -> PathBuf {
        self.run_root.join("netns")
    }
    pub fn netns(&self, id: &str) -> PathBuf {
        self.netns_dir().join(id)
    }
}

/// The persistent record of a container (`config.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// The image id (`sha256:…`).
    pub image_id: String,
    pub config: ContainerConfig,
}

/// A container's status, in docker's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
    /// Recorded as running, but the process that ran it is gone (killed without cleaning up):
    /// `berth rm` cleans up after it.
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

/// Runtime state (`state.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeState {
    pub status: Status,
    /// Host pid of the container's first process (0 when not running).
    pub pid: i32,
    /// Its start time (as `monitor_start`), so that `kill` never signals a reused pid.
    #[serde(default)]
    pub pid_start: u64,
    /// The process running and monitoring the container, and its start time (clock ticks
    /// after boot, field 22 of /proc/<pid>/stat) so that a reused pid is not taken for it.
    pub monitor_pid: i32,
    pub monitor_start: u64,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    /// Why the start failed, when it did.
    pub error: Option<String>,
    /// The cgroup parent the container's cgroup was made under, so that `rm` finds it even
    /// if the configured parent changed since.
    #[serde(default)]
    pub cgroup_parent: Option<String>,
    /// The OOM killer killed a process of the container during its last run (inspect's
    /// `State.OOMKilled`).
    #[serde(default)]
    pub oom_killed: bool,
}

impl RuntimeState {
    /// The state as it really is: `running` whose monitor is gone reads as `dead`.
    pub fn effective_status(&self) -> Status {
        if self.status == Status::Running && !process_alive(self.monitor_pid, self.monitor_start) {
            Status::Dead
        } else {
            self.status
        }
    }
}

/// Start time of `pid` in clock ticks after boot, if it exists.
pub fn process_start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Whether `pid` is alive and is the process that started at `start`.
pub fn process_alive(pid: i32, start: u64) -> bool {
    process_start_time(pid) == Some(start)
}

fn io_err(action: &'static str, path: &Path, source: io::Error) -> ContainerError {
    ContainerError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, ContainerError> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("cannot read", path, e)),
    };
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|source| ContainerError::Corrupt {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads a container's record; `None` if it has none (gone, or not finished being created).
pub fn read_record(paths: &Paths, id: &str) -> Result<Option<ContainerRecord>, ContainerError> {
    read_json(&paths.record(id))
}

pub fn write_record(paths: &Paths, record: &ContainerRecord) -> Result<(), ContainerError> {
    let path = paths.record(&record.id);
    // The record is what makes a container exist after a reboot, so it is fsynced; a `--rm`
    // container's record dies with its process anyway, and skipping the two fsyncs is a
    // measurable part of `run --rm` (blocking disk flushes are its largest wait).
    let write = if record.config.auto_remove {
        fsutil::write_json_atomic_volatile
    } else {
        fsutil::write_json_atomic
    };
    write(&path, record).map_err(|e| io_err("cannot write", &path, e))
}

/// Reads a container's runtime state; `None` if it never ran since boot.
pub fn read_state(paths: &Paths, id: &str) -> Result<Option<RuntimeState>, ContainerError> {
    read_json(&paths.state(id))
}

pub fn write_state(paths: &Paths, id: &str, state: &RuntimeState) -> Result<(), ContainerError> {
    let dir = paths.run_dir(id);
    fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
    let path = paths.state(id);
    // Runtime state lives under the run root (tmpfs): no fsync needed, see write_atomic_volatile.
    let data = serde_json::to_vec_pretty(state)
        .map_err(|e| io_err("cannot encode", &path, std::io::Error::other(e)))?;
    fsutil::write_atomic_volatile(&path, &data).map_err(|e| io_err("cannot write", &path, e))
}

/// Ids of every container directory (complete or not), sorted.
pub fn list_ids(paths: &Paths) -> Result<Vec<String>, ContainerError> {
    let dir = paths.containers_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("cannot list", &dir, e)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err("cannot list", &dir, e))?;
        if let Some(name) = entry.file_name().to_str() {
            if super::id::is_full_id(name) {
                ids.push(name.to_string());
            }
        }
    }
    ids.sort();
    Ok(ids)
}

/// Every complete container record (directories still being created or removed are skipped).
pub fn list_records(paths: &Paths) -> Result<Vec<ContainerRecord>, ContainerError> {
    let mut out = Vec::new();
    for id in list_ids(paths)? {
        match read_record(paths, &id) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => {}
            Err(ContainerError::Corrupt { path, .. }) => {
                tracing::warn!(path = %path.display(), "skipping a corrupt container record");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_others_are_not() {
        let me = std::process::id() as i32;
        let start = process_start_time(me).expect("own start time");
        assert!(process_alive(me, start));
        assert!(!process_alive(me, start + 1));
        assert!(!process_alive(0, 0));
        let st = RuntimeState {
            status: Status::Running,
            pid: 1,
            pid_start: 0,
            monitor_pid: me,
            monitor_start: start + 1,
            started_at: None,
            finished_at: None,
            exit_code: None,
            error: None,
            cgroup_parent: None,
            oom_killed: false,
        };
        assert_eq!(st.effective_status(), Status::Dead);
    }
}
