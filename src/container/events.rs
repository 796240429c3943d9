//! Container lifecycle events (`create`, `start`, `die`, `oom`, `destroy`), one JSON object a
//! line in `<run-root>/events.log`, in docker's event shape (`berth events --format json`
//! prints them as they are).
//!
//! Writers are the runtime (at create, start, exit and removal; `oom` when the monitor sees
//! OOM kills at exit) and berthd (`oom` as soon as its loop sees a running container's kill
//! counter grow). Each event is one `write(2)` of a whole line on an `O_APPEND` descriptor, so
//! lines of concurrent writers never interleave. Best effort: a failure is only logged.

use super::state::{ContainerRecord, Paths};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;

/// The event file of a run root.
pub fn log_path(paths: &Paths) -> PathBuf {
    paths.run_root.join("events.log")
}

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
    let path = log_path(paths);
    let mut line = match serde_json::to_vec(event) {
        Ok(l) => l,
        Err(_) => return,
    };
    line.push(b'\n');
    let mut open = OPEN_LOG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Reused only while it is still the file at `path` (not deleted or replaced since).
    let reusable = matches!(&*open, Some((p, f)) if *p == path && still_linked(f));
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
    }
}

fn still_linked(f: &File) -> bool {
    f.metadata().is_ok_and(|m| m.nlink() > 0)
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
}
