use super::*;
use std::collections::HashSet;

/// Leases live on tmpfs in production (the run root); test there too when it exists, so the
/// per-change fsync costs what it costs in production.
fn tmp() -> tempfile::TempDir {
    match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}
use std::str::FromStr;

fn v4(net: &str) -> SubnetDef {
    let subnet = IpNetwork::from_str(net).unwrap();
    SubnetDef {
        subnet,
        gateway: default_gateway(subnet),
    }
}

fn req(owner: &str) -> LeaseRequest {
    LeaseRequest {
        owner: owner.to_string(),
        ..Default::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn first_lease_skips_network_and_gateway() {
    let d = tmp();
    let mut ipam = Ipam::open(d.path(), "net1", &[v4("10.9.0.0/24")]).unwrap();
    let l = ipam.allocate(req("a")).unwrap();
    assert_eq!(
        l.addresses,
        vec![IpNetwork::from_str("10.9.0.2/24").unwrap()]
    );
    assert_eq!(l.ipv4(), Some(Ipv4Addr::new(10, 9, 0, 2)));
    assert_eq!(ipam.holder(ip("10.9.0.2")), Some("a"));
}

#[test]
fn small_subnet_exhausts_with_named_error_and_never_hands_out_reserved() {
    let d = tmp();
    // /29: 8 addresses, .0 network, .7 broadcast, .1 gateway -> 5 usable
    let mut ipam = Ipam::open(d.path(), "tiny", &[v4("10.9.1.0/29")]).unwrap();
    let mut got = Vec::new();
    for i in 0..5 {
        got.push(ipam.allocate(req(&format!("c{i}"))).unwrap().addresses[0].ip());
    }
    let want: Vec<IpAddr> = (2..=6).map(|i| ip(&format!("10.9.1.{i}"))).collect();
    assert_eq!(got, want);
    let e = ipam.allocate(req("c5")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, IpamError::Exhausted { size: 5, .. }), "{msg}");
    assert!(
        msg.contains("tiny") && msg.contains("10.9.1.0/29") && msg.contains('5'),
        "{msg}"
    );
    assert_eq!(ipam.len(), 5);
    // release one: it is handed out again
    ipam.release("c2").unwrap().unwrap();
    let l = ipam.allocate(req("c6")).unwrap();
    assert_eq!(l.addresses[0].ip(), ip("10.9.1.4"));
}

#[test]
fn requested_addresses_are_validated() {
    let d = tmp();
    let mut ipam = Ipam::open(d.path(), "n", &[v4("10.9.2.0/24")]).unwrap();
    let mut r = req("a");
    r.requested = vec![ip("10.9.2.50")];
    assert_eq!(ipam.allocate(r).unwrap().addresses[0].ip(), ip("10.9.2.50"));

    let cases = [
        ("10.9.3.5", "not in any subnet"),
        ("10.9.2.1", "the gateway"),
        ("10.9.2.0", "the network address"),
        ("10.9.2.255", "the broadcast address"),
        ("10.9.2.50", "already allocated to a"),
    ];
    for (addr, want) in cases {
        let mut r = req("b");
        r.requested = vec![ip(addr)];
        let e = ipam.allocate(r).unwrap_err().to_string();
        assert!(e.contains(want), "{addr}: {e}");
        assert!(e.contains(addr), "{addr}: {e}");
    }
    let mut r = req("b");
    r.requested = vec![ip("10.9.2.60"), ip("10.9.2.61")];
    assert!(matches!(
        ipam.allocate(r),
        Err(IpamError::DuplicateRequest { .. })
    ));
    // nothing changed by the failures
    assert_eq!(ipam.len(), 1);
    assert!(matches!(
        ipam.allocate(req("a")),
        Err(IpamError::OwnerExists { .. })
    ));
    // automatic allocation skips the requested one later on
    for i in 0..60 {
        let l = ipam.allocate(req(&format!("x{i}"))).unwrap();
        assert_ne!(l.addresses[0].ip(), ip("10.9.2.50"));
    }
}

#[test]
fn thousand_endpoints_no_duplicates_and_round_trip() {
    let d = tmp();
    let subnets = [v4("10.10.0.0/16"), {
        let s = IpNetwork::from_str("fd00:beef::/64").unwrap();
        SubnetDef {
            subnet: s,
            gateway: default_gateway(s),
        }
    }];
    let mut ipam = Ipam::open(d.path(), "big", &subnets).unwrap();
    let mut seen = HashSet::new();
    for i in 0..1200 {
        let l = ipam.allocate(req(&format!("c{i}"))).unwrap();
        assert_eq!(l.addresses.len(), 2);
        for a in &l.addresses {
            assert!(seen.insert(a.ip()), "duplicate {a}");
            assert_ne!(a.ip(), ip("10.10.0.1"));
            assert_ne!(a.ip(), ip("fd00:beef::1"));
            assert_ne!(a.ip(), ip("fd00:beef::"));
        }
    }
    // release every third, then reload from disk: same leases, same holders
    for i in (0..1200).step_by(3) {
        ipam.release(&format!("c{i}")).unwrap().unwrap();
    }
    let before: Vec<Lease> = ipam.leases().cloned().collect();
    let usage = ipam.usage();
    drop(ipam);
    let mut again = Ipam::open(d.path(), "big", &subnets).unwrap();
    let after: Vec<Lease> = again.leases().cloned().collect();
    assert_eq!(before, after);
    assert_eq!(usage, again.usage());
    assert_eq!(again.usage()[0].2, 800);
    // the cursor survived: new allocations continue after the last one and stay unique
    let l = again.allocate(req("new")).unwrap();
    for a in &l.addresses {
        assert!(again.holder(a.ip()) == Some("new"));
        assert!(!after.iter().any(|x| x.addresses.contains(a)), "reused {a}");
    }
    assert_eq!(l.ipv4(), Some(Ipv4Addr::new(10, 10, 4, 178)));
}

#[test]
fn full_slash_22_allocates_every_address_once() {
    let d = tmp();
    let mut ipam = Ipam::open(d.path(), "n22", &[v4("10.11.0.0/22")]).unwrap();
    let mut seen = HashSet::new();
    for i in 0..1021 {
        let l = ipam.allocate(req(&format!("c{i}"))).unwrap();
        assert!(seen.insert(l.addresses[0].ip()));
    }
    assert!(matches!(
        ipam.allocate(req("over")),
        Err(IpamError::Exhausted { size: 1021, .. })
    ));
    // wrap-around after releases in the middle
    ipam.release("c500").unwrap();
    ipam.release("c7").unwrap();
    let a = ipam.allocate(req("w1")).unwrap().addresses[0].ip();
    let b = ipam.allocate(req("w2")).unwrap().addresses[0].ip();
    let mut got = [a, b];
    got.sort();
    assert_eq!(got, [ip("10.11.0.9"), ip("10.11.1.246")]);
}

#[test]
fn ipv6_skips_reserved_anycast() {
    let d = tmp();
    let s = IpNetwork::from_str("fd00:1::/120").unwrap();
    let gw = ip("fd00:1::1");
    let mut ipam = Ipam::open(
        d.path(),
        "v6",
        &[SubnetDef {
            subnet: s,
            gateway: gw,
        }],
    )
    .unwrap();
    // /120 = 256 addresses, minus ::0, minus top 128, minus gateway = 126
    assert_eq!(ipam.usage()[0].1, 126);
    for i in 0..126 {
        let l = ipam.allocate(req(&format!("c{i}"))).unwrap();
        let a = l.ipv6().unwrap();
        assert!(a.segments()[7] >= 2 && a.segments()[7] <= 0x7f, "{a}");
    }
    assert!(ipam.allocate(req("x")).is_err());
    let mut r = req("y");
    r.requested = vec![ip("fd00:1::ff")];
    ipam.release("c0").unwrap();
    let e = ipam.allocate(r).unwrap_err().to_string();
    assert!(e.contains("RFC 2526"), "{e}");
}

#[test]
fn bad_subnets_are_rejected() {
    let d = tmp();
    let cases = [
        (v4("10.0.0.0/31"), "/30 or shorter"),
        (
            SubnetDef {
                subnet: IpNetwork::from_str("10.0.0.5/24").unwrap(),
                gateway: ip("10.0.0.1"),
            },
            "host bits",
        ),
        (
            SubnetDef {
                subnet: IpNetwork::from_str("10.0.0.0/24").unwrap(),
                gateway: ip("10.0.1.1"),
            },
            "gateway 10.0.1.1",
        ),
        (
            SubnetDef {
                subnet: IpNetwork::from_str("10.0.0.0/24").unwrap(),
                gateway: ip("10.0.0.255"),
            },
            "gateway",
        ),
    ];
    for (def, want) in cases {
        let e = Ipam::open(d.path(), "bad", &[def]).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains("bad"), "{e}");
    }
    let e = Ipam::open(d.path(), "two", &[v4("10.0.0.0/24"), v4("10.0.1.0/24")]).unwrap_err();
    assert!(e.to_string().contains("at most one IPv4"), "{e}");
}

