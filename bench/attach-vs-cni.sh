#!/usr/bin/env bash
# attach-vs-cni.sh: berthd attach/detach beside the CNI bridge plugin + host-local, then attach
# latency and berthd's memory as one network grows to 1000 endpoints; all in one run.
#
#   sudo bench/attach-vs-cni.sh          # N=50 SCALE=1000 PROBES=200 PAR=16 by default
#
# Everything berthd and host-local write lives on a tmpfs mounted for the run (like /run).
# 1. N fresh netns (untimed). Our own berthd (private socket, run root and root; default
#    network on bridge brtbench0, 10.231.200.0/22, nftables table inet berth_bench, DNS on the
#    gateway) wires each one with `netctl attach --netns`, then `netctl detach` (what a user
#    waits for, CLI process included); then the same through the API client alone
#    (examples/attach_bench.rs, berth::api::Client); then `/usr/lib/cni/bridge` ADD and DEL
#    (host-local IPAM, dataDir in the temp dir, bridge brtcni0, 10.231.210.0/24), as
#    ../shared/tools/bench-cni.sh does. Medians and the ratios CNI/berthd.
# 2. SCALE netns (made in parallel, untimed), attached one by one: p50/p99 of the attaches in
#    the last decile before 10, 100 and 1000 endpoints, PROBES attach+detach cycles of one more
#    namespace at each of those sizes (the attach is timed, after a pause that lets the kernel
#    finish the previous detach), and berthd's VmRSS. Then PAR clients detach them all at
#    once, then attach them all again (throughput under berthd's concurrency cap).
# Packets go only between the host and its own bridges/namespaces. Everything made here
# (netns, bridges, the table, berthd by pid, the temp dir) is removed at exit.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "attach-vs-cni.sh: run as root" >&2; exit 1; }

N=${N:-50}; SCALE=${SCALE:-1000}; PROBES=${PROBES:-200}; PAR=${PAR:-16}
DNS_PORT=${DNS_PORT:-53}
BR=brtbench0; SUBNET=10.231.200.0/22; GW=10.231.200.1; TABLE=berth_bench
CBR=brtcni0; CNET3=10.231.210
CNI_PATH=/usr/lib/cni
export CNI_PATH
((SCALE <= 1000)) || { echo "SCALE must be <= 1000 (the /22 holds 1021 endpoints)" >&2; exit 1; }

