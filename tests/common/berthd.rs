//! A berthd of one test, sharing the test's berth roots (berthd resolves containers through
//! its own `--root` and finds their namespaces under `--run-root`): its socket is the default
//! `<run-root>/berthd.sock`, so `berth` finds it without BERTH_SOCKET. The default network
//! is on a unique bridge `brt<n>` with subnet `10.231.<n>.0/24`, the nftables table is
//! `berth_t<n>`, and the DNS resolver answers on the gateway (upstream: a closed loopback
//! port, so no query ever leaves the machine). Drop kills berthd by pid and deletes the
//! bridges and the table.
#![allow(dead_code)]

use berth::api::Client;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

pub struct Berthd {
    pub n: u32,
    dir: tempfile::TempDir,
    root: PathBuf,
    run_root: PathBuf,
    child: Option<Child>,
    /// extra bridges to delete (networks the test created)
    pub links: Vec<String>,
    /// Last: dropped after berthd is killed.
    _forwarding: crate::forwarding::ForwardingGuard,
}

impl Berthd {
    pub fn config(n: u32) -> String {
        format!(
            "log_level = \"debug\"\nreconcile_interval_secs = 0\n\
             [default_network]\nbridge = \"brt{n}\"\nsubnet = \"10.231.{n}.0/24\"\n\
             [firewall]\ntable = \"berth_t{n}\"\n\
             [dns]\nenabled = true\nport = 53\nupstreams = [\"127.0.0.1:9\"]\n"
        )
    }

    /// Starts berthd on `root` and `run_root` and waits until it answers.
    pub fn start(n: u32, root: &Path, run_root: &Path) -> Berthd {
        Self::start_with(n, root, run_root, &Self::config(n))
    }

    /// [`start`](Self::start) with another `config` (which must keep bridge `brt<n>` and
    /// table `berth_t<n>`, for Drop to remove them).
    pub fn start_with(n: u32, root: &Path, run_root: &Path, config: &str) -> Berthd {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("berthd.toml"), config).expect("config");
        std::fs::create_dir_all(run_root).expect("run root");
        let mut d = Berthd {
            n,
            dir,
            root: root.to_path_buf(),
            run_root: run_root.to_path_buf(),
            child: None,
            links: Vec::new(),
            _forwarding: crate::forwarding::ForwardingGuard::take(),
        };
        let log = std::fs::File::create(d.dir.path().join("berthd.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_berthd"))
            .arg("--config")
            .arg(d.dir.path().join("berthd.toml"))
            .arg("--root")
            .arg(&d.root)
            .arg("--run-root")
            .arg(&d.run_root)
            .arg("--socket")
            .arg(d.socket())
            .env_remove("BERTH_LOG_LEVEL")
            .env_remove("BERTH_SOCKET")
            .env_remove("BERTHD_METRICS_ADDR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn berthd");
        d.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while d.client().health().is_err() {
            if let Some(Ok(Some(_))) = d.child.as_mut().map(Child::try_wait) {
                panic!("berthd exited: {}", d.log());
            }
            assert!(
                Instant::now() < deadline,
                "berthd did not start: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn socket(&self) -> PathBuf {
        self.run_root.join("berthd.sock")
    }
    pub fn bridge(&self) -> String {
        format!("brt{}", self.n)
    }
    pub fn gateway(&self) -> String {
        format!("10.231.{}.1", self.n)
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }
    pub fn client(&self) -> Client {
        Client::new(self.socket()).with_timeout(Duration::from_secs(60))
    }

    pub fn netctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_netctl"))
            .args(args)
            .env("BERTH_SOCKET", self.socket())
            .env("BERTH_RUN_ROOT", &self.run_root)
            .env("BERTH_ROOT", &self.root)
            .output()
            .expect("run netctl")
    }

    pub fn netctl_ok(&self, args: &[&str]) -> String {
        let o = self.netctl(args);
        assert!(
            o.status.success(),
            "netctl {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Stops berthd (SIGKILL to its pid).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Berthd {
    fn drop(&mut self) {
        self.kill();
        for l in self.links.iter().chain(std::iter::once(&self.bridge())) {
            let _ = run(&["ip", "link", "del", l]);
        }
        let _ = run(&[
            "nft",
            "delete",
            "table",
            "inet",
            &format!("berth_t{}", self.n),
        ]);
    }
}
