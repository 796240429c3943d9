//! Work inside another network namespace from a dedicated OS thread.
//!
//! `setns(2)` changes the namespace of the calling *thread*. A tokio worker that called it would
//! carry the container's namespace into every task scheduled on it afterwards, so berth never
//! calls `setns` from an async task (CNI documents the same trap for Go, `pkg/ns/README.md`).
//! Instead an [`NsThread`] is a `std::thread` that enters the namespace, runs the closures it is
//! sent (opening a netlink socket, writing per-namespace sysctls under `/proc/sys/net`, which
//! resolve against the opening thread's namespace), and leaves when the `NsThread` is dropped.
//!
//! Threads are pooled: starting one costs more than the rest of an attach's work inside the
//! namespace. A thread goes back to the pool only after `setns` has returned it to the
//! namespace it was born in (the agent's); if that fails it exits, so a pooled thread never
//! carries a container's namespace into the next one.
//!
//! A netlink socket opened on that thread stays bound to the namespace for its whole life
//! (netavark's "socket per namespace"), so the rtnetlink handle built on it is used from async
//! code with no further namespace switches.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, OnceLock};

use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use tokio::sync::oneshot;

use super::NetlinkError;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Idle threads kept for the next namespaces; more are started when needed.
const MAX_IDLE: usize = 16;

/// A thread living in a network namespace; see the module docs.
pub struct NsThread {
    path: PathBuf,
    tx: mpsc::Sender<Job>,
    /// Whether the thread got in (taken by the first to look).
    entered: Mutex<Option<oneshot::Receiver<Result<(), NetlinkError>>>>,
}

/// What a pooled thread is asked to do: enter `path`, report, run `jobs` until they end.
struct Session {
    path: PathBuf,
    ready: oneshot::Sender<Result<(), NetlinkError>>,
    jobs: mpsc::Receiver<Job>,
}

/// Senders of the idle pooled threads.
static IDLE: Mutex<Vec<mpsc::Sender<Session>>> = Mutex::new(Vec::new());

/// The namespace pooled threads return to: the one of the threads that start them (the
/// agent's; async tasks never switch namespaces).
static HOME: OnceLock<File> = OnceLock::new();

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

/// Body of a pooled thread: serve sessions while it can get home after each.
fn serve(home: &'static File, sessions: mpsc::Receiver<Session>, me: mpsc::Sender<Session>) {
    while let Ok(s) = sessions.recv() {
        let r = enter(&s.path);
        let entered = r.is_ok();
        let _ = s.ready.send(r);
        if entered {
            while let Ok(job) = s.jobs.recv() {
                job();
            }
            if let Err(e) = setns(home, CloneFlags::CLONE_NEWNET) {
                tracing::warn!(error = %e, "a namespace thread cannot return to the agent's namespace; it exits");
                return;
            }
        }
        let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE {
            return;
        }
        idle.push(me.clone());
    }
}

/// An idle pooled thread, or a new one.
fn worker() -> io::Result<mpsc::Sender<Session>> {
    if let Some(w) = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop() {
        return Ok(w);
    }
    let home = match HOME.get() {
        Some(h) => h,
        None => {
            let h = File::open("/proc/thread-self/ns/net")?;
            HOME.get_or_init(|| h)
        }
    };
    let (tx, rx) = mpsc::channel::<Session>();
    let me = tx.clone();
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || serve(home, rx, me))?;
    Ok(tx)
}

impl NsThread {
    /// A thread inside the network namespace at `path` (a bind-mounted `/proc/<pid>/ns/net`,
    /// `/run/netns/NAME`, or `/proc/<pid>/ns/net` itself), once it is in. Call it from a
    /// thread that is in the agent's own namespace (any async task).
    pub async fn enter(path: &Path) -> Result<NsThread, NetlinkError> {
        let t = NsThread::start(path)?;
        let entered = t.entered.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(rx) = entered {
            rx.await.map_err(|_| t.died())??;
        }
        Ok(t)
    }

    /// Like [`NsThread::enter`], without waiting for the thread to be in: jobs sent with
    /// [`NsThread::run`] queue up and run once it is, or fail with the reason it could not
    /// enter.
    pub fn start(path: &Path) -> Result<NsThread, NetlinkError> {
        let (tx, jobs) = mpsc::channel::<Job>();
        let (ready, ready_rx) = oneshot::channel();
        let mut session = Session {
            path: path.to_path_buf(),
            ready,
            jobs,
        };
        // an idle thread may have exited since it was pooled (it could not get home): try the
        // next, then a new one
        loop {
            let w = worker().map_err(|source| NetlinkError::Netns {
                path: path.to_path_buf(),
                source,
            })?;
            match w.send(session) {
                Ok(()) => break,
                Err(mpsc::SendError(s)) => session = s,
            }
        }
        Ok(NsThread {
            path: path.to_path_buf(),
            tx,
            entered: Mutex::new(Some(ready_rx)),
        })
    }

    fn died(&self) -> NetlinkError {
        NetlinkError::Netns {
            path: self.path.clone(),
            source: io::Error::other("namespace thread died"),
        }
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
        let sent = self.tx.send(Box::new(move || {
            let _ = otx.send(f());
        }));
        if sent.is_ok() {
            if let Ok(r) = orx.await {
                return Ok(r);
            }
        }
        // the thread never ran the job: it could not enter the namespace (it reported why
        // before dropping its jobs), or it died
        let entered = self
            .entered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match entered.map(|mut rx| rx.try_recv()) {
            Some(Ok(Err(e))) => Err(e),
            _ => Err(self.died()),
        }
    }
}
