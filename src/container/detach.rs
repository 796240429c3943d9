//! Detached containers (`run -d`, `start` without `-a`) and the stdio relay every monitor uses.
//!
//! The CLI does all the work up to the start itself, then forks: the child calls `setsid`,
//! points its own stdio at /dev/null (so that a caller reading the CLI's output sees EOF when
//! the CLI exits) and becomes the container's monitor, running exactly the code of a
//! foreground start ([`Runtime::start_locked`]). No re-exec of the berth binary: the fork
//! already has the resolved record, the open store and the container's lock (an `flock` is
//! shared by both processes after fork and stays held by the monitor when the CLI exits). The
//! CLI waits on a pipe until the monitor reports that the command runs — then it prints the id
//! and exits 0 — or why it failed, with the exit code to return (125/126/127).
//!
//! The relay: the container's stdout and stderr are pipes read by the monitor, which appends
//! every line to the json log and, in the foreground, copies the bytes to its own stdout and
//! stderr; with `-i` it copies its stdin into the container's stdin pipe, else the container
//! reads /dev/null. The container never holds a file of the caller's.
//!
//! With `-t` the container's stdio is a pty that its init allocates in the container's devpts
//! and whose master it sends back over a socketpair; the relay is then [`crate::tty::relay`],
//! which logs everything as `stdout` (a terminal has one output stream, as with docker).

use super::lifecycle::{Known, Runtime};
use super::logs::{LogWriter, Stream};
use super::state::{self, ContainerRecord, Status};
use super::{ContainerError, CreateOptions, Result};
use crate::isolate::{namespaces, StdioFds};
use crate::tty::{self, PtyRequest};
use rustix::fd::{AsRawFd, OwnedFd};
use std::fs::File;
use std::io::{self, Read, Write};

/// How a monitor treats the container's stdio and its caller.
#[derive(Debug, Default)]
pub(super) struct Attach {
    /// Copy the container's output to our own stdout/stderr (foreground).
    pub echo: bool,
    /// Copy our stdin to the container's (`-i`).
    pub stdin: bool,
    /// Detached: the pipe to the waiting CLI.
    pub ready: Option<OwnedFd>,
}

impl Attach {
    /// Tells a waiting CLI how the start went (once): a zero byte, or the exit code and why.
    pub fn report(&mut self, outcome: std::result::Result<(), (i32, String)>) {
        let Some(fd) = self.ready.take() else { return };
        let msg = match outcome {
            Ok(()) => vec![0],
            Err((code, why)) => {
                let mut m = vec![u8::try_from(code).unwrap_or(125).max(1)];
                m.extend_from_slice(why.as_bytes());
                m
            }
        };
        let _ = File::from(fd).write_all(&msg);
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| {
        ContainerError::io(
            "cannot create a pipe for",
            std::path::Path::new("the container's stdio"),
            e.into(),
        )
    })
}

/// The monitor's ends of the container's stdio pipes.
pub(super) struct Streams {
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    /// `-t`: the socket on which the container's init sends the pty master.
    console: Option<Console>,
}

struct Console {
    socket: OwnedFd,
    stdin: bool,
}

impl Streams {
    /// Pipes for stdout and stderr, and for stdin with `interactive` (else /dev/null); returns
    /// the monitor's ends and the container's.
    pub fn new(interactive: bool) -> Result<(Streams, StdioFds)> {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (stdin_theirs, stdin_ours) = if interactive {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            let null = std::path::Path::new("/dev/null");
            let f = File::open(null).map_err(|e| ContainerError::io("cannot open", null, e))?;
            (OwnedFd::from(f), None)
        };
        Ok((
            Streams {
                stdout: Some(out_r),
                stderr: Some(err_r),
                stdin: stdin_ours,
                console: None,
            },
            StdioFds {
                stdin: stdin_theirs,
                stdout: out_w,
                stderr: err_w,
            },
        ))
    }

