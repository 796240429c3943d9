//! Starting a container and monitoring it: in the foreground berth itself is the monitor,
//! detached a forked child of it is ([`super::detach`]); the code below is the same. It creates the
//! cgroup, spawns the process chain, puts the child into the cgroup and binds its network
//! namespace before the child runs anything of the user's, waits (passing signals on),
//! records the exit status, and tears everything down: cgroup, netns bind mount, and with
//! `--rm` the whole container. A guard undoes what was set up on every error path.
//!
//! The container's mounts live only in its own mount namespace and vanish with its last
//! process; the host never sees them, so there is nothing to unmount on the host side.

use super::config::{CreateOptions, NetworkMode};
use super::detach::{Attach, Streams};
use super::lifecycle::{now, Known, Runtime, ETC_FILES};
use super::logs::LogWriter;
use super::network;
use super::state::{self, ContainerRecord, RuntimeState, Status};
use super::{ContainerError, Result};
use crate::cgroup::Cgroup;
use crate::isolate::{self, namespaces, BindFile, Spec};
use crate::rootfs::ContainerRootfs;
use std::path::PathBuf;

/// What a start set up on the host, undone by [`Teardown::run`] or on drop.
#[derive(Default)]
struct Teardown {
    cgroup: Option<Cgroup>,
    netns: Option<PathBuf>,
    /// berthd, and the container id to detach from every network.
    networks: Option<(crate::api::Client, String)>,
}