need=()
[[ -x $CNI_PATH/bridge && -x $CNI_PATH/host-local ]] || need+=(containernetworking-plugins)
command -v ip >/dev/null || need+=(iproute2)
command -v jq >/dev/null || need+=(jq)
command -v nft >/dev/null || need+=(nftables)
command -v ping >/dev/null || need+=(iputils-ping)
if ((${#need[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
(cd "$here" && cargo build --release -q --bin berthd --bin netctl --example attach_bench)
bin=${CARGO_TARGET_DIR:-$here/target}/release
netctl=$bin/netctl
bench=$bin/examples/attach_bench

work=$(mktemp -d /tmp/berth-bench-attach.XXXXXX)
# berthd's run root and root and host-local's dataDir on one tmpfs, as /run is on systemd
# hosts (the lease journal's fdatasync is then free for both, not a disk flush for one)
mount -t tmpfs -o size=256m,mode=0700 brt-bench-tmpfs "$work"
nsp=brtb-$$-
fwd_before=$(cat /proc/sys/net/ipv4/ip_forward)
berthd_pid=
cleanup() {
    set +e
    if [[ -n $berthd_pid ]]; then
        kill -TERM "$berthd_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$berthd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$berthd_pid" 2>/dev/null
        wait "$berthd_pid" 2>/dev/null
    fi
    ip netns list | awk -v p="$nsp" 'index($1, p) == 1 { print $1 }' | xargs -r -P 8 -n 50 sh -c 'for n; do ip netns del "$n"; done' sh
    ip link del "$BR" 2>/dev/null
    ip link del "$CBR" 2>/dev/null
    nft delete table inet "$TABLE" 2>/dev/null
    [[ $(cat /proc/sys/net/ipv4/ip_forward) == "$fwd_before" ]] || echo "$fwd_before" > /proc/sys/net/ipv4/ip_forward
    umount "$work" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

usec() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }
mkns() {  # mkns FIRST LAST: ip netns add $nsp<i>, 8 at a time
    seq "$1" "$2" | sed "s/^/$nsp/" | xargs -P 8 -n 25 sh -c 'for n; do ip netns add "$n"; done' sh
}
# stats FILE OP: n median mean min max (ms) of the lines "OP <usec>"
stats() {
    awk -v op="$2" '$1 == op { print $2 }' "$1" | sort -n | awk -v op="$2" '
        { v[NR] = $1; s += $1 }
        END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%-22s %4d %9.2f %9.2f %9.2f %9.2f\n", op, NR, m / 1000, s / NR / 1000, v[1] / 1000, v[NR] / 1000 }'
}
median() { awk -v op="$2" '$1 == op { print $2 }' "$1" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- berthd --------------------------------------------------------------------------------
cat > "$work/berthd.toml" <<EOF
log_level = "info"
reconcile_interval_secs = 0
[default_network]
bridge = "$BR"
subnet = "$SUBNET"
[firewall]
table = "$TABLE"
[dns]
enabled = true
port = $DNS_PORT
upstreams = ["127.0.0.1:9"]
EOF
export BERTH_SOCKET=$work/berthd.sock BERTH_ROOT=$work/root BERTH_RUN_ROOT=$work/run
"$bin/berthd" --config "$work/berthd.toml" --root "$work/root" --run-root "$work/run" \
    --socket "$work/berthd.sock" 2>"$work/berthd.log" </dev/null &
berthd_pid=$!
for _ in $(seq 200); do
    "$netctl" network ls >/dev/null 2>&1 && break
    kill -0 "$berthd_pid" 2>/dev/null || { cat "$work/berthd.log" >&2; exit 1; }
    sleep 0.05
done
"$netctl" network ls >/dev/null

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cpus, load $(cut -d' ' -f1 /proc/loadavg); N=$N SCALE=$SCALE PROBES=$PROBES PAR=$PAR"
echo "# $(dpkg-query -W -f='containernetworking-plugins ${Version}' containernetworking-plugins 2>/dev/null || echo 'CNI plugins (version unknown)'); berthd pid $berthd_pid"

# fresh namespaces for each contender: netctl 1..N, API N+1..2N, CNI 2N+1..3N
t0=$(usec); mkns 1 $((3 * N))
echo "# created $((3 * N)) netns in $(( ($(usec) - t0) / 1000 )) ms (untimed below)"

# --- 1a. berthd through netctl ----------------------------------------------------------------
times=$work/times
for ((i = 1; i <= N; i++)); do
    s=$(usec); "$netctl" attach --netns "/run/netns/$nsp$i" >/dev/null; e=$(usec)
    echo "netctl-attach $((e - s))" >> "$times"
done
ip1=$("$netctl" inspect --netns "/run/netns/${nsp}1" --format json | jq -r '.[0].addresses[0] // .addresses[0]' | cut -d/ -f1)
ipn=$("$netctl" inspect --netns "/run/netns/$nsp$N" --format json | jq -r '.[0].addresses[0] // .addresses[0]' | cut -d/ -f1)
echo "# berthd connectivity:"
echo "host -> netns 1 ($ip1): $(ping -c 3 -i 0.2 -W 1 -I "$BR" "$ip1" | grep -o '[0-9]* received')"
echo "netns 1 -> gateway ($GW): $(ip netns exec "${nsp}1" ping -c 1 -W 1 "$GW" | grep -o '[0-9]* received')"
echo "netns 1 -> netns $N ($ipn): $(ip netns exec "${nsp}1" ping -c 1 -W 1 "$ipn" | grep -o '[0-9]* received')"
for ((i = 1; i <= N; i++)); do
    s=$(usec); "$netctl" detach --netns "/run/netns/$nsp$i" >/dev/null; e=$(usec)
    echo "netctl-detach $((e - s))" >> "$times"
done

# --- 1b. berthd through the API client alone ------------------------------------------------------
"$bench" "$BERTH_SOCKET" api "$nsp" $((N + 1)) $((2 * N)) | sed 's/^/api-/' >> "$times"

# --- 1c. CNI bridge + host-local ---------------------------------------------------------------
jq -n --arg br "$CBR" --arg sub "$CNET3.0/24" --arg gw "$CNET3.1" --arg dd "$work/ipam" '{
  cniVersion: "1.0.0", name: "brt-bench", type: "bridge", bridge: $br,
  isGateway: false, ipMasq: false, hairpinMode: true,
  ipam: { type: "host-local", subnet: $sub, gateway: $gw, dataDir: $dd }
}' > "$work/net.json"
ip link add "$CBR" type bridge
ip addr add "$CNET3.1/24" dev "$CBR"
ip link set "$CBR" up
cni() {  # cni ADD|DEL INDEX
    CNI_COMMAND=$1 CNI_CONTAINERID=brtb-$$-$2 CNI_NETNS=/run/netns/$nsp$((2 * N + $2)) CNI_IFNAME=eth0 \
        "$CNI_PATH/bridge" < "$work/net.json"
}
for ((i = 1; i <= N; i++)); do
    s=$(usec); cni ADD "$i" > "$work/add-$i.json"; e=$(usec)
    echo "cni-ADD $((e - s))" >> "$times"
done
cip1=$(jq -r '.ips[0].address' "$work/add-1.json"); cip1=${cip1%/*}
echo "# CNI connectivity: host -> netns 1 ($cip1): $(ping -c 3 -i 0.2 -W 1 -I "$CBR" "$cip1" | grep -o '[0-9]* received')"
for ((i = 1; i <= N; i++)); do
    s=$(usec); cni DEL "$i" >/dev/null; e=$(usec)
    echo "cni-DEL $((e - s))" >> "$times"
done

echo
echo "## attach/detach, N=$N, sequential (ms)"
printf "%-22s %4s %9s %9s %9s %9s\n" op n median mean min max
for op in netctl-attach netctl-detach api-attach api-detach cni-ADD cni-DEL; do stats "$times" "$op"; done
ratio() { awk -v a="$(median "$times" "$1")" -v b="$(median "$times" "$2")" 'BEGIN { printf "%.1fx", a / b }'; }
echo "CNI ADD / berthd attach (median): $(ratio cni-ADD netctl-attach) via netctl, $(ratio cni-ADD api-attach) via API"
echo "CNI DEL / berthd detach (median): $(ratio cni-DEL netctl-detach) via netctl, $(ratio cni-DEL api-detach) via API"
ip link del "$CBR"

# --- 2. one network growing to SCALE endpoints -------------------------------------------------------
ip netns list | awk -v p="$nsp" 'index($1, p) == 1 { print $1 }' | xargs -r -P 8 -n 25 sh -c 'for n; do ip netns del "$n"; done' sh
t0=$(usec); mkns 1 "$SCALE"; ip netns add "${nsp}probe"
echo
echo "## scale: one network, up to $SCALE endpoints (created $SCALE netns in $(( ($(usec) - t0) / 1000 )) ms, untimed)"
echo "berthd VmRSS before: $(awk '/^VmRSS/ { print $2 }' "/proc/$berthd_pid/status") KiB"
"$bench" "$BERTH_SOCKET" scale "$nsp" "$SCALE" "$berthd_pid" "$PROBES"
echo "berthd VmRSS at $SCALE endpoints: $(awk '/^VmRSS/ { print $2 }' "/proc/$berthd_pid/status") KiB, VmHWM $(awk '/^VmHWM/ { print $2 }' "/proc/$berthd_pid/status") KiB"
if ((PAR > 0)); then
    "$bench" "$BERTH_SOCKET" par "$nsp" "$SCALE" "$PAR"
fi
if grep -qiE ' (ERROR|WARN) ' "$work/berthd.log"; then
    echo "# berthd warnings/errors:"; grep -iE ' (ERROR|WARN) ' "$work/berthd.log" | head -5
fi
