//! The monitor's relay for a container with a pty: the caller's stdin into the master (with
//! `-i`), the master's output to the caller's stdout and to a sink (the json log), and the
//! caller's window size onto the master on every SIGWINCH. With `-i` on a terminal, the
//! terminal is raw meanwhile ([`super::raw`]).
//!
//! One poll loop, no threads. The master is non-blocking: input waits in a buffer while the
//! container does not read, and its output keeps flowing meanwhile (a blocking write of
//! stdin into a full pty could otherwise stall the loop while the container blocks on its
//! full output). The loop ends when the master reports EIO, which it does once every slave fd
//! is closed: at the latest when the container's PID 1 exits and the kernel kills the rest of
//! its PID namespace.

use super::raw::RawMode;
use super::winsize::{self, ResizeWatcher};
use rustix::fd::{AsRawFd, OwnedFd};
use std::io;

/// What the relay does besides copying the container's output to the sink.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Copy our stdin into the pty (`-i`); on a terminal, raw mode while attached.
    pub stdin: bool,
    /// Copy the output to our stdout and follow our window size (a foreground run).
    pub echo: bool,
}

/// Relays until the container has closed its pty. `output` gets every chunk of output.
pub fn run(master: OwnedFd, opts: Options, mut output: impl FnMut(&[u8])) {
    let m = master.as_raw_fd();
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(m, libc::F_GETFL);
        libc::fcntl(m, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let raw = if opts.stdin && opts.echo {
        RawMode::enter(0).unwrap_or_else(|e| {
            tracing::warn!("{e}");
            None
        })
    } else {
        None
    };
    let watcher = if opts.echo && winsize::of_caller().is_some() {
        ResizeWatcher::install().ok()
    } else {
        None
    };
    // The size may have changed between the spawn and now.
    if let (Some(_), Some(size)) = (&watcher, winsize::of_caller()) {
        let _ = winsize::set(m, size);
    }

    let mut stdin_open = opts.stdin;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = vec![libc::pollfd {
            fd: m,
            events: libc::POLLIN | if pending.is_empty() { 0 } else { libc::POLLOUT },
            revents: 0,
        }];
        if stdin_open && pending.is_empty() {
            fds.push(libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(w) = &watcher {
            fds.push(libc::pollfd {
                fd: w.fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: poll on an array of pollfds we own, of the given length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue; // SIGWINCH or a forwarded signal
            }
            break;
        }
        let mut done = false;
        for p in &fds {
            if p.revents == 0 {
                continue;
            }
            if p.fd == m {
                if p.revents & libc::POLLOUT != 0 {
                    match write_some(m, &pending) {
                        Ok(k) => drop(pending.drain(..k)),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => pending.clear(), // the pty is going away
                    }
                }
                if p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    // SAFETY: read(2) into our buffer from the master we own.
                    let r = unsafe { libc::read(m, buf.as_mut_ptr().cast(), buf.len()) };
                    if r > 0 {
                        let data = &buf[..r as usize];
                        output(data);
                        if opts.echo {
                            // Our caller may have gone away: its output is not ours to insist on.
                            let _ = write_all(1, data);
                        }
                    } else {
                        let e = io::Error::last_os_error();
                        let again = r < 0
                            && matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR));
                        // EOF or EIO: every slave fd is closed, the container is done.
                        done |= !again;
                    }
                }
            } else if p.fd == 0 {
                // SAFETY: read(2) into our buffer from our own stdin.
                let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                if r > 0 {
                    pending.extend_from_slice(&buf[..r as usize]);
                } else if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    // EOF on stdin: a pty has no "closed input"; the container keeps its
                    // terminal and we stop reading.
                    stdin_open = false;
                }
            } else if let Some(w) = &watcher {
                w.drain();
                if let Some(size) = winsize::of_caller() {
                    let _ = winsize::set(m, size);
                }
            }
        }
        if done {
            break;
        }
    }
    drop(watcher);
    drop(raw); // the caller's terminal is restored before berth prints anything more
}

fn write_some(fd: libc::c_int, data: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: write(2) from a live slice to an fd that stays open during the call.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// write_all on a raw fd (blocking; our stdout must not be buffered here).
fn write_all(fd: libc::c_int, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = write_some(fd, data)?;
        data = &data[n..];
    }
    Ok(())
}