#[test]
fn crash_safe_persistence() {
    let d = tmp();
    let subnets = [v4("10.12.0.0/24")];
    let mut ipam = Ipam::open(d.path(), "n", &subnets).unwrap();
    let mut r = req("a");
    r.netns = Some("/run/berth/netns/abc".into());
    r.ifname = Some("eth0".into());
    ipam.allocate(r).unwrap();
    ipam.allocate(req("b")).unwrap();
    drop(ipam);
    // a writer that died mid-write left a partial staging file beside the lease file
    let path = Ipam::file_path(d.path(), "n");
    let stale = d
        .path()
        .join(format!("{}4242-7", fsutil::tmp_prefix(&path)));
    fs::write(&stale, b"{\"version\":1,\"netw").unwrap();
    let ipam = Ipam::open(d.path(), "n", &subnets).unwrap();
    assert!(!stale.exists());
    assert_eq!(ipam.len(), 2);
    let a = ipam.get("a").unwrap();
    assert_eq!(a.netns.as_deref(), Some(Path::new("/run/berth/netns/abc")));
    assert_eq!(a.ifname.as_deref(), Some("eth0"));
    drop(ipam);
    // a corrupt lease file is an error naming the file, never silently emptied
    fs::write(&path, b"{garbage").unwrap();
    let e = Ipam::open(d.path(), "n", &subnets).unwrap_err().to_string();
    assert!(e.contains("corrupt") && e.contains("n.json"), "{e}");
    assert_eq!(fs::read(&path).unwrap(), b"{garbage");
}

