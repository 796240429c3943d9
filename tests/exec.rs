//! `berth exec`, `berth top`, `--pid`/`--ipc` sharing, `--env-file` and `--label` on the real
//! kernel (run as root).
//!
//! Every test has its own temporary roots and cgroup parent (tests/common/container_env.rs);
//! `Env`'s Drop kills only what is in that parent's cgroups and the berth processes the test
//! started. The one SysV shm segment a test makes on the host is removed by a guard.

#[path = "common/container_env.rs"]
mod container_env;
#[path = "common/layout.rs"]
mod layout;

use container_env::Env;
use serde_json::Value;
use std::fs;

/// `berth run -d --name NAME FLAGS busybox ARGS`; returns the container's host pid.
fn start(env: &Env, name: &str, flags: &[&str], args: &[&str]) -> i32 {
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(flags);
    all.push("busybox");
    all.extend_from_slice(args);
    env.ok(&all);
    env.wait_running(name)
}

fn exec(env: &Env, args: &[&str]) -> container_env::Run {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    env.berth(&all)
}

#[test]
fn exec_joins_the_container() {
    let env = Env::new();
    let pid = start(
        &env,
        "box",
        &["-h", "exec-box", "-e", "CENV=from-run"],
        &["sleep", "300"],
    );
    let out = env.ok(&["exec", "box", "sh", "-c", "echo data > /marker"]);
    assert_eq!(out, "");
    let out = env.ok(&[
        "exec",
        "-e",
        "EXTRA=from-exec",
        "box",
        "sh",
        "-c",
        "hostname; echo ---; cat /marker; echo ---; echo $CENV $EXTRA; echo ---; \
         ps -o pid,args; echo ---; cat /proc/self/cgroup",
    ]);
    let s = container_env::sections(&out);
    assert_eq!(s[0].trim(), "exec-box");
    assert_eq!(s[1].trim(), "data", "the container's files");
    assert_eq!(s[2].trim(), "from-run from-exec", "container env + -e");
    let first = s[3].lines().nth(1).unwrap_or("");
    assert_eq!(
        first.split_whitespace().collect::<Vec<_>>(),
        ["1", "sleep", "300"],
        "the container's PID 1 is visible: {}",
        s[3]
    );
    for line in s[4].lines() {
        assert!(line.ends_with(":/"), "cgroup namespace joined: {line}");
    }

    // /proc/1 inside is the container's PID 1, never the host's init.
    let environ = env.ok(&["exec", "box", "cat", "/proc/1/environ"]);
    assert!(environ.contains("CENV=from-run"), "{environ:?}");
    assert!(environ.contains("HOSTNAME=exec-box"), "{environ:?}");
    let host_init = fs::read("/proc/1/environ").unwrap_or_default();
    assert_ne!(environ.as_bytes(), &host_init[..]);

    // A detached exec's process is in the container's cgroup, and `top` lists it.
    assert_eq!(exec(&env, &["-d", "box", "sleep", "271"]).code, 0);
    let id = env.inspect("box")["Id"].as_str().expect("id").to_string();
    let top = env.ok(&["top", "box", "-ef"]);
    let header: Vec<&str> = top
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    assert!(
        top.lines()
            .any(|l| l.ends_with("sleep 300") && l.contains(&pid.to_string())),
        "{top}"
    );
    let line = top
        .lines()
        .find(|l| l.ends_with("sleep 271"))
        .unwrap_or_else(|| panic!("exec'd process in top: {top}"));
    let exec_pid: i32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let cg = fs::read_to_string(format!("/proc/{exec_pid}/cgroup")).expect("cgroup");
    let expected = format!("{}/{id}", env.cgroup_parent);
    for l in cg.lines().filter(|l| !l.starts_with("0::")) {
        assert!(l.ends_with(&expected), "{l} should end with {expected}");
    }
    // Undumpable berth never lingers inside: the exec'd process is the program itself.
    let exe = fs::read_link(format!("/proc/{exec_pid}/exe")).unwrap_or_default();
    assert!(!exe.to_string_lossy().contains("berth"), "{exe:?}");

    env.ok(&["rm", "-f", "box"]);
    env.assert_nothing_left();
}

