//! `-t`: pseudo-terminals on the real kernel (run as root), driven through tmux for the
//! interactive cases: window size and resizes, `tty`, ^C, exit codes, the caller's terminal in
//! raw mode while attached and restored afterwards — also when berth is SIGKILLed (the
//! guardian) — plus `-t` without a terminal, `-i -t` from a pipe, `run -d -t` and `create -t`.
//!
//! Every tmux server is private to its test (`tmux -L berth-test-…`, session of the same
//! name) and killed in a Drop guard; every test has its own roots and cgroup parent
//! (tests/common/container_env.rs).

#[path = "common/container_env.rs"]
mod container_env;
#[path = "common/layout.rs"]
mod layout;

use container_env::Env;
use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SESSIONS: AtomicU32 = AtomicU32::new(0);

/// A private tmux server with one session of 100x30 running `cmd`; killed on drop.
struct Tmux {
    name: String,
    /// The server's socket, removed on drop (kill-server leaves it behind).
    socket: Option<String>,
}

impl Tmux {
    fn new(env: &Env, cmd: &str) -> Tmux {
        let n = SESSIONS.fetch_add(1, Ordering::SeqCst);
        let name = format!("berth-test-{}-{n}", std::process::id());
        let conf = env.path().join(format!("{name}.conf"));
        fs::write(
            &conf,
            "set -g status off\nsetw -g remain-on-exit on\nset -g history-limit 5000\n",
        )
        .expect("write tmux.conf");
        let mut tmux = Tmux { name, socket: None };
        let out = Command::new("tmux")
            .args(["-L", &tmux.name, "-f"])
            .arg(&conf)
            .args([
                "new-session",
                "-d",
                "-s",
                &tmux.name,
                "-x",
                "100",
                "-y",
                "30",
            ])
            .arg(cmd)
            .env("BERTH_ROOT", env.root())
            .env("BERTH_RUN_ROOT", env.run_root())
            .env("BERTH_CGROUP_PARENT", &env.cgroup_parent)
            .env("ENV", "/dev/null")
            .output()
            .expect("run tmux (apt-get install tmux)");
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux.socket = Some(tmux.display("#{socket_path}"));
        tmux
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.name])
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` and Enter.
    fn line(&self, text: &str) {
        self.tmux(&["send-keys", "-t", &self.name, "-l", text]);
        self.tmux(&["send-keys", "-t", &self.name, "Enter"]);
    }

    fn key(&self, key: &str) {
        self.tmux(&["send-keys", "-t", &self.name, key]);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", &self.name])
    }

    /// Waits until the pane shows `needle` more than `after` times; returns the screen.
    fn wait_for_nth(&self, needle: &str, after: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if s.matches(needle).count() > after {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never showed in the pane:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn wait_for(&self, needle: &str) -> String {
        self.wait_for_nth(needle, 0)
    }

    fn display(&self, format: &str) -> String {
        self.tmux(&["display-message", "-p", "-t", &self.name, format])
            .trim()
            .to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Only this test's own server (its own socket).
        let _ = Command::new("tmux")
            .args(["-L", &self.name, "kill-server"])
            .stderr(Stdio::null())
            .status();
        if let Some(socket) = &self.socket {
            let _ = fs::remove_file(socket);
        }
    }
}

/// `stty -a` of a terminal, as tokens.
fn stty(tty: &str) -> Vec<String> {
    let out = Command::new("stty")
        .args(["-F", tty, "-a"])
        .output()
        .expect("run stty");
    String::from_utf8_lossy(&out.stdout)
        .split(|c: char| c.is_whitespace() || c == ';')
        .map(str::to_string)
        .collect()
}

fn is_raw(tty: &str) -> bool {
    let t = stty(tty);
    t.iter().any(|w| w == "-icanon") && t.iter().any(|w| w == "-echo")
}

fn is_sane(tty: &str) -> bool {
    let t = stty(tty);
    t.iter().any(|w| w == "icanon") && t.iter().any(|w| w == "echo")
}

fn berth() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

#[test]
fn interactive_shell_on_a_pty() {
    let env = Env::new();
    let tmux = Tmux::new(&env, "sh");
    tmux.wait_for("# "); // dash's prompt for root
    let pane_tty = tmux.display("#{pane_tty}");
    assert!(is_sane(&pane_tty), "{:?}", stty(&pane_tty));
    tmux.line(&format!(
        "{} run -it --rm --name tty1 busybox sh; echo EXIT=$?",
        berth()
    ));
    tmux.wait_for("/ # ");
    assert!(
        is_raw(&pane_tty),
        "the caller's terminal is raw while attached: {:?}",
        stty(&pane_tty)
    );

    tmux.line("stty size");
    tmux.wait_for("30 100");
    tmux.line("tty");
    tmux.wait_for("/dev/pts/0");

    tmux.tmux(&["resize-window", "-t", &tmux.name, "-x", "120", "-y", "40"]);
    // The resize reaches the container asynchronously (SIGWINCH to berth, TIOCSWINSZ on the
    // master): ask until it shows.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut asked = 0;
    loop {
        tmux.line("stty size");
        asked += 1;
        std::thread::sleep(Duration::from_millis(200));
        if tmux.screen().contains("40 120") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "resize never reached the container ({asked} tries):\n{}",
            tmux.screen()
        );
    }

    // ^C reaches the container's foreground process (sleep), not the shell or berth.
    tmux.line("sleep 100");
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    tmux.key("C-c");
    tmux.line("echo back-$((40+2))");
    tmux.wait_for("back-42");
    assert!(started.elapsed() < Duration::from_secs(20));

    tmux.line("exit 5");
    tmux.wait_for("EXIT=5");
    assert!(
        is_sane(&pane_tty),
        "terminal restored: {:?}",
        stty(&pane_tty)
    );
    // And as the shell in the pane sees it.
    let before = tmux.screen().matches(" icanon").count();
    tmux.line("stty -a");
    let screen = tmux.wait_for_nth(" icanon", before);
    let after_exit = &screen[screen.rfind("EXIT=5").expect("exit line")..];
    let tokens: Vec<&str> = after_exit.split_whitespace().collect();
    assert!(tokens.contains(&"icanon"), "{after_exit}");
    assert!(tokens.contains(&"echo"), "{after_exit}");
    assert!(!tokens.contains(&"-icanon"), "{after_exit}");
    env.assert_nothing_left();
}

/// The berth process that the pane's `sh -c` runs.
fn berth_child_of(pid: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let children =
            fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for c in children.split_whitespace() {
            let exe = fs::read_link(format!("/proc/{c}/exe")).unwrap_or_default();
            if exe.to_string_lossy().ends_with("/berth") {
                return c.parse().expect("pid");
            }
        }
        assert!(Instant::now() < deadline, "no berth under pid {pid}");
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn guardian_restores_the_terminal_after_sigkill() {
    let env = Env::new();
    let tmux = Tmux::new(
        &env,
        &format!(
            "sh -c '{} run -it --rm --name tty2 busybox sh; echo EXIT=$?; sleep 600'",
            berth()
        ),
    );
    tmux.wait_for("/ # ");
    let pane_tty = tmux.display("#{pane_tty}");
    assert!(is_raw(&pane_tty), "{:?}", stty(&pane_tty));
    let pid = berth_child_of(&tmux.display("#{pane_pid}"));
    // SAFETY: SIGKILL to the berth process this test started (through tmux).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    tmux.wait_for("EXIT=137");
    // Nothing but the guardian restores the terminal here: the pane runs no interactive shell.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_sane(&pane_tty) {
        assert!(
            Instant::now() < deadline,
            "terminal still raw after berth was killed: {:?}",
            stty(&pane_tty)
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn tty_without_a_terminal() {
    let env = Env::new();
    let r = env.berth(&[
        "run",
        "--rm",
        "-t",
        "busybox",
        "sh",
        "-c",
        "tty; echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    // One stream, with the terminal's CRLF, as docker's -t.
    assert_eq!(r.stdout, "/dev/pts/0\r\nout\r\nerr\r\n");
    assert_eq!(r.stderr, "");

    // --init: the reaper is PID 1, the command still has the terminal.
    let out = env.ok(&["run", "--rm", "-t", "--init", "busybox", "tty"]);
    assert_eq!(out, "/dev/pts/0\r\n");

    // The container user owns its terminal.
    let out = env.ok(&[
        "run",
        "--rm",
        "-t",
        "-u",
        "1000",
        "busybox",
        "sh",
        "-c",
        "stat -c %u $(tty)",
    ]);
    assert_eq!(out.trim(), "1000");
}

#[test]
fn interactive_tty_from_a_pipe() {
    let env = Env::new();
    let mut child = env
        .command(&["run", "--rm", "-i", "-t", "busybox", "sh"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"echo hi-$((40+2))\nexit 4\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("hi-42"), "{stdout}");
}

#[test]
fn detached_and_created_ttys_log_to_stdout() {
    let env = Env::new();
    let id = env.ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "dt",
        "busybox",
        "sh",
        "-c",
        "tty; echo done",
    ]);
    assert_eq!(env.ok(&["wait", "dt"]).trim(), "0");
    assert_eq!(env.ok(&["logs", "dt"]), "/dev/pts/0\r\ndone\r\n");
    let log = env
        .root()
        .join("containers")
        .join(id.trim())
        .join(format!("{}-json.log", id.trim()));
    let log = fs::read_to_string(&log).expect("read the json log");
    assert_eq!(log.lines().count(), 2, "{log}");
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        assert_eq!(v["stream"], "stdout", "{line}");
    }
    assert_eq!(env.inspect("dt")["Config"]["Tty"], true);

    env.ok(&["create", "-t", "--name", "ct", "busybox", "tty"]);
    let r = env.berth(&["start", "-a", "ct"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "/dev/pts/0\r\n");
    env.ok(&["rm", "dt", "ct"]);
}
