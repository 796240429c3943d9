//! A berthd of one test that serves `/metrics`: on the test's berth roots (berthd resolves
//! containers through its `--root` and finds their namespaces under `--run-root`), with a
//! default network on a unique bridge `brt<n>` / `10.231.<n>.0/24`, nftables table
//! `berth_t<n>`, no DNS, a 1 s watch loop, and `/metrics` on a free loopback port. Drop kills
//! berthd by pid and deletes the bridge and the table; the forwarding guard puts the host's
//! forwarding sysctls back (tests/common/forwarding.rs, which the test crate includes as
//! `forwarding`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct MetricsBerthd {
    n: u32,
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    /// Last: dropped after berthd is killed.
    _forwarding: crate::forwarding::ForwardingGuard,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl MetricsBerthd {
    /// Starts berthd and waits until `/healthz` answers.
    pub fn start(n: u32, root: &Path, run_root: &Path) -> MetricsBerthd {
        // Before berthd can turn forwarding on: the guard saves what the host had.
        let forwarding = crate::forwarding::ForwardingGuard::take();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "log_level = \"info\"\nreconcile_interval_secs = 0\n\
             metrics_addr = \"127.0.0.1:{port}\"\nwatch_interval_secs = 1\n\
             [default_network]\nbridge = \"brt{n}\"\nsubnet = \"10.231.{n}.0/24\"\n\
             [firewall]\ntable = \"berth_t{n}\"\n[dns]\nenabled = false\n"
        );
        std::fs::write(dir.path().join("berthd.toml"), config).unwrap();
        std::fs::create_dir_all(run_root).unwrap();
        let log = std::fs::File::create(dir.path().join("berthd.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_berthd"))
            .arg("--config")
            .arg(dir.path().join("berthd.toml"))
            .arg("--root")
            .arg(root)
            .arg("--run-root")
            .arg(run_root)
            .env_remove("BERTH_LOG_LEVEL")
            .env_remove("BERTH_SOCKET")
            .env_remove("BERTHD_METRICS_ADDR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut d = MetricsBerthd {
            n,
            dir,
            child: Some(child),
            port,
            _forwarding: forwarding,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while d.get("/healthz").map(|(s, _)| s) != Some(200) {
            if let Some(Ok(Some(_))) = d.child.as_mut().map(Child::try_wait) {
                panic!("berthd exited: {}", d.log());
            }
            assert!(
                Instant::now() < deadline,
                "berthd did not start: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    /// A plain HTTP/1.1 GET; (status, body).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        let (head, body) = buf.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        assert!(
            path != "/metrics" || head.contains("text/plain; version=0.0.4"),
            "content type: {head}"
        );
        // chunked bodies do not occur (Full bodies have a length)
        Some((status, body.to_string()))
    }

    /// One scrape, which must succeed.
    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics").expect("scrape");
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Drop for MetricsBerthd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &format!("brt{}", self.n)])
            .output();
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &format!("berth_t{}", self.n)])
            .output();
    }
}