#[test]
fn exec_exit_codes_user_and_workdir() {
    let env = Env::new();
    start(&env, "codes", &[], &["sleep", "300"]);
    assert_eq!(exec(&env, &["codes", "true"]).code, 0);
    assert_eq!(exec(&env, &["codes", "sh", "-c", "exit 3"]).code, 3);
    let r = exec(&env, &["codes", "/etc/passwd"]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert!(r.stderr.contains("permission denied"), "{}", r.stderr);
    let r = exec(&env, &["codes", "no-such-command"]);
    assert_eq!(r.code, 127, "{}", r.stderr);
    assert!(
        r.stderr.contains("executable file not found"),
        "{}",
        r.stderr
    );

    assert_eq!(
        env.ok(&["exec", "-u", "1000", "codes", "id", "-u"]).trim(),
        "1000"
    );
    assert_eq!(
        env.ok(&["exec", "-u", "1000:1000", "codes", "id", "-g"])
            .trim(),
        "1000"
    );
    assert_eq!(
        env.ok(&["exec", "-w", "/tmp", "codes", "pwd"]).trim(),
        "/tmp"
    );
    let r = exec(&env, &["-w", "/no/such/dir", "codes", "pwd"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    let r = exec(&env, &["-w", "relative", "codes", "pwd"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    // The container's capabilities and no_new_privs, not berth's.
    let status = env.ok(&["exec", "codes", "cat", "/proc/self/status"]);
    assert!(status.contains("CapEff:\t00000000a80425fb"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("Seccomp:\t2"), "{status}");
    env.ok(&["rm", "-f", "codes"]);
    env.assert_nothing_left();
}

#[test]
fn exec_into_a_container_that_is_not_running_fails_cleanly() {
    let env = Env::new();
    env.ok(&["create", "--name", "idle", "busybox", "sleep", "300"]);
    let r = exec(&env, &["idle", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("is not running"), "{}", r.stderr);
    assert_eq!(env.inspect("idle")["State"]["Status"], "created");

    env.ok(&["run", "--name", "done", "busybox", "true"]);
    let r = exec(&env, &["done", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("is not running"), "{}", r.stderr);
    assert_eq!(env.inspect("done")["State"]["Status"], "exited");
    assert!(env.cgroup_leaves().is_empty(), "exec made no cgroup");

    let r = exec(&env, &["nosuch", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    env.ok(&["rm", "idle", "done"]);
    env.assert_nothing_left();
}

#[test]
fn exec_working_directory_through_a_runtime_fd_is_refused() {
    // CVE-2024-21626: no fd of berth may serve as a way out through cwd=/proc/self/fd/N.
    let env = Env::new();
    start(&env, "cwd", &[], &["sleep", "300"]);
    for n in 3..=12 {
        let dir = format!("/proc/self/fd/{n}");
        let r = exec(&env, &["-w", &dir, "cwd", "pwd"]);
        assert_eq!(r.code, 125, "-w {dir}: {}{}", r.stdout, r.stderr);
    }
    env.ok(&["rm", "-f", "cwd"]);
    env.assert_nothing_left();
}

/// A SysV shm segment made on the host, removed on drop.
struct HostShm(i32);

impl HostShm {
    fn new() -> HostShm {
        // SAFETY: shmget with constant arguments; a private segment of one page.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        HostShm(id)
    }
}

impl Drop for HostShm {
    fn drop(&mut self) {
        // SAFETY: removes the segment this test made.
        unsafe { libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

fn shm_ids(listing: &str) -> Vec<String> {
    listing
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

#[test]
fn pid_and_ipc_namespaces_can_be_shared() {
    let env = Env::new();
    let a = start(&env, "a", &[], &["sleep", "300"]);

    // --pid container:a sees a's processes; --pid host sees the host's init.
    let ps = env.ok(&[
        "run",
        "--rm",
        "--pid",
        "container:a",
        "busybox",
        "ps",
        "-o",
        "pid,args",
    ]);
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "sleep", "300"]),
        "{ps}"
    );
    let host_comm = fs::read_to_string("/proc/1/comm").expect("host comm");
    let comm = env.ok(&[
        "run",
        "--rm",
        "--pid",
        "host",
        "busybox",
        "cat",
        "/proc/1/comm",
    ]);
    assert_eq!(comm, host_comm);

    // --ipc container:a: one IPC namespace.
    let b = start(&env, "b", &["--ipc", "container:a"], &["sleep", "300"]);
    let ns = |pid: i32, kind: &str| fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
    assert_eq!(ns(a, "ipc"), ns(b, "ipc"));
    assert_ne!(ns(a, "pid"), ns(b, "pid"), "only what was asked is shared");
    let me = std::process::id() as i32;
    assert_ne!(ns(a, "ipc"), ns(me, "ipc"));
    let v = env.inspect("b");
    let id_a = env.inspect("a")["Id"].as_str().unwrap().to_string();
    assert_eq!(v["HostConfig"]["IpcMode"], format!("container:{id_a}"));
    // berth (the monitor) went back to its own namespaces after the clone.
    assert_eq!(
        ns(me, "ipc"),
        fs::read_link("/proc/1/ns/ipc").unwrap_or(ns(me, "ipc"))
    );

    // A segment made on the host is invisible by default, visible with --ipc host.
    let shm = HostShm::new();
    let id = shm.0.to_string();
    let inside = env.ok(&["exec", "a", "cat", "/proc/sysvipc/shm"]);
    assert!(!shm_ids(&inside).contains(&id), "{inside}");
    let host = env.ok(&[
        "run",
        "--rm",
        "--ipc",
        "host",
        "busybox",
        "cat",
        "/proc/sysvipc/shm",
    ]);
    assert!(shm_ids(&host).contains(&id), "{host}");

    // Sharing with a container that does not run fails cleanly.
    env.ok(&["stop", "-t", "0", "b"]);
    let r = env.berth(&["run", "--rm", "--pid", "container:b", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("not running"), "{}", r.stderr);
    let r = env.berth(&[
        "run",
        "--rm",
        "--ipc",
        "container:nosuch",
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    let r = env.berth(&["run", "--rm", "--pid", "private", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    env.ok(&["rm", "-f", "a", "b"]);
    env.assert_nothing_left();
}

#[test]
fn env_file_and_labels() {
    let env = Env::new();
    let file = env.path().join("vars.env");
    fs::write(
        &file,
        "# a comment\n\n  A=1\nB=two words \nBARE\nMISSING_BARE\nC=x=y\n   # indented comment\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let out = env
        .command(&[
            "run",
            "--rm",
            "--env-file",
            file,
            "-e",
            "A=override",
            "--label",
            "tier=web",
            "--label",
            "empty",
            "busybox",
            "env",
        ])
        .env("BARE", "from-caller")
        .env_remove("MISSING_BARE")
        .output()
        .expect("run berth");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vars = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = vars.lines().collect();
    for want in ["A=override", "B=two words ", "BARE=from-caller", "C=x=y"] {
        assert!(lines.contains(&want), "{want:?} in {vars}");
    }
    assert!(!vars.contains("MISSING_BARE"), "{vars}");
    assert!(!vars.contains('#'), "{vars}");

    // exec takes --env-file too.
    start(
        &env,
        "lab",
        &["--label", "tier=db", "-l", "team=core"],
        &["sleep", "300"],
    );
    let out = env.ok(&["exec", "--env-file", file, "lab", "sh", "-c", "echo $A/$C"]);
    assert_eq!(out.trim(), "1/x=y");
    let v = env.inspect("lab");
    assert_eq!(v["Config"]["Labels"]["tier"], "db");
    assert_eq!(v["Config"]["Labels"]["team"], "core");
    let ps: Vec<Value> = serde_json::from_str(&env.ok(&["ps", "--format", "json"])).unwrap();
    assert_eq!(ps[0]["Labels"]["tier"], "db");

    // A bad env file fails before anything is created.
    let bad = env.path().join("bad.env");
    fs::write(&bad, "MY VAR=1\n").unwrap();
    let r = env.berth(&[
        "run",
        "--rm",
        "--env-file",
        bad.to_str().unwrap(),
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("line 1"), "{}", r.stderr);
    let r = env.berth(&[
        "run",
        "--rm",
        "--env-file",
        "/no/such/file",
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    env.ok(&["rm", "-f", "lab"]);
    env.assert_nothing_left();
}
