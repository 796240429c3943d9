//! Detached containers and their lifecycle on the real kernel (run as root): `run -d`, `logs`,
//! `stop`, `kill`, `wait`, `--rm` with `-d`, `--init`, and the stdio relay of foreground runs.
//!
//! Every test has its own temporary `BERTH_ROOT`/`BERTH_RUN_ROOT` and cgroup parent
//! (tests/common/container_env.rs); `Env`'s Drop kills only what is in that parent's cgroups
//! and the berth processes the test started. Detached monitors exit with their containers.

#[path = "common/container_env.rs"]
mod container_env;
#[path = "common/layout.rs"]
mod layout;

use container_env::{list, Env};
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `berth run -d ARGS`, asserting success; returns the id it printed.
fn run_d(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    let id = env.ok(&all).trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the full id: {id:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    id
}

/// Waits until `berth logs NAME` shows `needle`.
fn wait_log(env: &Env, name: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = env.berth(&["logs", name]);
        if r.stdout.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never showed in the logs of {name}: {}{}",
            r.stdout,
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status(env: &Env, name: &str) -> String {
    env.inspect(name)["State"]["Status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// `berth wait NAME`: the exit code it printed.
fn wait_code(env: &Env, name: &str) -> i32 {
    env.ok(&["wait", name]).trim().parse().expect("exit code")
}

#[test]
fn detached_run_logs_with_stream_tags() {
    let env = Env::new();
    let id = run_d(
        &env,
        &[
            "--name",
            "talk",
            "busybox",
            "sh",
            "-c",
            "echo err1 >&2; sleep 0.2; echo out1; echo out2; printf tail",
        ],
    );
    assert_eq!(wait_code(&env, "talk"), 0);
    let v = env.inspect("talk");
    assert_eq!(v["State"]["Status"], "exited");
    assert!(v["State"]["FinishedAt"].is_string());

    // The log file: JSON lines with stream tags and RFC 3339 times.
    let log = env
        .root()
        .join("containers")
        .join(&id)
        .join(format!("{id}-json.log"));
    let text = fs::read_to_string(&log).expect("json log");
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let mut out: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            let t = e["time"].as_str().expect("time");
            assert!(chrono_like(t), "time {t:?}");
            (
                e["stream"].as_str().expect("stream").to_string(),
                e["log"].as_str().expect("log").to_string(),
            )
        })
        .collect();
    out.sort();
    assert_eq!(
        out,
        [
            ("stderr", "err1\n"),
            ("stdout", "out1\n"),
            ("stdout", "out2\n"),
            ("stdout", "tail")
        ]
        .map(|(s, l)| (s.to_string(), l.to_string()))
    );

    let r = env.berth(&["logs", "talk"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "out1\nout2\ntail");
    assert_eq!(r.stderr, "err1\n");
    assert_eq!(env.ok(&["logs", "--tail", "2", "talk"]), "out2\ntail");
    let stamped = env.ok(&["logs", "-t", "--tail", "1", &id[..12]]);
    let (time, rest) = stamped.split_once(' ').expect("timestamp prefix");
    assert!(chrono_like(time) && rest == "tail", "{stamped:?}");

    // A long-running container: the CLI returns at once, ps shows it up, logs -f follows it.
    let started = Instant::now();
    run_d(
        &env,
        &[
            "--name",
            "ticker",
            "busybox",
            "sh",
            "-c",
            "for i in 1 2 3; do echo tick$i; sleep 0.3; done",
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let ps = env.ok(&["ps"]);
    assert!(ps.contains("ticker") && ps.contains("Up "), "{ps}");
    let followed = env.ok(&["logs", "-f", "ticker"]);
    assert_eq!(followed, "tick1\ntick2\ntick3\n");
    assert_eq!(wait_code(&env, "ticker"), 0);
    let ps = env.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (0)"), "{ps}");

    env.ok(&["rm", "talk", "ticker"]);
    env.assert_nothing_left();
}

/// The states (R, S, Z, …) of the children of the container's first process (PID 1 inside),
/// seen from the host (cgroup v1 does not list zombies in cgroup.procs).
fn child_states(env: &Env, name: &str) -> Vec<char> {
    let pid = env.inspect(name)["State"]["Pid"].as_i64().expect("pid");
    let children =
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let mut out = Vec::new();
    for child in children.split_whitespace() {
        let stat = fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
            out.extend(rest.chars().next());
        }
    }
    out
}

/// RFC 3339 with nanoseconds in UTC, as docker writes it.
fn chrono_like(t: &str) -> bool {
    t.len() == 30 && t.ends_with('Z') && t.as_bytes()[10] == b'T' && t.as_bytes()[19] == b'.'
}

#[test]
fn stop_sends_sigterm_then_kills_after_the_timeout() {
    let env = Env::new();
    run_d(
        &env,
        &[
            "--name",
            "polite",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    );
    wait_log(&env, "polite", "ready");
    let t = Instant::now();
    assert_eq!(env.ok(&["stop", "polite"]).trim(), "polite");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(status(&env, "polite"), "exited");
    assert_eq!(wait_code(&env, "polite"), 7);

    run_d(
        &env,
        &[
            "--name",
            "stubborn",
            "busybox",
            "sh",
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    );
    wait_log(&env, "stubborn", "ready");
    let t = Instant::now();
    env.ok(&["stop", "-t", "1", "stubborn"]);
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(1), "took {took:?}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert_eq!(wait_code(&env, "stubborn"), 137);
    // Stopping a stopped container is fine.
    env.ok(&["stop", "stubborn"]);

    // --stop-signal and --stop-timeout from run.
    run_d(
        &env,
        &[
            "--name",
            "usr2",
            "--stop-signal",
            "SIGUSR2",
            "--stop-timeout",
            "20",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 12' USR2; echo ready; while :; do sleep 0.1; done",
        ],
    );
    wait_log(&env, "usr2", "ready");
    env.ok(&["stop", "usr2"]);
    assert_eq!(wait_code(&env, "usr2"), 12);

    env.ok(&["rm", "polite", "stubborn", "usr2"]);
    env.assert_nothing_left();
}

#[test]
fn kill_delivers_signals_and_rejects_invalid_ones() {
    let env = Env::new();
    run_d(
        &env,
        &[
            "--name",
            "target",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.1; done",
        ],
    );
    wait_log(&env, "target", "ready");
    for bad in ["BOGUS", "99", "SIG", ""] {
        let r = env.berth(&["kill", "-s", bad, "target"]);
        assert_ne!(r.code, 0, "kill -s {bad:?}");
        assert!(r.stderr.contains("invalid signal"), "{}", r.stderr);
    }
    assert_eq!(status(&env, "target"), "running");
    env.ok(&["kill", "-s", "USR1", "target"]);
    wait_log(&env, "target", "got-usr1");
    assert_eq!(status(&env, "target"), "running");
    env.ok(&["kill", "target"]); // SIGKILL by default
    assert_eq!(wait_code(&env, "target"), 137);
    let r = env.berth(&["kill", "target"]);
    assert!(
        r.code != 0 && r.stderr.contains("not running"),
        "{}",
        r.stderr
    );
    // An invalid --stop-signal is refused at creation.
    let r = env.berth(&["run", "-d", "--stop-signal", "NOPE", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("invalid signal"), "{}", r.stderr);
    env.ok(&["rm", "target"]);
    env.assert_nothing_left();
}

#[test]
fn wait_returns_exit_codes() {
    let env = Env::new();
    run_d(
        &env,
        &[
            "--name",
            "three",
            "busybox",
            "sh",
            "-c",
            "sleep 0.5; exit 3",
        ],
    );
    run_d(&env, &["--name", "zero", "busybox", "true"]);
    assert_eq!(env.ok(&["wait", "three", "zero"]), "3\n0\n");
    let ps = env.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (3)"), "{ps}");
    let r = env.berth(&["wait", "nonesuch"]);
    assert!(r.code != 0 && r.stderr.contains("no such container"));

    // start (detached) of an exited container, then start -a.
    assert_eq!(env.ok(&["start", "three"]).trim(), "three");
    assert_eq!(wait_code(&env, "three"), 3);
    assert_eq!(env.berth(&["start", "-a", "three"]).code, 3);
    env.ok(&["rm", "three", "zero"]);
    env.assert_nothing_left();
}

#[test]
fn detached_rm_leaves_nothing_after_exit() {
    let env = Env::new();
    run_d(
        &env,
        &[
            "--rm",
            "--name",
            "brief",
            "busybox",
            "sh",
            "-c",
            "echo hi; sleep 0.3",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !list(&env.root().join("containers")).is_empty() {
        assert!(Instant::now() < deadline, "the --rm container stayed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The monitor has removed the record first and the rest right after.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !list(&env.run_root().join("containers")).is_empty() {
        assert!(Instant::now() < deadline, "state stayed");
        std::thread::sleep(Duration::from_millis(20));
    }
    env.assert_nothing_left();

    // A start that fails: the error and exit code reach the CLI, and nothing is left.
    let r = env.berth(&["run", "-d", "--rm", "busybox", "no-such-command"]);
    assert_eq!(r.code, 127, "{}", r.stderr);
    assert!(
        r.stderr.contains("executable file not found"),
        "{}",
        r.stderr
    );
    env.assert_nothing_left();

    // Stopped: removed as well.
    run_d(&env, &["--rm", "--name", "long", "busybox", "sleep", "60"]);
    env.ok(&["stop", "-t", "0", "long"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !list(&env.root().join("containers")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the stopped --rm container stayed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    env.assert_nothing_left();
}

#[test]
fn init_reaps_zombies_and_exits_with_the_command_code() {
    let env = Env::new();
    // Orphans are reparented to PID 1; after they exit, nothing may stay a zombie.
    let out = env.sh(
        &["--init"],
        "for i in 1 2 3 4; do (sleep 0.1 &); done; sleep 1; \
         cat /proc/[0-9]*/stat 2>/dev/null | awk '{print $3}' | sort | uniq -c; \
         echo pid1=$(cut -d' ' -f3 /proc/1/stat) me=$$",
    );
    assert!(!out.contains(" Z"), "zombies left: {out}");
    assert!(out.contains("pid1=S"), "{out}");
    assert!(
        !out.contains("me=1\n"),
        "with --init the shell is not PID 1: {out}"
    );
    // Seen from the host, with a PID 1 that never reaps (`exec sleep`): zombies without
    // --init (the control), none with it.
    let orphans = "for i in 1 2 3; do (sleep 0.1 &); done; exec sleep 30";
    for (init, name) in [(false, "noinit"), (true, "withinit")] {
        let mut args = vec!["--name", name];
        if init {
            args.push("--init");
        }
        args.extend_from_slice(&["busybox", "sh", "-c", orphans]);
        run_d(&env, &args);
        std::thread::sleep(Duration::from_millis(800));
        let states = child_states(&env, name);
        let zombies = states.iter().filter(|&&c| c == 'Z').count();
        if init {
            assert_eq!(zombies, 0, "--init left zombies: {states:?}");
        } else {
            assert_eq!(zombies, 3, "the control should show zombies: {states:?}");
        }
        env.ok(&["rm", "-f", name]);
    }

    // SIGKILL of the command itself (PID 1 would be immune): 128+9.
    let r = env.berth(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "kill -9 $$; exit 4",
    ]);
    assert_eq!(r.code, 137, "{}", r.stderr);
    assert_eq!(
        env.berth(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 5"])
            .code,
        5
    );
    let r = env.berth(&["run", "--rm", "--init", "busybox", "nope"]);
    assert_eq!(r.code, 127, "{}", r.stderr);

    // Signals reach the command (default dispositions work, it is not PID 1): stop is quick.
    run_d(
        &env,
        &["--init", "--name", "sleeper", "busybox", "sleep", "60"],
    );
    let t = Instant::now();
    env.ok(&["stop", "sleeper"]);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(wait_code(&env, "sleeper"), 143);
    env.ok(&["rm", "sleeper"]);
    env.assert_nothing_left();
}

#[test]
fn foreground_stdio_goes_through_pipes() {
    let env = Env::new();
    // The container's stdout is the monitor's pipe, never the caller's file.
    let out = env.sh(&[], "for f in 0 1 2; do readlink /proc/self/fd/$f; done");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "/dev/null", "without -i stdin is /dev/null");
    assert!(
        lines[1].starts_with("pipe:") && lines[2].starts_with("pipe:"),
        "{out}"
    );

    // -i pipes our stdin in.
    let mut child = env
        .command(&["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"hello\nworld\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("berth run -i");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nworld\ndone\n");

    // A foreground run is logged too.
    env.ok(&[
        "run",
        "--name",
        "fg",
        "busybox",
        "sh",
        "-c",
        "echo logged; echo e >&2",
    ]);
    assert_eq!(env.ok(&["logs", "fg"]), "logged\n");
    env.ok(&["rm", "fg"]);
    env.assert_nothing_left();
}
