//! Many short containers in a row leave nothing behind: the leak check a node running
//! thousands of `run --rm` a day depends on.

#[path = "common/container_env.rs"]
mod container_env;
#[path = "common/layout.rs"]
mod layout;

use container_env::{list, Env};
use std::fs;

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").expect("fd dir").count()
}

#[test]
fn two_hundred_run_rm_cycles_leave_no_mount_cgroup_netns_state_or_fd() {
    let env = Env::new();
    // One run first so that lazily created parents (cgroup parent, run-root dirs) exist.
    env.sh(&[], "true");
    let fds = open_fds();
    let layers = list(&env.root().join("layers"));
    for i in 0..200 {
        // Alternate success, failure and a killed process, so every teardown path runs.
        let script = match i % 3 {
            0 => "echo ok",
            1 => "exit 3",
            _ => "kill -9 $$; exit 4",
        };
        let r = env.berth(&["run", "--rm", "busybox", "sh", "-c", script]);
        let expected = [0, 3, 4][i % 3];
        assert_eq!(r.code, expected, "cycle {i}: {}", r.stderr);
    }
    env.assert_nothing_left();
    // Removed containers' files are deleted by a detached cleaner: the trash empties soon.
    let trash = env.root().join("trash");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !list(&trash).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        list(&trash),
        Vec::<String>::new(),
        "removed containers' files were not deleted"
    );
    assert_eq!(open_fds(), fds, "file descriptors leaked into the caller");
    assert_eq!(
        list(&env.root().join("layers")),
        layers,
        "image layers changed"
    );
    assert_eq!(
        list(&env.root().join("tmp")),
        Vec::<String>::new(),
        "store staging left"
    );
    assert_eq!(list(&env.run_root().join("netns")), Vec::<String>::new());
}