impl Teardown {
    /// Best effort: keeps going past errors, logs them, and returns the first.
    fn run(&mut self) -> Result<()> {
        let mut first: Option<ContainerError> = None;
        if let Some((client, id)) = self.networks.take() {
            network::disconnect(&client, &id);
        }
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
    /// The container's output is relayed to ours (and logged); with `interactive` (`-i`) our
    /// stdin is piped to it, else it reads /dev/null.
    pub fn run(&self, opts: &CreateOptions, interactive: bool) -> Result<i32> {
        let record = self.create(opts)?;
        self.start_record(&record, interactive)
    }

    /// `berth start -a`: runs a created or exited container in the foreground.
    pub fn start(&self, query: &str, interactive: bool) -> Result<i32> {
        let record = self.resolve(query)?;
        self.start_record(&record, interactive)
    }

    fn start_record(&self, record: &ContainerRecord, interactive: bool) -> Result<i32> {
        let id = &record.id;
        let lock = self.lock_for_start(record)?;
        // Removed while we waited for the lock?
        let Some(record) = state::read_record(&self.paths, id)? else {
            return Err(ContainerError::NoSuchContainer(record.name.clone()));
        };
        let mut attach = Attach {
            echo: true,
            stdin: interactive,
            ready: None,
        };
        let result = self.start_locked(&record, &mut attach);
        if record.config.auto_remove {
            if let Err(e) = self.destroy_locked(id, Known::after(&result, &record)) {
                tracing::warn!(container = %id, "cannot remove the container (--rm): {e}");
            }
        }
        drop(lock);
        result
    }

    /// Starts the container and monitors it until it exits: the code of both a foreground
    /// start and a detached monitor ([`super::detach`]).
    pub(super) fn start_locked(
        &self,
        record: &ContainerRecord,
        attach: &mut Attach,
    ) -> Result<i32> {
        let id = &record.id;
        let config = &record.config;
        let rootfs = ContainerRootfs::open(&self.paths.container_dir(id))?;
        let layout = self.cgroup_layout()?;
        let cgroup = Cgroup::new(&layout, &self.cgroup_parent, id)?;
        let new_netns = config.network != NetworkMode::Host;
        let mut spec = Spec {
            init: config.init,
            stdio: None,
            tty: None,
            rootfs,
            hostname: config.hostname.clone(),
            argv: config.argv(),
            env: config.env.clone(),
            user: config.user.clone(),
            cwd: config.working_dir.clone(),
            new_netns,
            pid_ns: self.shared_ns(&config.pid_mode, "pid")?,
            ipc_ns: self.shared_ns(&config.ipc_mode, "ipc")?,
            cgroups: Some(layout),
            self_join: cgroup.self_join_files(),
            into_cgroup: None,
            files: ETC_FILES
                .iter()
                .map(|name| BindFile {
                    source: self.paths.etc_file(id, name),
                    target: format!("/etc/{name}"),
                })
                .collect(),
            capabilities: config.security.capabilities(),
            security: config.security.isolate()?,
        };

        let mut teardown = Teardown::default();
        let reused = cgroup.create()?;
        teardown.cgroup = Some(cgroup.clone());
        // Reuse of a leftover leaf from a crashed run would mix in its processes: clear it.
        if reused {
            cgroup.kill_all()?;
        }
        // v2: the statistics controllers, so that every container has metrics (best effort).
        cgroup.enable_stat_controllers();
        // Limits before the first process exists: its first fork is already bounded.
        cgroup.apply(&config.resources)?;

        let me = std::process::id() as i32;
        let mut st = RuntimeState {
            status: Status::Running,
            pid: 0,
            pid_start: 0,
            monitor_pid: me,
            monitor_start: state::process_start_time(me).unwrap_or(0),
            started_at: Some(now()),
            finished_at: None,
            exit_code: None,
            error: None,
            cgroup_parent: Some(self.cgroup_parent.clone()),
            oom_killed: false,
        };

        let log_path = self.paths.log(id);
        let mut log = Some(
            LogWriter::open(&log_path)
                .map_err(|e| ContainerError::io("cannot open", &log_path, e))?,
        );
        let (mut streams, stdio) = if config.tty {
            let (streams, stdio, pty) = Streams::tty(attach.stdin, attach.echo)?;
            spec.tty = Some(pty);
            (streams, stdio)
        } else {
            Streams::new(attach.stdin)?
        };
        spec.stdio = Some(stdio);
        // Made now that the cgroup exists; closed with the spec once the child is born.
        spec.into_cgroup = cgroup.clone_target();
        let spawned = isolate::spawn(&spec);
        spec.stdio = None; // the container's ends: only the container holds them now
        spec.tty = None;
        spec.into_cgroup = None;
        let spawned = spawned?;
        let pid = spawned.pid();
        // Into the cgroup before the child does anything: a fork bomb is bounded from its
        // first fork once limits exist. On v1 the child joins by itself (cheaper, see
        // `Cgroup::self_join_files`) before it waits for the go signal; on v2 it was born
        // there (`Cgroup::clone_target`) unless the kernel could not.
        if spec.self_join.is_empty() && !spawned.in_cgroup() {
            cgroup.add_pid(pid)?;
        }
        // Before the go byte: every process of the container inherits it.
        // A class's value is best effort (lowering it needs CAP_SYS_RESOURCE); a flag's is not.
        if let Some(adj) = config.resources.effective_oom_score_adj() {
            match crate::cgroup::set_oom_score_adj(pid, adj) {
                Err(e) if config.resources.oom_score_adj.is_none() => tracing::warn!("{e}"),
                r => r?,
            }
        }
        if new_netns {
            let path = self.paths.netns(id);
            namespaces::bind_netns(pid, &path)?;
            teardown.netns = Some(path);
        }
        // Wired before the go byte: the command starts with its network up. A failure
        // detaches what was attached (the teardown) and kills the waiting child.
        if let NetworkMode::Bridge { networks } = &config.network {
            teardown.networks = Some((self.berthd(), id.clone()));
            network::connect(self, id, &record.name, config, networks)?;
        }
        st.pid = pid;
        st.pid_start = state::process_start_time(pid).unwrap_or(0);
        state::write_state(&self.paths, id, &st)?;
        super::events::emit(&self.paths, "start", record, &[]);

        let outcome = spawned.start().and_then(|running| {
            attach.report(Ok(()));
            streams.relay(&mut log, attach.echo);
            running.wait()
        });
        let (code, error) = match &outcome {
            Ok(status) => (status.code(), None),
            Err(e) => (e.exit_code(), Some(e.to_string())),
        };
        // Read before the teardown removes the cgroup and its counters.
        st.oom_killed = cgroup.oom_kills().is_some_and(|n| n > 0);
        if st.oom_killed {
            super::events::emit(&self.paths, "oom", record, &[]);
        }
        super::events::emit(
            &self.paths,
            "die",
            record,
            &[("exitCode", code.to_string())],
        );
        let cleanup = teardown.run();
        st.status = Status::Exited;
        st.pid = 0;
        st.pid_start = 0;
        st.exit_code = Some(code);
        st.error = error;
        st.finished_at = Some(now());
        // A --rm container is removed right after this, run directory and all: its exit is
        // in the events ("die"), and writing a state that nobody reads would cost a file
        // replacement (a flush and, on a discard-mounted disk, a synchronous discard).
        let recorded = if config.auto_remove {
            Ok(())
        } else {
            state::write_state(&self.paths, id, &st)
        };
        outcome?;
        cleanup?;
        recorded?;
        Ok(code)
    }
}
