#!/usr/bin/env bash
# run-in-v2-vm.sh [--extra PATH[:GUEST_PATH]]... SCRIPT [ARG...]
#
# Runs SCRIPT (a busybox /bin/sh script) as root in a throwaway qemu VM whose kernel runs a pure
# cgroup v2 host: Debian's cloud kernel booted with `cgroup_no_v1=all`, /sys/fs/cgroup a cgroup2
# mount with +cpuset +cpu +io +memory +pids enabled in the root's cgroup.subtree_control. Prints
# SCRIPT's output (stdout and stderr, as they come) and exits with its status; 125 when the VM did
# not finish (timeout, kernel panic, no exit marker). This is how berth's v2 code path is tested on
# a v1 or hybrid host (tests/cgroup_v2.rs); it needs no KVM (TCG).
#
#   scripts/vm/run-in-v2-vm.sh --extra target/release/berth --extra /tmp/busybox-layout check.sh
#
# The guest: a busybox initramfs, built here into a temp dir and switch_root'ed to a tmpfs (so
# pivot_root works in it), with /proc /sys /dev /dev/pts /dev/shm /tmp /run mounted, lo up, the
# overlay, veth and bridge modules loaded. Each --extra file or directory is copied to
# /extra/<basename> (or to GUEST_PATH); dynamic ELF executables among them get their shared
# libraries (ldd) copied to the same paths, and debug info stripped from the copy when `strip`
# exists. SCRIPT runs from /extra, with stdin /dev/null, as the child of PID 1; then the VM
# powers off. A marker line with a per-run token carries its exit status over the serial console.
#
# Env: VM_MEM (MiB, 1024)  VM_SMP (2)  VM_TIMEOUT (s, 240)  VM_ACCEL (tcg)  VM_KERNEL (newest
# /boot/vmlinuz-*-cloud-amd64)  VM_MODULES ("overlay veth bridge")  VM_APPEND (more kernel args)
# VM_LOG (keep the whole console log in this file)  VM_VERBOSE=1 (show the console, boot included)
#
# Packages (scripts/install-deps.sh installs them): qemu-system-x86, linux-image-cloud-amd64,
# cpio, busybox-static.
set -euo pipefail

me=run-in-v2-vm
die() { echo "$me: $*" >&2; exit 125; }
usage() {
    sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//' >&2
    echo "see the head of $0 for the details" >&2
    exit 2
}

extras=()
while (($#)); do
    case $1 in
    --extra) (($# >= 2)) || usage; extras+=("$2"); shift 2 ;;
    --extra=*) extras+=("${1#--extra=}"); shift ;;
    -h | --help) usage ;;
    --) shift; break ;;
    -*) echo "$me: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
