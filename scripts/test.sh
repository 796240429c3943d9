#!/usr/bin/env bash
# test.sh: install what the tests need, then run every test on the real kernel (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "test.sh: the tests use real mounts and namespaces: run as root" >&2; exit 1; }
scripts/install-deps.sh
cargo test --workspace --all-targets --no-fail-fast "$@"
