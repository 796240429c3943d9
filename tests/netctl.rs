//! berthd + netctl on the real kernel (root). Each test starts its own berthd with temporary
//! roots, a socket of its own, a default network on a unique bridge `brt<n>` and subnet
//! `10.231.<n>.0/24`, and a unique nftables table `berth_t<n>`; namespaces are `ip netns`
//! `brt-<pid>-<n>-<i>`. Drop guards kill the daemon (by pid), delete the namespaces, bridges,
//! dummy links and the table. Packets only ever go to addresses of the test's own bridges
//! and namespaces, and to 127.0.0.1.

#[path = "common/forwarding.rs"]
mod forwarding;

use berth::api::{AttachRequest, Client, Endpoint, NetworkCreate, Target};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `ip netns` namespaces of one test, deleted on drop.
struct Netns {
    names: Vec<String>,
}

impl Netns {
    fn new(n: u32, count: usize) -> Netns {
        let names: Vec<String> = (0..count)
            .map(|i| format!("brt-{}-{n}-{i}", std::process::id()))
            .collect();
        for name in &names {
            ok(&["ip", "netns", "add", name]);
        }
        Netns { names }
    }
    fn path(&self, i: usize) -> String {
        format!("/run/netns/{}", self.names[i])
    }
    fn exec(&self, i: usize, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", &self.names[i]];
        v.extend_from_slice(args);
        run(&v)
    }
    /// One echo request, tried up to 3 times (a busy 2-core machine running the parallel
    /// tests can miss a 1 s deadline for the first ARP round trip).
    fn ping(&self, i: usize, addr: &str) -> bool {
        (0..3).any(|_| self.exec(i, &["ping", "-c1", "-W1", addr]).status.success())
    }
    fn remove(&mut self, i: usize) {
        let _ = run(&["ip", "netns", "del", &self.names[i]]);
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.names[i]));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for i in 0..self.names.len() {
            self.remove(i);
        }
    }
}

/// One berthd with its own state; killed and cleaned up on drop.
struct Daemon {
    n: u32,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// extra links to delete (bridges of other networks, dummies)
    links: Vec<String>,
    /// Last: dropped after berthd is killed.
    _forwarding: forwarding::ForwardingGuard,
}

impl Daemon {
    fn config(n: u32, extra: &str) -> String {
        format!(
            "log_level = \"info\"\nreconcile_interval_secs = 0\n\
             [default_network]\nbridge = \"brt{n}\"\nsubnet = \"10.231.{n}.0/24\"\n\
             [firewall]\ntable = \"berth_t{n}\"\n[dns]\nenabled = false\n{extra}"
        )
    }

    fn start(n: u32) -> Daemon {
        Self::start_with(n, &Self::config(n, ""))
    }

