//! `berth run --network` with berthd on the real kernel (root). Each test has its own berth
//! roots and cgroup parent (`Env`), and its own berthd on them (tests/common/berthd.rs): a
//! default network on bridge `brt<n>` / `10.231.<n>.0/24`, extra networks on `brt<n><x>` /
//! `10.232.<n>.0/24`, `10.233.<n>.0/24`, `fd00:231:<n>::/64`, nftables table `berth_t<n>`.
//! Drop guards kill berthd and the test's containers by pid and delete the bridges and the
//! table. Packets only go to addresses of the test's own bridges and containers, and to
//! 127.0.0.1.

#[path = "common/berthd.rs"]
mod berthd;
#[path = "common/container_env.rs"]
mod container_env;
#[path = "common/forwarding.rs"]
mod forwarding;
#[path = "common/layout.rs"]
mod layout;

use berthd::{is_root, run, Berthd};
use container_env::{Env, Run};
use serde_json::Value;
use std::time::{Duration, Instant};

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

fn setup(n: u32) -> (Env, Berthd) {
    let env = Env::new();
    let d = Berthd::start(n, &env.root(), &env.run_root());
    (env, d)
}

fn exec(env: &Env, name: &str, args: &[&str]) -> Run {
    let mut v = vec!["exec", name];
    v.extend_from_slice(args);
    env.berth(&v)
}

/// One echo request from inside `name`, tried up to 3 times (a busy 2-core machine can miss
/// a 1 s deadline for the first ARP round trip).
fn ping(env: &Env, name: &str, args: &[&str]) -> bool {
    let mut v = vec!["ping", "-c1", "-W1"];
    v.extend_from_slice(args);
    (0..3).any(|_| exec(env, name, &v).code == 0)
}

/// `run -d` busybox with `flags` and `cmd`; returns the id.
fn run_d(env: &Env, flags: &[&str], cmd: &[&str]) -> String {
    let mut v = vec!["run", "-d"];
    v.extend_from_slice(flags);
    v.push("busybox");
    v.extend_from_slice(cmd);
    let id = env.ok(&v).trim().to_string();
    id
}

fn settings(env: &Env, name: &str) -> Value {
    env.inspect(name)["NetworkSettings"].clone()
}

fn ip_of(env: &Env, name: &str, network: &str) -> String {
    let s = settings(env, name);
    let ip = s["Networks"][network]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!ip.is_empty(), "{name} has no address on {network}: {s}");
    ip
}

fn endpoints(d: &Berthd) -> usize {
    d.client().endpoints(None, None).expect("endpoints").len()
}

