//! Security options and mounts of `berth run` on the real kernel (run as root): seccomp,
//! capabilities, no_new_privs, ulimits, `--privileged`, volumes, tmpfs and `--read-only`.
//! Each test has its own roots and cgroup parent (tests/common/container_env.rs), and Env's
//! Drop removes what it made.

#[path = "common/container_env.rs"]
mod container_env;
#[path = "common/layout.rs"]
mod layout;

use container_env::{sections, Env};
use std::collections::BTreeMap;
use std::fs;

fn status(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn own_status(key: &str) -> String {
    status(&fs::read_to_string("/proc/self/status").expect("status"))[key].clone()
}

#[test]
fn default_seccomp_profile_blocks_namespaces_mounts_and_reboot() {
    let env = Env::new();
    let out = env.sh(
        &[],
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; echo ---; \
         unshare -U true 2>&1 || echo unshare-user-refused; \
         unshare -n true 2>&1 || echo unshare-net-refused; \
         mount -t tmpfs x /tmp 2>&1 || echo mount-refused; \
         reboot -f 2>&1 || echo reboot-refused; \
         echo ---; echo hello | tr a-z A-Z; ls / | grep -c bin; linux32 uname -m; \
         chroot / true && echo chroot-ok; sleep 0 & wait; echo forked",
    );
    let s = sections(&out);
    let st = status(&s[0]);
    assert_eq!(st["Seccomp"], "2", "{out}");
    assert_eq!(st["NoNewPrivs"], "1");
    for refused in [
        "unshare-user-refused",
        "unshare-net-refused",
        "mount-refused",
        "reboot-refused",
    ] {
        assert!(s[1].contains(refused), "{refused}: {out}");
    }
    assert!(s[1].contains("Operation not permitted"), "{out}");
    let normal: Vec<&str> = s[2].lines().collect();
    assert_eq!(normal[0], "HELLO", "pipes work: {out}");
    assert_eq!(
        normal[2], "i686",
        "personality(PER_LINUX32) is allowed: {out}"
    );
    assert!(
        s[2].contains("chroot-ok") && s[2].contains("forked"),
        "{out}"
    );
}

#[test]
fn unconfined_seccomp_leaves_only_capabilities() {
    let env = Env::new();
    let out = env.sh(
        &["--security-opt", "seccomp=unconfined"],
        "grep '^Seccomp:' /proc/self/status; echo ---; \
         unshare -U true && echo userns-ok; unshare -n true 2>/dev/null || echo netns-refused",
    );
    let s = sections(&out);
    assert_eq!(status(&s[0])["Seccomp"], "0", "{out}");
    // A user namespace needs no capability: only seccomp refused it.
    assert!(s[1].contains("userns-ok"), "{out}");
    // A network namespace needs CAP_SYS_ADMIN, which the container lacks.
    assert!(s[1].contains("netns-refused"), "{out}");

    // The default profile follows the capabilities: with SYS_ADMIN, unshare is allowed.
    let out = env.sh(
        &["--cap-add", "SYS_ADMIN"],
        "unshare -n true && echo netns-ok; grep '^Seccomp:' /proc/self/status",
    );
    assert!(
        out.contains("netns-ok") && out.contains("Seccomp:\t2"),
        "{out}"
    );
}

#[test]
fn seccomp_profile_from_a_docker_json_file() {
    let env = Env::new();
    // Allow everything but mkdir/mkdirat, which fail with EACCES (13).
    let profile = env.path().join("profile.json");
    fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
           "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .expect("write profile");
    let opt = format!("seccomp={}", profile.display());
    let out = env.sh(
        &["--security-opt", &opt],
        "mkdir /x 2>&1; touch /y && echo touch-ok; grep '^Seccomp:' /proc/self/status",
    );
    assert!(out.contains("Permission denied"), "{out}");
    assert!(
        out.contains("touch-ok") && out.contains("Seccomp:\t2"),
        "{out}"
    );

    fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#).expect("write");
    let r = env.berth(&["run", "--rm", "--security-opt", &opt, "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("SCMP_ACT_NOTIFY"), "{}", r.stderr);
    env.assert_nothing_left();
}

#[test]
fn no_new_privileges_can_be_turned_off() {
    let env = Env::new();
    let out = env.sh(
        &["--security-opt", "no-new-privileges=false"],
        "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; ls / | grep -c etc",
    );
    let st = status(&out);
    assert_eq!(st["NoNewPrivs"], "0", "{out}");
    assert_eq!(
        st["Seccomp"], "2",
        "seccomp installed before the caps drop: {out}"
    );
    // Also as a non-root user, whose capabilities are all gone at exec.
    let out = env.sh(
        &["--security-opt", "no-new-privileges=false", "-u", "1000"],
        "grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status",
    );
    let st = status(&out);
    assert_eq!(
        (st["NoNewPrivs"].as_str(), st["Seccomp"].as_str()),
        ("0", "2")
    );
    assert_eq!(st["CapEff"], "0000000000000000");
}

#[test]
fn cap_add_and_cap_drop() {
    let env = Env::new();
    let caps = |flags: &[&str]| {
        let out = env.sh(flags, "grep -E '^Cap(Eff|Bnd):' /proc/self/status");
        let st = status(&out);
        let eff = u64::from_str_radix(&st["CapEff"], 16).expect("hex");
        let bnd = u64::from_str_radix(&st["CapBnd"], 16).expect("hex");
        assert_eq!(eff, bnd, "{out}");
        eff
    };
    assert_eq!(caps(&["--cap-drop", "ALL"]), 0);
    assert_eq!(
        caps(&["--cap-add", "NET_ADMIN"]),
        0xa804_25fb | (1 << 12),
        "NET_ADMIN is bit 12"
    );
    assert_eq!(
        caps(&["--cap-drop", "ALL", "--cap-add", "cap_net_admin"]),
        1 << 12
    );
    assert_eq!(
        caps(&["--cap-drop", "CHOWN", "--cap-drop", "CAP_KILL"]),
        0xa804_25fb & !(1 | (1 << 5))
    );
}

#[test]
fn privileged_has_every_capability_and_no_confinement() {
    let env = Env::new();
    let out = env.sh(
        &["--privileged"],
        "grep -E '^(CapEff|Seccomp):' /proc/self/status; echo ---; \
         wc -c < /proc/keys; grep -E '^sysfs /sys ' /proc/mounts; \
         grep -E ' /proc/sys ' /proc/mounts | wc -l",
    );
    let s = sections(&out);
    let st = status(&s[0]);
    assert_eq!(
        st["CapEff"],
        own_status("CapPrm"),
        "all of berth's capabilities"
    );
    assert_eq!(st["Seccomp"], "0");
    let lines: Vec<&str> = s[1].lines().collect();
    assert_ne!(lines[0].trim(), "0", "/proc/keys is not masked: {out}");
    assert!(lines[1].contains(" rw,"), "/sys is writable: {out}");
    assert_eq!(lines[2].trim(), "0", "/proc/sys is not read-only: {out}");
}

#[test]
fn ulimits_reach_the_container() {
    let env = Env::new();
    let out = env.sh(
        &["--ulimit", "nofile=100:200", "--ulimit", "core=0"],
        "ulimit -n; ulimit -Hn; grep -E 'open files|core file' /proc/self/limits",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["100", "200"], "{out}");
    let files = lines
        .iter()
        .find(|l| l.starts_with("Max open files"))
        .expect("limits");
    assert_eq!(
        files.split_whitespace().collect::<Vec<_>>()[3..5],
        ["100", "200"]
    );

    // Above berth's own hard limit, without CAP_SYS_RESOURCE: a clear error, nothing created.
    let host_hard: u64 = {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into our local.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) };
        l.rlim_max
    };
    let has_sys_resource =
        u64::from_str_radix(&own_status("CapEff"), 16).expect("hex") & (1 << 24) != 0;
    if !has_sys_resource && host_hard < u64::MAX / 2 {
        let spec = format!("nofile=100:{}", host_hard + 1);
        let r = env.berth(&["run", "--rm", "--ulimit", &spec, "busybox", "true"]);
        assert_eq!(r.code, 125);
        assert!(
            r.stderr.contains("nofile") && r.stderr.contains(&host_hard.to_string()),
            "{}",
            r.stderr
        );
    }
    env.assert_nothing_left();
}

#[test]
fn volumes_read_write_and_read_only() {
    let env = Env::new();
    let data = env.path().join("data");
    fs::create_dir(&data).expect("mkdir");
    fs::write(data.join("in"), "from-host\n").expect("write");
    let file = env.path().join("single");
    fs::write(&file, "one-file\n").expect("write");
    let rw = format!("{}:/mnt/rw", data.display());
    let ro = format!("{}:/mnt/ro:ro", data.display());
    let single = format!("{}:/etc/single:ro", file.display());
    let out = env.sh(
        &["-v", &rw, "-v", &ro, "-v", &single],
        "cat /mnt/ro/in /etc/single; echo out > /mnt/rw/out && echo rw-ok; \
         echo x > /mnt/ro/x 2>&1 || echo ro-refused; echo x > /etc/single || echo file-ro-refused",
    );
    assert!(
        out.contains("from-host") && out.contains("one-file"),
        "{out}"
    );
    assert!(out.contains("rw-ok") && out.contains("ro-refused"), "{out}");
    assert!(out.contains("file-ro-refused"), "{out}");
    assert_eq!(
        fs::read_to_string(data.join("out")).expect("written"),
        "out\n"
    );
    assert!(!data.join("x").exists());
    env.assert_nothing_left();
}

#[test]
fn read_only_root_with_tmpfs() {
    let env = Env::new();
    let out = env.sh(
        &[
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/run:size=1m,mode=700",
        ],
        "touch /x 2>&1 || echo root-refused; touch /tmp/x && echo tmp-ok; \
         grep -E ' /(tmp|run) ' /proc/mounts",
    );
    assert!(
        out.contains("Read-only file system") && out.contains("root-refused"),
        "{out}"
    );
    assert!(out.contains("tmp-ok"), "{out}");
    let tmp = out
        .lines()
        .find(|l| l.contains(" /tmp "))
        .expect("tmp mount");
    assert!(tmp.contains("nosuid,nodev,noexec"), "{tmp}");
    let run = out
        .lines()
        .find(|l| l.contains(" /run "))
        .expect("run mount");
    assert!(
        run.contains("size=1024k") && run.contains("mode=700"),
        "{run}"
    );
}

#[test]
fn volume_targets_stay_inside_the_root() {
    let env = Env::new();
    // An image whose /evil is an absolute symlink to /etc: the volume lands in the
    // container's /etc (inside the root), never in the host's.
    container_env::load_on_busybox(
        &env,
        "symlinked:1",
        vec![layout::Entry::Symlink("evil", "/etc")],
    );
    let data = env.path().join("data");
    fs::create_dir(&data).expect("mkdir");
    fs::write(data.join("marker"), "m").expect("write");
    let v = format!("{}:/evil/sub", data.display());
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        &v,
        "symlinked:1",
        "cat",
        "/etc/sub/marker",
    ]);
    assert_eq!(out, "m");
    assert!(!std::path::Path::new("/etc/sub").exists());
    env.assert_nothing_left();
}

