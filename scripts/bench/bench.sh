#!/usr/bin/env bash
# `make bench`: installs what the benchmark needs (apt, only if missing),
# builds the harness and runs it. Run as root from anywhere; bin/emulator
# must exist (`make build`, which `make bench` runs first).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
	echo "bench: run as root (sudo make bench)" >&2
	exit 2
fi

# The tools the tests use, with apt, only those missing: iperf3, nftables,
# iproute2 among them. The benchmark needs nothing else: its request/response,
# new-connection and UDP load generators are Go, in this directory.
scripts/install-deps.sh

GO=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
tmp=$(mktemp -d /tmp/bench-build.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$GO" build -o "$tmp/bench" ./scripts/bench
# The harness handles SIGINT/SIGTERM itself (it tears everything down); the
# shell only waits for it and then removes the binary.
"$tmp/bench" -emulator bin/emulator -go "$GO" -out BENCHMARKS.md "$@"
