//! berth on a pure cgroup v2 host, the layout most users run, tested from any host (this one
//! is cgroup v1): one qemu VM (scripts/vm/run-in-v2-vm.sh, Debian's cloud kernel booted with
//! `cgroup_no_v1=all`, TCG, no KVM needed) runs the `berth` binary built for this test against
//! the built-in busybox image, and a guest script checks:
//!
//! - `berth run --rm` works, and the container sees only its own cgroup (`0::/`) and is PID 1;
//! - a `--rm` run leaves no cgroup behind;
//! - a detached container's cgroup exists under the cgroup parent and holds its processes;
//! - `berth exec` joins that cgroup (its v2 path: the process writes `cgroup.procs` itself);
//! - `berth stop` then `berth rm` remove the cgroup directory.
//!
//! The guest prints `OK <check>` (or `FAIL <check>: why`) per check, `INFO …` lines for the
//! reader. One VM boot covers every check (about 5 s of boot under TCG here).
//!
//! Needs root and the packages scripts/install-deps.sh installs (qemu-system-x86,
//! linux-image-cloud-amd64, cpio, busybox-static). Skipped only when BERTH_SKIP_VM_TESTS=1.

#[path = "common/v2vm.rs"]
mod v2vm;

/// The checks the guest must report as `OK`.
const CHECKS: &[&str] = &[
    "pure-v2-host",
    "image-load",
    "run-rm",
    "run-rm-no-cgroup",
    "run-detached",
    "detached-cgroup",
    "exec-cgroup",
    "stop",
    "rm",
    "stop-rm-no-cgroup",
];

/// Checks the guest may report as `SKIP` instead, when the binary lacks the subcommand.
const OPTIONAL: &[&str] = &["exec-cgroup"];

/// Runs in the guest as root, from /extra, with berth at /extra/berth and the image layout at
/// /extra/busybox-layout. Exits with the number of failed checks.
const GUEST_SCRIPT: &str = r#"
export BERTH_ROOT=/var/lib/berth BERTH_RUN_ROOT=/run/berth BERTH_CGROUP_PARENT=/berth-v2test
berth=/extra/berth
cg=/sys/fs/cgroup
parent=$cg/berth-v2test
fails=0
ok() { echo "OK $1"; }
fail() { echo "FAIL $1: $2" | tr '\n' ' '; echo; fails=$((fails + 1)); }
leaves() { # container cgroups under the parent
    [ -d "$parent" ] || return 0
    for d in "$parent"/*; do [ -d "$d" ] && echo "${d##*/}"; done
}

echo "INFO kernel $(uname -r); $(grep cgroup /proc/mounts)"
if grep -q '^cgroup2 /sys/fs/cgroup cgroup2 ' /proc/mounts && [ -z "$(awk '$3 == "cgroup"' /proc/mounts)" ]; then
    ok pure-v2-host
else
    fail pure-v2-host "$(grep cgroup /proc/mounts)"
fi

if out=$($berth image load -i /extra/busybox-layout 2>&1); then ok image-load; else fail image-load "$out"; fi

out=$($berth run --rm busybox sh -c 'cat /proc/self/cgroup; echo pid1=$(cat /proc/1/comm)' 2>&1); rc=$?
echo "INFO run --rm: rc=$rc, output: $(echo "$out" | tr '\n' '|')"
if [ $rc = 0 ] && [ "$(echo "$out" | grep -c '')" = 2 ] && echo "$out" | grep -qx '0::/' && echo "$out" | grep -qx 'pid1=sh'; then
    ok run-rm
else
    fail run-rm "rc=$rc, output: $out"
fi
left=$(leaves)
if [ -z "$left" ]; then ok run-rm-no-cgroup; else fail run-rm-no-cgroup "left under $parent: $left"; fi

id=$($berth run -d --name c busybox sleep 30 2>/tmp/run-d.err); rc=$?
echo "INFO run -d: rc=$rc, id=$id $(cat /tmp/run-d.err)"
if [ $rc = 0 ] && [ ${#id} = 64 ]; then ok run-detached; else fail run-detached "rc=$rc, stdout: $id, stderr: $(cat /tmp/run-d.err)"; fi
dir=$parent/$id
procs=$(cat "$dir/cgroup.procs" 2>&1)
if [ -n "$id" ] && [ -d "$dir" ] && [ -n "$procs" ]; then
    comms=""
    for p in $procs; do comms="$comms $(cat /proc/$p/comm 2>/dev/null)"; done
    echo "INFO $dir: pids $(echo $procs), commands$comms; cgroup.controllers: $(cat $dir/cgroup.controllers); parent's subtree_control: $(cat $parent/cgroup.subtree_control)"
    case " $comms " in
    *" sleep "*) ok detached-cgroup ;;
    *) fail detached-cgroup "no sleep among the processes of $dir:$comms" ;;
    esac
else
    fail detached-cgroup "$dir: cgroup.procs: $procs; cgroups under $parent: $(leaves)"
fi

if ! $berth exec --help >/dev/null 2>&1; then
    echo "SKIP exec-cgroup: this berth has no exec"
else
    out=$($berth exec c cat /proc/self/cgroup 2>&1); rc=$?
    if [ $rc = 0 ] && [ "$out" = "0::/" ]; then ok exec-cgroup; else fail exec-cgroup "rc=$rc, output: $out"; fi
fi

out=$($berth stop -t 1 c 2>&1); rc=$?
if [ $rc = 0 ]; then ok stop; else fail stop "rc=$rc: $out"; fi
if [ -e "$dir" ]; then echo "INFO after stop: the cgroup is still there"; else echo "INFO after stop: the cgroup is gone"; fi
out=$($berth rm c 2>&1); rc=$?
if [ $rc = 0 ]; then ok rm; else fail rm "rc=$rc: $out"; fi
if [ -n "$id" ] && [ ! -e "$dir" ] && [ -z "$(leaves)" ]; then
    ok stop-rm-no-cgroup
else
    fail stop-rm-no-cgroup "left under $parent: $(leaves)"
fi
exit $fails
"#;

#[test]
fn berth_on_a_pure_cgroup_v2_host() {
    let Some(run) = v2vm::run_guest("cgv2", GUEST_SCRIPT) else {
        return;
    };
    let (stdout, transcript) = (&run.stdout, &run.transcript);
    let lines: Vec<&str> = stdout.lines().collect();
    let mut missing = Vec::new();
    for check in CHECKS {
        let ok = lines.iter().any(|l| *l == format!("OK {check}"));
        let skipped = OPTIONAL.contains(check)
            && lines
                .iter()
                .any(|l| l.starts_with(&format!("SKIP {check}:")));
        if !ok && !skipped {
            missing.push(*check);
        }
    }
    assert!(
        missing.is_empty(),
        "berth on cgroup v2: checks not OK: {missing:?}\n{transcript}"
    );
    assert!(
        run.status.success(),
        "guest script failed: {:?}\n{transcript}",
        run.status
    );
}
