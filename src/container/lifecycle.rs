//! Creating, finding, listing and removing containers. Starting one is in [`super::monitor`].
//!
//! Creation happens under the image store's lock, so that a name is checked and taken
//! atomically and `rmi` cannot remove the image between its resolution and the container's
//! `image-id`. Every step leaves nothing behind on failure (a guard removes the half-made
//! container directory). Removal is best-effort and idempotent: it keeps going past errors,
//! so a container left behind by a killed runtime can always be removed.

use super::config::{ContainerConfig, CreateOptions, ImageConfig, NetworkMode};
use super::state::{self, ContainerRecord, Paths, RuntimeState, Status};
use super::{id, network, ContainerError, Result};
use crate::cgroup::{Cgroup, Layout};
use crate::fsutil::{self, FileLock};
use crate::image::store::Store;
use crate::isolate::namespaces;
use crate::options::GlobalOptions;
use crate::rootfs::{ContainerRootfs, Durability, LowerLayers};
use serde_json::{json, Value};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What the caller of [`Runtime::destroy_locked`] knows of the container already.
#[derive(Clone, Copy)]
pub(super) enum Known<'a> {
    /// Nothing: every leftover is looked for (processes, cgroup, endpoints, netns mount).
    Nothing,
    /// Its record, right after a start whose teardown succeeded: no process, cgroup, endpoint
    /// or netns mount is left, and the record need not be read again.
    TornDown(&'a ContainerRecord),
}

impl<'a> Known<'a> {
    /// After `start_locked` returned `result` for `record`: it succeeds only when its teardown
    /// did.
    pub(super) fn after<T>(result: &Result<T>, record: &'a ContainerRecord) -> Known<'a> {
        match result {
            Ok(_) => Known::TornDown(record),
            Err(_) => Known::Nothing,
        }
    }
}

/// The container runtime, bound to one persistent root, run root and cgroup parent.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub(super) paths: Paths,
    pub(super) cgroup_parent: String,
    pub(super) store: Store,
    /// The host's cgroup mounts, read once: `run --rm` needs them to start the container and
    /// again to remove it, and each read parses the whole mount table.
    layout: OnceLock<Layout>,
}

/// A container as `ps` and `inspect` show it.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub record: ContainerRecord,
    pub state: Option<RuntimeState>,
    pub status: Status,
}

/// The files bind-mounted into every container's /etc.
pub const ETC_FILES: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

impl Runtime {
    pub fn new(root: &Path, run_root: &Path, cgroup_parent: &str) -> Result<Runtime> {
        crate::cgroup::parse_parent(cgroup_parent)?;
        Ok(Runtime {
            paths: Paths::new(root, run_root),
            cgroup_parent: cgroup_parent.to_string(),
            store: Store::open(root)?,
            layout: OnceLock::new(),
        })
    }

