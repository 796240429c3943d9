//! Container lifecycle events (`create`, `start`, `die`, `oom`, `destroy`), one JSON object a
//! line in `<run-root>/events.log`, in docker's event shape (`berth events --format json`
//! prints them as they are).
//!
//! Writers are the runtime (at create, start, exit and removal; `oom` when the monitor sees
//! OOM kills at exit) and berthd (`oom` as soon as its loop sees a running container's kill
//! counter grow). Each event is one `write(2)` of a whole line on an `O_APPEND` descriptor, so
//! lines of concurrent writers never interleave. Best effort: a failure is only logged.
//!
//! The run root is a tmpfs, that is memory: past [`ROTATE_AT`] bytes the log is renamed to
//! `events.log.1` (replacing the one before) and a new one begins, so events take at most
//! twice that. [`Follower`] reads both, and follows the log across a rotation.

use super::state::{ContainerRecord, Paths};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The event file of a run root.
pub fn log_path(paths: &Paths) -> PathBuf {
    paths.run_root.join("events.log")
}

/// The event file before the last rotation.
pub fn rotated_path(paths: &Paths) -> PathBuf {
    paths.run_root.join("events.log.1")
}

/// The size past which the log is rotated: ~25,000 events.
pub const ROTATE_AT: u64 = 10 << 20;

/// `Actor` of a docker event.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

/// One event, as docker writes it (`docker events --format '{{json .}}'`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    pub status: String,
    pub id: String,
    pub from: String,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

impl Event {
    /// An event of `action` about the container of `record`, now; `extra` attributes
    /// (e.g. `exitCode`) join the image, name and labels.
    pub fn new(action: &str, record: &ContainerRecord, extra: &[(&str, String)]) -> Event {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let mut attributes: BTreeMap<String, String> = record.config.labels.clone();
        attributes.insert("image".into(), record.config.image.clone());
        attributes.insert("name".into(), record.name.clone());
        for (k, v) in extra {
            attributes.insert((*k).to_string(), v.clone());
        }
        Event {
            status: action.to_string(),
            id: record.id.clone(),
            from: record.config.image.clone(),
            kind: "container".into(),
            action: action.to_string(),
            actor: Actor {
                id: record.id.clone(),
                attributes,
            },
            scope: "local".into(),
            time: nanos / 1_000_000_000,
            time_nano: nanos,
        }
    }

    /// docker's plain line: `TIME container ACTION ID (k=v, …)`.
    pub fn plain(&self) -> String {
        let t = chrono::DateTime::from_timestamp_nanos(self.time_nano)
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let attrs: Vec<String> = self
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{t} {} {} {} ({})",
            self.kind,
            self.action,
            self.id,
            attrs.join(", ")
        )
    }
}

/// The log this process last wrote to, kept open: a `run --rm` writes four events, and opening
/// the file each time (with the run root's mkdir) cost as much as the rest of an event.
static OPEN_LOG: Mutex<Option<(PathBuf, File)>> = Mutex::new(None);

/// Appends `event` to the log (one write of one line); failures are logged.
pub fn append(paths: &Paths, event: &Event) {
    append_rotating(paths, event, ROTATE_AT);
}

fn append_rotating(paths: &Paths, event: &Event, rotate_at: u64) {
    let path = log_path(paths);
    let mut line = match serde_json::to_vec(event) {
        Ok(l) => l,
        Err(_) => return,
    };
    line.push(b'\n');
    let mut open = OPEN_LOG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Reused only while it is still the file at `path` (not deleted, replaced or rotated).
    let reusable = matches!(&*open, Some((p, f)) if *p == path && is_file_at(f, &path));
    let r = if reusable {
        Ok(())
    } else {
        *open = None;
        std::fs::create_dir_all(&paths.run_root).and_then(|()| {
            let f = OpenOptions::new().create(true).append(true).open(&path)?;
            *open = Some((path.clone(), f));
            Ok(())
        })
    }
    .and_then(|()| match &mut *open {
        Some((_, f)) => f.write_all(&line),
        None => Ok(()),
    });
    if let Err(e) = r {
        tracing::warn!(path = %path.display(), error = %e, "cannot record the event {}", event.action);
        return;
    }
    let full = matches!(&*open, Some((_, f)) if f.metadata().is_ok_and(|m| m.len() > rotate_at));
    if full {
        *open = None;
        if let Err(e) = rotate(paths, rotate_at) {
            tracing::warn!(path = %path.display(), error = %e, "cannot rotate the event log; it keeps growing");
        }
    }
}

