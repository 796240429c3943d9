//! `berth run` and the container lifecycle on the real kernel (run as root).
//!
//! The built-in busybox image is built once per test binary (scripts/mk-busybox-image.sh) and
//! loaded into each test's own temporary root. Every test has its own `BERTH_ROOT`,
//! `BERTH_RUN_ROOT` and a unique `BERTH_CGROUP_PARENT=/berth-test-<pid>-<n>`; `Env`'s Drop
//! (tests/common/container_env.rs) kills the berth processes the test started (by pid),
//! empties and removes its cgroups (only those under its own parent), and detaches every mount
//! under its temp dir. No test sends a packet anywhere.

#[path = "common/container_env.rs"]
mod container_env;
#[path = "common/layout.rs"]
mod layout;

use container_env::{list, load_on_busybox, sections, snapshot, Env};
use layout::Entry;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---- isolation -------------------------------------------------------------------------------

#[test]
fn namespaces_isolate_hostname_processes_network_and_cgroup() {
    let env = Env::new();
    let out = env.sh(
        &["-h", "isolated-box"],
        "hostname; echo ---; ps -o pid,args; echo ---; cat /proc/net/dev; echo ---; \
         cat /proc/self/cgroup; echo ---; ip addr",
    );
    let s = sections(&out);
    assert_eq!(s[0].trim(), "isolated-box");

    let procs: Vec<&str> = s[1].lines().skip(1).collect();
    assert_eq!(procs.len(), 2, "only the shell and ps: {procs:?}");
    let first: Vec<&str> = procs[0].split_whitespace().collect();
    assert_eq!(first[0], "1", "PID 1 is the command: {procs:?}");
    assert_eq!(first[1..3], ["sh", "-c"], "PID 1 is the command: {procs:?}");

    let ifaces: Vec<&str> = s[2]
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "only loopback in the container's netns");
    assert!(
        s[4].contains("127.0.0.1/8") && s[4].contains("UP"),
        "lo is up: {}",
        s[4]
    );

    for line in s[3].lines() {
        assert!(
            line.ends_with(":/"),
            "cgroup namespace rooted at the container's cgroup: {line}"
        );
    }
}

#[test]
fn container_is_in_its_own_cgroup_from_the_start() {
    let env = Env::new();
    env.spawn(&["run", "--name", "cg", "busybox", "sleep", "60"]);
    let pid = env.wait_running("cg");
    let id = env.inspect("cg")["Id"].as_str().expect("id").to_string();
    let expected = format!("{}/{id}", env.cgroup_parent);
    let host_view =
        fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup of the container");
    for line in host_view.lines().filter(|l| !l.starts_with("0::")) {
        assert!(
            line.ends_with(&expected),
            "v1 hierarchy line {line:?} should end with {expected}"
        );
    }
    let leaves = env.cgroup_leaves();
    assert!(
        !leaves.is_empty() && leaves.iter().all(|l| l.ends_with(&id)),
        "{leaves:?}"
    );
    env.ok(&["rm", "-f", "cg"]);
    assert_eq!(env.wait_last(), 137);
    env.assert_nothing_left();
}

#[test]
fn mounts_do_not_cross_between_host_and_container() {
    let env = Env::new();
    // A mount on the host the container must not see.
    let host_mnt = env.path().join("host-only");
    fs::create_dir(&host_mnt).expect("mkdir");
    rustix::mount::mount(
        "tmpfs",
        &host_mnt,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        "size=1m",
    )
    .expect("host tmpfs");

    let out = env.sh(&[], "cat /proc/mounts");
    let points: Vec<&str> = out.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    assert!(
        !out.contains("host-only"),
        "a host mount is visible inside: {out}"
    );
    for p in &points {
        let allowed = *p == "/"
            || ["/proc", "/sys", "/dev"]
                .iter()
                .any(|d| p == d || p.starts_with(&format!("{d}/")))
            || ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"].contains(p);
        assert!(allowed, "unexpected mount {p} inside the container");
    }
    let root_line = out.lines().next().expect("a root mount");
    assert!(
        root_line.starts_with("overlay / overlay"),
        "root is the overlay: {root_line}"
    );

    // While a container runs, none of its mounts shows on the host: only its netns file.
    env.spawn(&["run", "--name", "m", "busybox", "sleep", "60"]);
    env.wait_running("m");
    let id = env.inspect("m")["Id"].as_str().expect("id").to_string();
    let netns = env.run_root().join("netns").join(&id);
    let host_only = host_mnt.to_string_lossy().into_owned();
    let visible: Vec<String> = env
        .mounts_under_tmp()
        .into_iter()
        .filter(|p| *p != host_only)
        .collect();
    assert_eq!(visible, [netns.to_string_lossy().into_owned()]);
    env.ok(&["rm", "-f", "m"]);
    assert_eq!(env.wait_last(), 137);
    rustix::mount::unmount(&host_mnt, rustix::mount::UnmountFlags::empty()).expect("umount");
    env.assert_nothing_left();
}