    pub fn from_options(g: &GlobalOptions) -> Result<Runtime> {
        Runtime::new(&g.root, &g.run_root, &g.cgroup_parent)
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// `berth create`: records a container of `opts.image` with its writable layer, ready to
    /// start. Nothing is left behind on error.
    pub fn create(&self, opts: &CreateOptions) -> Result<ContainerRecord> {
        let name = opts.name.as_deref().map(id::validate_name).transpose();
        let name = name.map_err(ContainerError::InvalidName)?;
        // berthd and its networks are checked before anything is created.
        let network = self.resolve_network(opts.network.as_ref())?;
        let _lock = self.store.lock()?;
        let image = self.store.resolve(&opts.image)?;
        let image_config = ImageConfig::from_blob(&self.store.read_blob(&image.id)?)?;
        let lowers = LowerLayers::new(self.store.layers_dir(), self.store.overlay_lowers(&image)?);

        let records = state::list_records(&self.paths)?;
        let taken = |n: &str| records.iter().find(|r| r.name == n);
        let name = match name {
            Some(n) => match taken(&n) {
                Some(r) => {
                    return Err(ContainerError::NameInUse {
                        name: n,
                        id: id::short(&r.id).to_string(),
                    })
                }
                None => n,
            },
            None => (0..1000)
                .map(id::generate_name)
                .find(|n| taken(n).is_none())
                .unwrap_or_else(|| id::generate_name(u32::MAX)),
        };
        let mut cid = id::generate();
        while self.paths.container_dir(&cid).exists() {
            cid = id::generate();
        }
        // With the host's network the container also gets the host's name, as with docker.
        let mut opts = opts.clone();
        opts.network = Some(network);
        if opts.network == Some(NetworkMode::Host) && opts.hostname.is_none() {
            opts.hostname = nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok());
        }
        let mut config =
            ContainerConfig::resolve(&image_config, &opts, &cid, |k| std::env::var(k).ok())?;
        super::exec::resolve_ns_targets(&mut config, &records)?;

        let dir = self.paths.container_dir(&cid);
        let containers = self.paths.containers_dir();
        fs::create_dir_all(&containers)
            .map_err(|e| ContainerError::io("cannot create", &containers, e))?;
        fs::create_dir(&dir).map_err(|e| ContainerError::io("cannot create", &dir, e))?;
        let guard = DirGuard {
            dir: Some(dir.clone()),
        };
        let image_id_path = self.paths.image_id(&cid);
        // The files below live in the new container directory and only count once the record
        // (written last, durably unless --rm) exists: no fsync of their own.
        fsutil::write_atomic_volatile(&image_id_path, image.id.to_string().as_bytes())
            .map_err(|e| ContainerError::io("cannot write", &image_id_path, e))?;
        // A --rm container's writes go with it: nothing to keep through a host crash.
        let durability = if config.auto_remove {
            Durability::Volatile
        } else {
            Durability::Durable
        };
        ContainerRootfs::create_as(&dir, lowers, durability)?;
        self.write_etc_files(&cid, &config)?;
        let record = ContainerRecord {
            id: cid,
            name,
            created: now(),
            image_id: image.id.to_string(),
            config,
        };
        state::write_record(&self.paths, &record)?;
        guard.disarm();
        super::events::emit(&self.paths, "create", &record, &[]);
        Ok(record)
    }

    fn write_etc_files(&self, id: &str, config: &ContainerConfig) -> Result<()> {
        let host_file = |p: &str| fs::read(p).unwrap_or_default();
        let (hosts, resolv) = match &config.network {
            NetworkMode::Host => {
                let mut hosts = host_file("/etc/hosts");
                for (h, ip) in &config.add_hosts {
                    hosts.extend_from_slice(format!("{ip}\t{h}\n").as_bytes());
                }
                let resolv = if config.dns.is_empty() {
                    host_file("/etc/resolv.conf")
                } else {
                    network::resolv_conf(config, None)
                };
                (hosts, resolv)
            }
            NetworkMode::None => (
                network::hosts_file(config, "", &[]),
                if config.dns.is_empty() {
                    b"# no network (--network none)\n".to_vec()
                } else {
                    network::resolv_conf(config, None)
                },
            ),
            // Rewritten in place at start, once berthd has given the addresses.
            NetworkMode::Bridge { .. } => (
                network::hosts_file(config, "", &[]),
                network::resolv_conf(config, None),
            ),
        };
        let files = [
            ("hostname", format!("{}\n", config.hostname).into_bytes()),
            ("hosts", hosts),
            ("resolv.conf", resolv),
        ];
        for (name, data) in files {
            let path = self.paths.etc_file(id, name);
            fsutil::write_atomic_volatile(&path, &data)
                .map_err(|e| ContainerError::io("cannot write", &path, e))?;
        }
        Ok(())
    }

