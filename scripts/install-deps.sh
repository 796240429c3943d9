#!/usr/bin/env bash
# install-deps.sh: the Debian packages berth's build, tests and benchmarks use. Idempotent.
set -euo pipefail
pkgs=(
    busybox-static   # the built-in default image (scripts/mk-busybox-image.sh)
    skopeo           # pushes test images into the local registry
    docker-registry  # a real OCI distribution registry on 127.0.0.1 for pull tests
    apache2-utils    # htpasswd, for the registry's basic-auth test
    umoci            # the unpack benchmark's yardstick
    hyperfine        # benchmarks
    openssl          # signs tokens for the registry token-auth test
    tmux             # a terminal for the -t tests (tests/tty.rs)
    iputils-ping     # network tests ping between their own namespaces
    iproute2         # ip netns, for the network tests
    nftables         # nft: berthd's firewall drives it (bridge/src/firewall), and its tests
    jq curl ca-certificates
    prometheus       # promtool: metrics/tests/exposition.rs lints berthd's /metrics output
                     # (`promtool check metrics`); tests/deploy.rs runs `promtool check config`,
                     # `check rules`, `test rules` on deploy/prometheus and a real prometheus
                     # server on 127.0.0.1; the service it ships must not start (below)
    python3-yaml     # deploy/kubernetes/gen-prometheusrule.sh; tests/deploy.rs reads the YAML in deploy/
    # The pure cgroup v2 tests (tests/cgroup_v2.rs, scripts/vm/run-in-v2-vm.sh) boot a qemu VM:
    qemu-system-x86          # qemu-system-x86_64 (TCG; no KVM needed)
    linux-image-cloud-amd64  # the guest kernel (/boot/vmlinuz-*) and its overlay/veth/bridge modules
    cpio                     # packs the guest's busybox initramfs
)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Services the packages ship (docker-registry) must not start: tests run their own.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