/// Waits until berthd lists `n` endpoints.
fn wait_endpoints(d: &Berthd, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while endpoints(d) != n {
        assert!(
            Instant::now() < deadline,
            "berthd still has {} endpoints, expected {n}",
            endpoints(d)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn containers_reach_each_other_by_ip_and_name_and_get_hosts_files() {
    need_root!();
    let (env, d) = setup(150);
    let gw = d.gateway();
    run_d(
        &env,
        &[
            "--name",
            "a150",
            "--hostname",
            "hosta",
            "--network-alias",
            "alpha150",
            "--add-host",
            "extra150:192.0.2.7",
        ],
        &["sleep", "300"],
    );
    // No --network: berthd runs, so the default network.
    run_d(&env, &["--name", "b150"], &["sleep", "300"]);
    let a = ip_of(&env, "a150", "berth");
    let b = ip_of(&env, "b150", "berth");
    assert!(a.starts_with("10.231.150.") && b.starts_with("10.231.150."));
    assert_ne!(a, b);
    assert_eq!(env.inspect("b150")["HostConfig"]["NetworkMode"], "berth");
    let s = settings(&env, "a150");
    assert_eq!(s["Networks"]["berth"]["Gateway"], gw.as_str(), "{s}");
    assert!(
        s["Networks"]["berth"]["MacAddress"]
            .as_str()
            .unwrap()
            .starts_with("02:42:"),
        "{s}"
    );
    assert_eq!(s["Networks"]["berth"]["Aliases"][0], "alpha150", "{s}");

    assert!(ping(&env, "b150", &[&a]), "b150 cannot ping a150 by IP");
    assert!(ping(&env, "a150", &[&b]), "a150 cannot ping b150 by IP");
    assert!(ping(&env, "a150", &[&gw]), "a150 cannot ping the gateway");
    assert!(
        ping(&env, "b150", &["a150"]),
        "b150 cannot ping a150 by name"
    );
    assert!(
        ping(&env, "b150", &["alpha150"]),
        "b150 cannot ping alpha150"
    );
    assert!(
        ping(&env, "a150", &["b150"]),
        "a150 cannot ping b150 by name"
    );

    let hosts = exec(&env, "a150", &["cat", "/etc/hosts"]).stdout;
    assert!(hosts.contains("127.0.0.1\tlocalhost"), "{hosts}");
    assert!(
        hosts.contains(&format!("{a}\thosta a150 alpha150")),
        "{hosts}"
    );
    assert!(hosts.contains("192.0.2.7\textra150"), "{hosts}");
    let resolv = exec(&env, "a150", &["cat", "/etc/resolv.conf"]).stdout;
    assert!(resolv.contains(&format!("nameserver {gw}\n")), "{resolv}");
    let eth0 = exec(&env, "a150", &["ip", "route"]).stdout;
    assert!(eth0.contains(&format!("default via {gw}")), "{eth0}");

    // --dns replaces the resolver
    let out = env.sh(&["--dns", "192.0.2.53"], "cat /etc/resolv.conf");
    assert!(
        out.contains("nameserver 192.0.2.53") && !out.contains(&gw),
        "{out}"
    );

    // A fixed address; a taken one fails with berthd's message and leaves nothing attached.
    run_d(
        &env,
        &["--name", "c150", "--ip", "10.231.150.77"],
        &["sleep", "300"],
    );
    let ip = exec(&env, "c150", &["ip", "-4", "addr", "show", "eth0"]).stdout;
    assert!(ip.contains("10.231.150.77/24"), "{ip}");
    wait_endpoints(&d, 3);
    let r = env.berth(&[
        "run",
        "-d",
        "--name",
        "x150",
        "--ip",
        "10.231.150.77",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(r.code, 125, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("10.231.150.77"), "{}", r.stderr);
    wait_endpoints(&d, 3);
    assert_eq!(env.inspect("x150")["State"]["Running"], false);
    env.ok(&["rm", "x150"]);

    // rm -f releases the address: it can be used again at once.
    env.ok(&["rm", "-f", "c150"]);
    wait_endpoints(&d, 2);
    run_d(
        &env,
        &["--name", "e150", "--ip", "10.231.150.77"],
        &["sleep", "300"],
    );
    wait_endpoints(&d, 3);

    // Container exit releases everything; so does --rm.
    env.ok(&["run", "--name", "f150", "busybox", "true"]);
    wait_endpoints(&d, 3);
    env.ok(&["run", "--rm", "busybox", "true"]);
    wait_endpoints(&d, 3);
    env.ok(&["rm", "-f", "a150", "b150", "e150", "f150"]);
    wait_endpoints(&d, 0);
    let ls = d.netctl_ok(&["ls"]);
    assert!(!ls.contains("10.231.150."), "{ls}");
}

#[test]
fn published_ports_answer_on_loopback_host_address_and_hairpin() {
    need_root!();
    if run(&["sh", "-c", "command -v curl"]).status.code() != Some(0) {
        eprintln!("skipped: needs curl");
        return;
    }
    let (env, d) = setup(151);
    let gw = d.gateway();
    run_d(
        &env,
        &[
            "--name",
            "web151",
            "-p",
            "127.0.0.1:18151:80",
            "-p",
            "18152:80",
        ],
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo hello-151 > /www/index.html && exec httpd -f -p 80 -h /www",
        ],
    );
    let s = settings(&env, "web151");
    let ports = s["Ports"]["80/tcp"].as_array().cloned().unwrap_or_default();
    assert_eq!(ports.len(), 2, "{s}");
    let fetch = |url: &str| {
        let o = run(&["curl", "-s", "-m", "2", url]);
        String::from_utf8_lossy(&o.stdout).contains("hello-151")
    };
    let wait_fetch = |url: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !fetch(url) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        true
    };
    assert!(wait_fetch("http://127.0.0.1:18151/"), "127.0.0.1:18151");
    assert!(
        wait_fetch(&format!("http://{gw}:18152/")),
        "{gw}:18152 (a host address)"
    );
    // hairpin: the container reaches its own published port through the host (busybox nc:
    // the static busybox's wget crashes in its libc, even on 127.0.0.1)
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {gw} 18152");
    let hairpin = (0..3).any(|_| {
        exec(&env, "web151", &["sh", "-c", &get])
            .stdout
            .contains("hello-151")
    });
    assert!(hairpin, "hairpin to {gw}:18152");
    // a second container may not take the same host port: 125, nothing left attached
    let r = env.berth(&["run", "--rm", "-p", "18152:80", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    wait_endpoints(&d, 1);
    env.ok(&["rm", "-f", "web151"]);
    wait_endpoints(&d, 0);
    assert!(!fetch("http://127.0.0.1:18151/"));
}

#[test]
fn networks_are_isolated_internal_has_no_route_and_mtu_holds() {
    need_root!();
    let (env, mut d) = setup(152);
    d.links.extend(["brt152a".into(), "brt152i".into()]);
    d.netctl_ok(&[
        "network",
        "create",
        "a152",
        "--subnet",
        "10.232.152.0/24",
        "--mtu",
        "1400",
        "--bridge",
        "brt152a",
    ]);
    d.netctl_ok(&[
        "network",
        "create",
        "i152",
        "--subnet",
        "10.233.152.0/24",
        "--internal",
        "--bridge",
        "brt152i",
    ]);
    run_d(&env, &["--name", "x152"], &["sleep", "300"]);
    run_d(
        &env,
        &["--name", "y152", "--network", "a152"],
        &["sleep", "300"],
    );
    run_d(
        &env,
        &["--name", "z152", "--network", "i152"],
        &["sleep", "300"],
    );
    // two networks: eth0 on the first (default route), eth1 on the second
    run_d(
        &env,
        &["--name", "w152", "--network", "a152", "--network", "berth"],
        &["sleep", "300"],
    );
    let x = ip_of(&env, "x152", "berth");
    let y = ip_of(&env, "y152", "a152");
    let w = ip_of(&env, "w152", "berth");
    assert!(y.starts_with("10.232.152."), "{y}");
    assert!(ping(&env, "w152", &[&x]), "w152 reaches x152 on eth1");
    assert!(ping(&env, "w152", &[&y]), "w152 reaches y152 on eth0");
    assert!(ping(&env, "x152", &[&w]));
    // network A cannot reach network B
    for _ in 0..2 {
        assert_ne!(
            exec(&env, "x152", &["ping", "-c1", "-W1", &y]).code,
            0,
            "x152 reached y152 across networks"
        );
        assert_ne!(exec(&env, "y152", &["ping", "-c1", "-W1", &x]).code, 0);
    }
    // internal network: no default route
    let routes = exec(&env, "z152", &["ip", "route"]).stdout;
    assert!(!routes.contains("default"), "{routes}");
    assert!(routes.contains("10.233.152.0/24"), "{routes}");
    // the MTU of the network
    let mtu = exec(&env, "y152", &["cat", "/sys/class/net/eth0/mtu"]).stdout;
    assert_eq!(mtu.trim(), "1400");
    let routes = exec(&env, "w152", &["ip", "route"]).stdout;
    assert!(
        routes.contains("default via 10.232.152.1 dev eth0"),
        "{routes}"
    );
    assert!(routes.contains("dev eth1"), "{routes}");
    env.ok(&["rm", "-f", "x152", "y152", "z152", "w152"]);
    wait_endpoints(&d, 0);
}

#[test]
fn ipv6_dual_stack() {
    need_root!();
    let (env, mut d) = setup(155);
    d.links.push("brt155v".into());
    d.netctl_ok(&[
        "network",
        "create",
        "v155",
        "--subnet",
        "10.232.155.0/24",
        "--ipv6",
        "--subnet",
        "fd00:231:155::/64",
        "--bridge",
        "brt155v",
    ]);
    for n in ["p155", "q155"] {
        run_d(&env, &["--name", n, "--network", "v155"], &["sleep", "300"]);
    }
    let s = settings(&env, "q155");
    let q6 = s["Networks"]["v155"]["GlobalIPv6Address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(q6.starts_with("fd00:231:155::"), "{s}");
    let addrs = exec(&env, "p155", &["ip", "-6", "addr", "show", "eth0"]).stdout;
    assert!(addrs.contains("fd00:231:155::"), "{addrs}");
    assert!(ping(&env, "p155", &["-6", &q6]), "p155 cannot ping {q6}");
    let q4 = ip_of(&env, "q155", "v155");
    assert!(ping(&env, "p155", &[&q4]));
    let hosts = exec(&env, "q155", &["cat", "/etc/hosts"]).stdout;
    assert!(hosts.contains(&format!("{q6}\t")), "{hosts}");
    env.ok(&["rm", "-f", "p155", "q155"]);
    wait_endpoints(&d, 0);
}

#[test]
fn a_network_without_berthd_fails_with_125_and_creates_nothing() {
    need_root!();
    let env = Env::new();
    for flags in [
        vec!["--network", "web"],
        vec!["-p", "8080:80"],
        vec!["--network", "web", "-d"],
    ] {
        let mut args = vec!["run"];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&["busybox", "true"]);
        let r = env.berth(&args);
        assert_eq!(r.code, 125, "{flags:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("berthd is not running") && r.stderr.contains("berthd &"),
            "{}",
            r.stderr
        );
    }
    let r = env.berth(&["create", "--network", "web", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    // without a network flag: no berthd, so `none`
    let out = env.sh(&[], "ip -o link | cut -d: -f2");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"], "{out}");
    // bad flags are usage errors before anything happens
    let r = env.berth(&["run", "--network", "none", "-p", "80:80", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("conflicting options"), "{}", r.stderr);
    env.assert_nothing_left();
}

#[test]
fn unknown_network_is_refused_before_create() {
    need_root!();
    let (env, d) = setup(156);
    let r = env.berth(&["run", "--network", "nosuch156", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("no such network: nosuch156"),
        "{}",
        r.stderr
    );
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    // --network none with berthd running: loopback only, no endpoint
    let out = env.sh(&["--network", "none"], "ip -o link | cut -d: -f2");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"], "{out}");
    assert_eq!(endpoints(&d), 0);
}