    /// Finds a container by full id, name or unique id prefix.
    pub fn resolve(&self, query: &str) -> Result<ContainerRecord> {
        let records = state::list_records(&self.paths)?;
        let pairs: Vec<(String, String)> = records
            .iter()
            .map(|r| (r.id.clone(), r.name.clone()))
            .collect();
        match id::resolve(&pairs, query) {
            id::Resolved::Found(found) => records
                .into_iter()
                .find(|r| r.id == found)
                .ok_or_else(|| ContainerError::NoSuchContainer(query.to_string())),
            id::Resolved::Ambiguous => Err(ContainerError::Ambiguous(query.to_string())),
            id::Resolved::NotFound => Err(ContainerError::NoSuchContainer(query.to_string())),
        }
    }

    /// The record with its runtime state.
    pub fn info(&self, record: ContainerRecord) -> Result<ContainerInfo> {
        let state = state::read_state(&self.paths, &record.id)?;
        let status = state
            .as_ref()
            .map_or(Status::Created, |s| s.effective_status());
        Ok(ContainerInfo {
            record,
            state,
            status,
        })
    }

    /// Containers, newest first; only running ones unless `all`.
    pub fn list(&self, all: bool) -> Result<Vec<ContainerInfo>> {
        let mut out = Vec::new();
        for record in state::list_records(&self.paths)? {
            let info = self.info(record)?;
            if all || info.status == Status::Running {
                out.push(info);
            }
        }
        out.sort_by(|a, b| b.record.created.cmp(&a.record.created));
        Ok(out)
    }

    /// Takes the container's run lock (held by whoever runs it) without waiting.
    pub(super) fn try_lock(&self, id: &str) -> Result<Option<FileLock>> {
        let dir = self.paths.run_dir(id);
        fs::create_dir_all(&dir).map_err(|e| ContainerError::io("cannot create", &dir, e))?;
        let path = self.paths.lock(id);
        FileLock::try_exclusive(&path).map_err(|e| ContainerError::io("cannot lock", &path, e))
    }

    /// `berth rm [-f]`: removes a container that is not running; with `force`, kills it first.
    /// Returns the id.
    pub fn remove(&self, query: &str, force: bool) -> Result<String> {
        let id = match self.resolve(query) {
            Ok(r) => r.id,
            // A directory without a record (creation interrupted) is removable by full id.
            Err(ContainerError::NoSuchContainer(_))
                if id::is_full_id(query) && self.paths.container_dir(query).is_dir() =>
            {
                query.to_string()
            }
            Err(e) => return Err(e),
        };
        let _lock = match self.try_lock(&id)? {
            Some(lock) => lock,
            None if !force => {
                let running = state::read_state(&self.paths, &id)?
                    .is_some_and(|s| s.effective_status() == Status::Running);
                return Err(if running {
                    ContainerError::Running(query.to_string())
                } else {
                    ContainerError::Busy(query.to_string())
                });
            }
            None => {
                // The monitor holds the lock: kill the container, then wait for the monitor
                // to finish its teardown and let go.
                if let Err(e) = self.cgroup_of(&id)?.kill_all() {
                    tracing::warn!("{e}");
                }
                let path = self.paths.lock(&id);
                match FileLock::exclusive(&path) {
                    Ok(lock) => lock,
                    // The monitor of a --rm container removed it, lock file and all.
                    Err(_) if !self.paths.container_dir(&id).exists() => return Ok(id),
                    Err(e) => return Err(ContainerError::io("cannot lock", &path, e)),
                }
            }
        };
        if !self.paths.container_dir(&id).exists() {
            return Ok(id); // removed meanwhile (a --rm container's monitor did it)
        }
        self.destroy_locked(&id, Known::Nothing)?;
        Ok(id)
    }

    /// The container's cgroup, under the parent it was started with.
    pub(super) fn cgroup_of(&self, id: &str) -> Result<Cgroup> {
        let parent = state::read_state(&self.paths, id)
            .ok()
            .flatten()
            .and_then(|s| s.cgroup_parent)
            .unwrap_or_else(|| self.cgroup_parent.clone());
        Ok(Cgroup::new(&self.cgroup_layout()?, &parent, id)?)
    }

