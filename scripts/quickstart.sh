#!/usr/bin/env bash
# quickstart.sh: from a fresh clone on Debian, as root: install what berth needs, build it, make
# the built-in busybox image offline, load it into a store and show it. No registry, no internet.
# Uses BERTH_ROOT / BERTH_RUN_ROOT if set (default /var/lib/berth and /run/berth).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "quickstart.sh: berth mounts filesystems and makes namespaces: run as root" >&2; exit 1; }
scripts/install-deps.sh
cargo build --release
berth=target/release/berth
layout=$(mktemp -d /tmp/berth-busybox.XXXXXX)
trap 'rm -rf "$layout"' EXIT
scripts/mk-busybox-image.sh "$layout"
"$berth" image load -i "$layout"
"$berth" images
"$berth" image inspect busybox | head -n 12
# The main job: a container from that image, with its own root, hostname, processes and network.
"$berth" run --rm --name "quickstart-$$" -h mycontainer busybox sh -c '
    echo "== hostname: $(hostname)"
    echo "== processes (PID 1 is this shell):"; ps
    echo "== root filesystem:"; ls /
    echo "== network (only lo):"; ip -o link
    echo "== cgroup (own namespace):"; cat /proc/self/cgroup | head -n 3'
