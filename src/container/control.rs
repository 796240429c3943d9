//! Signalling and waiting for running containers: `kill`, `stop`, `wait`.
//!
//! Signals go to the container's first process (its PID 1), found through the runtime state
//! and checked against its recorded start time so that a reused pid is never signalled. As
//! PID 1 of its namespace it only receives signals it handles (SIGKILL excepted), as with
//! docker; `stop` therefore ends with SIGKILL to every process of the container's cgroup.
//! Waiting is a blocking shared `flock` on the container's lock, which the monitor holds until
//! it has recorded the exit status and torn everything down.

use super::lifecycle::Runtime;
use super::state::{self, ContainerRecord, RuntimeState, Status};
use super::{ContainerError, Result};
use crate::fsutil::FileLock;
use std::time::{Duration, Instant};

/// The stop timeout when neither `stop -t` nor `run --stop-timeout` gives one.
pub const DEFAULT_STOP_TIMEOUT: u32 = 10;

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parses `TERM`, `SIGTERM`, `sigterm`, `15`, `RTMIN+3` into a signal number.
pub fn parse_signal(s: &str) -> Result<i32> {
    let bad = || ContainerError::InvalidSignal(s.to_string());
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i32 = t.parse().map_err(|_| bad())?;
        return if (1..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = SIGNALS.iter().find(|(n, _)| *n == name) {
        return Ok(*n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Result<i32> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().map_err(|_| bad())?
        };
        let n = base + sign * off;
        if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(libc::SIGRTMIN(), rest.strip_prefix('+').unwrap_or(rest), 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(libc::SIGRTMAX(), rest.strip_prefix('-').unwrap_or(rest), -1);
    }
    Err(bad())
}

impl Runtime {
    /// The state of a running container, or `NotRunning`.
    fn running_state(&self, record: &ContainerRecord) -> Result<RuntimeState> {
        match state::read_state(&self.paths, &record.id)? {
            Some(st) if st.effective_status() == Status::Running && st.pid > 0 => Ok(st),
            _ => Err(ContainerError::NotRunning(record.name.clone())),
        }
    }

    /// Sends `signal` to the container's PID 1 if it is still the process the monitor
    /// started (same start time).
    fn signal_pid1(&self, record: &ContainerRecord, st: &RuntimeState, signal: i32) -> Result<()> {
        if st.pid_start != 0 && state::process_start_time(st.pid) != Some(st.pid_start) {
            return Err(ContainerError::NotRunning(record.name.clone()));
        }
        // SAFETY: kill(2) with the verified pid of the container's first process.
        if unsafe { libc::kill(st.pid, signal) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Err(ContainerError::NotRunning(record.name.clone()));
            }
            return Err(ContainerError::io(
                "cannot signal",
                &self.paths.container_dir(&record.id),
                e,
            ));
        }
        Ok(())
    }

    /// `berth kill -s SIGNAL`: signals a running container. Returns its id.
    pub fn kill(&self, query: &str, signal: i32) -> Result<String> {
        let record = self.resolve(query)?;
        let st = self.running_state(&record)?;
        self.signal_pid1(&record, &st, signal)?;
        Ok(record.id)
    }

    /// `berth stop [-t SECONDS]`: the stop signal (`--stop-signal`, the image's StopSignal or
    /// SIGTERM), then after the timeout SIGKILL to every process of the container. A container
    /// that is not running is left as it is. Returns its id.
    pub fn stop(&self, query: &str, timeout: Option<u32>) -> Result<String> {
        let record = self.resolve(query)?;
        let Ok(st) = self.running_state(&record) else {
            return Ok(record.id);
        };
        let signal = record
            .config
            .stop_signal
            .as_deref()
            .and_then(|s| parse_signal(s).ok())
            .unwrap_or(libc::SIGTERM);
        let timeout = timeout
            .or(record.config.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        if let Err(e) = self.signal_pid1(&record, &st, signal) {
            if !matches!(e, ContainerError::NotRunning(_)) {
                return Err(e);
            }
        }
        if self.wait_not_running(&record.id, Duration::from_secs(u64::from(timeout))) {
            return Ok(record.id);
        }
        let killed = self.cgroup_of(&record.id).and_then(|cg| Ok(cg.kill_all()?));
        if !self.wait_not_running(&record.id, Duration::from_secs(10)) {
            killed?;
            return Err(ContainerError::Running(record.name.clone()));
        }
        Ok(record.id)
    }

    /// Whether the container stopped running within `limit` (polls its state).
    fn wait_not_running(&self, id: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let running = matches!(
                state::read_state(&self.paths, id),
                Ok(Some(st)) if st.effective_status() == Status::Running
            );
            if !running {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `berth wait`: blocks until the container is not running and returns its exit code
    /// (0 for a container that never ran).
    pub fn wait(&self, query: &str) -> Result<i32> {
        let record = self.resolve(query)?;
        let id = &record.id;
        loop {
            let st = state::read_state(&self.paths, id)?;
            match &st {
                Some(s) if s.effective_status() == Status::Running => {}
                Some(s) => return Ok(s.exit_code.unwrap_or(0)),
                None => return Ok(0),
            }
            // The monitor holds the lock exclusively until it has recorded the exit.
            let path = self.paths.lock(id);
            match FileLock::shared(&path) {
                Ok(lock) => drop(lock),
                // The run directory went away: a --rm container was removed.
                Err(_) => return Err(ContainerError::NoSuchContainer(query.to_string())),
            }
            if state::read_record(&self.paths, id)?.is_none() {
                return Err(ContainerError::NoSuchContainer(query.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_docker() {
        for (s, n) in [
            ("TERM", libc::SIGTERM),
            ("SIGTERM", libc::SIGTERM),
            ("sigkill", libc::SIGKILL),
            ("15", 15),
            ("usr1", libc::SIGUSR1),
            ("RTMIN+1", libc::SIGRTMIN() + 1),
        ] {
            assert_eq!(parse_signal(s).unwrap(), n, "{s}");
        }
        for s in ["", "0", "65", "NOPE", "SIG", "-9", "TERM2", "RTMIN+99"] {
            assert!(parse_signal(s).is_err(), "{s}");
        }
    }
}