#[test]
fn security_defaults_match_docker() {
    let env = Env::new();
    let out = env.sh(
        &[],
        "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; echo ---; \
         for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do \
           [ -e $f ] && echo \"$f $(cat $f | wc -c)\"; done; find /proc/acpi /sys/firmware -mindepth 1 | wc -l; echo ---; \
         echo x > /proc/sys/kernel/hostname && echo proc-sys-writable; \
         echo x > /proc/sysrq-trigger && echo sysrq-writable; \
         touch /sys/x && echo sys-writable; \
         mkdir /sys/fs/cgroup/pids/x && echo cgroup-writable; \
         mount -t tmpfs x /tmp && echo mount-allowed; \
         mount -o remount,rw /proc/sys && echo remount-allowed; \
         hostname other && echo hostname-allowed; \
         echo ---; ls /proc/self/fd",
    );
    let s = sections(&out);
    let status: BTreeMap<&str, &str> = s[0]
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k, v.trim()))
        .collect();
    assert_eq!(status["CapEff"], "00000000a80425fb", "{out}");
    assert_eq!(status["CapPrm"], "00000000a80425fb");
    assert_eq!(status["CapBnd"], "00000000a80425fb");
    assert_eq!(status["CapInh"], "0000000000000000");
    assert_eq!(status["CapAmb"], "0000000000000000");
    assert_eq!(status["NoNewPrivs"], "1");
    let masked: Vec<&str> = s[1].lines().collect();
    assert!(
        masked.iter().any(|l| l.starts_with("/proc/keys")),
        "{masked:?}"
    );
    for line in &masked[..masked.len() - 1] {
        assert!(line.ends_with(" 0"), "masked path reads empty: {line}");
    }
    assert_eq!(
        masked.last().map(|l| l.trim()),
        Some("0"),
        "masked dirs are empty"
    );
    assert_eq!(s[2].trim(), "", "every write above must fail: {}", s[2]);
    // Only stdio (and ls's own directory fd) reach the container: nothing of the runtime
    // leaks (CVE-2024-21626).
    assert_eq!(
        s[3].split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"]
    );
}

#[test]
fn working_directory_through_a_runtime_fd_is_refused() {
    // CVE-2024-21626: cwd=/proc/self/fd/N with a leaked host directory fd put runc's
    // container on the host filesystem. No fd of berth is a directory by then, and the cwd
    // is verified to lie inside the container after chdir.
    let env = Env::new();
    for n in 3..=9 {
        let dir = format!("/proc/self/fd/{n}");
        let r = env.berth(&["run", "--rm", "-w", &dir, "busybox", "pwd"]);
        assert_eq!(r.code, 125, "-w {dir}: {}{}", r.stdout, r.stderr);
    }
    env.assert_nothing_left();
}

#[test]
fn dev_holds_only_the_docker_nodes() {
    let env = Env::new();
    let out = env.sh(
        &[],
        "ls -A /dev; echo ---; for d in null zero full random urandom tty; do \
                          stat -c \"%n %F %t:%T %a\" /dev/$d; done; echo ---; \
                          stat -c %N /dev/ptmx /dev/fd; echo ---; ls /dev/pts",
    );
    let s = sections(&out);
    let names: BTreeSet<&str> = s[0].lines().collect();
    let expected: BTreeSet<&str> = [
        "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
        "stdout", "tty", "urandom", "zero",
    ]
    .into();
    assert_eq!(names, expected);
    let devices: Vec<&str> = s[1].lines().collect();
    assert_eq!(
        devices,
        [
            "/dev/null character special file 1:3 666",
            "/dev/zero character special file 1:5 666",
            "/dev/full character special file 1:7 666",
            "/dev/random character special file 1:8 666",
            "/dev/urandom character special file 1:9 666",
            "/dev/tty character special file 5:0 666",
        ]
    );
    assert!(s[2].contains("'/dev/ptmx' -> 'pts/ptmx'"), "{}", s[2]);
    assert!(
        s[3].lines().all(|l| l == "ptmx"),
        "a fresh devpts instance: {}",
        s[3]
    );
}

