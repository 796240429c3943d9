#!/usr/bin/env bash
# unpack-vs-umoci.sh: time berth's layer unpacking against `umoci unpack` on the same gzip layer.
#
# Run as root from the repository root (or anywhere inside the clone). Builds a multi-megabyte
# one-layer OCI image layout in a temp dir (busybox plus copies of a few system directories:
# thousands of files, ~100+ MB uncompressed), then runs hyperfine:
#   umoci unpack --image DIR:latest OUT
#   target/release/examples/unpack_layer BLOB OUT      (berth::image::unpack::unpack_layer)
# and prints both medians and the ratio berth/umoci (< 1 means berth is faster).
#
# umoci does more than unpack the layer (it also writes config.json and an mtree manifest of the
# rootfs); that is the work `umoci unpack` does for a user, so it is what we compare against.
#
# Nothing is deleted before or between timed runs: every run unpacks into a new directory and
# everything goes at the end. Deleting thousands of inodes makes ext4 skip "recently deleted"
# inode numbers for the next minutes (ext4_new_inode -> recently_deleted), which slows inode
# allocation for whichever tool runs next and drowns the comparison in noise. Needs about
# (RUNS + 2) * 2 times the layer's size of free space.
#
# Environment:
#   RUNS=N            timed runs per command (default 10)
#   BENCH_TMP=DIR     where to build the image and unpack (default: $TMPDIR or /tmp); its
#                     filesystem is the one being measured
#   SRC_DIRS="D ..."  system directories copied into the rootfs (default below; missing ones
#                     are skipped)
set -euo pipefail

runs=${RUNS:-10}
src_dirs=${SRC_DIRS:-"/usr/include /usr/lib/python3 /usr/lib/python3.11 /usr/share/zoneinfo /usr/share/perl /usr/lib/x86_64-linux-gnu/perl"}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

[[ $(id -u) -eq 0 ]] || { echo "run as root (umoci and berth restore ownership and device nodes)" >&2; exit 1; }

need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v umoci >/dev/null || need+=(umoci)
[[ -x /bin/busybox ]] || need+=(busybox-static)
if ((${#need[@]})); then
    echo "installing ${need[*]}" >&2
    apt-get install -y "${need[@]}" >/dev/null || { apt-get update >/dev/null && apt-get install -y "${need[@]}" >/dev/null; }
fi

work=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/berth-unpack-bench.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building berth (release)" >&2
(cd "$repo" && cargo build --release --bin berth --example unpack_layer >&2)
target_dir=$(cd "$repo" && cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
berth_bin=$target_dir/release/examples/unpack_layer
[[ -x $berth_bin ]] || { echo "no $berth_bin after the build" >&2; exit 1; }
berth_cli=$target_dir/release/berth

echo "== building the rootfs" >&2
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var/tmp}
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
install -m 0755 /bin/busybox "$rootfs/bin/busybox"
while read -r applet; do
    [[ -e $rootfs/$applet || -L $rootfs/$applet ]] || ln -s /bin/busybox "$rootfs/$applet"
done < <(/bin/busybox --list-full)
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
for d in $src_dirs; do
    [[ -d $d && ! -L $d ]] || continue
    mkdir -p "$rootfs$(dirname "$d")"
    cp -a "$d" "$rootfs$(dirname "$d")/"
done
files=$(find "$rootfs" | wc -l)
bytes=$(du -sb "$rootfs" | cut -f1)
if ((bytes < 30 * 1024 * 1024 || files < 2000)); then
    echo "rootfs too small ($bytes bytes, $files entries): set SRC_DIRS to bigger directories" >&2
    exit 1
fi

echo "== building the OCI layout" >&2
img=$work/image
mkdir -p "$img/blobs/sha256"
tar -C "$rootfs" --sort=name --numeric-owner -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -6 "$work/layer.tar"
put_blob() { # put_blob FILE -> "digest size"
    local d
    d=$(sha256sum "$1" | cut -d' ' -f1)
    mv "$1" "$img/blobs/sha256/$d"
    echo "$d $(stat -c %s "$img/blobs/sha256/$d")"
}
read -r layer_d layer_s < <(put_blob "$work/layer.tar.gz")
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$diff_id" >"$work/config.json"
read -r cfg_d cfg_s < <(put_blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$cfg_d" "$cfg_s" "$layer_d" "$layer_s" >"$work/manifest.json"
read -r man_d man_s < <(put_blob "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
    "$man_d" "$man_s" >"$img/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$img/oci-layout"
blob=$img/blobs/sha256/$layer_d
echo "layer: $files entries, $((bytes / 1024 / 1024)) MiB uncompressed, $((layer_s / 1024 / 1024)) MiB gzip" >&2

# Sanity: both tools unpack it to the same tree: same contents, types, modes, owners, mtimes.
"$berth_bin" "$blob" "$work/check-berth" >/dev/null
umoci unpack --image "$img:latest" "$work/check-umoci" >/dev/null
diff -r --no-dereference "$work/check-berth" "$work/check-umoci/rootfs" >/dev/null ||
    { echo "berth and umoci unpacked different trees" >&2; exit 1; }
listing() { (cd "$1" && find . -mindepth 1 -printf '%p %y %m %U:%G %T@ %l\n' | LC_ALL=C sort); }
diff <(listing "$work/check-berth") <(listing "$work/check-umoci/rootfs") >"$work/meta.diff" ||
    { echo "berth and umoci unpacked different metadata:" >&2; head -20 "$work/meta.diff" >&2; exit 1; }
[[ $("$berth_bin" "$blob" "$work/check-berth2" | sed -n 's/^diff_id //p') == "sha256:$diff_id" ]] ||
    { echo "berth reported a wrong diff id" >&2; exit 1; }
sync

echo "== timing ($runs runs each)" >&2
mkdir -p "$work/out"
# Each run gets a fresh output directory (see above): $$ is the PID of the shell hyperfine
# starts for that run.
hyperfine --warmup 1 --runs "$runs" --export-csv "$work/times.csv" \
    -n umoci "umoci unpack --image '$img:latest' '$work/out/umoci-'\$\$" \
    -n berth "'$berth_bin' '$blob' '$work/out/berth-'\$\$ >/dev/null" \
    -n "berth image load" "BERTH_ROOT='$work/out/root-'\$\$ '$berth_cli' image load -q --name bench -i '$img'"

median() { awk -F, -v n="$1" '$1 == n { print $4 }' "$work/times.csv"; }
umoci_s=$(median umoci)
berth_s=$(median berth)
echo
printf 'median umoci unpack : %8.3f s\n' "$umoci_s"
load_s=$(median "berth image load")
printf 'median berth unpack : %8.3f s\n' "$berth_s"
printf 'median berth image load (unpack + verify + store): %8.3f s\n' "$load_s"
awk -v b="$load_s" -v u="$umoci_s" 'BEGIN { printf "ratio berth image load/umoci: %8.3f\n", b / u }'
awk -v b="$berth_s" -v u="$umoci_s" 'BEGIN { printf "ratio berth/umoci   : %8.3f  (%.1fx %s)\n", b / u, (b < u ? u / b : b / u), (b < u ? "faster" : "slower") }'