#[test]
fn failed_write_changes_nothing() {
    let d = tmp();
    let sub = d.path().join("leases");
    let mut ipam = Ipam::open(&sub, "n", &[v4("10.13.0.0/24")]).unwrap();
    ipam.allocate(req("a")).unwrap();
    // make the directory unusable: the write fails, memory stays as on disk
    fs::remove_dir_all(&sub).unwrap();
    fs::write(&sub, b"not a dir").unwrap();
    assert!(matches!(ipam.allocate(req("b")), Err(IpamError::Io { .. })));
    assert_eq!(ipam.len(), 1);
    assert!(ipam.release("a").is_err());
    assert!(ipam.get("a").is_some());
    fs::remove_file(&sub).unwrap();
    fs::create_dir(&sub).unwrap();
    // retries after the fault give the very same address as if nothing had happened
    assert_eq!(
        ipam.allocate(req("b")).unwrap().addresses[0].ip(),
        ip("10.13.0.3")
    );
}

#[test]
fn retain_releases_in_one_write_and_stale_leases_are_dropped_on_redefinition() {
    let d = tmp();
    let mut ipam = Ipam::open(d.path(), "n", &[v4("10.14.0.0/24")]).unwrap();
    for i in 0..10 {
        ipam.allocate(req(&format!("c{i}"))).unwrap();
    }
    let gone = ipam.retain(|l| l.owner != "c3" && l.owner != "c4").unwrap();
    assert_eq!(gone.len(), 2);
    assert_eq!(ipam.len(), 8);
    drop(ipam);
    // the network now has a different subnet: its old leases do not fit and are dropped
    let ipam = Ipam::open(d.path(), "n", &[v4("10.15.0.0/24")]).unwrap();
    assert!(ipam.is_empty());
    Ipam::remove_file(d.path(), "n").unwrap();
    Ipam::remove_file(d.path(), "n").unwrap();
}