    /// The host's cgroup layout (the `layout` field).
    pub(super) fn cgroup_layout(&self) -> Result<Layout> {
        if let Some(layout) = self.layout.get() {
            return Ok(layout.clone());
        }
        let layout = Layout::detect()?;
        Ok(self.layout.get_or_init(|| layout).clone())
    }

    /// Removes everything of a container: leftover processes and cgroup, the netns bind
    /// mount, the writable layer, the runtime state and the record. The caller holds the
    /// container's lock; `known` is what it knows already. Keeps going past errors and returns
    /// the first.
    pub(super) fn destroy_locked(&self, id: &str, known: Known<'_>) -> Result<()> {
        let mut first: Option<ContainerError> = None;
        let mut clean = true;
        let read;
        let destroyed = match known {
            Known::TornDown(record) => Some(record),
            Known::Nothing => {
                read = state::read_record(&self.paths, id).ok().flatten();
                read.as_ref()
            }
        };
        let mut note = |r: Result<()>| {
            if let Err(e) = r {
                tracing::warn!(container = id, "{e}");
                first.get_or_insert(e);
                clean = false;
            }
            clean
        };
        if let Known::Nothing = known {
            note(self.cgroup_of(id).and_then(|cg| {
                cg.kill_all()?;
                cg.remove()?;
                Ok(())
            }));
            if let Some(r) = destroyed {
                if matches!(r.config.network, NetworkMode::Bridge { .. }) {
                    network::disconnect(&self.berthd(), id);
                }
            }
            note(namespaces::unbind_netns(&self.paths.netns(id)).map_err(Into::into));
        }
        let dir = self.paths.container_dir(id);
        match ContainerRootfs::open(&dir) {
            // Unmounted here; the files go with the directory into the trash below.
            Ok(rootfs) => note(rootfs.release().map_err(Into::into)),
            Err(crate::rootfs::RootfsError::NotPrepared { .. }) => true,
            Err(e) => note(Err(e.into())),
        };
        let trash = super::trash::Trash::new(&self.paths.root);
        // Into the trash rather than deleted here, where they share a filesystem: deleting a
        // file waits on the disk on some (see `trash`). The run root is a tmpfs in production,
        // where the rename fails and deleting is cheap.
        let run_dir = self.paths.run_dir(id);
        let mut trashed = trash.put(&run_dir).unwrap_or_else(|_| {
            note(remove_tree(&run_dir));
            false
        });
        // Only when everything before succeeded: if something is still mounted or running,
        // delete nothing more, so nothing mounted into the container can lose files; `rm`
        // again once the error is fixed. The record goes in any case, so that the container
        // is no longer listed.
        if note(Ok(())) {
            // One rename takes the record and the files out of sight at once.
            match trash.put(&dir) {
                Ok(moved) => trashed |= moved,
                Err(_) => {
                    // The record first, so an interrupted removal never leaves a listed
                    // container without its files; the rest of the directory follows.
                    note(self.remove_record(id));
                    note(remove_tree(&dir));
                }
            }
        } else {
            note(self.remove_record(id));
        }
        if let (Some(r), None) = (destroyed, &first) {
            super::events::emit(&self.paths, "destroy", r, &[]);
        }
        // Last: after a fork, every page this process writes is copied first.
        if trashed {
            trash.empty_later();
        }
        first.map_or(Ok(()), Err)
    }

