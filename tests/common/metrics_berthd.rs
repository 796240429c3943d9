//! A berthd of one test that serves `/metrics` (tests/common/berthd.rs, which the test crate
//! includes as `berthd`, with this config): on the test's berth roots, a default network on
//! a unique bridge `brt<n>` / `10.231.<n>.0/24`, nftables table `berth_t<n>`, no DNS, a 1 s
//! watch loop, and `/metrics` on a free loopback port. Drop is the wrapped berthd's: it kills
//! berthd by pid and deletes the bridge and the table.
#![allow(dead_code)]

use crate::berthd::Berthd;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

pub struct MetricsBerthd {
    pub berthd: Berthd,
    pub port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl MetricsBerthd {
    /// Starts berthd and waits until it answers.
    pub fn start(n: u32, root: &Path, run_root: &Path) -> MetricsBerthd {
        let port = free_port();
        let config = format!(
            "log_level = \"info\"\nreconcile_interval_secs = 0\n\
             metrics_addr = \"127.0.0.1:{port}\"\nwatch_interval_secs = 1\n\
             [default_network]\nbridge = \"brt{n}\"\nsubnet = \"10.231.{n}.0/24\"\n\
             [firewall]\ntable = \"berth_t{n}\"\n[dns]\nenabled = false\n"
        );
        let berthd = Berthd::start_with(n, root, run_root, &config);
        MetricsBerthd { berthd, port }
    }

    pub fn log(&self) -> String {
        self.berthd.log()
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