    fn start_with(n: u32, config: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("berthd.toml"), config).unwrap();
        let mut d = Daemon {
            n,
            dir,
            child: None,
            links: Vec::new(),
            _forwarding: forwarding::ForwardingGuard::take(),
        };
        d.spawn()
            .unwrap_or_else(|e| panic!("berthd did not start: {e}"));
        d
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn run_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }
    fn socket(&self) -> PathBuf {
        self.dir.path().join("berthd.sock")
    }
    fn bridge(&self) -> String {
        format!("brt{}", self.n)
    }
    fn gateway(&self) -> String {
        format!("10.231.{}.1", self.n)
    }

    /// Starts berthd and waits until it answers; on failure returns its stderr.
    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.path().join("berthd.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_berthd"))
            .arg("--config")
            .arg(self.dir.path().join("berthd.toml"))
            .arg("--root")
            .arg(self.root())
            .arg("--run-root")
            .arg(self.run_root())
            .arg("--socket")
            .arg(self.socket())
            .env_remove("BERTH_LOG_LEVEL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.client().health().is_ok() {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return Err(self.log());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("timeout; log:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and the exit status.
    fn term(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY: kill(2) on the pid of our own child, which we have not reaped yet.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        c.wait().unwrap()
    }

    fn client(&self) -> Client {
        Client::new(self.socket()).with_timeout(Duration::from_secs(60))
    }

    fn netctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_netctl"))
            .args(args)
            .env("BERTH_SOCKET", self.socket())
            .env("BERTH_RUN_ROOT", self.run_root())
            .env("BERTH_ROOT", self.root())
            .output()
            .unwrap()
    }

    fn netctl_ok(&self, args: &[&str]) -> String {
        let o = self.netctl(args);
        assert!(
            o.status.success(),
            "netctl {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// netctl that must fail with `code`; returns stderr.
    fn netctl_err(&self, args: &[&str], code: i32) -> String {
        let o = self.netctl(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(code), "netctl {args:?}: {err}");
        err
    }

    fn attach_ns(
        &self,
        path: &str,
        network: Option<&str>,
    ) -> Result<Endpoint, berth::api::ClientError> {
        self.client().attach(&AttachRequest {
            netns: Some(path.into()),
            network: network.map(Into::into),
            ..Default::default()
        })
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        self.client().endpoints(None, None).unwrap()
    }

    /// Host links enslaved to `bridge`.
    fn ports_of(bridge: &str) -> HashSet<String> {
        let out = ok(&["ip", "-o", "link", "show", "master", bridge]);
        out.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
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

/// From the host, out of the test's own bridge only.
fn host_ping(bridge: &str, addr: &str) -> bool {
    (0..3).any(|_| {
        run(&["ping", "-c1", "-W1", "-I", bridge, addr])
            .status
            .success()
    })
}

fn addr_of(e: &Endpoint) -> String {
    e.addresses[0].split('/').next().unwrap().to_string()
}

#[test]
fn networks_create_ls_inspect_rm_and_conflicts() {
    need_root!();
    let mut d = Daemon::start(101);
    d.links.push("brt101b".into());
    d.links.push("brt101d".into());
    let out = d.netctl_ok(&["network", "ls"]);
    assert!(
        out.contains("berth (default)") && out.contains("brt101"),
        "{out}"
    );
    d.netctl_ok(&[
        "network",
        "create",
        "t101",
        "--subnet",
        "10.232.101.0/24",
        "--bridge",
        "brt101b",
        "--mtu",
        "1400",
    ]);
    let j: serde_json::Value =
        serde_json::from_str(&d.netctl_ok(&["network", "inspect", "t101", "--format", "json"]))
            .unwrap();
    assert_eq!(j[0]["bridge"], "brt101b");
    assert_eq!(j[0]["mtu"], 1400);
    assert_eq!(j[0]["subnets"][0]["gateway"], "10.232.101.1");
    assert_eq!(j[0]["subnets"][0]["capacity"], 253);
    assert!(ok(&["ip", "-br", "addr", "show", "brt101b"]).contains("10.232.101.1/24"));
    // conflicts: no state change
    let e = d.netctl_err(
        &["network", "create", "x101", "--subnet", "10.232.101.128/25"],
        1,
    );
    assert!(
        e.contains("overlaps 10.232.101.0/24 of network t101"),
        "{e}"
    );
    let e = d.netctl_err(
        &["network", "create", "x101", "--subnet", "10.231.101.0/16"],
        1,
    );
    assert!(e.contains("host bits") || e.contains("overlaps"), "{e}");
    let e = d.netctl_err(
        &["network", "create", "x101", "--subnet", "10.232.300.0/24"],
        1,
    );
    assert!(e.contains("invalid subnet"), "{e}");
    let e = d.netctl_err(
        &["network", "create", "t101", "--subnet", "10.234.101.0/24"],
        1,
    );
    assert!(e.contains("already exists"), "{e}");
    // a host route (a link of our own, no traffic) blocks its range
    ok(&["ip", "link", "add", "brt101d", "type", "bridge"]);
    ok(&["ip", "addr", "add", "10.233.101.1/24", "dev", "brt101d"]);
    ok(&["ip", "link", "set", "brt101d", "up"]);
    let e = d.netctl_err(
        &["network", "create", "x101", "--subnet", "10.233.101.0/24"],
        1,
    );
    assert!(e.contains("host route 10.233.101.0/24 dev brt101d"), "{e}");
    let names: Vec<String> = d
        .client()
        .networks()
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["berth", "t101"]);
    // the default network stays
    let e = d.netctl_err(&["network", "rm", "berth"], 1);
    assert!(e.contains("default network"), "{e}");
    // rm refuses a network in use unless -f
    let ns = Netns::new(101, 1);
    d.attach_ns(&ns.path(0), Some("t101")).unwrap();
    let e = d.netctl_err(&["network", "rm", "t101"], 1);
    assert!(e.contains("1 endpoint"), "{e}");
    d.netctl_ok(&["network", "rm", "-f", "t101"]);
    assert!(!run(&["ip", "link", "show", "brt101b"]).status.success());
    assert!(!ns.exec(0, &["ip", "link", "show", "eth0"]).status.success());
    let e = d.netctl_err(&["network", "inspect", "t101"], 1);
    assert!(e.contains("no such network: t101"), "{e}");
    // a default subnet on a host route: berthd refuses to start, naming route and key
    let mut bad = Daemon {
        n: 102,
        dir: tempfile::tempdir().unwrap(),
        child: None,
        links: Vec::new(),
        _forwarding: forwarding::ForwardingGuard::take(),
    };
    std::fs::write(
        bad.dir.path().join("berthd.toml"),
        Daemon::config(102, "").replace("10.231.102.0/24", "10.233.101.0/24"),
    )
    .unwrap();
    let e = bad.spawn().unwrap_err();
    assert!(
        e.contains("host route 10.233.101.0/24 dev brt101d")
            && e.contains("default_network.subnet"),
        "{e}"
    );
}

#[test]
fn two_namespaces_ping_each_other_the_gateway_and_by_name() {
    need_root!();
    let d = Daemon::start_with(
        103,
        &Daemon::config(103, "").replace(
            "[dns]\nenabled = false\n",
            "[dns]\nenabled = true\nport = 53\n",
        ),
    );
    let ns = Netns::new(103, 2);
    let a = d.netctl_ok(&["attach", "--netns", &ns.path(0), "--format", "json"]);
    let a: Endpoint = serde_json::from_str(&a).unwrap();
    let b: Endpoint = serde_json::from_str(&d.netctl_ok(&[
        "attach",
        "--netns",
        &ns.path(1),
        "--alias",
        "bee",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!((a.ifname.as_str(), b.ifname.as_str()), ("eth0", "eth0"));
    assert_ne!(a.addresses, b.addresses);
    assert!(ns.ping(0, &addr_of(&b)), "a -> b");
    assert!(ns.ping(1, &addr_of(&a)), "b -> a");
    assert!(ns.ping(0, &d.gateway()), "a -> gateway");
    // the MAC is derived from the address, the default route goes via the gateway
    assert!(a.mac.starts_with("02:42:0a:e7:67:"), "{}", a.mac);
    let routes = String::from_utf8_lossy(&ns.exec(0, &["ip", "route"]).stdout).into_owned();
    assert!(
        routes.contains(&format!("default via {}", d.gateway())),
        "{routes}"
    );
    // names: the resolver on the gateway answers for names and aliases
    for (i, _) in ns.names.iter().enumerate() {
        let dir = format!("/etc/netns/{}", ns.names[i]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            format!("{dir}/resolv.conf"),
            format!("nameserver {}\n", d.gateway()),
        )
        .unwrap();
    }
    let out = ns.exec(0, &["getent", "hosts", "bee"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&addr_of(&b)),
        "{out:?}\n{}",
        d.log()
    );
    assert!(ns.ping(0, &ns.names[1]), "ping by name");
    // ls and inspect
    let ls = d.netctl_ok(&["ls"]);
    assert!(
        ls.contains(&ns.names[0]) && ls.contains(&ns.names[1]),
        "{ls}"
    );
    let insp = d.netctl_ok(&["inspect", "--netns", &ns.path(1)]);
    assert!(insp.contains("aliases:    bee"), "{insp}");
}

#[test]
fn second_network_gives_eth1_and_detach_frees_the_address() {
    need_root!();
    let mut d = Daemon::start(104);
    d.links.push("brt104b".into());
    d.netctl_ok(&[
        "network",
        "create",
        "t104",
        "--subnet",
        "10.232.104.0/24",
        "--bridge",
        "brt104b",
    ]);
    let ns = Netns::new(104, 2);
    d.netctl_ok(&["attach", "--netns", &ns.path(0)]);
    let e: Endpoint = serde_json::from_str(&d.netctl_ok(&[
        "attach",
        "--netns",
        &ns.path(0),
        "--network",
        "t104",
        "--ip",
        "10.232.104.77",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(e.ifname, "eth1");
    assert!(!e.default_route);
    assert!(ns.exec(0, &["ip", "link", "show", "eth1"]).status.success());
    assert!(ns.ping(0, "10.232.104.1"));
    // the address is taken
    let err = d.netctl_err(
        &[
            "attach",
            "--netns",
            &ns.path(1),
            "--network",
            "t104",
            "--ip",
            "10.232.104.77",
        ],
        1,
    );
    assert!(
        err.contains("10.232.104.77") && err.contains("already allocated"),
        "{err}"
    );
    // attaching twice to one network is refused
    let err = d.netctl_err(&["attach", "--netns", &ns.path(0), "--network", "t104"], 1);
    assert!(err.contains("already attached"), "{err}");
    d.netctl_ok(&["detach", "--netns", &ns.path(0), "--network", "t104"]);
    assert!(!ns.exec(0, &["ip", "link", "show", "eth1"]).status.success());
    assert!(ns.exec(0, &["ip", "link", "show", "eth0"]).status.success());
    let e2 = d
        .client()
        .attach(&AttachRequest {
            netns: Some(ns.path(1)),
            network: Some("t104".into()),
            ip: Some("10.232.104.77".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(e2.addresses, ["10.232.104.77/24"]);
    // detach without --network: everything of that namespace
    let out = d.client().detach(
        &Target {
            netns: Some(ns.path(0)),
            ..Default::default()
        },
        None,
    );
    assert_eq!(out.unwrap().detached.len(), 1);
    let err = d.netctl_err(&["detach", "--netns", &ns.path(0)], 1);
    assert!(err.contains("not attached"), "{err}");
}

fn parallel_attach(d: &Daemon, paths: Vec<String>) -> Vec<Result<Endpoint, String>> {
    let client = Arc::new(d.client());
    let hs: Vec<_> = paths
        .into_iter()
        .map(|p| {
            let c = client.clone();
            std::thread::spawn(move || {
                c.attach(&AttachRequest {
                    netns: Some(p),
                    ..Default::default()
                })
                .map_err(|e| e.to_string())
            })
        })
        .collect();
    hs.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn hundred_parallel_attaches_get_distinct_reachable_addresses() {
    need_root!();
    let d = Daemon::start(105);
    let ns = Netns::new(105, 100);
    let res = parallel_attach(&d, (0..100).map(|i| ns.path(i)).collect());
    let eps: Vec<Endpoint> = res.into_iter().map(|r| r.unwrap()).collect();
    let addrs: HashSet<String> = eps.iter().map(addr_of).collect();
    assert_eq!(addrs.len(), 100);
    assert_eq!(Daemon::ports_of(&d.bridge()).len(), 100);
    for a in &addrs {
        assert!(host_ping(&d.bridge(), a), "{a} unreachable");
    }
    let net = d.client().network("berth").unwrap();
    assert_eq!(net.subnets[0].in_use, 100);
}

#[test]
fn kill9_during_parallel_attaches_leaves_no_duplicates_or_orphans() {
    need_root!();
    let mut d = Daemon::start(106);
    let ns = Netns::new(106, 50);
    let client = Arc::new(d.client());
    let hs: Vec<_> = (0..50)
        .map(|i| {
            let c = client.clone();
            let p = ns.path(i);
            std::thread::spawn(move || {
                c.attach(&AttachRequest {
                    netns: Some(p),
                    ..Default::default()
                })
            })
        })
        .collect();
    // kill once some have landed
    let leases = d.run_root().join("endpoints").join("berth");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&leases).map(|r| r.count()).unwrap_or(0) < 5
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    d.kill9();
    let ok_before: usize = hs
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|r| r.is_ok())
        .count();
    d.spawn().unwrap();
    let eps = d.endpoints();
    assert!(
        eps.len() >= ok_before,
        "{} endpoints, {ok_before} attaches answered",
        eps.len()
    );
    let addrs: HashSet<String> = eps.iter().map(addr_of).collect();
    assert_eq!(addrs.len(), eps.len(), "duplicate addresses");
    // no orphan veths: the bridge's ports are exactly the endpoints' veths
    let want: HashSet<String> = eps.iter().map(|e| e.host_ifname.clone()).collect();
    assert_eq!(Daemon::ports_of(&d.bridge()), want);
    // namespaces without an endpoint have no eth0 left
    let attached: HashSet<String> = eps.iter().map(|e| e.netns.clone()).collect();
    for i in 0..50 {
        if !attached.contains(&ns.path(i)) {
            assert!(!ns.exec(i, &["ip", "link", "show", "eth0"]).status.success());
        }
    }
    // lease count matches
    let net = d.client().network("berth").unwrap();
    assert_eq!(net.subnets[0].in_use as usize, eps.len());
    // survivors reachable
    for e in &eps {
        let a = addr_of(e);
        assert!(host_ping(&d.bridge(), &a), "{a}");
    }
    // the rest attach now, with fresh distinct addresses
    let rest: Vec<String> = (0..50)
        .map(|i| ns.path(i))
        .filter(|p| !attached.contains(p))
        .collect();
    for r in parallel_attach(&d, rest) {
        r.unwrap();
    }
    let all: HashSet<String> = d.endpoints().iter().map(addr_of).collect();
    assert_eq!(all.len(), 50);
}

#[test]
fn leases_and_endpoints_persist_across_a_clean_restart() {
    need_root!();
    let mut d = Daemon::start(107);
    let ns = Netns::new(107, 4);
    for i in 0..3 {
        d.attach_ns(&ns.path(i), None).unwrap();
    }
    let before = d.endpoints();
    let st = d.term();
    assert!(st.success(), "{st:?}\n{}", d.log());
    assert!(!d.socket().exists());
    // the network stays up while berthd is down
    assert!(ns.ping(0, &addr_of(&before[1])));
    d.spawn().unwrap();
    let after = d.endpoints();
    assert_eq!(
        before
            .iter()
            .map(|e| (&e.name, &e.addresses))
            .collect::<Vec<_>>(),
        after
            .iter()
            .map(|e| (&e.name, &e.addresses))
            .collect::<Vec<_>>()
    );
    let e = d.attach_ns(&ns.path(3), None).unwrap();
    assert!(!before.iter().any(|b| b.addresses == e.addresses));
    assert!(ns.ping(3, &addr_of(&before[0])));
}

#[test]
fn reconcile_releases_leases_of_deleted_namespaces() {
    need_root!();
    let d = Daemon::start(108);
    let mut ns = Netns::new(108, 3);
    let a = d.attach_ns(&ns.path(0), None).unwrap();
    d.attach_ns(&ns.path(1), None).unwrap();
    ns.remove(0);
    let r = d.client().reconcile().unwrap();
    assert_eq!(r.removed_endpoints.len(), 1, "{r:?}");
    assert_eq!(d.endpoints().len(), 1);
    // the address is free again
    let e = d
        .client()
        .attach(&AttachRequest {
            netns: Some(ns.path(2)),
            ip: Some(addr_of(&a).parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(e.addresses, a.addresses);
    assert_eq!(Daemon::ports_of(&d.bridge()).len(), 2);
    let out = d.netctl_ok(&["reconcile"]);
    assert!(out.contains("endpoints: 2"), "{out}");
}

fn raw(socket: &Path, data: &[u8]) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(data).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    need_root!();
    let d = Daemon::start(109);
    let ns = Netns::new(109, 2);
    d.netctl_ok(&["attach", "--netns", &ns.path(0), "-p", "127.0.0.1:18109:80"]);
    let before = d.endpoints();
    // garbage on the socket
    let r = raw(&d.socket(), b"\x00\x01garbage\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    // malformed JSON
    let body = b"{\"name\": ";
    let req = format!(
        "POST /v1/networks HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let r = raw(&d.socket(), &[req.as_bytes(), body].concat());
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("invalid_json"),
        "{r}"
    );
    // wrong types, unknown fields
    let r = d
        .client()
        .raw("POST", "/v1/endpoints", Some(b"{\"netns\": 5}"))
        .unwrap();
    assert_eq!(r.status, 400);
    let r = d
        .client()
        .raw("POST", "/v1/endpoints", Some(b"{\"bogus\": 1}"))
        .unwrap();
    assert_eq!(r.status, 400);
    // too large
    let big = vec![b' '; 2 << 20];
    let r = d.client().raw("POST", "/v1/networks", Some(&big)).unwrap();
    assert_eq!(r.status, 413);
    // unknown path and method
    assert_eq!(d.client().raw("GET", "/v1/nope", None).unwrap().status, 404);
    assert_eq!(
        d.client().raw("PUT", "/v1/networks", None).unwrap().status,
        405
    );
    // CLI errors
    let e = d.netctl_err(&["attach", "no-such-container"], 1);
    assert!(e.contains("no such container: no-such-container"), "{e}");
    let e = d.netctl_err(&["attach", "--netns", &ns.path(1), "--network", "nope"], 1);
    assert!(e.contains("no such network: nope"), "{e}");
    let e = d.netctl_err(&["attach", "--netns", &ns.path(1), "-p", "99999:80"], 2);
    assert!(e.contains("invalid port spec"), "{e}");
    let e = d.netctl_err(&["attach", "--netns", &ns.path(1), "-p", "18109:81"], 1);
    assert!(e.contains("already published"), "{e}");
    let e = d.netctl_err(&["attach", "--netns", &ns.path(1), "--ip", "10.9.9.9"], 1);
    assert!(e.contains("not in any subnet of network berth"), "{e}");
    let e = d.netctl_err(&["attach", "--netns", &ns.path(1), "--ip", &d.gateway()], 1);
    assert!(e.contains("the gateway"), "{e}");
    let e = d.netctl_err(
        &[
            "attach",
            "--netns",
            &ns.path(1),
            "--ip",
            &addr_of(&before[0]),
        ],
        1,
    );
    assert!(e.contains("already allocated"), "{e}");
    let e = d.netctl_err(&["attach", "--netns", "/proc/self/ns/net"], 1);
    assert!(e.contains("host's network namespace"), "{e}");
    let e = d.netctl_err(&["attach", "--netns", &ns.path(1), "--mac", "zz"], 1);
    assert!(e.contains("--mac zz"), "{e}");
    let e = d.netctl_err(&["network", "create", "x", "--subnet", "nonsense"], 1);
    assert!(e.contains("invalid subnet"), "{e}");
    let e = d.netctl_err(&["frobnicate"], 2);
    assert!(!e.is_empty());
    // nothing changed, berthd alive
    assert_eq!(d.endpoints(), before);
    assert!(!ns.exec(1, &["ip", "link", "show", "eth0"]).status.success());
    assert_eq!(d.client().network("berth").unwrap().subnets[0].in_use, 1);
    d.client().health().unwrap();
}

#[test]
fn exhaustion_names_the_network_and_its_size() {
    need_root!();
    let mut d = Daemon::start(110);
    d.links.push("brt110b".into());
    d.client()
        .create_network(&NetworkCreate {
            name: "tiny110".into(),
            subnets: vec!["10.232.110.0/29".into()],
            bridge: Some("brt110b".into()),
            ..Default::default()
        })
        .unwrap();
    let ns = Netns::new(110, 6);
    for i in 0..5 {
        d.attach_ns(&ns.path(i), Some("tiny110")).unwrap();
    }
    let e = d.netctl_err(
        &["attach", "--netns", &ns.path(5), "--network", "tiny110"],
        1,
    );
    assert!(
        e.contains("network tiny110 is full") && e.contains("all 5 addresses"),
        "{e}"
    );
    assert_eq!(Daemon::ports_of("brt110b").len(), 5);
}

#[test]
fn netctl_says_how_to_start_berthd() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_netctl"))
        .arg("ls")
        .env("BERTH_SOCKET", dir.path().join("none.sock"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("berthd is not running") && e.contains("berthd &"),
        "{e}"
    );
}

#[test]
fn published_port_answers_on_loopback_and_after_table_loss() {
    need_root!();
    if run(&["sh", "-c", "command -v python3 && command -v curl"])
        .status
        .code()
        != Some(0)
    {
        eprintln!("skipped: needs python3 and curl");
        return;
    }
    let d = Daemon::start(111);
    let ns = Netns::new(111, 1);
    let e = d
        .client()
        .attach(&AttachRequest {
            netns: Some(ns.path(0)),
            ports: vec![berth::api::parse_port("127.0.0.1:18111:8000").unwrap()],
            ..Default::default()
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "hello from brt111\n").unwrap();
    let mut srv = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.names[0],
            "python3",
            "-m",
            "http.server",
            "8000",
            "--bind",
        ])
        .arg(addr_of(&e))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let fetch = || {
        let o = run(&["curl", "-s", "-m", "2", "http://127.0.0.1:18111/index.html"]);
        String::from_utf8_lossy(&o.stdout).contains("hello from brt111")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fetch() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = fetch();
    ok(&["nft", "delete", "table", "inet", "berth_t111"]);
    let gone = fetch();
    let r = d.client().reconcile().unwrap();
    let back = fetch();
    let _ = srv.kill();
    let _ = srv.wait();
    assert!(first, "published port did not answer");
    assert!(!gone, "answered without berth's table");
    assert!(r.firewall_restored, "{r:?}");
    assert!(back, "published port did not come back after reconcile");
}
