//! Work inside another network namespace from a dedicated OS thread.
//!
//! `setns(2)` changes the namespace of the calling *thread*. A tokio worker that called it would
//! carry the container's namespace into every task scheduled on it afterwards, so berth never
//! calls `setns` from an async task (CNI documents the same trap for Go, `pkg/ns/README.md`).
//! Instead an [`NsThread`] is a fresh `std::thread` that enters the namespace once, runs the
//! closures it is sent (opening a netlink socket, writing per-namespace sysctls under
//! `/proc/sys/net`, which resolves against the opening thread's namespace), and exits when the
//! `NsThread` is dropped. The thread is never reused, so the namespace never leaks.
//!
//! A netlink socket opened on that thread stays bound to the namespace for its whole life
//! (netavark's "socket per namespace"), so the rtnetlink handle built on it is used from async
//! code with no further namespace switches.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use tokio::sync::oneshot;

use super::NetlinkError;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A thread living in a network namespace; see the module docs.
pub struct NsThread {
    path: PathBuf,
    tx: mpsc::Sender<Job>,
}

/// Open a namespace file, telling a vanished namespace from other errors.
pub(crate) fn open_netns(path: &Path) -> Result<File, NetlinkError> {
    File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            NetlinkError::NetnsGone {
                path: path.to_path_buf(),
            }
        } else {
            NetlinkError::Netns {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn enter(path: &Path) -> Result<(), NetlinkError> {
    let f = open_netns(path)?;
    setns(&f, CloneFlags::CLONE_NEWNET).map_err(|e| match e {
        // EINVAL: the file is no namespace any more (its bind mount is gone and the empty mount
        // point is left)
        Errno::EINVAL => NetlinkError::NetnsGone {
            path: path.to_path_buf(),
        },
        e => NetlinkError::Netns {
            path: path.to_path_buf(),
            source: io::Error::from(e),
        },
    })
}

impl NsThread {
    /// Start a thread inside the network namespace at `path` (a bind-mounted
    /// `/proc/<pid>/ns/net`, `/run/netns/NAME`, or `/proc/<pid>/ns/net` itself).
    pub async fn enter(path: &Path) -> Result<NsThread, NetlinkError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let p = path.to_path_buf();
        std::thread::Builder::new()
            .name("berth-netns".into())
            .spawn(move || {
                let r = enter(&p);
                let ok = r.is_ok();
                let _ = ready_tx.send(r);
                if ok {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                }
            })
            .map_err(|source| NetlinkError::Netns {
                path: path.to_path_buf(),
                source,
            })?;
        ready_rx.await.map_err(|_| NetlinkError::Netns {
            path: path.to_path_buf(),
            source: io::Error::other("namespace thread died"),
        })??;
        Ok(NsThread {
            path: path.to_path_buf(),
            tx,
        })
    }

    /// The namespace this thread lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the namespace thread and wait (asynchronously) for its result.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, NetlinkError> {
        let (otx, orx) = oneshot::channel();
        let died = || NetlinkError::Netns {
            path: self.path.clone(),
            source: io::Error::other("namespace thread died"),
        };
        self.tx
            .send(Box::new(move || {
                let _ = otx.send(f());
            }))
            .map_err(|_| died())?;
        orx.await.map_err(|_| died())
    }
}
