//! Starting a container in the foreground: berth itself is the monitor. It creates the
//! cgroup, spawns the process chain, puts the child into the cgroup and binds its network
//! namespace before the child runs anything of the user's, waits (passing signals on),
//! records the exit status, and tears everything down: cgroup, netns bind mount, and with
//! `--rm` the whole container. A guard undoes what was set up on every error path.
//!
//! The container's mounts live only in its own mount namespace and vanish with its last
//! process; the host never sees them, so there is nothing to unmount on the host side.

use super::config::{CreateOptions, NetworkMode};
use super::lifecycle::{now, Runtime, ETC_FILES};
use super::state::{self, ContainerRecord, RuntimeState, Status};
use super::{ContainerError, Result};
use crate::cgroup::{Cgroup, Layout};
use crate::isolate::{self, namespaces, BindFile, Spec, DOCKER_DEFAULT_CAPS};
use crate::rootfs::ContainerRootfs;
use std::path::PathBuf;

/// What a start set up on the host, undone by [`Teardown::run`] or on drop.
#[derive(Default)]
struct Teardown {
    cgroup: Option<Cgroup>,
    netns: Option<PathBuf>,
}

impl Teardown {
    /// Best effort: keeps going past errors, logs them, and returns the first.
    fn run(&mut self) -> Result<()> {
        let mut first: Option<ContainerError> = None;
        if let Some(path) = self.netns.take() {
            if let Err(e) = namespaces::unbind_netns(&path) {
                tracing::warn!("{e}");
                first.get_or_insert(e.into());
            }
        }
        if let Some(cg) = self.cgroup.take() {
            // With PID 1 gone the kernel kills the rest of the PID namespace; this also covers
            // a process that got into the cgroup some other way.
            if let Err(e) = cg.kill_all().and_then(|()| cg.remove()) {
                tracing::warn!("{e}");
                first.get_or_insert(e.into());
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        let _ = self.run();
    }
}

impl Runtime {
    /// `berth run`: create, start in the foreground, and with `--rm` remove. Returns the
    /// container's exit code (128+N if a signal N killed it).
    pub fn run(&self, opts: &CreateOptions) -> Result<i32> {
        let record = self.create(opts)?;
        self.start_record(&record)
    }

    /// `berth start`: runs a created or exited container in the foreground.
    pub fn start(&self, query: &str) -> Result<i32> {
        let record = self.resolve(query)?;
        self.start_record(&record)
    }

    fn start_record(&self, record: &ContainerRecord) -> Result<i32> {
        let id = &record.id;
        let Some(lock) = self.try_lock(id)? else {
            let running = state::read_state(&self.paths, id)?
                .is_some_and(|s| s.effective_status() == Status::Running);
            return Err(if running {
                ContainerError::AlreadyRunning(record.name.clone())
            } else {
                ContainerError::Busy(record.name.clone())
            });
        };
        // Removed while we waited for the lock?
        let Some(record) = state::read_record(&self.paths, id)? else {
            return Err(ContainerError::NoSuchContainer(record.name.clone()));
        };
        let result = self.start_locked(&record);
        if record.config.auto_remove {
            if let Err(e) = self.destroy_locked(id) {
                tracing::warn!(container = %id, "cannot remove the container (--rm): {e}");
            }
        }
        drop(lock);
        result
    }

    fn start_locked(&self, record: &ContainerRecord) -> Result<i32> {
        let id = &record.id;
        let config = &record.config;
        let rootfs = ContainerRootfs::open(&self.paths.container_dir(id))?;
        let layout = Layout::detect()?;
        let cgroup = Cgroup::new(&layout, &self.cgroup_parent, id)?;
        let new_netns = config.network == NetworkMode::None;
        let spec = Spec {
            rootfs,
            hostname: config.hostname.clone(),
            argv: config.argv(),
            env: config.env.clone(),
            user: config.user.clone(),
            cwd: config.working_dir.clone(),
            new_netns,
            cgroups: Some(layout),
            files: ETC_FILES
                .iter()
                .map(|name| BindFile {
                    source: self.paths.etc_file(id, name),
                    target: format!("/etc/{name}"),
                })
                .collect(),
            capabilities: DOCKER_DEFAULT_CAPS,
        };

        let mut teardown = Teardown::default();
        // Reuse of a leftover leaf from a crashed run would mix in its processes: clear it.
        if cgroup.exists() {
            cgroup.kill_all()?;
        }
        cgroup.create()?;
        teardown.cgroup = Some(cgroup.clone());

        let me = std::process::id() as i32;
        let mut st = RuntimeState {
            status: Status::Running,
            pid: 0,
            monitor_pid: me,
            monitor_start: state::process_start_time(me).unwrap_or(0),
            started_at: Some(now()),
            finished_at: None,
            exit_code: None,
            error: None,
            cgroup_parent: Some(self.cgroup_parent.clone()),
        };

        let spawned = isolate::spawn(&spec)?;
        let pid = spawned.pid();
        // Into the cgroup before the child does anything: a fork bomb is bounded from its
        // first fork once limits exist.
        cgroup.add_pid(pid)?;
        if new_netns {
            let path = self.paths.netns(id);
            namespaces::bind_netns(pid, &path)?;
            teardown.netns = Some(path);
        }
        st.pid = pid;
        state::write_state(&self.paths, id, &st)?;

        let outcome = spawned.start().and_then(|running| running.wait());
        let (code, error) = match &outcome {
            Ok(status) => (status.code(), None),
            Err(e) => (e.exit_code(), Some(e.to_string())),
        };
        let cleanup = teardown.run();
        st.status = Status::Exited;
        st.pid = 0;
        st.exit_code = Some(code);
        st.error = error;
        st.finished_at = Some(now());
        let recorded = state::write_state(&self.paths, id, &st);
        outcome?;
        cleanup?;
        recorded?;
        Ok(code)
    }
}