#[test]
fn journal_torn_tail_and_replay_after_a_crash_between_snapshot_and_truncation() {
    let d = tmp();
    let subnets = [v4("10.16.0.0/24")];
    let mut ipam = Ipam::open(d.path(), "n", &subnets).unwrap();
    ipam.allocate(req("a")).unwrap();
    ipam.allocate(req("b")).unwrap();
    ipam.release("a").unwrap().unwrap();
    ipam.allocate(req("c")).unwrap();
    let want: Vec<Lease> = ipam.leases().cloned().collect();
    drop(ipam);
    // each change was one line; no snapshot was needed yet
    let jpath = Ipam::journal_path(d.path(), "n");
    let journal = fs::read(&jpath).unwrap();
    assert_eq!(journal.iter().filter(|b| **b == b'\n').count(), 4);
    assert!(!Ipam::file_path(d.path(), "n").exists());
    // an append that died mid-write left a torn last line: ignored
    let mut torn = journal.clone();
    torn.extend_from_slice(b"{\"seq\":5,\"add\":{\"owner\":\"x\",\"addre");
    fs::write(&jpath, &torn).unwrap();
    let ipam = Ipam::open(d.path(), "n", &subnets).unwrap();
    assert_eq!(ipam.leases().cloned().collect::<Vec<_>>(), want);
    drop(ipam);
    // open folded the journal into the snapshot and emptied it
    assert_eq!(fs::read(&jpath).unwrap(), b"");
    assert!(Ipam::file_path(d.path(), "n").exists());
    // a crash after the snapshot but before the journal was emptied: nothing is replayed twice
    fs::write(&jpath, &journal).unwrap();
    let mut ipam = Ipam::open(d.path(), "n", &subnets).unwrap();
    assert_eq!(ipam.leases().cloned().collect::<Vec<_>>(), want);
    // the cursor survived the journal too
    assert_eq!(
        ipam.allocate(req("d")).unwrap().addresses[0].ip(),
        ip("10.16.0.5")
    );
    drop(ipam);
    Ipam::remove_file(d.path(), "n").unwrap();
    assert!(!jpath.exists());
}

#[test]
fn journal_stays_small_and_version_1_files_still_open() {
    let d = tmp();
    let subnets = [v4("10.17.0.0/22")];
    let mut ipam = Ipam::open(d.path(), "n", &subnets).unwrap();
    for i in 0..(COMPACT_MIN + 10) {
        ipam.allocate(req(&format!("c{i}"))).unwrap();
    }
    let lines = fs::read(Ipam::journal_path(d.path(), "n"))
        .unwrap()
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    assert!(lines < COMPACT_MIN, "journal has {lines} entries");
    drop(ipam);
    assert_eq!(
        Ipam::open(d.path(), "n", &subnets).unwrap().len(),
        COMPACT_MIN + 10
    );
    // a lease file of the previous format (no journal, no seq)
    let e = tempfile::tempdir().unwrap();
    fs::write(
        Ipam::file_path(e.path(), "old"),
        br#"{"version":1,"network":"old","cursors":{"10.17.0.0/22":"10.17.0.9"},"leases":[{"owner":"o","addresses":["10.17.0.7/22"]}]}"#,
    )
    .unwrap();
    let mut old = Ipam::open(e.path(), "old", &subnets).unwrap();
    assert_eq!(old.holder(ip("10.17.0.7")), Some("o"));
    assert_eq!(
        old.allocate(req("p")).unwrap().addresses[0].ip(),
        ip("10.17.0.9")
    );
}