#[test]
fn bad_specs_fail_cleanly() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (&["-v", "relative:/x"], "must be absolute"),
        (&["-v", "/nonexistent-berth-test:/x"], "No such file"),
        (&["-v", "/tmp:relative"], "must be absolute"),
        (&["-v", "/tmp:/x:rx"], "unknown mode"),
        (&["-v", "/tmp:/"], "root"),
        (&["--cap-add", "NOPE"], "unknown capability \"NOPE\""),
        (&["--cap-drop", "NOPE"], "unknown capability"),
        (&["--ulimit", "nofile=abc"], "not a number"),
        (&["--ulimit", "nofile=10:5"], "above the hard limit"),
        (&["--ulimit", "bogus=1"], "unknown limit"),
        (&["--tmpfs", "/t:weird"], "unknown option"),
        (
            &["--security-opt", "seccomp=/nonexistent.json"],
            "cannot read",
        ),
        (
            &["--security-opt", "nonsense"],
            "unsupported --security-opt",
        ),
    ];
    for (flags, msg) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let r = env.berth(&args);
        assert_eq!(r.code, 125, "{flags:?}: {}", r.stderr);
        assert!(r.stderr.contains(msg), "{flags:?}: {}", r.stderr);
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        assert_eq!(env.berth(&args).code, 125, "{flags:?}");
    }
    assert_eq!(env.ok(&["ps", "-a", "-q"]), "");
    env.assert_nothing_left();
}