    /// `-t`: the socketpair for the container's pty (sized like the caller's terminal when
    /// `echo`, a foreground run), and /dev/null as the container's stdio until its init puts
    /// the pty's slave there. With `interactive` the relay copies our stdin into the pty.
    pub fn tty(interactive: bool, echo: bool) -> Result<(Streams, StdioFds, PtyRequest)> {
        let size = if echo {
            tty::winsize::of_caller()
        } else {
            None
        };
        let (socket, request) = tty::pty::request(size)?;
        let null = std::path::Path::new("/dev/null");
        let open = || -> Result<OwnedFd> {
            let f = File::open(null).map_err(|e| ContainerError::io("cannot open", null, e))?;
            Ok(OwnedFd::from(f))
        };
        Ok((
            Streams {
                stdout: None,
                stderr: None,
                stdin: None,
                console: Some(Console {
                    socket,
                    stdin: interactive,
                }),
            },
            StdioFds {
                stdin: open()?,
                stdout: open()?,
                stderr: open()?,
            },
            request,
        ))
    }

    /// Copies until the container has closed stdout and stderr (at the latest when its
    /// PID 1 exits: the kernel then kills the rest of its PID namespace). Log errors are
    /// reported once and do not stop the relay.
    pub fn relay(&mut self, log: &mut Option<LogWriter>, echo: bool) {
        if let Some(console) = self.console.take() {
            return relay_tty(console, log, echo);
        }
        let mut our_stdin_open = self.stdin.is_some();
        let mut buf = vec![0u8; 64 * 1024];
        while self.stdout.is_some() || self.stderr.is_some() {
            let mut fds = Vec::with_capacity(3);
            for fd in [&self.stdout, &self.stderr].into_iter().flatten() {
                fds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if our_stdin_open && self.stdin.is_some() {
                fds.push(libc::pollfd {
                    fd: 0,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // SAFETY: poll on an array of pollfds we own, of the given length.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue; // a forwarded signal
                }
                return;
            }
            for p in &fds {
                if p.revents == 0 {
                    continue;
                }
                if p.fd == 0 {
                    // SAFETY: read(2) into our buffer from our own stdin.
                    let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                    let ok = r > 0
                        && self
                            .stdin
                            .as_ref()
                            .is_some_and(|w| write_fd(w.as_raw_fd(), &buf[..r as usize]).is_ok());
                    if !ok {
                        // EOF (or the container closed its stdin): the container sees EOF.
                        self.stdin = None;
                        our_stdin_open = false;
                    }
                    continue;
                }
                let is_out = self.stdout.as_ref().is_some_and(|f| f.as_raw_fd() == p.fd);
                let (slot, stream) = if is_out {
                    (&mut self.stdout, Stream::Stdout)
                } else {
                    (&mut self.stderr, Stream::Stderr)
                };
                // SAFETY: read(2) into our buffer from a pipe we own.
                let r = unsafe { libc::read(p.fd, buf.as_mut_ptr().cast(), buf.len()) };
                if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                if r <= 0 {
                    *slot = None;
                    continue;
                }
                let data = &buf[..r as usize];
                if let Some(w) = log.as_mut() {
                    if let Err(e) = w.write(stream, data) {
                        tracing::warn!("cannot write the container log: {e}");
                        *log = None;
                    }
                }
                if echo {
                    // Our caller may have gone away: its output is not ours to insist on.
                    let _ = write_fd(if is_out { 1 } else { 2 }, data);
                }
            }
        }
        if let Some(w) = log.as_mut() {
            let _ = w.finish();
        }
    }
}

/// The relay of a container with a pty: its output goes to the log as `stdout`.
fn relay_tty(console: Console, log: &mut Option<LogWriter>, echo: bool) {
    let master = match tty::pty::receive_master(&console.socket) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("{e}");
            return;
        }
    };
    drop(console.socket);
    let opts = tty::relay::Options {
        stdin: console.stdin,
        echo,
    };
    tty::relay::run(master, opts, |data| {
        if let Some(w) = log.as_mut() {
            if let Err(e) = w.write(Stream::Stdout, data) {
                tracing::warn!("cannot write the container log: {e}");
                *log = None;
            }
        }
    });
    if let Some(w) = log.as_mut() {
        let _ = w.finish();
    }
}