// ---- the writable layer ----------------------------------------------------------------------

#[test]
fn writes_land_in_the_upper_layer_and_image_layers_stay_unchanged() {
    let env = Env::new();
    let layers = env.root().join("layers");
    let before = snapshot(&layers);

    let first = env.ok(&[
        "run", "--name", "writer", "busybox", "sh", "-c",
        "echo hello > /newfile && rm /bin/true && echo more >> /etc/passwd && mkdir -p /data/x && echo ok",
    ]);
    assert_eq!(first.trim(), "ok");
    let info = env.inspect("writer");
    let upper = PathBuf::from(
        info["GraphDriver"]["Data"]["UpperDir"]
            .as_str()
            .expect("upper"),
    );
    assert_eq!(
        fs::read_to_string(upper.join("newfile")).expect("newfile in upper"),
        "hello\n"
    );
    let whiteout = fs::symlink_metadata(upper.join("bin/true")).expect("whiteout in upper");
    assert!(
        whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
        "a 0:0 whiteout"
    );
    assert!(fs::read_to_string(upper.join("etc/passwd"))
        .expect("copied up")
        .ends_with("more\n"));
    assert!(upper.join("data/x").is_dir());

    // A second container of the same image sees none of it.
    let second = env.sh(
        &[],
        "cat /newfile 2>&1; ls /bin/true; tail -1 /etc/passwd; ls /data 2>&1; true",
    );
    assert!(second.contains("No such file"), "{second}");
    assert!(second.contains("/bin/true"), "{second}");
    assert!(!second.contains("more"), "{second}");

    assert_eq!(snapshot(&layers), before, "the image layers changed");
    // The upper layer is 0755 root (the container's /), its fs/ dir private to root.
    let mode = fs::metadata(upper.parent().expect("fs dir"))
        .expect("fs")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    env.ok(&["rm", "writer"]);
    env.assert_nothing_left();
}

/// The super options of the container's root mount, as the container's mountinfo shows them.
fn root_mount_options(mountinfo: &str) -> String {
    let line = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no root mount in {mountinfo}"));
    line.split(" - ").nth(1).unwrap_or_default().to_string()
}

#[test]
fn only_a_removed_containers_root_skips_the_sync_on_exit() {
    // overlayfs' `volatile` (Linux 5.10+): a --rm root is thrown away at exit, so its exit must
    // not wait for the disk; a kept container's writes must survive a host crash.
    let env = Env::new();
    let removed = root_mount_options(&env.sh(&[], "cat /proc/self/mountinfo"));
    assert!(removed.starts_with("overlay "), "{removed}");
    assert!(removed.contains("volatile"), "--rm root: {removed}");

    let kept = env.ok(&[
        "run",
        "--name",
        "kept",
        "busybox",
        "cat",
        "/proc/self/mountinfo",
    ]);
    let kept = root_mount_options(&kept);
    assert!(kept.starts_with("overlay "), "{kept}");
    assert!(!kept.contains("volatile"), "kept container's root: {kept}");
    // And it stays durable when started again.
    let again = root_mount_options(&env.ok(&["start", "-a", "kept"]));
    assert!(!again.contains("volatile"), "restarted root: {again}");
    env.ok(&["rm", "kept"]);
    env.assert_nothing_left();
}

// ---- exit codes ------------------------------------------------------------------------------

