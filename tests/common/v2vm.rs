//! Runs a guest shell script on a pure cgroup v2 kernel (scripts/vm/run-in-v2-vm.sh) with the
//! `berth` binary and the built-in busybox layout inside, for the tests that prove v2.
#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

pub struct GuestRun {
    pub status: ExitStatus,
    /// What the guest script printed.
    pub stdout: String,
    /// Guest output and the runner's stderr, for failure messages.
    pub transcript: String,
    pub wall: Duration,
}

/// Boots the VM once for `script` (guest paths: /extra/berth, /extra/busybox-layout). `None`
/// only when BERTH_SKIP_VM_TESTS=1 asks to skip. Fails the test if the VM did not run the script
/// to its end (missing package, timeout, kernel panic).
pub fn run_guest(name: &str, script: &str) -> Option<GuestRun> {
    if std::env::var("BERTH_SKIP_VM_TESTS").as_deref() == Ok("1") {
        eprintln!("{name}: skipped (BERTH_SKIP_VM_TESTS=1)");
        return None;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the cgroup v2 VM boots the kernel under /boot (readable by root only): run as root, \
         or set BERTH_SKIP_VM_TESTS=1 to skip it"
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::Builder::new()
        .prefix(&format!("berth-test-{name}-"))
        .tempdir()
        .expect("temp dir");
    let layout = dir.path().join("busybox-layout");
    let out = Command::new("bash")
        .arg(repo.join("scripts/mk-busybox-image.sh"))
        .arg(&layout)
        .output()
        .expect("run scripts/mk-busybox-image.sh");
    assert!(
        out.status.success(),
        "mk-busybox-image.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let guest = dir.path().join("guest.sh");
    fs::write(&guest, script).expect("write the guest script");

    let started = Instant::now();
    let out = Command::new("bash")
        .arg(repo.join("scripts/vm/run-in-v2-vm.sh"))
        .arg("--extra")
        .arg(format!("{}:/extra/berth", env!("CARGO_BIN_EXE_berth")))
        .arg("--extra")
        .arg(format!("{}:/extra/busybox-layout", layout.display()))
        .arg(&guest)
        .output()
        .expect("run scripts/vm/run-in-v2-vm.sh");
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let transcript = format!(
        "--- guest output ---\n{stdout}--- run-in-v2-vm.sh stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{name}: VM run took {:.1} s\n{transcript}",
        wall.as_secs_f64()
    );
    assert_ne!(
        out.status.code(),
        Some(125),
        "the v2 VM did not run the guest script to the end (missing package, timeout or kernel \
         panic; see below)\n{transcript}"
    );
    Some(GuestRun {
        status: out.status,
        stdout,
        transcript,
        wall,
    })
}