/// write_all on a raw fd (the process's stdout/stderr must not be buffered here).
fn write_fd(fd: i32, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: write(2) from a live slice to an fd that stays open during the call.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        data = &data[n as usize..];
    }
    Ok(())
}

impl Runtime {
    /// `berth run -d`: creates the container and starts it under a detached monitor;
    /// returns its id once the command runs.
    pub fn run_detached(&self, opts: &CreateOptions) -> Result<String> {
        let record = self.create(opts)?;
        self.start_record_detached(&record)
    }

    /// `berth start` (without `-a`): starts a created or exited container under a detached
    /// monitor; returns its id once the command runs.
    pub fn start_detached(&self, query: &str) -> Result<String> {
        let record = self.resolve(query)?;
        self.start_record_detached(&record)
    }

    fn start_record_detached(&self, record: &ContainerRecord) -> Result<String> {
        let id = record.id.clone();
        let lock = self.lock_for_start(record)?;
        let Some(record) = state::read_record(&self.paths, &id)? else {
            return Err(ContainerError::NoSuchContainer(record.name.clone()));
        };
        if namespaces::is_multithreaded() {
            return Err(crate::isolate::IsolateError::MultiThreaded.into());
        }
        let (ready_r, ready_w) = pipe()?;
        // SAFETY: single-threaded (checked above); the child only runs the monitor and leaves
        // through process::exit, never returning into the caller.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(ContainerError::io(
                "cannot fork the monitor of",
                &self.paths.container_dir(&id),
                io::Error::last_os_error(),
            ));
        }
        if pid == 0 {
            drop(ready_r);
            let mut attach = Attach {
                echo: false,
                stdin: false,
                ready: Some(ready_w),
            };
            become_daemon();
            let result = self.start_locked(&record, &mut attach);
            if record.config.auto_remove {
                if let Err(e) = self.destroy_locked(&id, Known::after(&result, &record)) {
                    tracing::warn!(container = %id, "cannot remove the container (--rm): {e}");
                }
            }
            if let Err(e) = &result {
                attach.report(Err((e.exit_code(), e.to_string())));
            }
            drop(lock);
            std::process::exit(0);
        }
        drop(ready_w);
        // The monitor holds the lock now (the flock is shared across fork): let go of ours.
        drop(lock);
        let mut msg = Vec::new();
        let _ = File::from(ready_r).read_to_end(&mut msg);
        match msg.split_first() {
            Some((0, _)) => Ok(id),
            Some((code, why)) => Err(ContainerError::Start {
                code: i32::from(*code),
                message: String::from_utf8_lossy(why).into_owned(),
            }),
            None => Err(ContainerError::Start {
                code: crate::isolate::EXIT_RUNTIME_ERROR,
                message: format!(
                    "the monitor of container {} died while starting it",
                    &id[..12]
                ),
            }),
        }
    }

    /// Takes the container's lock for a start, or says why not.
    pub(super) fn lock_for_start(
        &self,
        record: &ContainerRecord,
    ) -> Result<crate::fsutil::FileLock> {
        match self.try_lock(&record.id)? {
            Some(lock) => Ok(lock),
            None => {
                let running = state::read_state(&self.paths, &record.id)?
                    .is_some_and(|s| s.effective_status() == Status::Running);
                Err(if running {
                    ContainerError::AlreadyRunning(record.name.clone())
                } else {
                    ContainerError::Busy(record.name.clone())
                })
            }
        }
    }
}

/// Its own session, stdio on /dev/null: the monitor outlives the CLI and holds none of the
/// caller's terminal or pipes.
fn become_daemon() {
    // SAFETY: setsid in a freshly forked child (not a group leader, so it cannot fail).
    unsafe { libc::setsid() };
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto a standard fd number from an fd we own.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}