done
(($# >= 1)) || usage
script=$1; shift
[[ -f $script ]] || die "no such script: $script"

# --- what the host must have -------------------------------------------------------------------
need_pkg() { # need_pkg COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 ||
        die "$1 not found: install the Debian package $2 (apt-get install $2, or scripts/install-deps.sh)"
}
need_pkg qemu-system-x86_64 qemu-system-x86
need_pkg cpio cpio
[[ $(id -u) == 0 ]] || die "run as root: the guest kernel under /boot is readable by root only"
busybox=${BUSYBOX:-/bin/busybox}
if ! "$busybox" --list >/dev/null 2>&1 || ldd "$busybox" >/dev/null 2>&1; then
    die "$busybox is not a static busybox: install the Debian package busybox-static"
fi
if [[ -n ${VM_KERNEL:-} ]]; then
    kernel=$VM_KERNEL
else
    kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*-cloud-amd64' 2>/dev/null | sort -V | tail -n 1)
fi
[[ -n $kernel && -r $kernel ]] ||
    die "no Debian cloud kernel (/boot/vmlinuz-*-cloud-amd64): install the Debian package linux-image-cloud-amd64"
kver=${kernel##*/vmlinuz-}
moddir=/lib/modules/$kver
[[ -f $moddir/modules.dep ]] ||
    die "no modules for kernel $kver in $moddir: reinstall the Debian package linux-image-cloud-amd64"

work=$(mktemp -d /tmp/berth-v2vm.XXXXXX)
qemu_pid=
cleanup() {
    [[ -n $qemu_pid ]] && kill "$qemu_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
root=$work/root
ms() { echo $(($(date +%s%N) / 1000000)); }
t0=$(ms)
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,root,extra,modules,vm}

# --- the initramfs -------------------------------------------------------------------------------
cp "$busybox" "$root/bin/busybox"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > "$root/etc/hosts"
: > "$root/etc/resolv.conf"
echo berth-v2vm > "$root/etc/hostname"
cp "$script" "$root/vm/script"

is_elf() { [[ $(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' \n') == '177ELF' ]]; }
copy_libs() { # the shared libraries of a dynamic ELF file, at the same paths as here
    local lib
    { ldd "$1" 2>/dev/null || true; } | grep -o '/[^ )]*' | while read -r lib; do
        [[ -e $root$lib ]] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}
for x in "${extras[@]}"; do
    src=${x%%:*}
    dst=/extra/$(basename "$src")
    [[ $x == *:* ]] && dst=${x#*:}
    [[ -e $src ]] || die "no such file for --extra: $src"
    [[ $dst == /* ]] || die "guest path must be absolute: $x"
    mkdir -p "$root$(dirname "$dst")"
    cp -a "$src" "$root$dst"
done
elves=()
while IFS= read -r -d '' f; do
    is_elf "$f" && elves+=("$f")
done < <(find "$root" -type f -perm -u+x ! -path "$root/bin/busybox" ! -path "$root/vm/*" -print0)
for f in "${elves[@]}"; do
    # Debug info only makes the initramfs bigger and the boot slower (a debug berth is ~100 MB).
    if command -v strip >/dev/null; then strip --strip-debug "$f" 2>/dev/null || true; fi
    copy_libs "$f"
done

# Kernel modules with their dependencies, dependencies first, from modules.dep.
declare -A seen=()
add_module() { # add_module NAME
    local name=$1 line path deps d i out
    line=$(grep -E "(^|/)${name//-/[-_]}\.ko(\.xz|\.zst|\.gz)?:" "$moddir/modules.dep" | head -n 1) || true
    if [[ -z $line ]]; then
        grep -qE "/${name//-/[-_]}\.ko" "$moddir/modules.builtin" 2>/dev/null && return 0
        die "kernel $kver has no module $name (VM_MODULES)"
    fi
    path=${line%%:*}
    [[ -n ${seen[$path]:-} ]] && return 0
    seen[$path]=1
    read -r -a deps <<< "${line#*:}"
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
        d=$(basename "${deps[i]}"); add_module "${d%%.ko*}"
    done
    out=$root/modules/$(basename "${path%%.ko*}").ko
    case $path in
    *.ko) cp "$moddir/$path" "$out" ;;
    *.ko.xz) xz -dc "$moddir/$path" > "$out" ;;
    *.ko.zst) zstd -qdc "$moddir/$path" > "$out" ;;
    *.ko.gz) gzip -dc "$moddir/$path" > "$out" ;;
    esac
    echo "${out#"$root"}" >> "$root/modules/order"
}
touch "$root/modules/order"
for m in ${VM_MODULES-overlay veth bridge}; do add_module "$m"; done

token=$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')
args=""
for a in "$@"; do args+=" '${a//\'/\'\\\'\'}'"; done
cat > "$root/init" <<EOF
#!/bin/busybox sh
# PID 1 of the v2 test VM (written by scripts/vm/run-in-v2-vm.sh).
bb=/bin/busybox
if [ ! -e /.on-tmpfs ]; then
    # pivot_root cannot leave the initramfs (rootfs): move everything to a tmpfs, switch_root.
    \$bb mkdir /newroot
    \$bb mount -t tmpfs -o size=90%,mode=0755 tmpfs /newroot
    # Moved, not copied, to keep the peak memory low; switch_root wants /init left behind.
    \$bb cp -a /bin /init /newroot/
    for e in /*; do
        case \$e in /newroot|/bin|/init) ;; *) /newroot/bin/busybox mv "\$e" /newroot/ ;; esac
    done
    /newroot/bin/busybox touch /newroot/.on-tmpfs
    exec /newroot/bin/busybox switch_root /newroot /init
fi
\$bb --install -s
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
echo 1 > /proc/sys/kernel/printk   # no kernel messages between the script's lines
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || echo "$me: cannot mount cgroup2" >&2
for c in cpuset cpu io memory pids; do
    echo "+\$c" > /sys/fs/cgroup/cgroup.subtree_control || echo "$me: cannot enable the \$c controller" >&2
done
while read -r ko; do insmod "\$ko" || echo "$me: cannot load \$ko" >&2; done < /modules/order
ip link set lo up
hostname -F /etc/hostname
cd /extra
echo "@@berth-v2vm $token begin uptime=\$(cut -d' ' -f1 /proc/uptime)@@"
sh /vm/script$args < /dev/null 2>&1
echo "@@berth-v2vm $token rc=\$?@@"
poweroff -f
EOF
chmod 0755 "$root/init"
# Uncompressed: the guest unpacks it faster than it would inflate a gzip under TCG.
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) > "$work/initrd.cpio"

# --- the VM --------------------------------------------------------------------------------------
accel=${VM_ACCEL:-tcg}
cpu=max
[[ $accel == kvm ]] && cpu=host
timeout_s=${VM_TIMEOUT:-240}
log=${VM_LOG:-$work/console.log}
: > "$log"
mkfifo "$work/console"
t1=$(ms)
timeout -k 5 "$timeout_s" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -M q35 \
    -m "${VM_MEM:-1024}" -smp "${VM_SMP:-2}" \
    -nodefaults -no-user-config -display none -monitor none -nic none -serial stdio -no-reboot \
    -kernel "$kernel" -initrd "$work/initrd.cpio" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 ${VM_APPEND:-}" \
    < /dev/null > "$work/console" 2>&1 &
qemu_pid=$!

rc='' boot='' in=0
while IFS= read -r line || [[ -n $line ]]; do
    line=${line//$'\r'/}
    printf '%s\n' "$line" >> "$log"
    case $line in
    *"@@berth-v2vm $token begin uptime="*)
        boot=${line##*uptime=}; boot=${boot%@@*}; in=1; continue ;;
    *"@@berth-v2vm $token rc="*)
        rc=${line##*rc=}; rc=${rc%@@*}; in=0; continue ;;
    esac
    if ((in)); then
        printf '%s\n' "$line"
    elif [[ ${VM_VERBOSE:-0} == 1 ]]; then
        printf 'console: %s\n' "$line" >&2
    fi
done < "$work/console"
qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
qemu_pid=

echo "# $me: kernel $kver, accel $accel; initramfs $(($(stat -c %s "$work/initrd.cpio") >> 20)) MiB made in $((t1 - t0)) ms;" \
    "guest at /init after ${boot:-?} s; VM wall $(($(ms) - t1)) ms; script rc=${rc:-none}" >&2
if [[ -z $rc ]]; then
    if ((qemu_rc == 124 || qemu_rc == 137)); then
        if [[ -n $boot ]]; then
            echo "$me: SCRIPT was still running when VM_TIMEOUT=${timeout_s} s ran out; console tail:" >&2
        else
            echo "$me: the guest did not even reach /init within VM_TIMEOUT=${timeout_s} s; console tail:" >&2
        fi
    else
        echo "$me: the VM stopped (qemu status $qemu_rc) without the script's exit marker (kernel panic?); console tail:" >&2
    fi
    tail -n 25 "$log" >&2
    exit 125
fi
exit "$rc"