#[test]
fn exit_codes_follow_docker() {
    let env = Env::new();
    assert_eq!(env.berth(&["run", "--rm", "busybox", "true"]).code, 0);
    assert_eq!(
        env.berth(&["run", "--rm", "busybox", "sh", "-c", "exit 3"])
            .code,
        3
    );

    let r = env.berth(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert!(r.stderr.contains("permission denied"), "{}", r.stderr);

    let r = env.berth(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(r.code, 127, "{}", r.stderr);
    assert!(
        r.stderr.contains("executable file not found in $PATH"),
        "{}",
        r.stderr
    );

    let r = env.berth(&["run", "--rm", "busybox", "/no/such/file"]);
    assert_eq!(r.code, 127, "{}", r.stderr);
    assert!(
        r.stderr.contains("no such file or directory"),
        "{}",
        r.stderr
    );

    // The kernel protects a PID namespace's init from signals it does not handle sent from
    // inside: `kill -9 $$` in PID 1 is a no-op, as under docker without --init.
    assert_eq!(
        env.berth(&["run", "--rm", "busybox", "sh", "-c", "kill -9 $$; exit 4"])
            .code,
        4
    );

    // SIGKILL from outside (the host, or `rm -f`): 128 + 9.
    env.spawn(&["run", "--name", "victim", "busybox", "sleep", "60"]);
    let pid = env.wait_running("victim");
    // SAFETY: SIGKILL to the container process this test started (pid from its inspect).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert_eq!(env.wait_last(), 137);
    let state = &env.inspect("victim")["State"];
    assert_eq!(state["Status"], "exited");
    assert_eq!(state["ExitCode"], 137);

    // A runtime error is 125.
    let r = env.berth(&["run", "--rm", "-w", "relative", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    env.ok(&["rm", "victim"]);
    env.assert_nothing_left();
}

// ---- lifecycle -------------------------------------------------------------------------------

#[test]
fn rm_flag_leaves_nothing_behind() {
    let env = Env::new();
    env.sh(&["--name", "gone"], "echo hi > /file");
    env.assert_nothing_left();
    // Also when the command cannot be found, and when berth fails inside the container.
    assert_eq!(env.berth(&["run", "--rm", "busybox", "nope"]).code, 127);
    env.assert_nothing_left();
    assert_eq!(
        env.berth(&["run", "--rm", "-u", "nosuchuser", "busybox", "true"])
            .code,
        125
    );
    env.assert_nothing_left();
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn create_start_inspect_ps_rm() {
    let env = Env::new();
    let id = env.ok(&[
        "create",
        "--name",
        "life",
        "-e",
        "GREETING=hi",
        "busybox",
        "sh",
        "-c",
        "echo $GREETING $HOSTNAME",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        fs::read_to_string(env.root().join("containers").join(id).join("image-id"))
            .expect("image-id"),
        env.inspect("life")["Image"].as_str().expect("image")
    );
    let v = env.inspect(&id[..12]);
    assert_eq!(v["State"]["Status"], "created");
    assert_eq!(v["Name"], "life");
    assert!(v["GraphDriver"]["Data"]["MergedDir"]
        .as_str()
        .expect("merged")
        .ends_with("/fs/merged"));

    let ps: Vec<Value> =
        serde_json::from_str(&env.ok(&["ps", "-a", "--format", "json"])).expect("ps json");
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0]["State"], "created");
    assert_eq!(
        env.ok(&["ps", "-q"]),
        "",
        "not running: not listed without -a"
    );

    assert_eq!(
        env.ok(&["start", "-a", "life"]).trim(),
        format!("hi {}", &id[..12])
    );
    let v = env.inspect("life");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 0);
    assert!(v["State"]["StartedAt"].is_string() && v["State"]["FinishedAt"].is_string());
    // An exited container starts again.
    assert_eq!(
        env.ok(&["start", "-a", id]).trim(),
        format!("hi {}", &id[..12])
    );

    // A running container is not removed without -f.
    let run_id = env.ok(&["create", "--name", "busy", "busybox", "sleep", "60"]);
    env.spawn(&["start", "-a", "busy"]);
    env.wait_running("busy");
    assert_eq!(env.ok(&["ps", "-q"]).trim(), &run_id.trim()[..12]);
    let r = env.berth(&["start", "busy"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("already running"), "{}", r.stderr);
    let r = env.berth(&["rm", "busy"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("is running"), "{}", r.stderr);
    env.ok(&["rm", "-f", "busy"]);
    assert_eq!(env.wait_last(), 137);

    env.ok(&["rm", &id[..8]]);
    let r = env.berth(&["rm", "life"]);
    assert!(
        r.code != 0 && r.stderr.contains("no such container: life"),
        "{}",
        r.stderr
    );
    env.assert_nothing_left();
}

#[test]
fn names_are_unique_and_bad_references_fail_cleanly() {
    let env = Env::new();
    env.ok(&["create", "--name", "dup", "busybox"]);
    let r = env.berth(&["run", "--name", "dup", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("\"dup\" is already in use"),
        "{}",
        r.stderr
    );
    assert_eq!(
        list(&env.root().join("containers")).len(),
        1,
        "nothing created for the duplicate"
    );

    let r = env.berth(&["run", "--rm", "no-such-image", "true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("no such image: no-such-image"),
        "{}",
        r.stderr
    );
    let r = env.berth(&["run", "--name", "bad name", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("invalid container name"), "{}", r.stderr);
    assert_eq!(list(&env.root().join("containers")).len(), 1);

    // The image is in use: rmi refuses it.
    let r = env.berth(&["rmi", "busybox"]);
    assert_ne!(r.code, 0, "rmi of an image in use must fail");
    env.ok(&["rm", "dup"]);
    env.assert_nothing_left();
}

#[test]
fn user_workdir_env_and_entrypoint() {
    let env = Env::new();
    let out = env.sh(
        &["-u", "65534:65534", "-w", "/work/dir", "-e", "A=b"],
        "id; pwd; echo $A $HOME; grep CapEff /proc/self/status",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "uid=65534(nobody) gid=65534(nogroup)");
    assert_eq!(lines[1], "/work/dir");
    assert_eq!(lines[2], "b /nonexistent");
    assert!(
        lines[3].ends_with("0000000000000000"),
        "no capabilities for a non-root user"
    );
    let out = env.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/echo",
        "busybox",
        "x",
        "y",
    ]);
    assert_eq!(out, "x y\n");
    let r = env.berth(&["run", "--rm", "-u", "1:2:3", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
}

#[test]
fn host_network_shares_the_host_interfaces() {
    let env = Env::new();
    let host: BTreeSet<String> = fs::read_to_string("/proc/net/dev")
        .expect("host net dev")
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    let out = env.sh(&["--network", "host"], "cat /proc/net/dev");
    let inside: BTreeSet<String> = out
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    assert_eq!(inside, host);
    assert_eq!(
        list(&env.run_root().join("netns")),
        Vec::<String>::new(),
        "no netns for host mode"
    );
    env.assert_nothing_left();
}

#[test]
fn killed_monitor_leaves_a_dead_container_that_rm_cleans_up() {
    let env = Env::new();
    env.spawn(&["run", "--name", "orphan", "busybox", "sleep", "60"]);
    let pid = env.wait_running("orphan");
    // Kill the berth process this test started (not the container): the container dies with
    // it (PDEATHSIG), and its cgroup and netns stay until `rm`.
    {
        let mut children = env.children.lock().expect("lock");
        let mut monitor = children.pop().expect("berth run");
        monitor.kill().expect("kill berth");
        monitor.wait().expect("reap berth");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "container outlived its monitor");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(env.inspect("orphan")["State"]["Status"], "dead");
    env.ok(&["rm", "orphan"]);
    env.assert_nothing_left();
}

// ---- hostile images --------------------------------------------------------------------------

#[test]
fn image_symlinks_cannot_redirect_mounts_out_of_the_root() {
    let env = Env::new();
    let marker = Path::new("/berth-test-escape-hosts");
    assert!(
        !marker.exists(),
        "fixture: {} must not exist",
        marker.display()
    );
    // /etc/hosts points far above the root, /etc/resolv.conf dangles: both must resolve inside
    // the container (RESOLVE_IN_ROOT), and the runtime's files are mounted there.
    load_on_busybox(
        &env,
        "evil-etc:1",
        vec![
            Entry::Symlink("etc/hosts", "/../../../../../../../berth-test-escape-hosts"),
            Entry::Symlink("etc/resolv.conf", "/nonexistent/resolv.conf"),
        ],
    );
    let out = env.ok(&[
        "run",
        "--rm",
        "evil-etc:1",
        "sh",
        "-c",
        "cat /etc/hosts; cat /etc/resolv.conf",
    ]);
    assert!(out.contains("localhost"), "{out}");
    assert!(out.contains("no network"), "{out}");
    assert!(
        !marker.exists(),
        "a mount target escaped the container root"
    );

    // /proc and /dev as symlinks: proc, sysfs and /dev must go on real directories
    // (CVE-2019-19921, CVE-2026-41579); the start fails cleanly instead.
    load_on_busybox(&env, "evil-proc:1", vec![Entry::Symlink("proc", "/etc")]);
    let r = env.berth(&["run", "--rm", "evil-proc:1", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("/proc"), "{}", r.stderr);
    load_on_busybox(&env, "evil-dev:1", vec![Entry::Symlink("dev", "/")]);
    let r = env.berth(&["run", "--rm", "evil-dev:1", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("/dev"), "{}", r.stderr);
    env.assert_nothing_left();
}