    fn remove_record(&self, id: &str) -> Result<()> {
        let record = self.paths.record(id);
        match fs::remove_file(&record) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(ContainerError::io("cannot remove", &record, e))
            }
            _ => Ok(()),
        }
    }

    /// The JSON `berth inspect` prints for one container.
    pub fn inspect_json(&self, info: &ContainerInfo) -> Value {
        let r = &info.record;
        let c = &r.config;
        let st = info.state.as_ref();
        let dir = self.paths.container_dir(&r.id);
        let rootfs = ContainerRootfs::open(&dir).ok();
        let path_of = |f: fn(&ContainerRootfs) -> &Path| {
            rootfs.as_ref().map(|fs| f(fs).display().to_string())
        };
        let lower = rootfs.as_ref().map(|fs| {
            let dirs: Vec<String> = fs
                .lowers()
                .dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            dirs.join(":")
        });
        let argv = c.argv();
        let mut v = json!({
            "Id": r.id,
            "Created": r.created,
            "Name": r.name,
            "Path": argv.first(),
            "Args": argv.get(1..).unwrap_or(&[]),
            "Image": r.image_id,
            "State": {
                "Status": info.status.as_str(),
                "Running": info.status == Status::Running,
                "Dead": info.status == Status::Dead,
                "OOMKilled": st.is_some_and(|s| s.oom_killed),
                "Pid": if info.status == Status::Running { st.map_or(0, |s| s.pid) } else { 0 },
                "ExitCode": st.and_then(|s| s.exit_code).unwrap_or(0),
                "Error": st.and_then(|s| s.error.clone()).unwrap_or_default(),
                "StartedAt": st.and_then(|s| s.started_at.clone()),
                "FinishedAt": st.and_then(|s| s.finished_at.clone()),
            },
            "Config": {
                "Hostname": c.hostname,
                "User": c.user,
                "Env": c.env,
                "Entrypoint": c.entrypoint,
                "Cmd": c.cmd,
                "WorkingDir": c.working_dir,
                "Image": c.image,
                "StopSignal": c.stop_signal,
                "Labels": c.labels,
                "Tty": c.tty,
            },
            "HostConfig": {
                "NetworkMode": c.network.as_str(),
                "AutoRemove": c.auto_remove,
                "PidMode": c.pid_mode.to_docker(""),
                "IpcMode": c.ipc_mode.to_docker("private"),
                "CgroupParent": st.and_then(|s| s.cgroup_parent.clone()).unwrap_or_else(|| self.cgroup_parent.clone()),
            },
            "GraphDriver": {
                "Name": "overlay",
                "Data": {
                    "LowerDir": lower,
                    "UpperDir": path_of(ContainerRootfs::upper),
                    "WorkDir": path_of(ContainerRootfs::work),
                    "MergedDir": path_of(ContainerRootfs::merged),
                },
            },
            "HostnamePath": self.paths.etc_file(&r.id, "hostname"),
            "HostsPath": self.paths.etc_file(&r.id, "hosts"),
            "ResolvConfPath": self.paths.etc_file(&r.id, "resolv.conf"),
            "NetworkSettings": self.network_settings(info),
            "NetnsPath": (c.network != NetworkMode::Host).then(|| self.paths.netns(&r.id)),
        });
        // docker's resource fields sit directly in HostConfig.
        if let (Some(host), Value::Object(res)) = (
            v.get_mut("HostConfig").and_then(Value::as_object_mut),
            c.resources.inspect(),
        ) {
            host.extend(res);
        }
        v
    }
}

/// Now, RFC 3339 with nanoseconds (sortable).
pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn remove_tree(path: &Path) -> Result<()> {
    fsutil::remove_dir_all_if_exists(path).map_err(|e| ContainerError::io("cannot remove", path, e))
}

/// Removes a half-made container directory (and its writable layer) unless disarmed.
struct DirGuard {
    dir: Option<PathBuf>,
}

impl DirGuard {
    fn disarm(mut self) {
        self.dir = None;
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            if let Ok(rootfs) = ContainerRootfs::open(&dir) {
                let _ = rootfs.remove();
            }
            let _ = fsutil::remove_dir_all_if_exists(&dir);
        }
    }
}