/// Whether `f` is the file now at `path`.
fn is_file_at(f: &File, path: &Path) -> bool {
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Renames the log to `events.log.1`. Under a lock, and only if the file at the log's path is
/// still past the limit: writers that all saw it grow past rotate it once, and never rotate a
/// fresh log over the full one.
fn rotate(paths: &Paths, rotate_at: u64) -> std::io::Result<()> {
    let lock = File::create(paths.run_root.join("events.lock"))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
    let path = log_path(paths);
    if std::fs::metadata(&path)?.len() > rotate_at {
        std::fs::rename(&path, rotated_path(paths))?;
    }
    Ok(())
}

/// Reads the event log from its start (the rotated file first) and then what is appended,
/// across rotations: each [`poll`](Follower::poll) hands over the complete lines that came
/// since the last one.
pub struct Follower {
    log: PathBuf,
    rotated: PathBuf,
    /// The file being read (device, inode) and how far, once one was opened.
    at: Option<((u64, u64), u64)>,
    /// Whether the first look reads what the files already hold.
    history: bool,
}

impl Follower {
    /// From the oldest event kept.
    pub fn new(paths: &Paths) -> Follower {
        Follower {
            log: log_path(paths),
            rotated: rotated_path(paths),
            at: None,
            history: true,
        }
    }

    /// From the events that come after this call only (`docker events` without a time).
    pub fn from_now(paths: &Paths) -> Follower {
        let mut f = Follower {
            history: false,
            ..Follower::new(paths)
        };
        if let Ok(meta) = std::fs::metadata(&f.log) {
            f.at = Some(((meta.dev(), meta.ino()), meta.len()));
        }
        f
    }

    /// Calls `line` with each new complete line (without its newline).
    pub fn poll(&mut self, mut line: impl FnMut(&str)) -> std::io::Result<()> {
        let Ok(meta) = std::fs::metadata(&self.log) else {
            return Ok(()); // no log yet
        };
        let id = (meta.dev(), meta.ino());
        match self.at {
            // First look: the history, rotated file included.
            None => {
                if self.history {
                    read_lines(&self.rotated, 0, &mut line)?;
                }
                self.at = Some((id, 0));
            }
            // Rotated since: finish the old file where it now lies, then the new one from 0.
            Some((was, pos)) if was != id => {
                if let Ok(old) = std::fs::metadata(&self.rotated) {
                    if (old.dev(), old.ino()) == was {
                        read_lines(&self.rotated, pos, &mut line)?;
                    }
                }
                self.at = Some((id, 0));
            }
            // Same file, shorter than read: truncated.
            Some((was, pos)) if meta.len() < pos => self.at = Some((was, 0)),
            Some(_) => {}
        }
        if let Some((id, pos)) = self.at {
            let end = read_lines(&self.log, pos, &mut line)?;
            self.at = Some((id, end));
        }
        Ok(())
    }
}

/// Calls `line` with each complete line of `path` from byte `pos`; returns the position after
/// the last complete line (a line being written is read whole next time).
fn read_lines(path: &Path, pos: u64, line: &mut impl FnMut(&str)) -> std::io::Result<u64> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(pos),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(pos))?;
    let mut r = BufReader::new(f);
    let mut pos = pos;
    let mut pending = String::new();
    loop {
        pending.clear();
        let n = r.read_line(&mut pending)?;
        if n == 0 || !pending.ends_with('\n') {
            return Ok(pos);
        }
        pos += n as u64;
        line(pending.trim_end_matches('\n'));
    }
}

/// Records `action` for `record` now.
pub fn emit(paths: &Paths, action: &str, record: &ContainerRecord, extra: &[(&str, String)]) {
    append(paths, &Event::new(action, record, extra));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(paths: &Paths) -> Vec<String> {
        std::fs::read_to_string(log_path(paths))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Event>(l).unwrap().action)
            .collect()
    }

    #[test]
    fn the_kept_log_is_reopened_once_deleted_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path(), &dir.path().join("run"));
        let event = |action: &str| Event {
            action: action.into(),
            ..Event::default()
        };
        append(&paths, &event("create"));
        append(&paths, &event("start"));
        assert_eq!(actions(&paths), ["create", "start"]);
        std::fs::remove_file(log_path(&paths)).unwrap();
        append(&paths, &event("die"));
        assert_eq!(actions(&paths), ["die"]);
        // Another run root in between: each event still lands in its own root's log.
        let other = Paths::new(dir.path(), &dir.path().join("other"));
        append(&other, &event("create"));
        append(&paths, &event("destroy"));
        assert_eq!(actions(&paths), ["die", "destroy"]);
        assert_eq!(actions(&other), ["create"]);
    }

    fn followed(f: &mut Follower) -> Vec<String> {
        let mut seen = Vec::new();
        f.poll(|l| seen.push(serde_json::from_str::<Event>(l).unwrap().action))
            .unwrap();
        seen
    }

    #[test]
    fn the_log_rotates_past_its_limit_and_a_follower_misses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path(), &dir.path().join("run"));
        let event = |action: String| Event {
            action,
            ..Event::default()
        };
        // One event is ~200 bytes: a 1000-byte limit rotates every few events.
        let limit = 1000;
        let mut follower = Follower::new(&paths);
        assert!(followed(&mut follower).is_empty(), "no log yet");
        let mut seen = Vec::new();
        for i in 0..40 {
            append_rotating(&paths, &event(format!("e{i}")), limit);
            if i % 3 == 0 {
                seen.extend(followed(&mut follower));
            }
        }
        seen.extend(followed(&mut follower));
        let want: Vec<String> = (0..40).map(|i| format!("e{i}")).collect();
        assert_eq!(seen, want, "a follower sees every event once, in order");

        // At most two files, each near the limit; the rotated one holds the older events.
        let size = |p: PathBuf| std::fs::metadata(p).unwrap().len();
        assert!(size(log_path(&paths)) <= limit + 300);
        assert!(size(rotated_path(&paths)) > limit);
        let old: Vec<String> = std::fs::read_to_string(rotated_path(&paths))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Event>(l).unwrap().action)
            .collect();
        let new = actions(&paths);
        let kept = old.len() + new.len();
        assert_eq!([old, new].concat(), want[want.len() - kept..]);

        // One from now sees only what comes next, also across a rotation.
        let mut now = Follower::from_now(&paths);
        assert!(followed(&mut now).is_empty());
        for i in 40..50 {
            append_rotating(&paths, &event(format!("e{i}")), limit);
        }
        let next: Vec<String> = (40..50).map(|i| format!("e{i}")).collect();
        assert_eq!(followed(&mut now), next);
        let want: Vec<String> = (0..50).map(|i| format!("e{i}")).collect();

        // A new follower starts with the history both files hold.
        let history = followed(&mut Follower::new(&paths));
        assert_eq!(history, want[want.len() - history.len()..]);
        assert!(history.len() > 5);
    }
}
