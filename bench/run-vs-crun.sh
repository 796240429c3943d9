#!/usr/bin/env bash
# run-vs-crun.sh: container start latency of berth beside crun and runc, in one run.
#
#   sudo bench/run-vs-crun.sh            # RUNS=40 ROUNDS=4 WARMUP=3 by default
#
# All three start busybox /bin/true from the same root filesystem (berth's built-in image; the
# OCI runtimes get it unpacked as a bundle). berth additionally mounts an overlay with a fresh
# upper layer per container, as docker and podman do above runc. It runs in a private mount
# namespace where /sys/fs/cgroup/unified (this host's hugetlb-only cgroup2 mount) is hidden,
# because crun refuses hybrid hosts; that is plain cgroup v1 for every runtime alike.
# Every runtime keeps its run state on one tmpfs (berth's run root, crun's and runc's --root),
# as their defaults under /run are on systemd hosts; images and containers' files stay on disk.
# Prints medians, the ratios berth/crun and berth/runc, and a breakdown of berth's phases.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "run-vs-crun.sh: run as root" >&2; exit 1; }
if [[ -z ${BERTH_BENCH_NS:-} ]]; then
    "$here/scripts/install-deps.sh"
    for p in runc crun hyperfine jq; do command -v $p >/dev/null || apt-get install -y -qq --no-install-recommends $p >/dev/null; done
    (cd "$here" && cargo build --release -q)
    BERTH_BENCH_NS=1 exec unshare -m --propagation private "$0" "$@"
fi
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi

RUNS=${RUNS:-40}; ROUNDS=${ROUNDS:-4}; WARMUP=${WARMUP:-3}
berth=$here/target/release/berth
work=$(mktemp -d /tmp/berth-bench-run.XXXXXX)
cg=berth-bench-$$
mkdir "$work/state" && mount -t tmpfs -o mode=0700 berth-bench-state "$work/state"
export BERTH_ROOT=$work/root BERTH_RUN_ROOT=$work/state/berth BERTH_CGROUP_PARENT=/$cg/berth
cleanup() {
    for rt in runc crun; do
        for id in $($rt --root "$work/state/$rt" list -q 2>/dev/null); do $rt --root "$work/state/$rt" delete -f "$id" || true; done
    done
    for id in $("$berth" ps -aq 2>/dev/null); do "$berth" rm -f "$id" >/dev/null 2>&1 || true; done
    # (a failing rmdir must not stop the trap under set -e before the temp dir goes)
    for d in /sys/fs/cgroup/*/"$cg"; do
        if [[ -d $d ]]; then find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    done
    umount -l "$work/state" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$here/scripts/mk-busybox-image.sh" "$work/layout" >/dev/null
"$berth" image load -i "$work/layout" >/dev/null
# The same root filesystem as an OCI bundle for runc and crun.
layer=$(jq -r '.manifests[0].digest' "$work/layout/index.json" | cut -d: -f2)
layer=$(jq -r '.layers[0].digest' "$work/layout/blobs/sha256/$layer" | cut -d: -f2)
mkdir -p "$work/bundle/rootfs"
tar -xzf "$work/layout/blobs/sha256/$layer" -C "$work/bundle/rootfs"
(cd "$work/bundle" && runc spec)
jq --arg cg "/$cg/oci" '.process.args = ["/bin/true"] | .process.terminal = false | .linux.cgroupsPath = $cg' \
    "$work/bundle/config.json" > "$work/bundle/config.json.new" && mv "$work/bundle/config.json.new" "$work/bundle/config.json"
b=$work/bundle

echo "# $(date -u +%F) $(uname -r), $(nproc) cpus, load $(cut -d' ' -f1 /proc/loadavg); runs=$RUNS in $ROUNDS rounds, warmup=$WARMUP"
echo "# $("$berth" --version) | $(crun --version | head -1) | $(runc --version | head -1)"
"$berth" run --rm busybox /bin/true || { echo "berth sanity run failed" >&2; exit 1; }
# Each command runs RUNS times in ROUNDS interleaved rounds (berth, crun, runc, berth, …), so a
# slow minute of a shared host weighs on every runtime alike; the statistics are over all runs.
per_round=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
round=0
hf() { hyperfine --style none --warmup "$WARMUP" --runs "$per_round" --export-json "$work/$1.$round.json" -n "$1" "$2" >/dev/null; }
for round in $(seq "$ROUNDS"); do
    hf "berth run" "$berth run --rm busybox /bin/true"
    hf "crun run" "crun --root $work/state/crun run --bundle $b r\$\$"
    hf "runc run" "runc --root $work/state/runc run --bundle $b r\$\$"
    hf "berth create+start+rm" "$berth create --name c\$\$ busybox /bin/true >/dev/null && $berth start -a c\$\$ && $berth rm c\$\$ >/dev/null"
    hf "crun create+start+delete" "crun --root $work/state/crun create --bundle $b c\$\$ && crun --root $work/state/crun start c\$\$ && crun --root $work/state/crun delete -f c\$\$"
    hf "runc create+start+delete" "runc --root $work/state/runc create --bundle $b c\$\$ && runc --root $work/state/runc start c\$\$ && runc --root $work/state/runc delete -f c\$\$"
done
# Where berth's time goes: the CLI and store alone, create alone, rm alone.
round=1
per_round=$RUNS
hf "berth: cli+store (images -q)" "$berth images -q"
"$berth" create --name phase busybox /bin/true >/dev/null; "$berth" rm phase >/dev/null
hf "berth: create" "$berth create --name p\$\$ busybox /bin/true"
for id in $("$berth" ps -aq); do "$berth" rm "$id" >/dev/null; done
ids=$(for _ in $(seq $((RUNS + WARMUP))); do "$berth" create busybox /bin/true; done)
echo "$ids" > "$work/ids"
hyperfine --style none --warmup 0 --runs "$((RUNS + WARMUP))" --export-json "$work/berth: rm.1.json" -n "berth: rm" \
    "$berth rm \$(head -n1 $work/ids) >/dev/null; sed -i 1d $work/ids" >/dev/null

# Statistics over the runs of every round of one command, in ms: median mean stddev.
stats() {
    jq -s -r '[.[].results[0].times[]] | sort | length as $n
        | (if $n % 2 == 1 then .[($n - 1) / 2] else (.[$n / 2 - 1] + .[$n / 2]) / 2 end) as $med
        | (add / $n) as $mean
        | ((map((. - $mean) * (. - $mean)) | add) / $n | sqrt) as $sd
        | [$med, $mean, $sd] | map(. * 1000) | @tsv' "$work/$1".*.json
}
median() { stats "$1" | cut -f1; }
echo
printf '%-30s %10s %10s %10s\n' benchmark median_ms mean_ms stddev_ms
for n in "berth run" "crun run" "runc run" "berth create+start+rm" "crun create+start+delete" "runc create+start+delete" \
         "berth: cli+store (images -q)" "berth: create" "berth: rm"; do
    IFS=$'\t' read -r med mean sd < <(stats "$n")
    printf '%-30s %10.2f %10.2f %10.2f\n' "$n" "$med" "$mean" "$sd"
done
echo
awk -v b="$(median "berth run")" -v c="$(median "crun run")" -v r="$(median "runc run")" \
    -v bc="$(median "berth create+start+rm")" -v cc="$(median "crun create+start+delete")" -v rc="$(median "runc create+start+delete")" \
    'BEGIN { printf "ratio run:    berth/crun %.2f   berth/runc %.2f\n", b/c, b/r;
             printf "ratio cycle:  berth/crun %.2f   berth/runc %.2f\n", bc/cc, bc/rc }'
