#!/usr/bin/env bash
# mk-busybox-image.sh OUTDIR [NAME]: write berth's built-in default image, busybox:latest, as an
# OCI image layout in OUTDIR, offline, from Debian's busybox-static. Two runs give identical bytes.
#
#   scripts/mk-busybox-image.sh /tmp/busybox && berth image load -i /tmp/busybox
#
# The image has one gzip layer: /bin/busybox, a symlink per applet, a minimal /etc (passwd, group,
# nsswitch-free), and the empty mount points a container needs (/proc /sys /dev /tmp /root).
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 OUTDIR [NAME]   (NAME default: docker.io/library/busybox:latest)" >&2; exit 2; }
out=$1
name=${2:-docker.io/library/busybox:latest}
tag=${name##*:}
busybox=${BUSYBOX:-/bin/busybox}
ldd_says=$(ldd "$busybox" 2>&1 || true)
if ! "$busybox" --list-full >/dev/null 2>&1 || [[ $ldd_says != *"not a dynamic executable"* ]]; then
    echo "mk-busybox-image: $busybox is not a static busybox: install it with 'apt-get install busybox-static'" >&2
    exit 1
fi

work=$(mktemp -d /tmp/berth-mkimg.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home,var/log,run}
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
cp "$busybox" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
"$busybox" --list-full | while read -r applet; do
    [[ $applet == bin/busybox ]] && continue
    ln -sf /bin/busybox "$root/$applet"
done
cat > "$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$root/etc/group" <<'G'
root:x:0:
daemon:x:1:
www-data:x:33:
nogroup:x:65534:
G
echo 'root:*:19000:0:99999:7:::' > "$root/etc/shadow"
chmod 0640 "$root/etc/shadow"
: > "$root/etc/hostname"; : > "$root/etc/hosts"; : > "$root/etc/resolv.conf"

tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -6 "$work/layer.tar"

rm -rf "$out"
mkdir -p "$out/blobs/sha256"
put_blob() { # put_blob FILE -> "digest size"
    local d
    d=$(sha256sum "$1" | cut -d' ' -f1)
    cp "$1" "$out/blobs/sha256/$d"
    echo "$d $(stat -c %s "$1")"
}
read -r layer_d layer_s < <(put_blob "$work/layer.tar.gz")

printf '%s' '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",'\
'"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},'\
'"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff_id"'"]},'\
'"history":[{"created":"1970-01-01T00:00:00Z","created_by":"berth scripts/mk-busybox-image.sh"}]}' > "$work/config.json"
read -r cfg_d cfg_s < <(put_blob "$work/config.json")

printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'\
'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$cfg_d"'","size":'"$cfg_s"'},'\
'"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$layer_d"'","size":'"$layer_s"'}]}' > "$work/manifest.json"
read -r man_d man_s < <(put_blob "$work/manifest.json")

printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{'\
'"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$man_d"'","size":'"$man_s"','\
'"platform":{"architecture":"amd64","os":"linux"},'\
'"annotations":{"io.containerd.image.name":"'"$name"'","org.opencontainers.image.ref.name":"'"$tag"'"}}]}' > "$out/index.json"
printf '%s' '{"imageLayoutVersion":"1.0.0"}' > "$out/oci-layout"
echo "$out: OCI layout of $name (manifest sha256:$man_d, layer ${layer_s} bytes)"
