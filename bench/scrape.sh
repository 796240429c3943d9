#!/usr/bin/env bash
# Scrape benchmark of berthd's /metrics with N real running containers (busybox `sleep 3600`,
# `berth run -d --network none`), N in ${SIZES:-10 100 1000}. Everything lives in a temp root
# with a unique cgroup parent; berthd listens on a free loopback port with its default network
# on bridge brtsb0 / 10.231.250.0/24 and nftables table berth_sbench. For each N: time to start
# the containers, then ${SCRAPES:-50} scrapes: p50/p99 latency (curl time_total), berthd RSS,
# and the ratio of the scrape p50 to reading the same cgroup files once (python, one pass,
# best of 5). Cleans up on exit: rm -f all containers, berthd (by pid), bridge, table, parent.
#
#   sudo bench/scrape.sh            # uses target/release/{berth,berthd} (built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 1; }
SIZES=${SIZES:-"10 100 1000"}
SCRAPES=${SCRAPES:-50}
[ -x target/release/berthd ] && [ -x target/release/berth ] || cargo build --release --bin berth --bin berthd
B=$PWD/target/release/berth; D=$PWD/target/release/berthd
T=$(mktemp -d /tmp/berth-scrape-bench.XXXXXX)
export BERTH_ROOT=$T/root BERTH_RUN_ROOT=$T/run BERTH_CGROUP_PARENT=/berth-scrape-bench-$$
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DPID=
cleanup() {
  set +e
  ids=$("$B" ps -aq 2>/dev/null)
  [ -n "$ids" ] && echo "$ids" | xargs -r -n 50 "$B" rm -f >/dev/null 2>&1
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
  ip link del brtsb0 2>/dev/null; nft delete table inet berth_sbench 2>/dev/null
  for d in /sys/fs/cgroup/*/"${BERTH_CGROUP_PARENT#/}" /sys/fs/cgroup/"${BERTH_CGROUP_PARENT#/}"; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT
bash scripts/mk-busybox-image.sh "$T/img" >/dev/null
"$B" image load -i "$T/img" >/dev/null
cat > "$T/berthd.toml" <<CONF
reconcile_interval_secs = 0
metrics_addr = "127.0.0.1:$PORT"
watch_interval_secs = 5
[default_network]
bridge = "brtsb0"
subnet = "10.231.250.0/24"
[firewall]
table = "berth_sbench"
[dns]
enabled = false
CONF
"$D" --config "$T/berthd.toml" 2>"$T/berthd.log" & DPID=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
have=0
printf '%-6s %-10s %-8s %-8s %-9s %-10s %-7s %-8s\n' N start_s p50_ms p99_ms once_ms ratio out_KiB RSS_MiB
for n in $SIZES; do
  t0=$(date +%s.%N)
  while [ "$have" -lt "$n" ]; do
    "$B" run -d --network none busybox sleep 3600 >/dev/null
    have=$((have + 1))
  done
  t1=$(date +%s.%N)
  curl -s "127.0.0.1:$PORT/metrics" >/dev/null  # warm the caches (new containers)
  for _ in $(seq "$SCRAPES"); do
    curl -s -o /dev/null -w '%{time_total}\n' "127.0.0.1:$PORT/metrics"
  done > "$T/lat"
  size=$(curl -s "127.0.0.1:$PORT/metrics" | wc -c)
  got=$(curl -s "127.0.0.1:$PORT/metrics" | grep -c '^container_cpu_usage_seconds_total{' || true)
  rss=$(awk '/VmRSS/ {print $2}' /proc/$DPID/status)
  once=$(python3 - "$BERTH_RUN_ROOT" <<'PY'
import json, os, sys, time
run = sys.argv[1] + "/containers"
v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
V1 = {"memory": ["memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.stat", "memory.failcnt",
                 "memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.oom_control"],
      "cpu,cpuacct": ["cpuacct.usage", "cpuacct.stat", "cpu.stat", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares", "cgroup.procs"],
      "pids": ["pids.current", "pids.max"],
      "blkio": ["blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_serviced_recursive"]}
V2 = ["memory.current", "memory.peak", "memory.stat", "memory.events", "memory.max", "memory.low", "memory.swap.max",
      "memory.swap.current", "cpu.stat", "cpu.max", "cpu.weight", "pids.current", "pids.max", "io.stat", "cgroup.procs",
      "cpu.pressure", "memory.pressure", "io.pressure"]
files = []
for cid in os.listdir(run):
    try:
        st = json.load(open(f"{run}/{cid}/state.json"))
    except Exception:
        continue
    if st.get("status") != "running":
        continue
    rel = st["cgroup_parent"].strip("/") + "/" + cid
    if v2:
        files += [f"/sys/fs/cgroup/{rel}/{f}" for f in V2]
    else:
        for h, fs in V1.items():
            files += [f"/sys/fs/cgroup/{h}/{rel}/{f}" for f in fs]
    files.append(f"/proc/{st['pid']}/net/dev")
best = 1e9
for _ in range(5):
    t = time.perf_counter()
    for f in files:
        try:
            with open(f, "rb", buffering=0) as fh:
                fh.read(65536)
        except OSError:
            pass
    best = min(best, time.perf_counter() - t)
print(f"{best*1000:.2f}")
PY
)
  read -r p50 p99 < <(sort -n "$T/lat" | awk '{a[NR]=$1} END {i50=int(NR*0.5); if(i50<1)i50=1; i99=int(NR*0.99+0.999); if(i99>NR)i99=NR; printf "%.2f %.2f\n", a[i50]*1000, a[i99]*1000}')
  ratio=$(awk -v a="$p50" -v b="$once" 'BEGIN {printf "%.2f", a/b}')
  printf '%-6s %-10s %-8s %-8s %-9s %-10s %-7s %-8s\n' "$n" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b-a}')" \
    "$p50" "$p99" "$once" "$ratio" "$((size / 1024))" "$(awk -v r="$rss" 'BEGIN {printf "%.1f", r/1024}')"
  [ "$got" -eq "$n" ] || echo "  warning: $got containers in the scrape, $n expected" >&2
done
