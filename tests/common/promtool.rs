//! `promtool check metrics` on an exposition, for the metrics crate's tests and berthd's
//! (metrics/tests/exposition.rs includes this file by path).
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The promlint problems cAdvisor's names are known to cause (docs/metrics.md lists them).
pub const KNOWN_LINT: &[&str] = &["container_memory_failcnt"];

/// promtool where scripts/install-deps.sh puts it (Debian's package, or the release tarball).
pub fn find() -> Option<&'static Path> {
    ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
}

/// Asserts that promtool parses `text` and finds no problem beyond [`KNOWN_LINT`]. Skipped
/// (with a line on stderr) when promtool is not installed.
pub fn check_metrics(text: &str) {
    let Some(promtool) = find() else {
        eprintln!("promtool not installed (scripts/install-deps.sh installs it): skipped");
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let unexpected: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !KNOWN_LINT.iter().any(|k| l.starts_with(&format!("{k} "))))
        .collect();
    assert!(
        unexpected.is_empty(),
        "promtool problems beyond the known cAdvisor names: {unexpected:#?}"
    );
    // Exit 3 = lint problems only (the known ones); anything else is a parse error.
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "promtool failed: {report}"
    );
}
